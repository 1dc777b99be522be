/**
 * `npm run bench:http`: how fast the HTTP ingest server (apps/server) takes events,
 * beside its ceiling, measured in the same run.
 *
 *   ceiling  the same Fastify app, routes, schemas and error handling, with a stub in
 *            place of the node: it validates and answers 202 without touching the database;
 *   server   the real app: every 202 means the events are committed (event log row plus a
 *            copy in the queue of one subscribed group that has no running consumer, so
 *            the queue grows as in a backlog; the run removes it afterwards).
 *
 * autocannon drives `POST /events` (one event per request) and `POST /events/batch`
 * (BENCH_BATCH events per request) on each for BENCH_DURATION seconds after a short warm-up.
 * The apps run in a child process so the load generator does not share their event loop.
 * Reported: requests/s, events/s, p50/p99 latency, the server/ceiling ratio; the events
 * the server committed are counted in the database and must match its 2xx answers
 * (give or take the requests cut off when a run ends).
 *
 * Knobs: CORE_DATABASE_URL (else an embedded server in .nexus/bench-http-pg),
 * BENCH_DURATION (10 s), BENCH_WARMUP (2 s), BENCH_CONNECTIONS (400: concurrent single
 * requests; the library puts the emits of one event-loop turn in one commit, so the single
 * route's throughput grows with them while a commit's latency stays), BENCH_BATCH_CONNECTIONS
 * (10), BENCH_BATCH (100), BENCH_PAYLOAD_BYTES (100). Progress on stderr; the table and one
 * JSON line on stdout.
 */
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { CoreSystem } from "../core/index.js";
import { buildServer, type EventSink } from "../apps/server/app.js";
import { resolveDatabaseServer } from "../apps/shared/database.js";

/** The part of autocannon's result this benchmark reads (autocannon ships no types). */
interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  "2xx": number;
  latency: { p50: number; p99: number; average: number };
}
type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)("autocannon") as Autocannon;

const GROUP = "bench-sink";

function intFromEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`${name}=${JSON.stringify(raw)} must be a whole number from ${min} to ${max}.`);
  return value;
}

const settings = {
  durationS: intFromEnv("BENCH_DURATION", 10, 1, 3_600),
  warmupS: intFromEnv("BENCH_WARMUP", 2, 0, 600),
  connections: intFromEnv("BENCH_CONNECTIONS", 400, 1, 10_000),
  batchConnections: intFromEnv("BENCH_BATCH_CONNECTIONS", 10, 1, 10_000),
  batch: intFromEnv("BENCH_BATCH", 100, 1, 1_000),
  payloadBytes: intFromEnv("BENCH_PAYLOAD_BYTES", 100, 0, 100_000),
};

function progress(message: string): void {
  process.stderr.write(`[bench:http] ${message}\n`);
}

/** What the child reports once its apps listen. */
interface Ready {
  ceiling: string;
  server: string;
  postgres: string;
}

// ---- the child: both apps on one system -------------------------------------------

