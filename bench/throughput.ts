/**
 * `npm run bench:throughput` (also `npm run benchmark`): how many events per second the
 * core carries, against raw pgmq on the same database in the same run.
 *
 *   1. raw pgmq loop, the reference: send_batch of BENCH_BATCH (and, for the single
 *      figure, one pgmq.send per message, BENCH_CONCURRENCY in flight) drained by one
 *      reader doing pgmq.read(q, 30, BENCH_BATCH) + pgmq.delete(q, ids);
 *   2. core single: BENCH_TOTAL `emit`s, BENCH_CONCURRENCY in flight, one group;
 *   3. core batched: `emitBatch` of BENCH_BATCH, BENCH_CONCURRENCY in flight;
 *   4. the ratios core / raw;
 *   5. latency at low load: sequential emits, emit-to-handler-start and the emit call.
 *
 * Each throughput figure is the median of BENCH_ROUNDS rounds, raw and core interleaved.
 * Every loop is bounded (BENCH_TIMEOUT_MS, BENCH_STALL_MS) and verified (handled ==
 * sent, no duplicates, every returned id handled, queue empty afterwards); a failure
 * exits 1. Progress goes to stderr; stdout gets the table and one JSON line.
 *
 * Knobs (environment):
 *   CORE_DATABASE_URL           else an embedded server in .nexus/bench-pg
 *   BENCH_TOTAL                 messages per round (20000)
 *   BENCH_CONCURRENCY           producer calls in flight (100)
 *   BENCH_BATCH                 send_batch / emitBatch size and raw read size (100)
 *   BENCH_CONSUMER_CONCURRENCY  the group's consumer lanes (see DEFAULTS)
 *   BENCH_PREFETCH              the group's messages per read (see DEFAULTS)
 *   BENCH_POLL_MS               the group's poll interval (1000)
 *   BENCH_POOL                  pool size of each side: producer, consumer, raw (20)
 *   BENCH_ROUNDS                rounds per throughput figure (3)
 *   BENCH_LATENCY_COUNT         sequential emits of the latency loop (500)
 *   BENCH_PAYLOAD_BYTES         filler in each payload (100)
 *   BENCH_TIMEOUT_MS            limit of each loop (120000)
 *   BENCH_STALL_MS              no progress for this long fails the loop (10000: shorter
 *                               than the 30 s visibility timeout, so a message stranded
 *                               until that timeout shows up as a stall)
 *   BENCH_PHASES                comma list of raw-batched, raw-single, core-single,
 *                               core-batched, latency (default all)
 *   BENCH_KEEP_DATA             1: keep the run's namespace rows
 *   CORE_LOG_LEVEL              the library's own logs (default silent)
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { destination, pino } from "pino";
import { CoreSystem, groupQueueName, type CoreNode } from "../core/index.js";
import { cpuMark, cpuSince, type CpuUse } from "./lib/cpu.js";
import { benchDatabase, serverFacts, type DatabaseServer } from "./lib/database.js";
import { flagFromEnv, intFromEnv } from "./lib/env.js";
import { log } from "./lib/log.js";
import { grouped, percentile, perSecond, summarise, table } from "./lib/stats.js";
import { BenchFailure, DeliveryTracker, inFlight, verify, waitFor, watch } from "./lib/tracker.js";

/** Consumer settings that gave the best core figures here (see bench/RESULTS.md). */
const DEFAULTS = { consumerConcurrency: 8, prefetch: 500 };

const PHASES = ["raw-batched", "raw-single", "core-single", "core-batched", "latency"] as const;
type Phase = (typeof PHASES)[number];

