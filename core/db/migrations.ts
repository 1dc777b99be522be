/**
 * The migration runner. The numbered files of `sql/` define the schema: they are applied
 * in order, once, under a transaction-level advisory lock, and recorded with their
 * checksum in `core.schema_migrations`. A database whose applied files differ from the
 * shipped ones, or that a newer release has migrated, is refused.
 *
 * The files of `sql/functions/` hold the live body of every `core.*` function. They are
 * repeatable: applied after the migrations, under the same lock and in the same
 * transaction, in file-name order, and recorded with their checksum in
 * `core.function_files` (migration 14). A file is applied again when its checksum
 * changed, or when the run applied a migration (which may have replaced one of its
 * functions); an unchanged file is left alone.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type pg from "pg";
import { ErrorCode, MigrationError, asError } from "../model/errors.js";
import type { Logger } from "../model/logger.js";

/** One file of `sql/`. */
export interface Migration {
  /** The file's number, e.g. 4 for `000004_core_schema.sql`. */
  readonly version: number;
  /** The file's name without number and extension, e.g. `core_schema`. */
  readonly name: string;
  readonly fileName: string;
  readonly sql: string;
  /** sha256 of the file's text, in hex. */
  readonly checksum: string;
  /** Set by a first line `-- nexus:skip-if-extension NAME`: the file is recorded but not run where NAME is installed. */
  readonly skipIfExtension: string | undefined;
}

/** One file of `sql/functions/`: `create or replace function` statements, applied again when it changes. */
export interface FunctionFile {
  /** The file's name, e.g. `20_delivery.sql`; files apply in the order of their names. */
  readonly name: string;
  readonly sql: string;
  /** sha256 of the file's text, in hex. */
  readonly checksum: string;
}

/** What {@link migrate} did. */
export interface MigrationReport {
  /** Versions this call applied (or recorded as skipped). */
  readonly applied: number[];
  /** The database's version afterwards. */
  readonly version: number;
  /** Function files this call applied (new or changed ones, or all after a migration), by name. */
  readonly functionFiles: string[];
}

/** How a database compares with the shipped files, read without changing anything (see {@link inspectSchema}). */
export interface SchemaInspection {
  /** The highest applied migration, 0 when none. */
  readonly version: number;
  /** The number of shipped migrations. */
  readonly shipped: number;
  /** Shipped function files not applied, or applied with another checksum, by name. */
  readonly outdatedFunctionFiles: string[];
  /** Whether {@link migrate} would find nothing to do. */
  readonly current: boolean;
}

const FILE_NAME = /^(\d{6})_([a-z0-9_]+)\.sql$/;
const FUNCTION_FILE_NAME = /^\d{2}_[a-z0-9_]+\.sql$/;
const SKIP_DIRECTIVE = /^-- nexus:skip-if-extension ([a-z0-9_]+)\s*$/m;
/** An arbitrary constant shared by every release: the key of the migration lock. */
const MIGRATION_LOCK_KEY = "7120394851203948512";

/**
 * The folder of the shipped migrations: `sql/` at the package root. From source this
 * module is `core/db/migrations.ts`; in the package it is bundled into a `dist/` chunk.
 */
export const defaultMigrationsDir = packageSqlDir();

function packageSqlDir(): string {
  const fromSource = fileURLToPath(new URL("../../sql/", import.meta.url));
  const fromDist = fileURLToPath(new URL("../sql/", import.meta.url));
  return existsSync(`${fromSource}/000001_schema_migrations.sql`) ? fromSource : fromDist;
}

/** The folder of the shipped function files: `sql/functions/` at the package root. */
export const defaultFunctionsDir = `${defaultMigrationsDir}functions/`;