async function serveApps(): Promise<void> {
  const namespace = process.env.BENCH_NAMESPACE!;
  const logger = pino({ level: process.env.CORE_LOG_LEVEL ?? "warn" });
  const system = await CoreSystem.connect({ connectionString: process.env.CORE_DATABASE_URL!, namespace, logger, pool: { max: 20 } });
  const node = await system.registerNode({ displayName: "bench-http" });
  // A durable subscription with no consumer: each event is logged and queued once.
  const subscriber = await system.registerNode({ displayName: GROUP });
  await subscriber.onEvent("bench.**", () => {});
  await subscriber.start();
  await subscriber.stop();
  const stub: EventSink = {
    emit: async () => randomUUID(),
    emitBatch: async (events) => events.map(() => randomUUID()),
  };
  const big = settings.batch * (settings.payloadBytes + 200) + 1_024 * 1_024;
  const options = { system, maxBatch: Math.max(settings.batch, 1_000), batchBodyLimit: big, logger };
  // Emits still running when the load stops (their clients gone) must end before cleanup.
  let pending = 0;
  const track = async <T>(work: Promise<T>): Promise<T> => {
    pending += 1;
    try {
      return await work;
    } finally {
      pending -= 1;
    }
  };
  const counted: EventSink = {
    emit: (type, payload, emitOptions) => track(node.emit(type, payload, emitOptions)),
    emitBatch: (events, emitOptions) => track(node.emitBatch(events, emitOptions)),
  };
  const ceiling = await buildServer({ ...options, node: stub });
  const server = await buildServer({ ...options, node: counted });
  const { rows } = await system.pool.query<{ version: string }>("select current_setting('server_version') as version");
  const ready: Ready = {
    ceiling: await ceiling.listen({ port: 0, host: "127.0.0.1" }),
    server: await server.listen({ port: 0, host: "127.0.0.1" }),
    postgres: rows[0]!.version,
  };
  process.send!({ ready });
  process.once("message", async () => {
    await ceiling.close();
    await server.close();
    while (pending > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    const { rows: counted } = await system.pool.query<{ n: number }>("select count(*)::int as n from core.event_log where namespace = $1", [namespace]);
    await system.dropGroup(GROUP);
    await system.pool.query("delete from core.event_log where namespace = $1", [namespace]);
    await system.close();
    process.send!({ committed: counted[0]!.n }, () => process.exit(0));
  });
}

// ---- the parent: load and report --------------------------------------------------

interface Row {
  route: string;
  target: "ceiling" | "server";
  requestsPerSecond: number;
  eventsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  failed: number;
  /** Events answered 202, warm-up included. */
  acknowledgedEvents: number;
}

function bodies(): { single: string; batch: string } {
  const payload = { data: randomBytes(Math.ceil(settings.payloadBytes / 2)).toString("hex").slice(0, settings.payloadBytes) };
  const event = { type: "bench.http.event", payload };
  return { single: JSON.stringify(event), batch: JSON.stringify({ events: Array.from({ length: settings.batch }, () => event) }) };
}

async function load(url: string, body: string, durationS: number, connections: number): Promise<AutocannonResult> {
  return autocannon({
    url,
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    connections,
    pipelining: 1,
    duration: durationS,
  });
}

async function measure(route: string, target: Row["target"], url: string, body: string, eventsPerRequest: number): Promise<Row> {
  const connections = eventsPerRequest === 1 ? settings.connections : settings.batchConnections;
  const warmup = settings.warmupS > 0 ? await load(url, body, settings.warmupS, connections) : undefined;
  progress(`measuring ${target} ${route} for ${settings.durationS} s, ${connections} connections`);
  const result = await load(url, body, settings.durationS, connections);
  const requestsPerSecond = result["2xx"] / result.duration;
  return {
    route,
    target,
    requestsPerSecond,
    eventsPerSecond: requestsPerSecond * eventsPerRequest,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    ok: result["2xx"],
    failed: result.non2xx + result.errors + result.timeouts,
    acknowledgedEvents: ((warmup?.["2xx"] ?? 0) + result["2xx"]) * eventsPerRequest,
  };
}

function table(rows: Row[]): string {
  const header = ["route", "target", "requests/s", "events/s", "p50 ms", "p99 ms", "2xx", "failed"];
  const lines = rows.map((row) => [
    row.route,
    row.target,
    Math.round(row.requestsPerSecond).toLocaleString("en-US"),
    Math.round(row.eventsPerSecond).toLocaleString("en-US"),
    String(row.p50Ms),
    String(row.p99Ms),
    String(row.ok),
    String(row.failed),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column]!.length)));
  const format = (cells: string[]): string => `| ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join(" | ")} |`;
  return [format(header), `|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`, ...lines.map(format)].join("\n");
}