const settings = {
  total: intFromEnv("BENCH_TOTAL", 20_000),
  concurrency: intFromEnv("BENCH_CONCURRENCY", 100, 1, 10_000),
  batch: intFromEnv("BENCH_BATCH", 100, 1, 1_000),
  consumerConcurrency: intFromEnv("BENCH_CONSUMER_CONCURRENCY", DEFAULTS.consumerConcurrency, 1, 1_000),
  prefetch: intFromEnv("BENCH_PREFETCH", DEFAULTS.prefetch, 1, 1_000),
  pollMs: intFromEnv("BENCH_POLL_MS", 1_000, 10, 3_600_000),
  pool: intFromEnv("BENCH_POOL", 20, 1, 1_000),
  rounds: intFromEnv("BENCH_ROUNDS", 3, 1, 100),
  latencyCount: intFromEnv("BENCH_LATENCY_COUNT", 500),
  payloadBytes: intFromEnv("BENCH_PAYLOAD_BYTES", 100, 0, 1_000_000),
  timeoutMs: intFromEnv("BENCH_TIMEOUT_MS", 120_000, 1_000),
  stallMs: intFromEnv("BENCH_STALL_MS", 10_000, 1_000),
  keepData: flagFromEnv("BENCH_KEEP_DATA"),
  phases: phasesFromEnv(),
};

const EVENT_TYPE = "bench.one";
const PATTERN = "bench.*";
/** How long acknowledgements may take to commit after the last handler started. */
const DRAIN_TIMEOUT_MS = 10_000;

interface Throughput {
  messages: number;
  ms: number;
  perSecond: number;
  /** Messages handled only on a later attempt (their first read was not handled). */
  redelivered: number;
  /** CPU per message: this process (producers, consumer, driver) and the rest of the machine (the local server). */
  cpuUsPerMessage: { process: number; other: number | undefined };
  /** WAL the server wrote per message (the whole server's, so other activity counts too); undefined when unreadable. */
  walBytesPerMessage: number | undefined;
}

interface Latency {
  emitToHandlerMs: ReturnType<typeof summarise>;
  emitCallMs: ReturnType<typeof summarise>;
}

/** One figure over the rounds: the median rate, its spread and every round. */
interface Figure {
  messages: number;
  perSecond: number;
  min: number;
  max: number;
  redelivered: number;
  /** Medians of the rounds' CPU per message. */
  cpuUsPerMessage: { process: number; other: number | undefined };
  /** Median of the rounds' WAL bytes per message. */
  walBytesPerMessage: number | undefined;
  rounds: Throughput[];
}

interface Results {
  rawBatched?: Figure;
  rawSingle?: Figure;
  coreSingle?: Figure;
  coreBatched?: Figure;
  latency?: Latency;
}

/** What a run holds, for the cleanup that runs whatever happened. */
interface Run {
  server?: DatabaseServer;
  url?: string;
  namespace: string;
  runId: string;
  rawPool?: pg.Pool;
  producerSystem?: CoreSystem;
  consumerSystem?: CoreSystem;
  producer?: CoreNode;
  groups: Set<string>;
  rawQueues: Set<string>;
  abort: AbortController;
}

function phasesFromEnv(): Set<Phase> {
  const raw = process.env.BENCH_PHASES?.trim();
  if (!raw) return new Set(PHASES);
  const chosen = raw.split(",").map((name) => name.trim());
  const unknown = chosen.filter((name) => !(PHASES as readonly string[]).includes(name));
  if (unknown.length > 0) throw new Error(`BENCH_PHASES: unknown ${unknown.join(", ")}; use ${PHASES.join(", ")}.`);
  return new Set(chosen as Phase[]);
}

function payloadOf(seq: number, filler: string): { seq: number; data: string } {
  return { seq, data: filler };
}

// ---------------------------------------------------------------------------------------
// Raw pgmq: the reference loop.
// ---------------------------------------------------------------------------------------

