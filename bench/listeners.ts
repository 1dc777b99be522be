/**
 * `npm run bench:listeners`: what the number of LISTEN connections in one database costs
 * the direct path. PostgreSQL before 19 wakes every listening backend for every NOTIFY
 * and serialises notifying commits on one lock, so each node (each system's LISTEN
 * connection) taxes everyone's direct calls. Core direct request/response at concurrency
 * 1 and 100 between two systems, with 0, 8 and 48 more systems connected and listening
 * (2, 10 and 50 LISTEN connections in all), each with a started node, as idle services
 * would be.
 *
 * Knobs: BENCH_LISTENERS_CALLS (calls at concurrency 1, default 1,000),
 * BENCH_LISTENERS_TOTAL (calls at concurrency 100, default 10,000). CORE_DATABASE_URL or
 * the embedded server.
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

const CALLS = intFromEnv("BENCH_LISTENERS_CALLS", 1_000);
const TOTAL = intFromEnv("BENCH_LISTENERS_TOTAL", 10_000);
const IN_FLIGHT = 100;
const LISTENER_COUNTS = [2, 10, 50];

interface Row {
  listeners: number;
  c1PerSecond: number;
  p50: number;
  c100PerSecond: number;
}

async function main(): Promise<void> {
  const server = await benchDatabase();
  const namespace = `bench-listen-${randomBytes(4).toString("hex")}`;
  const logger = pino({ level: "silent" });
  const connect = (): Promise<CoreSystem> => CoreSystem.connect({ connectionString: server.url, namespace, logger, pool: { max: 4 } });
  const systems: CoreSystem[] = [];
  const rows: Row[] = [];
  try {
    const responderSystem = await connect();
    const requesterSystem = await connect();
    systems.push(responderSystem, requesterSystem);
    const responder = await responderSystem.registerNode({ displayName: "math" });
    await responder.onRequest("math.sum", ({ payload }) => (payload as number[]).reduce((a, b) => a + b, 0));
    await responder.start();
    const requester = await requesterSystem.registerNode({ displayName: "api" });
    await requester.start();
    for (const listeners of LISTENER_COUNTS) {
      while (systems.length < listeners) {
        const idle = await connect();
        systems.push(idle);
        await (await idle.registerNode({ displayName: `idle-${systems.length}` })).start();
      }
      for (let i = 0; i < 200; i += 1) await requester.request("math.sum", [i, 1], { delivery: "direct" });
      rows.push({ listeners, ...(await measure((i) => requester.request<number>("math.sum", [i, 1], { delivery: "direct", timeout: 30_000 }))) });
      log("measured", { listeners });
    }
    const admin = new pg.Pool({ connectionString: server.url, max: 1 });
    const facts = await serverFacts(admin);
    await admin.end();
    console.log(
      table(
        ["LISTEN connections", "c=1 calls/s", "c=1 p50 ms", `c=${IN_FLIGHT} calls/s`, `c=${IN_FLIGHT} vs 2`],
        rows.map((row) => [row.listeners, grouped(row.c1PerSecond), row.p50.toFixed(2), grouped(row.c100PerSecond), `${(row.c100PerSecond / rows[0]!.c100PerSecond).toFixed(2)}x`]),
      ),
    );
    console.log(JSON.stringify({ bench: "listeners", ...facts, rows }));
  } finally {
    await Promise.allSettled(systems.map((system) => system.close()));
    await server.stop();
  }
}

async function measure(call: (i: number) => Promise<number>): Promise<Omit<Row, "listeners">> {
  const sequential: number[] = [];
  const sequentialStart = performance.now();
  for (let i = 0; i < CALLS; i += 1) {
    const started = performance.now();
    if ((await call(i)) !== i + 1) throw new Error(`wrong reply for ${i} + 1`);
    sequential.push(performance.now() - started);
  }
  const sequentialMs = performance.now() - sequentialStart;
  let next = 0;
  const concurrentStart = performance.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < TOTAL) {
        const i = next++;
        if ((await call(i)) !== i + 1) throw new Error(`wrong reply for ${i} + 1`);
      }
    }),
  );
  const concurrentMs = performance.now() - concurrentStart;
  return { c1PerSecond: perSecond(CALLS, sequentialMs), p50: summarise(sequential).p50, c100PerSecond: perSecond(TOTAL, concurrentMs) };
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
