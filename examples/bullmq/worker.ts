/**
 * `tsx examples/bullmq/worker.ts`: processes the `emails` queue (see producer.ts for the
 * one-line import switch from BullMQ). Ctrl-C closes it gracefully: jobs in flight finish.
 */
import { Worker, UnrecoverableError } from "../../adapters/bullmq/index.js";

const connection = { connectionString: process.env.CORE_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/core" };

const worker = new Worker<{ to: string }, { sentAt: string }>(
  "emails",
  async (job) => {
    if (!job.data.to.includes("@")) throw new UnrecoverableError(`bad address ${job.data.to}`); // no retries
    await job.updateProgress(50);
    await job.log(`sending ${job.name} to ${job.data.to}`);
    return { sentAt: new Date().toISOString() };
  },
  { connection, concurrency: 10 },
);
worker.on("completed", (job, result) => console.log("completed", job.id, job.name, result));
worker.on("failed", (job, error) => console.log("failed", job?.id, error.message));
worker.on("error", (error) => console.error("worker error", error));
process.once("SIGINT", () => void worker.close());
