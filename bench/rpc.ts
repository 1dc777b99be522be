/**
 * `npm run bench:rpc`: request/response through the core, on the queue path (the default)
 * and on the direct path (`delivery: "direct"`), at concurrency 1 (latency) and 100
 * (throughput), beside floors measured in the same run on the same database: the bare
 * NOTIFY round trip between two connections, one durable commit, and a bare two-hop
 * request/response over NOTIFY (requests and replies each coalesced per event-loop turn
 * into one `select pg_notify(...) from unnest(...)` with asynchronous commit, no envelope
 * beyond a correlation id): what the direct path could reach at best.
 *
 * Knobs: BENCH_RPC_CALLS (calls at concurrency 1, default 2,000), BENCH_RPC_TOTAL (calls
 * at concurrency 100, default 20,000), BENCH_RPC_INFLIGHT (default 100),
 * BENCH_RPC_LANES and BENCH_RPC_PREFETCH (the responder's concurrency and prefetch,
 * default 8 and 10). CORE_DATABASE_URL or the embedded server.
 */
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { pino } from "pino";
import { CoreSystem } from "../core/index.js";
import { benchDatabase, serverFacts } from "./lib/database.js";
import { intFromEnv } from "./lib/env.js";
import { log } from "./lib/log.js";
import { grouped, perSecond, summarise, table } from "./lib/stats.js";

const CALLS = intFromEnv("BENCH_RPC_CALLS", 2_000);
const TOTAL = intFromEnv("BENCH_RPC_TOTAL", 20_000);
const IN_FLIGHT = intFromEnv("BENCH_RPC_INFLIGHT", 100);
const LANES = intFromEnv("BENCH_RPC_LANES", 8, 1, 100);
const PREFETCH = intFromEnv("BENCH_RPC_PREFETCH", 10, 1, 1000);
const STEP_TIMEOUT_MS = 180_000;

interface Row {
  name: string;
  calls: number;
  perSecond: number;
  p50: number;
  p99: number;
}

async function main(): Promise<void> {
  const server = await benchDatabase();
  const rows: Row[] = [];
  try {
    const floors = await measureFloors(server.url);
    rows.push(...floors);
    rows.push(...(await measureTwoHopFloor(server.url)));
    rows.push(...(await measureCore(server.url, "queue")));
    rows.push(...(await measureCore(server.url, "direct")));
    const admin = new pg.Pool({ connectionString: server.url, max: 1 });
    const facts = await serverFacts(admin);
    await admin.end();
    report(rows, facts);
  } finally {
    await server.stop();
  }
}

/** The floors: a NOTIFY delivered to another connection, and one durable commit. */
async function measureFloors(url: string): Promise<Row[]> {
  const listener = new pg.Client({ connectionString: url });
  const sender = new pg.Client({ connectionString: url });
  await Promise.all([listener.connect(), sender.connect()]);
  try {
    const channel = `bench_${randomBytes(4).toString("hex")}`;
    await listener.query(`listen ${channel}`);
    let arrived: (() => void) | undefined;
    listener.on("notification", () => arrived?.());
    const notify: number[] = [];
    for (let i = 0; i < CALLS; i += 1) {
      const started = performance.now();
      const received = new Promise<void>((resolve) => (arrived = resolve));
      await sender.query("select pg_notify($1, 'x')", [channel]);
      await received;
      notify.push(performance.now() - started);
    }
    await sender.query("create temporary table bench_commit (n int)");
    const commits: number[] = [];
    for (let i = 0; i < CALLS; i += 1) {
      const started = performance.now();
      await sender.query("insert into bench_commit values (1)");
      commits.push(performance.now() - started);
    }
    log("floors measured", { calls: CALLS });
    return [floorRow("floor: NOTIFY round trip", notify), floorRow("floor: durable commit", commits)];
  } finally {
    await Promise.all([listener.end(), sender.end()]);
  }
}

function floorRow(name: string, samples: number[]): Row {
  const total = samples.reduce((a, b) => a + b, 0);
  const stats = summarise(samples);
  return { name, calls: samples.length, perSecond: perSecond(samples.length, total), p50: stats.p50, p99: stats.p99 };
}

/**
 * The two-hop floor: a requester and a responder connection, each LISTENing on its own
 * channel; what each side sends in one turn of the event loop leaves in one statement on
 * a connection with `synchronous_commit = off`. The payload is the correlation id.
 */
