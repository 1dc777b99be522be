/**
 * `@nexus-core/core/bullmq`: BullMQ's Queue / Worker / Job / QueueEvents API on
 * PostgreSQL. Code written for BullMQ moves by changing its import and its `connection`
 * option (the core's connection options or a `CoreSystem`; `prefix` is the namespace).
 *
 * @example
 * import { Queue, Worker } from "@nexus-core/core/bullmq"; // was: from "bullmq"
 * const connection = { connectionString: process.env.CORE_DATABASE_URL! };
 * const queue = new Queue("emails", { connection });
 * await queue.add("welcome", { to: "ada@example.com" }, { attempts: 3, backoff: { type: "exponential", delay: 1000 } });
 * new Worker("emails", async (job) => send(job.data), { connection, concurrency: 10 });
 */
export { Queue, type QueueOptions, type AddContext, type JobCounts, type JobStateName } from "./queue.js";
export { Worker, type WorkerOptions, type Processor } from "./worker.js";
export { Job } from "./job.js";
export { QueueEvents, type QueueEventsOptions } from "./queue-events.js";
export { UnrecoverableError, UnsupportedOptionError } from "./errors.js";
export { DEFAULT_PREFIX, type ConnectionOptions, type JobOptions } from "./options.js";