/** Reads and orders the migrations of a folder. */
export async function loadMigrations(dir: string = defaultMigrationsDir): Promise<Migration[]> {
  const fileNames = (await readdir(dir)).filter((fileName) => fileName.endsWith(".sql")).sort();
  const migrations: Migration[] = [];
  for (const fileName of fileNames) {
    const match = FILE_NAME.exec(fileName);
    if (!match) {
      throw new MigrationError(
        ErrorCode.migrationFailed,
        `Migration file ${fileName} in ${dir} is misnamed: use NNNNNN_lowercase_name.sql`,
      );
    }
    const sql = await readFile(`${dir}/${fileName}`, "utf8");
    migrations.push({
      version: Number(match[1]),
      name: match[2]!,
      fileName,
      sql,
      checksum: createHash("sha256").update(sql).digest("hex"),
      skipIfExtension: SKIP_DIRECTIVE.exec(sql.split("\n", 1)[0] ?? "")?.[1],
    });
  }
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new MigrationError(
        ErrorCode.migrationFailed,
        `Migration ${migration.fileName} breaks the sequence: expected version ${index + 1}`,
      );
    }
  });
  return migrations;
}

/** Reads the function files of a folder, ordered by name. */
export async function loadFunctionFiles(dir: string = defaultFunctionsDir): Promise<FunctionFile[]> {
  const names = (await readdir(dir)).filter((name) => name.endsWith(".sql")).sort();
  const files: FunctionFile[] = [];
  for (const name of names) {
    if (!FUNCTION_FILE_NAME.test(name)) {
      throw new MigrationError(ErrorCode.migrationFailed, `Function file ${name} in ${dir} is misnamed: use NN_lowercase_name.sql`);
    }
    const sql = await readFile(`${dir}/${name}`, "utf8");
    files.push({ name, sql, checksum: createHash("sha256").update(sql).digest("hex") });
  }
  return files;
}

interface AppliedRow {
  version: number;
  name: string;
  checksum: string;
}

/**
 * Brings the database up to the shipped migrations. Safe to call from many processes at
 * once: the advisory lock serialises them, and the later ones find nothing to do.
 */
export async function migrate(
  pool: pg.Pool,
  options: { logger: Logger; migrations?: Migration[]; functionFiles?: FunctionFile[] },
): Promise<MigrationReport> {
  const migrations = options.migrations ?? (await loadMigrations());
  const functionFiles = options.functionFiles ?? (await loadFunctionFiles());
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (error: Error): void => void (broken ??= error);
  client.on("error", onError);
  try {
    await client.query("begin");
    await client.query("select pg_advisory_xact_lock($1::bigint)", [MIGRATION_LOCK_KEY]);
    const applied = await readApplied(client);
    verifyApplied(applied, migrations);
    const pending = migrations.slice(applied.length);
    for (const migration of pending) await applyOne(client, migration, options.logger);
    const outdated = await outdatedFunctionFiles(client, functionFiles);
    const toApply = pending.length > 0 ? functionFiles : outdated;
    for (const file of toApply) await applyFunctionFile(client, file, options.logger);
    await client.query("commit");
    return {
      applied: pending.map((migration) => migration.version),
      version: migrations.length,
      functionFiles: toApply.map((file) => file.name),
    };
  } catch (error) {
    if (!broken) await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    client.off("error", onError);
    client.release(broken);
  }
}

/**
 * Compares the database with the shipped migrations and function files without changing
 * anything: what a caller that does not migrate (`migrate: false`, the CLI) reports as
 * an outdated schema. Refuses, as {@link migrate} does, a changed or newer migration.
 */
export async function inspectSchema(
  queryable: pg.Pool | pg.ClientBase,
  options: { migrations?: Migration[]; functionFiles?: FunctionFile[] } = {},
): Promise<SchemaInspection> {
  const migrations = options.migrations ?? (await loadMigrations());
  const functionFiles = options.functionFiles ?? (await loadFunctionFiles());
  const applied = await readApplied(queryable);
  verifyApplied(applied, migrations);
  const outdated = (await outdatedFunctionFiles(queryable, functionFiles)).map((file) => file.name);
  const version = applied.at(-1)?.version ?? 0;
  return { version, shipped: migrations.length, outdatedFunctionFiles: outdated, current: version === migrations.length && outdated.length === 0 };
}

