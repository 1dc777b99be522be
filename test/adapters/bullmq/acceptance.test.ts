/**
 * Acceptance: the same assertions, in the style of BullMQ's own tests, against BullMQ
 * on the local Redis and against the facade on PostgreSQL, so that code written for
 * BullMQ keeps its behaviour when its import changes. Then what only the facade can do:
 * a job added in a rolled-back transaction never runs.
 */
import { randomUUID } from "node:crypto";
import * as bullmq from "bullmq";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem } from "../../../core/index.js";
import * as facade from "../../../adapters/bullmq/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../../support/database.js";
import { deferred, sleep, waitUntil, within } from "../../support/wait.js";

let system: CoreSystem;
beforeAll(async () => {
  system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: uniqueNamespace("bullmq") });
});
afterAll(() => system.close());

/** One implementation under test: its classes (typed as the facade's) and its connection options. */
interface Implementation {
  Queue: typeof facade.Queue;
  Worker: typeof facade.Worker;
  UnrecoverableError: typeof facade.UnrecoverableError;
  options(): { connection: facade.ConnectionOptions; prefix?: string };
}

const redisPrefix = `nexus-test-${randomUUID().slice(0, 8)}`;
const implementations: [string, Implementation][] = [
  [
    "BullMQ on Redis",
    {
      // The test drives both through the facade's types; BullMQ's own are wider.
      Queue: bullmq.Queue as unknown as typeof facade.Queue,
      Worker: bullmq.Worker as unknown as typeof facade.Worker,
      UnrecoverableError: bullmq.UnrecoverableError,
      options: () => ({ connection: { host: "127.0.0.1", port: 6379, maxRetriesPerRequest: null } as unknown as facade.ConnectionOptions, prefix: redisPrefix }),
    },
  ],
  ["facade on PostgreSQL", { Queue: facade.Queue, Worker: facade.Worker, UnrecoverableError: facade.UnrecoverableError, options: () => ({ connection: system }) }],
];

