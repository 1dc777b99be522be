/** The worker as the environment configures it (see main.ts), on an existing system. */
import type { CoreSystem, Logger } from "../../core/index.js";
import { intFromEnv } from "../server/runtime.js";
import { startWorker, type Worker } from "./worker.js";

export function workerFromEnv(system: CoreSystem, logger: Logger, nodeId?: string): Promise<Worker> {
  return startWorker({
    system,
    logger,
    pattern: process.env.CORE_WORKER_EVENT || "demo.*",
    group: process.env.CORE_WORKER_GROUP || "worker",
    concurrency: intFromEnv("CORE_WORKER_CONCURRENCY", 1, 1, 1_000),
    ...(process.env.CORE_WORKER_SCHEDULE ? { schedule: process.env.CORE_WORKER_SCHEDULE } : {}),
    ...(nodeId ? { nodeId } : {}),
  });
}