async function rawLoop(run: Run, mode: "batched" | "single", round: number): Promise<Throughput> {
  const pool = run.rawPool!;
  const phase = `raw-${mode}#${round}`;
  const queue = `bench_raw_${run.runId}_${mode}_r${round}`;
  const filler = "x".repeat(settings.payloadBytes);
  await pool.query("select pgmq.create($1)", [queue]);
  run.rawQueues.add(queue);
  const tracker = new DeliveryTracker(phase, settings.total);

  // One reader connection: read a batch, delete it, repeat; a short nap when empty.
  const reader = new pg.Client({ connectionString: run.url, application_name: "bench-raw-reader" });
  reader.on("error", (error) => log("raw reader: connection lost", { phase, error: error.message }));
  await reader.connect();
  let reading = true;
  const readerLoop = (async () => {
    while (reading) {
      const { rows } = await reader.query<{ msg_id: string; message: { seq: number } }>({
        name: "bench_raw_read",
        text: "select msg_id, message from pgmq.read($1, 30, $2)",
        values: [queue, settings.batch],
      });
      if (rows.length === 0) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        continue;
      }
      await reader.query({ name: "bench_raw_delete", text: "select pgmq.delete($1, $2::bigint[])", values: [queue, rows.map((row) => row.msg_id)] });
      const deletedAt = performance.now();
      for (const row of rows) tracker.recordHandled(String(row.message.seq), deletedAt);
    }
  })();

  const batches = Math.ceil(settings.total / settings.batch);
  let cpuUse: CpuUse | undefined;
  let walBytes: number | undefined;
  const wal = await walMark(pool);
  const cpu = cpuMark();
  tracker.markStart();
  const producers =
    mode === "batched"
      ? inFlight(
          batches,
          settings.concurrency,
          async (index) => {
            const first = index * settings.batch;
            const size = Math.min(settings.batch, settings.total - first);
            const messages = Array.from({ length: size }, (_, offset) => JSON.stringify(payloadOf(first + offset, filler)));
            await pool.query({ name: "bench_raw_send_batch", text: "select pgmq.send_batch($1, $2::jsonb[], 0)", values: [queue, messages] });
            tracker.recordSent(size);
          },
          run.abort.signal,
        )
      : inFlight(
          settings.total,
          settings.concurrency,
          async (seq) => {
            await pool.query({ name: "bench_raw_send", text: "select pgmq.send($1, $2::jsonb, 0)", values: [queue, JSON.stringify(payloadOf(seq, filler))] });
            tracker.recordSent();
          },
          run.abort.signal,
        );
  try {
    await watch(tracker, { timeoutMs: settings.timeoutMs, stallMs: settings.stallMs, producers });
    cpuUse = cpuSince(cpu);
    walBytes = await walSince(pool, wal);
    await producers;
  } finally {
    reading = false;
    await readerLoop.catch((error: unknown) => log("raw reader failed", { phase, error: String(error) }));
    await reader.end().catch(() => {});
  }
  verify(tracker);
  await assertDrained(pool, phase, queue);
  await pool.query("select pgmq.drop_queue($1)", [queue]);
  run.rawQueues.delete(queue);
  return throughputOf(tracker, cpuUse!, walBytes);
}

// ---------------------------------------------------------------------------------------
// The core: emit / emitBatch into one group.
// ---------------------------------------------------------------------------------------

async function consumerFor(run: Run, group: string, onHandled: (event: { id: string; payload: unknown }, at: number, attempt: number) => void): Promise<CoreNode> {
  const consumer = await run.consumerSystem!.registerNode({ displayName: "bench-consumer" });
  run.groups.add(group);
  await consumer.onEvent(
    PATTERN,
    (event, context) => {
      onHandled(event, performance.now(), context.attempt);
    },
    { group, concurrency: settings.consumerConcurrency, prefetch: settings.prefetch, pollInterval: settings.pollMs },
  );
  await consumer.start();
  return consumer;
}