describe.each(implementations)("%s", (_label, impl) => {
  const queues: facade.Queue[] = [];
  const workers: facade.Worker[] = [];

  function newQueue(): facade.Queue {
    const queue = new impl.Queue(`q-${randomUUID().slice(0, 8)}`, impl.options());
    queues.push(queue);
    return queue;
  }
  function newWorker(queue: facade.Queue, processor: facade.Processor, opts: Partial<facade.WorkerOptions> = {}): facade.Worker {
    const worker = new impl.Worker(queue.name, processor, { ...impl.options(), drainDelay: 1, ...opts });
    workers.push(worker);
    return worker;
  }
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.close()));
    await Promise.all(queues.splice(0).map(async (queue) => {
      await queue.obliterate({ force: true });
      await queue.close();
    }));
  });

  it("adds, processes and completes a job with its return value", async () => {
    const queue = newQueue();
    const completed = deferred<[facade.Job, unknown]>();
    const worker = newWorker(queue, async (job) => ({ doubled: (job.data as { n: number }).n * 2 }));
    worker.on("completed", (job, result) => completed.resolve([job, result]));
    const added = await queue.add("double", { n: 21 });
    const [job, result] = await within(10_000, "completed", completed.promise);
    expect(job.id).toBe(added.id);
    expect(result).toEqual({ doubled: 42 });
    const stored = await queue.getJob(added.id!);
    expect(stored?.returnvalue).toEqual({ doubled: 42 });
    expect(await stored?.getState()).toBe("completed");
    expect(stored?.name).toBe("double");
    expect(stored?.data).toEqual({ n: 21 });
  });

  it("retries with exponential backoff and counts attempts", async () => {
    const queue = newQueue();
    const starts: number[] = [];
    const seen: number[] = [];
    const failures: string[] = [];
    const completed = deferred();
    const worker = newWorker(queue, async (job) => {
      starts.push(Date.now());
      seen.push(job.attemptsMade);
      if (starts.length < 3) throw new Error(`boom ${starts.length}`);
      return "ok";
    });
    worker.on("failed", (_job, error) => failures.push(error.message));
    worker.on("completed", () => completed.resolve());
    await queue.add("flaky", {}, { attempts: 3, backoff: { type: "exponential", delay: 200 } });
    await within(15_000, "completed after retries", completed.promise);
    expect(seen).toEqual([0, 1, 2]);
    expect(failures).toEqual(["boom 1", "boom 2"]);
    expect(starts[1]! - starts[0]!).toBeGreaterThanOrEqual(180);
    expect(starts[2]! - starts[1]!).toBeGreaterThanOrEqual(380);
  });

  it("honours delay", async () => {
    const queue = newQueue();
    const ran = deferred<number>();
    newWorker(queue, async () => ran.resolve(Date.now()));
    const addedAt = Date.now();
    const job = await queue.add("later", {}, { delay: 700 });
    expect(await job.getState()).toBe("delayed");
    const at = await within(10_000, "delayed job", ran.promise);
    expect(at - addedAt).toBeGreaterThanOrEqual(650);
    expect(at - addedAt).toBeLessThan(5_000);
  });

  it("processes higher priorities first", async () => {
    const queue = newQueue();
    for (const priority of [5, 1, 3, 2, 4]) await queue.add(`p${priority}`, { priority }, { priority });
    const order: number[] = [];
    const worker = newWorker(queue, async (job) => void order.push((job.data as { priority: number }).priority), { autorun: false });
    void worker.run();
    await waitUntil("five jobs", () => order.length, (length) => length === 5);
    expect(order).toEqual([1, 2, 3, 4, 5]);
  });

  it("de-duplicates by jobId", async () => {
    const queue = newQueue();
    const first = await queue.add("once", { v: 1 }, { jobId: "same-id" });
    const second = await queue.add("once", { v: 2 }, { jobId: "same-id" });
    expect(first.id).toBe("same-id");
    expect(second.id).toBe("same-id");
    expect(await queue.count()).toBe(1);
    const processed: unknown[] = [];
    newWorker(queue, async (job) => void processed.push(job.data));
    await waitUntil("processed", () => processed.length, (length) => length >= 1);
    await sleep(300);
    expect(processed).toEqual([{ v: 1 }]);
  });

  it("reports progress", async () => {
    const queue = newQueue();
    const progress: unknown[] = [];
    const completed = deferred();
    const worker = newWorker(queue, async (job) => {
      await job.updateProgress(50);
      await job.updateProgress({ step: "done" });
      return null;
    });
    worker.on("progress", (_job, value) => progress.push(value));
    worker.on("completed", () => completed.resolve());
    const job = await queue.add("progress", {});
    await within(10_000, "completed", completed.promise);
    expect(progress).toEqual([50, { step: "done" }]);
    expect((await queue.getJob(job.id!))?.progress).toEqual({ step: "done" });
  });

  it("fails at once on UnrecoverableError despite remaining attempts", async () => {
    const queue = newQueue();
    let runs = 0;
    const failed = deferred<facade.Job>();
    const worker = newWorker(queue, async () => {
      runs += 1;
      throw new impl.UnrecoverableError("give up");
    });
    worker.on("failed", (job) => failed.resolve(job!));
    const job = await queue.add("doomed", {}, { attempts: 5, backoff: 10 });
    await within(10_000, "failed", failed.promise);
    await sleep(300);
    expect(runs).toBe(1);
    const stored = await queue.getJob(job.id!);
    expect(await stored?.getState()).toBe("failed");
    expect(stored?.failedReason).toBe("give up");
  });

  it("counts jobs per state", async () => {
    const queue = newQueue();
    await queue.add("a", { fail: false });
    await queue.add("b", { fail: true });
    await queue.add("c", { fail: false });
    await queue.add("d", {}, { delay: 60_000 });
    await queue.add("e", { fail: false }, { priority: 2 });
    expect(await queue.getJobCounts("waiting", "delayed", "prioritized", "active", "completed", "failed")).toEqual({
      waiting: 3, delayed: 1, prioritized: 1, active: 0, completed: 0, failed: 0,
    });
    newWorker(queue, async (job) => {
      if ((job.data as { fail: boolean }).fail) throw new Error("bad");
      return 1;
    });
    const counts = await waitUntil("finished", () => queue.getJobCounts("completed", "failed"), (c) => c.completed === 3 && c.failed === 1);
    expect(counts).toEqual({ completed: 3, failed: 1 });
    expect(await queue.getJobCounts("waiting", "delayed", "prioritized", "active")).toEqual({ waiting: 0, delayed: 1, prioritized: 0, active: 0 });
  });

  it("pauses and resumes the queue", async () => {
    const queue = newQueue();
    await queue.pause();
    expect(await queue.isPaused()).toBe(true);
    const processed: string[] = [];
    newWorker(queue, async (job) => void processed.push(job.name));
    await queue.add("held", {});
    await sleep(700);
    expect(processed).toEqual([]);
    await queue.resume();
    expect(await queue.isPaused()).toBe(false);
    await waitUntil("processed after resume", () => processed.length, (length) => length === 1);
  });

  it("closes gracefully with a job in flight", async () => {
    const queue = newQueue();
    const started = deferred();
    let finished = false;
    const worker = newWorker(queue, async () => {
      started.resolve();
      await sleep(500);
      finished = true;
      return "done";
    });
    const job = await queue.add("slow", {});
    await within(10_000, "started", started.promise);
    await worker.close();
    expect(finished).toBe(true);
    expect(await (await queue.getJob(job.id!))?.getState()).toBe("completed");
  });

  it("fires a repeatable job", async () => {
    const queue = newQueue();
    const fires: number[] = [];
    newWorker(queue, async () => void fires.push(Date.now()));
    await queue.upsertJobScheduler("ticker", { every: 400 }, { name: "tick", data: { v: 1 } });
    await waitUntil("three fires", () => fires.length, (length) => length >= 3, 10_000);
    expect(await queue.removeJobScheduler("ticker")).toBe(true);
    const count = fires.length;
    await sleep(900);
    expect(fires.length).toBeLessThanOrEqual(count + 1);
  });
});

