/**
 * `npm run dev:server`: the HTTP ingest server alone. Database: CORE_DATABASE_URL, else
 * Docker or the embedded server in `.nexus/pgdata` (apps/shared/database.ts).
 * Namespace: CORE_NAMESPACE (default `demo`); node id: CORE_NODE_ID. See serve.ts for the
 * server's own variables. SIGTERM/SIGINT: stop accepting, drain, close the node and system.
 */
import { runApp } from "./runtime.js";
import { serveFromEnv } from "./serve.js";

runApp("server", async ({ system, logger }) => {
  const server = await serveFromEnv(system, logger);
  return [["http server", () => server.close()]];
});