async function coreLoop(run: Run, mode: "single" | "batched", round: number): Promise<Throughput> {
  const phase = `core-${mode}#${round}`;
  const group = `bench_${mode}_r${round}`;
  const tracker = new DeliveryTracker(phase, settings.total);
  const consumer = await consumerFor(run, group, (event, at, attempt) => tracker.recordHandled(event.id, at, attempt));
  const producer = run.producer!;
  const filler = "x".repeat(settings.payloadBytes);
  const ids: string[] = [];

  const wal = await walMark(run.rawPool!);
  const cpu = cpuMark();
  tracker.markStart();
  const producers =
    mode === "single"
      ? inFlight(
          settings.total,
          settings.concurrency,
          async (seq) => {
            ids.push(await producer.emit(EVENT_TYPE, payloadOf(seq, filler)));
            tracker.recordSent();
          },
          run.abort.signal,
        )
      : inFlight(
          Math.ceil(settings.total / settings.batch),
          settings.concurrency,
          async (index) => {
            const first = index * settings.batch;
            const size = Math.min(settings.batch, settings.total - first);
            const events = Array.from({ length: size }, (_, offset) => ({ type: EVENT_TYPE, payload: payloadOf(first + offset, filler) }));
            ids.push(...(await producer.emitBatch(events)));
            tracker.recordSent(size);
          },
          run.abort.signal,
        );
  await watch(tracker, { timeoutMs: settings.timeoutMs, stallMs: settings.stallMs, producers });
  const cpuUse = cpuSince(cpu);
  const walBytes = await walSince(run.rawPool!, wal);
  await producers;
  verify(tracker, ids);
  await assertDrained(run.consumerSystem!.pool, phase, groupQueueName(run.namespace, group));
  await consumer.stop();
  await run.consumerSystem!.dropGroup(group);
  run.groups.delete(group);
  return throughputOf(tracker, cpuUse, walBytes);
}

async function latencyLoop(run: Run): Promise<Latency> {
  const phase = "latency";
  const group = "bench_latency";
  const count = settings.latencyCount;
  const tracker = new DeliveryTracker(phase, count);
  const waiters = new Map<number, (at: number) => void>();
  const consumer = await consumerFor(run, group, (event, at, attempt) => {
    if (tracker.recordHandled(event.id, at, attempt)) waiters.get((event.payload as { seq: number }).seq)?.(at);
  });
  const producer = run.producer!;
  const filler = "x".repeat(settings.payloadBytes);
  const ids: string[] = [];
  const toHandler: number[] = [];
  const emitCall: number[] = [];

  tracker.markStart();
  const producers = (async () => {
    for (let seq = 0; seq < count && !run.abort.signal.aborted; seq += 1) {
      const handled = new Promise<number>((resolve) => waiters.set(seq, resolve));
      const before = performance.now();
      ids.push(await producer.emit(EVENT_TYPE, payloadOf(seq, filler)));
      const returned = performance.now();
      tracker.recordSent();
      const handlerStart = await handled;
      waiters.delete(seq);
      toHandler.push(handlerStart - before);
      emitCall.push(returned - before);
    }
  })();
  await watch(tracker, { timeoutMs: settings.timeoutMs, stallMs: settings.stallMs, producers });
  await producers;
  verify(tracker, ids);
  await assertDrained(run.consumerSystem!.pool, phase, groupQueueName(run.namespace, group));
  await consumer.stop();
  await run.consumerSystem!.dropGroup(group);
  run.groups.delete(group);
  return { emitToHandlerMs: summarise(toHandler), emitCallMs: summarise(emitCall) };
}

// ---------------------------------------------------------------------------------------
// Helpers, output, main.
// ---------------------------------------------------------------------------------------

/** The server's WAL position now (undefined where the role may not read it). */
async function walMark(pool: pg.Pool): Promise<string | undefined> {
  try {
    const { rows } = await pool.query<{ lsn: string }>("select pg_current_wal_lsn()::text as lsn");
    return rows[0]?.lsn;
  } catch {
    return undefined;
  }
}

/** WAL bytes written since `from`. */
async function walSince(pool: pg.Pool, from: string | undefined): Promise<number | undefined> {
  if (from === undefined) return undefined;
  const { rows } = await pool.query<{ bytes: string }>("select pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::text as bytes", [from]);
  return Number(rows[0]?.bytes);
}

function throughputOf(tracker: DeliveryTracker, cpu: CpuUse, walBytes: number | undefined): Throughput {
  const ms = tracker.elapsedMs;
  const perMessage = (cpuMs: number | undefined): number | undefined => (cpuMs === undefined ? undefined : Math.round((cpuMs * 1000) / tracker.handled));
  const result: Throughput = {
    messages: tracker.handled,
    ms: Math.round(ms),
    perSecond: perSecond(tracker.handled, ms),
    redelivered: tracker.redelivered,
    cpuUsPerMessage: { process: perMessage(cpu.processMs)!, other: perMessage(cpu.otherMs) },
    walBytesPerMessage: walBytes === undefined ? undefined : Math.round(walBytes / tracker.handled),
  };
  log("measured", {
    phase: tracker.phase,
    messages: result.messages,
    ms: result.ms,
    perSecond: result.perSecond,
    redelivered: result.redelivered,
    processCpuUsPerMessage: result.cpuUsPerMessage.process,
    otherCpuUsPerMessage: result.cpuUsPerMessage.other,
    walBytesPerMessage: result.walBytesPerMessage,
  });
  return result;
}