describe("facade only", () => {
  let queue: facade.Queue;
  let worker: facade.Worker | undefined;
  beforeAll(() => {
    queue = new facade.Queue(`tx-${randomUUID().slice(0, 8)}`, { connection: system });
  });
  afterEach(async () => {
    await worker?.close();
    await queue.obliterate();
  });

  it("never runs a job added in a rolled-back transaction, runs one added in a committed one", async () => {
    const processed: string[] = [];
    worker = new facade.Worker(queue.name, async (job) => void processed.push(job.name), { connection: system });
    const client = await system.pool.connect();
    try {
      await client.query("begin");
      await queue.add("rolled-back", {}, undefined, { client });
      await client.query("rollback");
      await client.query("begin");
      await queue.add("committed", {}, undefined, { client });
      await client.query("commit");
    } finally {
      client.release();
    }
    await waitUntil("committed job", () => processed.length, (length) => length >= 1);
    await sleep(300);
    expect(processed).toEqual(["committed"]);
    expect(await queue.getJobCounts("waiting", "completed")).toEqual({ waiting: 0, completed: 1 });
  });

  it("throws a typed error naming an unsupported option", async () => {
    await expect(queue.add("x", {}, { parent: { id: "1", queue: "bull:other" } })).rejects.toMatchObject({ name: "UnsupportedOptionError", argument: "opts.parent" });
    await expect(queue.add("x", {}, { backoff: { type: "custom" } })).rejects.toBeInstanceOf(facade.UnsupportedOptionError);
    expect(await queue.count()).toBe(0);
  });

  it("applies removeOnComplete and keeps logs", async () => {
    worker = new facade.Worker(queue.name, async (job) => {
      await job.log("line one");
      return job.name;
    }, { connection: system });
    const kept = await queue.add("kept", {});
    await queue.add("dropped", {}, { removeOnComplete: true });
    await waitUntil("both done", () => queue.getJobCounts("waiting", "active"), (c) => c.waiting === 0 && c.active === 0);
    await waitUntil("completed kept", () => queue.getJobCounts("completed"), (c) => c.completed === 1);
    expect(await (await queue.getJob(kept.id))?.getLogs()).toEqual(["line one"]);
  });
});
