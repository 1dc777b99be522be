import { cp, mkdtemp, appendFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, ErrorCode, MigrationError, defaultMigrationsDir, loadMigrations, migrate } from "../../core/index.js";
import { createDefaultLogger } from "../../core/model/logger.js";
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
