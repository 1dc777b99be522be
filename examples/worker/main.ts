/**
 * `npm run dev:worker`: the worker alone. Database: CORE_DATABASE_URL, else Docker or the
 * embedded server in `.nexus/pgdata` (examples/shared/database.ts). Environment:
 * CORE_NAMESPACE (`demo`), CORE_WORKER_EVENT (pattern, `demo.*`), CORE_WORKER_GROUP
 * (`worker`), CORE_WORKER_SCHEDULE (cron expression of a heartbeat task; none when unset),
 * CORE_WORKER_CONCURRENCY (1), CORE_NODE_ID. SIGTERM/SIGINT: finish running handlers, stop.
 */
import { CoreSystem } from "../../core/index.js";
import { appLogger, onShutdownSignals, openDatabase } from "../server/runtime.js";
import { workerFromEnv } from "./from-env.js";

const logger = appLogger("worker");

async function main(): Promise<void> {
  const database = await openDatabase(".nexus/pgdata", logger);
  const system = await CoreSystem.connect({
    connectionString: database.url,
    namespace: process.env.CORE_NAMESPACE ?? "demo",
    logger: logger.child({ component: "core" }),
  });
  const worker = await workerFromEnv(system, logger);
  onShutdownSignals(
    [
      ["worker", () => worker.stop()],
      ["system", () => system.close()],
      ["database", () => database.stop()],
    ],
    logger,
  );
}

main().catch((error: unknown) => {
  logger.error({ err: error }, "worker failed to start");
  process.exit(1);
});
