/**
 * `tsx bench/bullmq.ts`: BullMQ on Redis against the facade on PostgreSQL, in one run.
 * Add throughput (jobs/s): `addBulk` in chunks, and single `add` calls with many in
 * flight. Process throughput (jobs/s): a worker at concurrency 50 works through jobs
 * already queued, each processor returning at once. Each facade figure is printed with
 * its ratio to BullMQ's.
 *
 * Knobs: BENCH_BULL_JOBS (jobs per measure, default 20,000), BENCH_BULL_CONCURRENCY
 * (worker concurrency, default 50), BENCH_BULL_CHUNK (addBulk size, default 1,000).
 * CORE_DATABASE_URL or the embedded server; Redis at 127.0.0.1:6379.
 */
import { performance } from "node:perf_hooks";
import { randomBytes } from "node:crypto";
import * as bullmq from "bullmq";
import pg from "pg";
import * as facade from "../adapters/bullmq/index.js";
import { CoreSystem } from "../core/index.js";
import { benchDatabase, serverFacts } from "./lib/database.js";
import { intFromEnv } from "./lib/env.js";
import { log } from "./lib/log.js";
import { grouped, perSecond, table } from "./lib/stats.js";
import { inFlight, waitFor } from "./lib/tracker.js";

const JOBS = intFromEnv("BENCH_BULL_JOBS", 20_000);
const CONCURRENCY = intFromEnv("BENCH_BULL_CONCURRENCY", 50);
const CHUNK = intFromEnv("BENCH_BULL_CHUNK", 1_000);

type Kind = "BullMQ (Redis)" | "facade (Postgres)";

interface Row {
  kind: Kind;
  addBulkPerSecond: number;
  addPerSecond: number;
  processPerSecond: number;
}

/** The two implementations through one shape (the facade's types; BullMQ's are wider). */
interface Implementation {
  queue(name: string): facade.Queue;
  worker(name: string, processor: facade.Processor): facade.Worker;
  close(): Promise<void>;
}

function bullImplementation(): Implementation {
  const options = { connection: { host: "127.0.0.1", port: 6379, maxRetriesPerRequest: null }, prefix: `bench-${randomBytes(4).toString("hex")}` };
  return {
    queue: (name) => new bullmq.Queue(name, options) as unknown as facade.Queue,
    worker: (name, processor) => new bullmq.Worker(name, processor as unknown as bullmq.Processor, { ...options, concurrency: CONCURRENCY }) as unknown as facade.Worker,
    close: async () => {},
  };
}

async function facadeImplementation(url: string): Promise<Implementation> {
  const system = await CoreSystem.connect({ connectionString: url, namespace: `bench-${randomBytes(4).toString("hex")}`, pool: { max: 20 } });
  return {
    queue: (name) => new facade.Queue(name, { connection: system }),
    worker: (name, processor) => new facade.Worker(name, processor, { connection: system, concurrency: CONCURRENCY }),
    close: () => system.close(),
  };
}

async function timed(work: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

async function measure(kind: Kind, impl: Implementation): Promise<Row> {
  const queue = impl.queue(`bench-${randomBytes(3).toString("hex")}`);
  try {
    const payload = { n: 0, text: "x".repeat(64) };
    const bulkMs = await timed(async () => {
      for (let start = 0; start < JOBS; start += CHUNK) {
        await queue.addBulk(Array.from({ length: Math.min(CHUNK, JOBS - start) }, (_, i) => ({ name: "job", data: { ...payload, n: start + i } })));
      }
    });
    log(`${kind}: addBulk done`, { jobs: JOBS });
    const addMs = await timed(() => inFlight(JOBS, CONCURRENCY, async (index) => void (await queue.add("job", { ...payload, n: JOBS + index }))));
    log(`${kind}: add done`, { jobs: JOBS });
    const total = 2 * JOBS;
    let done = 0;
    const processMs = await timed(async () => {
      const worker = impl.worker(queue.name, async () => void (done += 1));
      const finished = await waitFor(async () => done >= total, 600_000, 5);
      await worker.close();
      if (!finished) throw new Error(`${kind}: ${done} of ${total} jobs processed`);
    });
    log(`${kind}: processing done`, { jobs: total });
    return { kind, addBulkPerSecond: perSecond(JOBS, bulkMs), addPerSecond: perSecond(JOBS, addMs), processPerSecond: perSecond(total, processMs) };
  } finally {
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
  }
}

async function main(): Promise<void> {
  const server = await benchDatabase();
  try {
    const rows: Row[] = [];
    const bull = bullImplementation();
    rows.push(await measure("BullMQ (Redis)", bull));
    await bull.close();
    const ours = await facadeImplementation(server.url);
    try {
      rows.push(await measure("facade (Postgres)", ours));
    } finally {
      await ours.close();
    }
    const admin = new pg.Pool({ connectionString: server.url, max: 1 });
    const facts = await serverFacts(admin).finally(() => admin.end());
    console.log(`bullmq ${JSON.stringify(facts)}, ${JOBS} jobs per measure, concurrency ${CONCURRENCY}, addBulk chunks of ${CHUNK}`);
    console.log(
      table(
        ["implementation", "addBulk jobs/s", `add jobs/s (${CONCURRENCY} in flight)`, `process jobs/s (c=${CONCURRENCY})`],
        rows.map((row) => [row.kind, grouped(row.addBulkPerSecond), grouped(row.addPerSecond), grouped(row.processPerSecond)]),
      ),
    );
    const [peer, facadeRow] = rows as [Row, Row];
    const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}x`;
    console.log(
      table(
        ["facade vs BullMQ", "addBulk", "add", "process"],
        [["ratio", ratio(facadeRow.addBulkPerSecond, peer.addBulkPerSecond), ratio(facadeRow.addPerSecond, peer.addPerSecond), ratio(facadeRow.processPerSecond, peer.processPerSecond)]],
      ),
    );
  } finally {
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