/** Waits until the queue is empty: every acknowledgement committed, nothing left to redeliver. */
async function assertDrained(pool: pg.Pool, phase: string, queue: string): Promise<void> {
  let left = -1;
  const drained = await waitFor(async () => {
    const { rows } = await pool.query<{ n: string }>("select queue_length::text as n from pgmq.metrics($1)", [queue]);
    left = Number(rows[0]?.n ?? -1);
    return left === 0;
  }, DRAIN_TIMEOUT_MS);
  log("queue", { phase, queue, left, drained });
  if (!drained) throw new BenchFailure(`${phase}: queue ${queue} still holds ${left} messages ${DRAIN_TIMEOUT_MS / 1000} s after the last one was handled.`);
}

/** The median rate of the rounds, with their spread. */
function figureOf(rounds: Throughput[]): Figure {
  const rates = rounds.map((round) => round.perSecond).sort((a, b) => a - b);
  return {
    messages: rounds.reduce((sum, round) => sum + round.messages, 0),
    perSecond: Math.round(percentile(rates, 50)),
    min: rates[0]!,
    max: rates.at(-1)!,
    redelivered: rounds.reduce((sum, round) => sum + round.redelivered, 0),
    cpuUsPerMessage: {
      process: Math.round(percentile(rounds.map((round) => round.cpuUsPerMessage.process), 50)),
      other: rounds.some((round) => round.cpuUsPerMessage.other === undefined)
        ? undefined
        : Math.round(percentile(rounds.map((round) => round.cpuUsPerMessage.other!), 50)),
    },
    walBytesPerMessage: rounds.some((round) => round.walBytesPerMessage === undefined)
      ? undefined
      : Math.round(percentile(rounds.map((round) => round.walBytesPerMessage!), 50)),
    rounds,
  };
}

function ratio(core: Figure | undefined, raw: Figure | undefined): number | undefined {
  return core && raw && raw.perSecond > 0 ? Math.round((core.perSecond / raw.perSecond) * 100) / 100 : undefined;
}