/** The function files never applied here, or applied with another checksum (all of them before migration 14). */
async function outdatedFunctionFiles(queryable: pg.Pool | pg.ClientBase, files: FunctionFile[]): Promise<FunctionFile[]> {
  const { rows } = await queryable.query<{ exists: boolean }>("select to_regclass('core.function_files') is not null as exists");
  if (!rows[0]?.exists) return files;
  const result = await queryable.query<{ name: string; checksum: string }>("select name, checksum from core.function_files");
  const applied = new Map(result.rows.map((row) => [row.name, row.checksum]));
  return files.filter((file) => applied.get(file.name) !== file.checksum);
}

async function applyFunctionFile(client: pg.PoolClient, file: FunctionFile, logger: Logger): Promise<void> {
  try {
    await client.query(file.sql);
    await client.query(
      `insert into core.function_files (name, checksum) values ($1, $2)
       on conflict (name) do update set checksum = excluded.checksum, applied_at = now()`,
      [file.name, file.checksum],
    );
  } catch (error) {
    const sqlState = (error as { code?: string }).code;
    throw new MigrationError(ErrorCode.migrationFailed, `Function file sql/functions/${file.name} failed: ${(error as Error).message}`, {
      cause: error,
      sqlState,
    });
  }
  logger.info({ functionFile: file.name }, "function file applied");
}

async function readApplied(client: pg.Pool | pg.ClientBase): Promise<AppliedRow[]> {
  const { rows } = await client.query<{ exists: boolean }>(
    "select to_regclass('core.schema_migrations') is not null as exists",
  );
  if (!rows[0]?.exists) return [];
  const result = await client.query<AppliedRow>(
    "select version, name, checksum from core.schema_migrations order by version",
  );
  return result.rows;
}

function verifyApplied(applied: AppliedRow[], migrations: Migration[]): void {
  const newest = applied.at(-1);
  if (newest && newest.version > migrations.length) {
    throw new MigrationError(
      ErrorCode.schemaTooNew,
      `The database was migrated to version ${newest.version} (${newest.name}) by a newer release of ` +
        `@nexus-core/core; this release knows versions up to ${migrations.length}. Upgrade the package ` +
        `rather than run an older one against this database.`,
    );
  }
  for (const row of applied) {
    const shipped = migrations[row.version - 1];
    if (!shipped || shipped.checksum !== row.checksum) {
      throw new MigrationError(
        ErrorCode.migrationChanged,
        `Migration ${shipped?.fileName ?? `version ${row.version}`} differs from the one applied to this ` +
          `database (${row.name}): applied migrations are immutable. Restore the released file and put ` +
          `the change in a new numbered migration.`,
      );
    }
  }
}

async function applyOne(client: pg.PoolClient, migration: Migration, logger: Logger): Promise<void> {
  const skipped = migration.skipIfExtension ? await extensionInstalled(client, migration.skipIfExtension) : false;
  if (!skipped) {
    try {
      await client.query(migration.sql);
    } catch (error) {
      const sqlState = (error as { code?: string }).code;
      throw new MigrationError(
        ErrorCode.migrationFailed,
        `Migration ${migration.fileName} failed: ${asError(error).message}`,
        { cause: error, sqlState },
      );
    }
  }
  await client.query(
    "insert into core.schema_migrations (version, name, checksum, skipped) values ($1, $2, $3, $4)",
    [migration.version, migration.name, migration.checksum, skipped],
  );
  logger.info({ version: migration.version, migration: migration.fileName, skipped }, "migration applied");
}

async function extensionInstalled(client: pg.PoolClient, name: string): Promise<boolean> {
  const { rowCount } = await client.query("select 1 from pg_extension where extname = $1", [name]);
  return (rowCount ?? 0) > 0;
}
