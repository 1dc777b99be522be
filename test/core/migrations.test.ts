import { cp, mkdtemp, appendFile, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, ErrorCode, MigrationError, defaultMigrationsDir, loadMigrations, migrate } from "../../core/index.js";
import { createDefaultLogger } from "../../core/model/logger.js";
import { defaultFunctionsDir, inspectSchema, loadFunctionFiles } from "../../core/db/migrations.js";
import { createScratchDatabase, withClient, type ScratchDatabase } from "../support/database.js";

const logger = createDefaultLogger();

describe("migrations", () => {
  let database: ScratchDatabase;
  beforeAll(async () => {
    database = await createScratchDatabase("migrations");
  });
  afterAll(() => database.drop());

  it("applies every migration exactly once when twenty nodes connect at once to an empty database", async () => {
    const shipped = await loadMigrations();
    const systems = await Promise.all(
      Array.from({ length: 20 }, () => CoreSystem.connect({ connectionString: database.url, namespace: "race", pool: { max: 2 } })),
    );
    await Promise.all(systems.map((system) => system.close()));

    const rows = await withClient(database.url, async (client) => {
      const result = await client.query<{ version: number; name: string; checksum: string }>(
        "select version, name, checksum from core.schema_migrations order by version",
      );
      return result.rows;
    });
    expect(rows).toEqual(shipped.map(({ version, name, checksum }) => ({ version, name, checksum })));
  });

  it("refuses a database whose applied migration was changed, naming the file", async () => {
    const tamperedDir = await mkdtemp(path.join(os.tmpdir(), "nexus-migrations-"));
    try {
      await cp(defaultMigrationsDir, tamperedDir, { recursive: true });
      await appendFile(path.join(tamperedDir, "000004_core_schema.sql"), "\n-- an edit after release\n");
      const pool = new pg.Pool({ connectionString: database.url, max: 1 });
      try {
        const error = await migrate(pool, { logger, migrations: await loadMigrations(tamperedDir) }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(MigrationError);
        expect((error as MigrationError).code).toBe(ErrorCode.migrationChanged);
        expect((error as MigrationError).message).toContain("000004_core_schema.sql");
      } finally {
        await pool.end();
      }
    } finally {
      await rm(tamperedDir, { recursive: true, force: true });
    }
  });

  it("refuses a schema migrated by a newer release, and connect fails with the same error", async () => {
    const shipped = await loadMigrations();
    const future = shipped.length + 1;
    await withClient(database.url, (client) =>
      client.query("insert into core.schema_migrations (version, name, checksum) values ($1, 'from_the_future', 'x')", [future]),
    );
    try {
      const error = await CoreSystem.connect({ connectionString: database.url, namespace: "race" }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MigrationError);
      expect((error as MigrationError).code).toBe(ErrorCode.schemaTooNew);
      expect((error as MigrationError).message).toMatch(new RegExp(`version ${future} \\(from_the_future\\).*Upgrade`));
    } finally {
      await withClient(database.url, (client) => client.query("delete from core.schema_migrations where version = $1", [future]));
    }
  });

  it("rolls back every migration of a run when one fails, naming the file and keeping the SQLSTATE", async () => {
    const scratch = await createScratchDatabase("migration_fail");
    const brokenDir = await mkdtemp(path.join(os.tmpdir(), "nexus-migrations-"));
    try {
      await cp(defaultMigrationsDir, brokenDir, { recursive: true });
      const count = (await loadMigrations()).length;
      const brokenName = `${String(count + 1).padStart(6, "0")}_broken.sql`;
      await appendFile(path.join(brokenDir, brokenName), "select * from core.no_such_table;\n");
      const pool = new pg.Pool({ connectionString: scratch.url, max: 1 });
      try {
        const error = await migrate(pool, { logger, migrations: await loadMigrations(brokenDir) }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(MigrationError);
        expect((error as MigrationError).message).toContain(brokenName);
        expect((error as MigrationError).sqlState).toBe("42P01");
        const { rows } = await pool.query("select to_regclass('core.schema_migrations') as table");
        expect(rows[0].table).toBeNull();
      } finally {
        await pool.end();
      }
    } finally {
      await rm(brokenDir, { recursive: true, force: true });
      await scratch.drop();
    }
  });

  it("rejects a misnumbered migration folder before touching the database", async () => {
    const gapDir = await mkdtemp(path.join(os.tmpdir(), "nexus-migrations-"));
    try {
      await appendFile(path.join(gapDir, "000002_gap.sql"), "select 1;\n");
      await expect(loadMigrations(gapDir)).rejects.toThrow(/000002_gap\.sql breaks the sequence: expected version 1/);
    } finally {
      await rm(gapDir, { recursive: true, force: true });
    }
  });
});

/**
 * sha256 of migrations 1-13 as released: a database migrated by an older release records
 * these, and the runner refuses it when a shipped file no longer matches. They must never
 * change (a change to the schema is a new migration; to a function, its function file).
 */
const RELEASED_CHECKSUMS: Record<string, string> = {
  "000001_schema_migrations.sql": "de653293f7c1e56575c1b52ae34cd35b603f99f2000b1df0f69ac1fabdf646ea",
  "000002_extensions.sql": "23ae4a7efd5133ac5ca26c755eb5ead829448c799439610eb1b165067207c794",
  "000003_pgmq_compat.sql": "144362b7845f55ea18f3189e6e2f1fb8e3b0385aeeb485bd30372b5100a42c62",
  "000004_core_schema.sql": "a7319cfe53b865e3d368eee38031c8e42c18ed0ec7ae5fc4039e13b33ac9a6ed",
  "000005_delivery.sql": "64b3bf7192079cb17567108966cefe35e670b6772f2b95de23eaa254a3c7d228",
  "000006_requests.sql": "330c903b0502b32b9700ccd9420095752758dd466c38396aca40a1709c838bc4",
  "000007_schedules.sql": "d0b23c799f0d369c876015c70a9f8875aae0c42101db56b68aeef437fac40766",
  "000008_event_log.sql": "48d50df50b4c02fa74f600a17d77eca38cd9a84da13386e4ef58fa6518d03666",
  "000009_dead_letters_metrics.sql": "03ed8a13b79e5d8aa5959197c4cbd424f17e8f6ace97a7796e4737b7a276ca2d",
  "000010_request_claims.sql": "efa1b18ef16607b521cd7a197752fcce2cebb9379f97ec10efa5ed6e6fb7bdb7",
  "000011_bullmq_jobs.sql": "24a34101fcded253cc22b8691c6ec428d7f421ec24c879ab6b27de3e2c77c6a4",
  "000012_namespace_roles.sql": "791b59b19b99555bde63b83aad1ffbd4536196f6820bc7a8fad981b55dce7631",
  "000013_settle_batch.sql": "4058c8b954b88eaf6124ff8b660f9e9449d5f2af03b16eda103a598bdc863d07",
};

/** What two databases must share to count as the same schema: core's objects, function bodies and grants in full. */
const SCHEMA = `
  select kind, line from (
    select 'relation' as kind, format('%s %s', c.relname, c.relkind) as line
      from pg_class c where c.relnamespace = 'core'::regnamespace and not c.relispartition
    union all
    select 'column', format('%s.%s %s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                            pg_get_expr(d.adbin, d.adrelid))
      from pg_attribute a join pg_class c on c.oid = a.attrelid
      left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
     where c.relnamespace = 'core'::regnamespace and a.attnum > 0 and not a.attisdropped and not c.relispartition
    union all
    select 'constraint', format('%s %s', k.conrelid::regclass, pg_get_constraintdef(k.oid))
      from pg_constraint k where k.connamespace = 'core'::regnamespace
    union all
    select 'index', pg_get_indexdef(i.indexrelid)
      from pg_index i join pg_class c on c.oid = i.indrelid
     where c.relnamespace = 'core'::regnamespace and not c.relispartition
    union all
    select 'policy', format('%s %s %s %s', tablename, policyname, qual, with_check) from pg_policies where schemaname = 'core'
    union all
    select 'grant', format('%s %s', c.relname, c.relacl) from pg_class c where c.relnamespace = 'core'::regnamespace
    union all
    select 'function', format('%s acl %s', pg_get_functiondef(p.oid), p.proacl)
      from pg_proc p where p.pronamespace = 'core'::regnamespace
  ) schema
  order by kind, line`;

async function schemaOf(url: string): Promise<string[]> {
  return withClient(url, async (client) => (await client.query<{ kind: string; line: string }>(SCHEMA)).rows.map((row) => `${row.kind}: ${row.line}`));
}

async function migrateWith(url: string, options: Omit<Parameters<typeof migrate>[1], "logger"> = {}) {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  try {
    return await migrate(pool, { logger, ...options });
  } finally {
    await pool.end();
  }
}

describe("function files", () => {
  let fresh: ScratchDatabase;
  let upgraded: ScratchDatabase;
  beforeAll(async () => {
    [fresh, upgraded] = await Promise.all([createScratchDatabase("functions_fresh"), createScratchDatabase("functions_upgraded")]);
  });
  afterAll(() => Promise.all([fresh.drop(), upgraded.drop()]));

  it("ships migrations 1-13 byte for byte as released", async () => {
    const released = (await loadMigrations()).filter((migration) => migration.version <= 13);
    expect(Object.fromEntries(released.map((migration) => [migration.fileName, migration.checksum]))).toEqual(RELEASED_CHECKSUMS);
  });

  it("upgrades a database of the old layout (migrations 1-13 only) to the same schema as a fresh one", async () => {
    const shipped = await loadMigrations();
    // What an older release did: apply its migrations 1-13, no function files.
    const old = await migrateWith(upgraded.url, { migrations: shipped.filter((migration) => migration.version <= 13), functionFiles: [] });
    expect(old.applied).toEqual(Array.from({ length: 13 }, (_, index) => index + 1));
    const files = (await loadFunctionFiles()).map((file) => file.name);
    const inspection = await withClient(upgraded.url, (client) => inspectSchema(client));
    expect(inspection).toEqual({ version: 13, shipped: shipped.length, outdatedFunctionFiles: files, current: false });

    const upgrade = await migrateWith(upgraded.url);
    expect(upgrade).toEqual({ applied: shipped.slice(13).map((migration) => migration.version), version: shipped.length, functionFiles: files });
    const first = await migrateWith(fresh.url);
    expect(first).toEqual({ applied: shipped.map((migration) => migration.version), version: shipped.length, functionFiles: files });

    const [freshSchema, upgradedSchema] = await Promise.all([schemaOf(fresh.url), schemaOf(upgraded.url)]);
    expect(freshSchema.filter((line) => line.startsWith("function: ")).length).toBeGreaterThan(80);
    expect(upgradedSchema).toEqual(freshSchema);

    const records = (url: string) =>
      withClient(url, async (client) => ({
        migrations: (await client.query("select version, name, checksum from core.schema_migrations order by version")).rows,
        functionFiles: (await client.query("select name, checksum from core.function_files order by name")).rows,
      }));
    expect(await records(upgraded.url)).toEqual(await records(fresh.url));
  });

  it("re-applies a changed function file and only that one; an unchanged set applies nothing", async () => {
    expect(await migrateWith(fresh.url)).toMatchObject({ applied: [], functionFiles: [] });

    const changedDir = await mkdtemp(path.join(os.tmpdir(), "nexus-functions-"));
    try {
      await cp(defaultFunctionsDir, changedDir, { recursive: true });
      const requests = path.join(changedDir, "30_requests.sql");
      const text = await readFile(requests, "utf8");
      expect(text).toContain("as 'select 7900'");
      await writeFile(requests, text.replace("as 'select 7900'", "as 'select 7901'"));
      const changed = await loadFunctionFiles(changedDir);

      const pool = new pg.Pool({ connectionString: fresh.url, max: 1 });
      try {
        await expect(inspectSchema(pool, { functionFiles: changed })).resolves.toMatchObject({ current: false, outdatedFunctionFiles: ["30_requests.sql"] });
        const before = (await pool.query("select name, applied_at from core.function_files order by name")).rows;

        expect(await migrate(pool, { logger, functionFiles: changed })).toMatchObject({ applied: [], functionFiles: ["30_requests.sql"] });
        expect((await pool.query("select core.notify_limit() as limit")).rows[0].limit).toBe(7901);
        const after = (await pool.query("select name, applied_at from core.function_files order by name")).rows;
        expect(after.filter((row, index) => row.applied_at.getTime() !== before[index].applied_at.getTime()).map((row) => row.name)).toEqual(["30_requests.sql"]);

        // The shipped files: that one file is outdated again (what `migrate: false` callers report), and migrating restores it.
        await expect(inspectSchema(pool)).resolves.toMatchObject({ current: false, outdatedFunctionFiles: ["30_requests.sql"] });
        expect(await migrate(pool, { logger })).toMatchObject({ applied: [], functionFiles: ["30_requests.sql"] });
        expect((await pool.query("select core.notify_limit() as limit")).rows[0].limit).toBe(7900);
        await expect(inspectSchema(pool)).resolves.toMatchObject({ current: true, outdatedFunctionFiles: [] });
      } finally {
        await pool.end();
      }
    } finally {
      await rm(changedDir, { recursive: true, force: true });
    }
  });

  it("rolls back a run whose function file fails, naming the file", async () => {
    const brokenDir = await mkdtemp(path.join(os.tmpdir(), "nexus-functions-"));
    try {
      await cp(defaultFunctionsDir, brokenDir, { recursive: true });
      await appendFile(path.join(brokenDir, "99_broken.sql"), "select core.no_such_function();\n");
      const error = await migrateWith(fresh.url, { functionFiles: await loadFunctionFiles(brokenDir) }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MigrationError);
      expect((error as MigrationError).message).toContain("sql/functions/99_broken.sql");
      expect((error as MigrationError).sqlState).toBe("42883");
      const { rows } = await withClient(fresh.url, (client) => client.query("select 1 from core.function_files where name = '99_broken.sql'"));
      expect(rows).toEqual([]);
    } finally {
      await rm(brokenDir, { recursive: true, force: true });
    }
  });
});
