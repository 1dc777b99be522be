/**
 * `tsx examples/bullmq/producer.ts`: adds jobs to the `emails` queue. Written for BullMQ;
 * the only changes for Postgres are the import and the `connection` option:
 *
 *   - import { Queue } from "bullmq";
 *   + import { Queue } from "@nexus-core/core/bullmq";
 *   - const connection = { host: "127.0.0.1", port: 6379 };
 *   + const connection = { connectionString: process.env.CORE_DATABASE_URL! };
 */
import { Queue } from "../../adapters/bullmq/index.js";

const connection = { connectionString: process.env.CORE_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/core" };

async function main(): Promise<void> {
  const queue = new Queue("emails", { connection, defaultJobOptions: { attempts: 3, backoff: { type: "exponential", delay: 1_000 } } });
  const welcome = await queue.add("welcome", { to: "ada@example.com" });
  await queue.addBulk([
    { name: "digest", data: { to: "grace@example.com" }, opts: { priority: 1 } },
    { name: "digest", data: { to: "alan@example.com" }, opts: { delay: 5_000 } },
  ]);
  await queue.add("receipt", { to: "ada@example.com" }, { jobId: "receipt-42" }); // added once, however often it runs
  console.log("added", welcome.id, await queue.getJobCounts());
  await queue.close();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