function report(results: Results, facts: Awaited<ReturnType<typeof serverFacts>>, startedAt: Date): void {
  const ratios = { batched: ratio(results.coreBatched, results.rawBatched), single: ratio(results.coreSingle, results.rawSingle) };
  const row = (figure: string, result: Figure | undefined, against?: number): (string | number)[] =>
    result
      ? [
          figure,
          result.messages,
          grouped(result.perSecond),
          grouped(result.min),
          grouped(result.max),
          result.redelivered,
          result.cpuUsPerMessage.process,
          result.cpuUsPerMessage.other ?? "-",
          result.walBytesPerMessage ?? "-",
          against === undefined ? "" : `${against.toFixed(2)}x`,
        ]
      : [figure, "-", "-", "-", "-", "-", "-", "-", "-", ""];
  const rows = [
    row(`raw pgmq batched (send_batch ${settings.batch})`, results.rawBatched),
    row("raw pgmq single (send)", results.rawSingle),
    row(`core batched (emitBatch ${settings.batch})`, results.coreBatched, ratios.batched),
    row("core single (emit)", results.coreSingle, ratios.single),
  ];
  const out: string[] = [];
  out.push("");
  out.push(
    `Throughput: ${settings.total} messages per round, ${settings.rounds} rounds (median shown), ${settings.concurrency} producer calls in flight, ` +
      `batch ${settings.batch}, consumer concurrency ${settings.consumerConcurrency} prefetch ${settings.prefetch}, pool ${settings.pool} per side`,
  );
  out.push(`PostgreSQL ${facts.postgres} (synchronous_commit=${facts.synchronousCommit}), Node ${process.version}, ${os.availableParallelism()} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GiB`);
  out.push("");
  out.push(table(["figure", "messages", "msg/s", "min", "max", "redelivered", "cpu us/msg node", "cpu us/msg other", "WAL B/msg", "core/raw"], rows));
  out.push("");
  out.push(
    "msg/s: median of the rounds (min, max). Per message: CPU of this process and of the rest of the machine " +
      "(the PostgreSQL backends when the server is local), and WAL written by the server.",
  );
  if (results.latency) {
    const { emitToHandlerMs: h, emitCallMs: e } = results.latency;
    out.push("");
    out.push(`Latency at low load: ${h.count} sequential emits, each waiting for its handler`);
    out.push("");
    out.push(
      table(
        ["ms", "p50", "p95", "p99", "max"],
        [
          ["emit -> handler start", h.p50.toFixed(2), h.p95.toFixed(2), h.p99.toFixed(2), h.max.toFixed(2)],
          ["emit call", e.p50.toFixed(2), e.p95.toFixed(2), e.p99.toFixed(2), e.max.toFixed(2)],
        ],
      ),
    );
  }
  out.push("");
  process.stdout.write(out.join("\n") + "\n");
  process.stdout.write(
    JSON.stringify({
      benchmark: "throughput",
      date: startedAt.toISOString(),
      settings: {
        total: settings.total,
        rounds: settings.rounds,
        concurrency: settings.concurrency,
        batch: settings.batch,
        consumerConcurrency: settings.consumerConcurrency,
        prefetch: settings.prefetch,
        pollMs: settings.pollMs,
        pool: settings.pool,
        payloadBytes: settings.payloadBytes,
        latencyCount: settings.latencyCount,
      },
      machine: {
        cpus: os.availableParallelism(),
        memoryBytes: os.totalmem(),
        loadAverage1m: Math.round(os.loadavg()[0]! * 100) / 100,
        node: process.version,
        postgres: facts.postgres,
        synchronousCommit: facts.synchronousCommit,
      },
      ...results,
      ratio: ratios,
    }) + "\n",
  );
}

