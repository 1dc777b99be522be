/**
 * The benchmarks' database: `CORE_DATABASE_URL`, or else the embedded PostgreSQL of the
 * examples in its own data folder (started here, stopped by `stop()`).
 */
import type pg from "pg";
import { redactConnectionString } from "../../core/index.js";
import { resolveDatabaseServer, type DatabaseServer } from "../../apps/shared/database.js";
import { log } from "./log.js";

export type { DatabaseServer };

/** Resolves the server; `dataDir` is used only for the embedded one. */
export async function benchDatabase(dataDir = ".nexus/bench-pg"): Promise<DatabaseServer> {
  const server = await resolveDatabaseServer({ dataDir, log: (message) => log(message) });
  log("database", { server: server.embedded ? "embedded" : "CORE_DATABASE_URL", url: redactConnectionString(server.url) });
  return server;
}

/** What the results should say about the server. */
export async function serverFacts(pool: pg.Pool): Promise<{ postgres: string; synchronousCommit: string; sharedBuffers: string; maxConnections: string }> {
  const { rows } = await pool.query<{ version: string; sc: string; sb: string; mc: string }>(
    `select current_setting('server_version') as version, current_setting('synchronous_commit') as sc,
            current_setting('shared_buffers') as sb, current_setting('max_connections') as mc`,
  );
  const row = rows[0]!;
  return { postgres: row.version, synchronousCommit: row.sc, sharedBuffers: row.sb, maxConnections: row.mc };
}
