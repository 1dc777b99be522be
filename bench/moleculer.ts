/**
 * `tsx bench/moleculer.ts`: Moleculer request/response at concurrency 1 (calls/s, p50,
 * p99) and 100 (calls/s), and balanced events/s, on the NATS and Redis transporters and on
 * PgTransporter, in one run; each Postgres figure is printed with its ratio to each peer.
 * Two brokers (caller and responder) per transporter in this process, JSON serializer.
 *
 * Knobs: BENCH_MOL_CALLS (calls at concurrency 1, default 2,000), BENCH_MOL_TOTAL (calls
 * at concurrency 100 and events, default 10,000), BENCH_MOL_INFLIGHT (default 100).
 * CORE_DATABASE_URL or the embedded server; NATS at nats://127.0.0.1:4222, Redis at
 * 127.0.0.1:6379. With `NODE_OPTIONS="--import ./test/matrix/moleculer15/register.mjs"`
 * the run uses moleculer 0.15 (after `npm ci` in test/matrix/moleculer15).
 */
import { performance } from "node:perf_hooks";
import { randomBytes } from "node:crypto";
import Moleculer from "moleculer";
import pg from "pg";
import { PgTransporter } from "../adapters/moleculer/index.js";
import { benchDatabase, serverFacts } from "./lib/database.js";
import { intFromEnv } from "./lib/env.js";
import { log } from "./lib/log.js";
import { grouped, perSecond, summarise, table } from "./lib/stats.js";
import { inFlight, waitFor } from "./lib/tracker.js";

const CALLS = intFromEnv("BENCH_MOL_CALLS", 2_000);
const TOTAL = intFromEnv("BENCH_MOL_TOTAL", 10_000);
const IN_FLIGHT = intFromEnv("BENCH_MOL_INFLIGHT", 100);
const version = (Moleculer.ServiceBroker as unknown as { MOLECULER_VERSION: string }).MOLECULER_VERSION;

type Kind = "NATS" | "Redis" | "Postgres" | "Postgres (disableBalancer)";

interface Row {
  transporter: Kind;
  c1PerSecond: number;
  p50: number;
  p99: number;
  c100PerSecond: number;
  eventsPerSecond: number;
  note?: string;
}

function transporterOf(kind: Kind, url: string): Moleculer.BrokerOptions["transporter"] {
  if (kind === "NATS") return { type: "NATS", options: { url: "nats://127.0.0.1:4222" } };
  if (kind === "Redis") return { type: "Redis", options: { host: "127.0.0.1", port: 6379 } };
  return new PgTransporter({ connectionString: url });
}

async function measure(kind: Kind, url: string): Promise<Row> {
  const namespace = `bench-${randomBytes(4).toString("hex")}`;
  const make = (nodeID: string): Moleculer.ServiceBroker =>
    new Moleculer.ServiceBroker({ nodeID, namespace, logLevel: "warn", serializer: "JSON", disableBalancer: kind === "Postgres (disableBalancer)", transporter: transporterOf(kind, url) });
  const caller = make("caller");
  const responder = make("responder");
  let received = 0;
  responder.createService({
    name: "math",
    actions: { add: (ctx: Moleculer.Context<{ a: number; b: number }>) => ctx.params.a + ctx.params.b },
    events: { "bench.event": () => void (received += 1) },
  });
  await responder.start();
  await caller.start();
  try {
    await caller.waitForServices(["math"], 30_000);
    for (let i = 0; i < 200; i += 1) await caller.call("math.add", { a: i, b: 1 }); // warm-up
    const latencies: number[] = [];
    const c1Started = performance.now();
    for (let i = 0; i < CALLS; i += 1) {
      const started = performance.now();
      await caller.call("math.add", { a: i, b: 1 });
      latencies.push(performance.now() - started);
    }
    const c1Ms = performance.now() - c1Started;
    log(`${kind}: concurrency 1 done`, { calls: CALLS });
    const c100Started = performance.now();
    await inFlight(TOTAL, IN_FLIGHT, async (index) => void (await caller.call("math.add", { a: index, b: 1 })));
    const c100Ms = performance.now() - c100Started;
    log(`${kind}: concurrency ${IN_FLIGHT} done`, { calls: TOTAL });
    received = 0;
    const eventsStarted = performance.now();
    await inFlight(TOTAL, IN_FLIGHT, (index) => caller.emit("bench.event", { index }) as Promise<void>);
    if (!(await waitFor(async () => received >= TOTAL, 120_000))) throw new Error(`${kind}: only ${received} of ${TOTAL} events arrived`);
    const eventsMs = performance.now() - eventsStarted;
    log(`${kind}: events done`, { events: TOTAL });
    const summary = summarise(latencies);
    return { transporter: kind, c1PerSecond: perSecond(CALLS, c1Ms), p50: summary.p50, p99: summary.p99, c100PerSecond: perSecond(TOTAL, c100Ms), eventsPerSecond: perSecond(TOTAL, eventsMs) };
  } finally {
    await caller.stop();
    await responder.stop();
  }
}

/** The server's settings, for the results. */
async function factsOf(url: string): Promise<Record<string, string>> {
  const admin = new pg.Pool({ connectionString: url, max: 1 });
  return serverFacts(admin).finally(() => admin.end());
}

async function main(): Promise<void> {
  const server = await benchDatabase();
  const rows: Row[] = [];
  const kinds: Kind[] = ["NATS", "Redis", "Postgres", "Postgres (disableBalancer)"];
  try {
    for (const kind of kinds) {
      rows.push(await measure(kind, server.url));
    }
    report(rows, await factsOf(server.url));
  } finally {
    await server.stop();
  }
}

function report(rows: Row[], facts: Record<string, string>): void {
  const figure = (value: number, digits = 0): string => (Number.isNaN(value) ? "n/a" : digits > 0 ? value.toFixed(digits) : grouped(value));
  console.log(`moleculer ${version}, JSON serializer, ${IN_FLIGHT} in flight`);
  console.log(
    table(
      ["transporter", "c=1 calls/s", "p50 ms", "p99 ms", `c=${IN_FLIGHT} calls/s`, "events/s"],
      rows.map((row) => [row.transporter, figure(row.c1PerSecond), figure(row.p50, 2), figure(row.p99, 2), figure(row.c100PerSecond), figure(row.eventsPerSecond)]),
    ),
  );
  const postgres = rows.find((row) => row.transporter === "Postgres")!;
  const ratio = (ours: number, theirs: number): string => (Number.isNaN(theirs) || theirs === 0 ? "n/a" : `${(ours / theirs).toFixed(2)}x`);
  console.log(
    table(
      ["Postgres vs", `c=${IN_FLIGHT} calls/s`, "c=1 p50 (lower is better)", "events/s"],
      rows
        .filter((row) => row.transporter === "NATS" || row.transporter === "Redis")
        .map((peer) => [peer.transporter, ratio(postgres.c100PerSecond, peer.c100PerSecond), ratio(postgres.p50, peer.p50), ratio(postgres.eventsPerSecond, peer.eventsPerSecond)]),
    ),
  );
  for (const row of rows) if (row.note) console.log(`${row.transporter}: ${row.note}`);
  console.log(JSON.stringify({ bench: "moleculer", moleculer: version, calls: CALLS, total: TOTAL, inFlight: IN_FLIGHT, ...facts, rows }));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