async function cleanup(run: Run): Promise<void> {
  run.abort.abort();
  // Stop the nodes first: a consumer must not read a queue while it is dropped.
  await run.consumerSystem?.close().catch((error: unknown) => log("closing the consumer system failed", { error: String(error) }));
  for (const group of run.groups) {
    if (!run.producerSystem) break;
    try {
      const removed = await run.producerSystem.dropGroup(group);
      log("dropped group", { group, subscriptions: removed });
    } catch (error) {
      log("dropping a group failed", { group, error: String(error) });
    }
  }
  for (const queue of run.rawQueues) {
    await run.rawPool?.query("select pgmq.drop_queue($1)", [queue]).catch((error: unknown) => log("dropping a raw queue failed", { queue, error: String(error) }));
  }
  await run.producerSystem?.close().catch((error: unknown) => log("closing the producer system failed", { error: String(error) }));
  if (run.rawPool && !settings.keepData) {
    // The namespace is this run's alone: its log rows, nodes and subscriptions go with it,
    // and the queues of its (now stopped) nodes, through the library's own clean-up where
    // the schema has one.
    try {
      const { rows } = await run.rawPool.query<{ present: boolean }>(
        "select to_regprocedure('core.clean_up_namespace(text, interval, interval)') is not null as present",
      );
      if (rows[0]?.present) {
        const dropped = await run.rawPool.query<{ n: number }>("select core.clean_up_namespace($1, interval '0', interval '0') as n", [run.namespace]);
        log("dropped node queues", { namespace: run.namespace, queues: dropped.rows[0]?.n ?? 0 });
      }
      const events = await run.rawPool.query("delete from core.event_log where namespace = $1", [run.namespace]);
      await run.rawPool.query("delete from core.namespaces where name = $1", [run.namespace]);
      log("removed the run's rows", { namespace: run.namespace, events: events.rowCount ?? 0 });
      // Without autovacuum (this machine runs with it off) the deleted rows would bloat the
      // log's indexes run after run and slow later emits; a role that may not vacuum skips it.
      await run.rawPool
        .query("vacuum (analyze) core.event_log")
        .then(() => log("vacuumed core.event_log"))
        .catch((error: unknown) => log("vacuum of core.event_log skipped", { error: error instanceof Error ? error.message : String(error) }));
    } catch (error) {
      log("removing the run's rows failed", { namespace: run.namespace, error: String(error) });
    }
  }
  await run.rawPool?.end().catch(() => {});
  await run.server?.stop().catch((error: unknown) => log("stopping the embedded server failed", { error: String(error) }));
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const runId = randomBytes(4).toString("hex");
  const run: Run = { namespace: `bench-${runId}`, runId, groups: new Set(), rawQueues: new Set(), abort: new AbortController() };
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log("interrupted; cleaning up (again to quit at once)");
    void cleanup(run).finally(() => process.exit(130));
  };
  // A closed stdout (`| head`) must not crash the run before its clean-up.
  process.stdout.on("error", () => {});
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  log("settings", { ...settings, phases: [...settings.phases].join(","), namespace: run.namespace } as Record<string, string | number | boolean>);
  try {
    run.server = await benchDatabase();
    run.url = run.server.url;
    const logger = pino({ name: "nexus-core", level: process.env.CORE_LOG_LEVEL ?? "silent" }, destination(2));
    const connect = (applicationName: string): Promise<CoreSystem> =>
      CoreSystem.connect({ connectionString: run.url!, namespace: run.namespace, logger, pool: { max: settings.pool }, applicationName });
    // Producer and consumer each get their own system (pool), as two processes would.
    run.producerSystem = await connect("bench-producer");
    run.consumerSystem = await connect("bench-consumer");
    run.rawPool = new pg.Pool({ connectionString: run.url, max: settings.pool, application_name: "bench-raw" });
    // An idle client the server drops (a restart) must not crash the run: the next query fails instead.
    run.rawPool.on("error", (error) => log("raw pool: idle connection lost", { error: error.message }));
    const facts = await serverFacts(run.rawPool);
    run.producer = await run.producerSystem.registerNode({ displayName: "producer" });

    // Rounds interleave each core figure with its raw reference, so that a burst of other
    // load on the machine hits both sides of a ratio alike; the median of the rounds counts.
    const rounds: Record<Exclude<Phase, "latency">, Throughput[]> = { "raw-batched": [], "core-batched": [], "raw-single": [], "core-single": [] };
    const wanted = (phase: Phase): boolean => settings.phases.has(phase);
    for (let round = 1; round <= settings.rounds; round += 1) {
      if (wanted("raw-batched")) rounds["raw-batched"].push(await rawLoop(run, "batched", round));
      if (wanted("core-batched")) rounds["core-batched"].push(await coreLoop(run, "batched", round));
      if (wanted("raw-single")) rounds["raw-single"].push(await rawLoop(run, "single", round));
      if (wanted("core-single")) rounds["core-single"].push(await coreLoop(run, "single", round));
    }
    const figure = (phase: Exclude<Phase, "latency">): Figure | undefined => (rounds[phase].length > 0 ? figureOf(rounds[phase]) : undefined);
    const results: Results = {
      rawBatched: figure("raw-batched"),
      rawSingle: figure("raw-single"),
      coreSingle: figure("core-single"),
      coreBatched: figure("core-batched"),
    };
    if (wanted("latency")) results.latency = await latencyLoop(run);
    report(results, facts, startedAt);
  } finally {
    await cleanup(run);
  }
}

main().catch((error: unknown) => {
  // Whatever a failed phase left running must not keep the process alive.
  setTimeout(() => process.exit(1), 5_000).unref();
  const failure = error instanceof BenchFailure ? "benchmark failed" : "benchmark crashed";
  log(failure, { error: error instanceof Error ? error.message : String(error) });
  if (!(error instanceof BenchFailure) && error instanceof Error && error.stack) process.stderr.write(error.stack + "\n");
  process.exitCode = 1;
});