async function measureTwoHopFloor(url: string): Promise<Row[]> {
  const tag = randomBytes(4).toString("hex");
  const requests = `bench_rq_${tag}`;
  const replies = `bench_rp_${tag}`;
  interface Side {
    client: pg.Client;
    send: (payload: string) => void;
  }
  const side = async (listenOn: string, sendTo: string, onMessage: (payload: string, send: (payload: string) => void) => void): Promise<Side> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query("set synchronous_commit = off");
    await client.query(`listen ${listenOn}`);
    let waiting: string[] = [];
    let sending = false;
    const flush = (): void => {
      if (sending || waiting.length === 0) return;
      sending = true;
      const batch = waiting;
      waiting = [];
      client.query("select pg_notify($1, p) from unnest($2::text[]) as p", [sendTo, batch]).then(
        () => {
          sending = false;
          flush();
        },
        (error: unknown) => console.error(error),
      );
    };
    const send = (payload: string): void => {
      waiting.push(payload);
      if (waiting.length === 1) setImmediate(flush);
    };
    client.on("notification", (message) => onMessage(message.payload ?? "", send));
    return { client, send };
  };
  const pending = new Map<string, () => void>();
  const responder = await side(requests, replies, (payload, send) => send(payload));
  const requester = await side(replies, requests, (payload) => pending.get(payload)?.());
  const call = (id: string): Promise<void> =>
    new Promise<void>((resolve) => {
      pending.set(id, () => {
        pending.delete(id);
        resolve();
      });
      requester.send(id);
    });
  try {
    const sequential: number[] = [];
    const sequentialStart = performance.now();
    for (let i = 0; i < CALLS; i += 1) {
      const started = performance.now();
      await call(`s${i}`);
      sequential.push(performance.now() - started);
    }
    const sequentialMs = performance.now() - sequentialStart;
    const concurrent: number[] = [];
    let next = 0;
    const concurrentStart = performance.now();
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < TOTAL) {
          const i = next++;
          const started = performance.now();
          await call(`c${i}`);
          concurrent.push(performance.now() - started);
        }
      }),
    );
    const concurrentMs = performance.now() - concurrentStart;
    log("two-hop floor measured", { calls: CALLS + TOTAL });
    const one = summarise(sequential);
    const many = summarise(concurrent);
    return [
      { name: "floor: two-hop NOTIFY request/response, concurrency 1", calls: CALLS, perSecond: perSecond(CALLS, sequentialMs), p50: one.p50, p99: one.p99 },
      { name: `floor: two-hop NOTIFY request/response, concurrency ${IN_FLIGHT}`, calls: TOTAL, perSecond: perSecond(TOTAL, concurrentMs), p50: many.p50, p99: many.p99 },
    ];
  } finally {
    await Promise.all([requester.client.end(), responder.client.end()]);
  }
}

/** The core's request/response on one path: a responder and a requester in two systems (two pools), as two services would be. */
async function measureCore(url: string, delivery: "queue" | "direct"): Promise<Row[]> {
  const namespace = `bench-rpc-${randomBytes(4).toString("hex")}`;
  const logger = pino({ level: "silent" });
  const responderSystem = await CoreSystem.connect({ connectionString: url, namespace, logger, pool: { max: LANES + 4 } });
  const requesterSystem = await CoreSystem.connect({ connectionString: url, namespace, logger, pool: { max: 20 } });
  try {
    const responder = await responderSystem.registerNode({ displayName: "math" });
    await responder.onRequest("math.sum", ({ payload }) => (payload as number[]).reduce((a, b) => a + b, 0), {
      concurrency: LANES,
      prefetch: PREFETCH,
    });
    await responder.start();
    const requester = await requesterSystem.registerNode({ displayName: "api" });
    await requester.start();
    for (let i = 0; i < 200; i += 1) await requester.request("math.sum", [i, 1], { delivery }); // warm up prepared statements

    const sequential: number[] = [];
    const sequentialStart = performance.now();
    for (let i = 0; i < CALLS; i += 1) {
      const started = performance.now();
      const sum = await requester.request<number>("math.sum", [i, 1], { timeout: 10_000, delivery });
      if (sum !== i + 1) throw new Error(`wrong reply ${sum} for ${i} + 1`);
      sequential.push(performance.now() - started);
    }
    const sequentialMs = performance.now() - sequentialStart;
    log("concurrency 1 measured", { delivery, calls: CALLS });

    const concurrent: number[] = [];
    let next = 0;
    let done = 0;
    const progress = setInterval(() => log("concurrency 100 progress", { delivery, done, of: TOTAL }), 1_000);
    const concurrentStart = performance.now();
    const deadline = setTimeout(() => {
      throw new Error(`concurrency ${IN_FLIGHT} did not finish within ${STEP_TIMEOUT_MS} ms (${done} of ${TOTAL})`);
    }, STEP_TIMEOUT_MS);
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < TOTAL) {
          const i = next++;
          const started = performance.now();
          const sum = await requester.request<number>("math.sum", [i, 2], { timeout: 30_000, delivery });
          if (sum !== i + 2) throw new Error(`wrong reply ${sum} for ${i} + 2`);
          concurrent.push(performance.now() - started);
          done += 1;
        }
      }),
    );
    const concurrentMs = performance.now() - concurrentStart;
    clearTimeout(deadline);
    clearInterval(progress);
    if (concurrent.length !== TOTAL) throw new Error(`answered ${concurrent.length} of ${TOTAL}`);
    const one = summarise(sequential);
    const many = summarise(concurrent);
    return [
      { name: `core request/response (${delivery}), concurrency 1`, calls: CALLS, perSecond: perSecond(CALLS, sequentialMs), p50: one.p50, p99: one.p99 },
      { name: `core request/response (${delivery}), concurrency ${IN_FLIGHT}`, calls: TOTAL, perSecond: perSecond(TOTAL, concurrentMs), p50: many.p50, p99: many.p99 },
    ];
  } finally {
    await responderSystem.dropGroup("math").catch(() => {});
    await requesterSystem.close();
    await responderSystem.close();
  }
}

function report(rows: Row[], facts: Record<string, string>): void {
  const notify = rows[0]!;
  console.log(
    table(
      ["measure", "calls", "calls/s", "p50 ms", "p99 ms", "p50 / NOTIFY floor"],
      rows.map((row) => [row.name, grouped(row.calls), grouped(row.perSecond), row.p50.toFixed(2), row.p99.toFixed(2), `${(row.p50 / notify.p50).toFixed(1)}x`]),
    ),
  );
  console.log(JSON.stringify({ bench: "rpc", lanes: LANES, prefetch: PREFETCH, inFlight: IN_FLIGHT, ...facts, rows }));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