function nextMessage<T>(child: ChildProcess, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: Record<string, unknown>): void => {
      if (key in message) {
        child.off("exit", onExit);
        child.off("message", onMessage);
        resolve(message[key] as T);
      }
    };
    const onExit = (code: number | null): void => reject(new Error(`the apps' process exited (${code}) before sending ${key}`));
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0]!;
  const database = await resolveDatabaseServer({ dataDir: ".nexus/bench-http-pg", log: progress });
  const namespace = `bench-http-${randomBytes(4).toString("hex")}`;
  const child = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, BENCH_HTTP_ROLE: "apps", BENCH_NAMESPACE: namespace, CORE_DATABASE_URL: database.url },
  });
  try {
    const ready = await nextMessage<Ready>(child, "ready");
    progress(`apps ready: ceiling ${ready.ceiling}, server ${ready.server}, namespace ${namespace}`);
    const { single, batch } = bodies();
    const rows: Row[] = [];
    rows.push(await measure("POST /events", "ceiling", `${ready.ceiling}/events`, single, 1));
    rows.push(await measure("POST /events", "server", `${ready.server}/events`, single, 1));
    rows.push(await measure(`POST /events/batch (${settings.batch})`, "ceiling", `${ready.ceiling}/events/batch`, batch, settings.batch));
    rows.push(await measure(`POST /events/batch (${settings.batch})`, "server", `${ready.server}/events/batch`, batch, settings.batch));

    child.send({ stop: true });
    const committed = await nextMessage<number>(child, "committed");
    const serverRows = rows.filter((row) => row.target === "server");
    // Every 202 of the real server is a committed event, warm-up runs included. Requests
    // in flight when a run stops are committed without their answer being counted: at
    // most one request per connection and run.
    const acknowledged = serverRows.reduce((sum, row) => sum + row.acknowledgedEvents, 0);
    const unanswered = committed - acknowledged;
    const unansweredBound = (settings.connections + settings.batchConnections * settings.batch) * (settings.warmupS > 0 ? 2 : 1);
    const singleRatio = serverRows[0]!.requestsPerSecond / rows[0]!.requestsPerSecond;
    const batchRatio = serverRows[1]!.eventsPerSecond / rows[2]!.eventsPerSecond;

    const machine = {
      nproc: os.availableParallelism(),
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      cpu: os.cpus()[0]?.model ?? "unknown",
      node: process.version,
      postgres: ready.postgres,
      database: database.embedded ? "embedded" : "CORE_DATABASE_URL",
      // Other work on the machine skews every figure: the 1-minute load average around the run.
      loadAverage: [Number(loadBefore.toFixed(1)), Number(os.loadavg()[0]!.toFixed(1))],
    };
    process.stdout.write(
      [
        "",
        `HTTP ingest, ${settings.durationS} s per run after ${settings.warmupS} s warm-up, ${settings.connections} connections (single), ` +
          `${settings.batchConnections} (batch), payload ~${settings.payloadBytes} B, batch ${settings.batch}`,
        `machine: ${machine.nproc} CPUs (${machine.cpu}), ${machine.memoryGiB} GiB, Node ${machine.node}, PostgreSQL ${machine.postgres} (${machine.database}); ` +
          `load average ${machine.loadAverage[0]} before, ${machine.loadAverage[1]} after`,
        "",
        table(rows),
        "",
        `single: server/ceiling = ${singleRatio.toFixed(2)} (aim >= 0.5)`,
        `batch:  server ${Math.round(serverRows[1]!.eventsPerSecond).toLocaleString("en-US")} events/s (aim >= 20,000); server/ceiling = ${batchRatio.toFixed(2)}`,
        `events answered 202 by the server: ${acknowledged.toLocaleString("en-US")}; in core.event_log: ${committed.toLocaleString("en-US")} ` +
          `(${unanswered} committed while their request was cut off at the end of a run)`,
        "",
      ].join("\n"),
    );
    process.stdout.write(`${JSON.stringify({ bench: "http", settings, machine, rows, singleRatio, batchRatio, acknowledged, committed })}\n`);
    const failed = rows.reduce((sum, row) => sum + row.failed, 0);
    if (failed > 0 || unanswered < 0 || unanswered > unansweredBound) {
      progress(`${failed} requests failed; ${acknowledged} events answered 202, ${committed} committed (at most ${unansweredBound} may go unanswered)`);
      process.exitCode = 1;
    }
  } finally {
    if (child.exitCode === null) child.kill("SIGTERM");
    await database.stop();
  }
}

if (process.env.BENCH_HTTP_ROLE === "apps") {
  serveApps().catch((error: unknown) => {
    process.stderr.write(`[bench:http] apps failed: ${String((error as Error).stack ?? error)}\n`);
    process.exit(1);
  });
} else {
  main().catch((error: unknown) => {
    progress(`failed: ${String((error as Error).stack ?? error)}`);
    process.exitCode = 1;
  });
}
