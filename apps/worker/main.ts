/**
 * `npm run dev:worker`: the worker alone. Database: CORE_DATABASE_URL, else Docker or the
 * embedded server in `.nexus/pgdata` (apps/shared/database.ts). Environment:
 * CORE_NAMESPACE (`demo`), CORE_WORKER_EVENT (pattern, `demo.*`), CORE_WORKER_GROUP
 * (`worker`), CORE_WORKER_SCHEDULE (cron expression of a heartbeat task; none when unset),
 * CORE_WORKER_CONCURRENCY (1), CORE_NODE_ID. SIGTERM/SIGINT: finish running handlers, stop.
 */
import { runApp } from "../server/runtime.js";
import { workerFromEnv } from "./from-env.js";

runApp("worker", async ({ system, logger }) => {
  const worker = await workerFromEnv(system, logger);
  return [["worker", () => worker.stop()]];
});
