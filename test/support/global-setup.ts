/**
 * Vitest global setup: one PostgreSQL server for the whole run. `CORE_DATABASE_URL`
 * names it (CI runs the suite once against a database with pg_cron and pg_partman and
 * once, as a non-superuser, against a bare one); without it an embedded server starts.
 */
import type { TestProject } from "vitest/node";
import { resolveDatabaseServer } from "../../apps/shared/database.js";

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await resolveDatabaseServer({
    dataDir: ".nexus/test-pg",
    log: (message) => console.log(`[test setup] ${message}`),
  });
  project.provide("databaseUrl", server.url);
  return () => server.stop();
}
