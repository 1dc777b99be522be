/**
 * The migration runner. The numbered files of `sql/` are the only definition of the
 * schema: they are applied in order, once, under a transaction-level advisory lock, and
 * recorded with their checksum in `core.schema_migrations`. A database whose applied
 * files differ from the shipped ones, or that a newer release has migrated, is refused.
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

/** What {@link migrate} did. */
export interface MigrationReport {
  /** Versions this call applied (or recorded as skipped). */
  readonly applied: number[];
  /** The database's version afterwards. */
  readonly version: number;
}

const FILE_NAME = /^(\d{6})_([a-z0-9_]+)\.sql$/;
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
  options: { logger: Logger; migrations?: Migration[] },
): Promise<MigrationReport> {
  const migrations = options.migrations ?? (await loadMigrations());
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
    await client.query("commit");
    return { applied: pending.map((migration) => migration.version), version: migrations.length };
  } catch (error) {
    if (!broken) await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    client.off("error", onError);
    client.release(broken);
  }
}

async function readApplied(client: pg.PoolClient): Promise<AppliedRow[]> {
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
