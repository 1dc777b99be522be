/**
 * `npm run dev:server`: the HTTP ingest server alone. Database: CORE_DATABASE_URL, else
 * Docker or the embedded server in `.nexus/pgdata` (examples/shared/database.ts).
 * Namespace: CORE_NAMESPACE (default `demo`); node id: CORE_NODE_ID. See serve.ts for the
 * server's own variables. SIGTERM/SIGINT: stop accepting, drain, close the node and system.
 */
import { CoreSystem } from "../../core/index.js";
import { appLogger, onShutdownSignals, openDatabase } from "./runtime.js";
import { serveFromEnv } from "./serve.js";

const logger = appLogger("server");

async function main(): Promise<void> {
  const database = await openDatabase(".nexus/pgdata", logger);
  const system = await CoreSystem.connect({
    connectionString: database.url,
    namespace: process.env.CORE_NAMESPACE ?? "demo",
    logger: logger.child({ component: "core" }),
  });
  const server = await serveFromEnv(system, logger);
  onShutdownSignals(
    [
      ["http server", () => server.close()],
      ["system", () => system.close()],
      ["database", () => database.stop()],
    ],
    logger,
  );
}

main().catch((error: unknown) => {
  logger.error({ err: error }, "server failed to start");
  process.exit(1);
});
