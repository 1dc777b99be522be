/**
 * `npm run bench:soak -- --minutes 10`: minutes of steady load with periodic consumer
 * kills, on the chaos cluster (test/chaos/setup-cluster.sh). Not part of CI.
 *
 *   - a producer (this process) emits `--rate` events per second into three groups;
 *   - three consumer processes (test/fixtures/chaos-consumer.ts) each consume all three
 *     groups: two run the whole time (their memory must stay flat), the third is
 *     SIGKILLed every `--kill-every` seconds at a random point and replaced;
 *   - every `--sample-every` seconds: throughput of committed effects, queue depth, RSS of
 *     every process;
 *   - at the end the producer stops, the queues drain, and the run is reconciled exactly
 *     (test/support/reconcile.ts): every event of the log has one effect per group
 *     or a dead letter. A loss, a double effect or a memory growth past `--max-rss-growth`
 *     percent on a long-lived process exits 1.
 *
 * Stdout gets markdown ready for bench/RESULTS.md; progress goes to stderr.
 * Database: NEXUS_CHAOS_DATABASE_URL (default postgres://postgres@127.0.0.1:5440/nexus_chaos).
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import { parseArgs } from "node:util";
import { log } from "./lib/log.js";
import { chaosDatabaseUrl, openScenario, produce, queueDepth, startConsumer, type ConsumerReport } from "../test/chaos/support/cluster.js";
import { formatReconciliation, isExact, reconcileWhenDrained } from "../test/support/reconcile.js";
import type { FixtureProcess } from "../test/support/fixture-process.js";

const { values: args } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    rate: { type: "string", default: "100" },
    "kill-every": { type: "string", default: "30" },
    "sample-every": { type: "string", default: "30" },
    "max-rss-growth": { type: "string", default: "25" },
  },
});

function positive(name: string, text: string | undefined): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number; got ${String(text)}.`);
  return value;
}

const minutes = positive("minutes", args.minutes);
const rate = positive("rate", args.rate);
const killEveryMs = positive("kill-every", args["kill-every"]) * 1000;
const sampleEveryMs = positive("sample-every", args["sample-every"]) * 1000;
const maxRssGrowth = positive("max-rss-growth", args["max-rss-growth"]);

// The core logs to stdout; keep stdout for the markdown.
process.env.CORE_LOG_LEVEL ??= "warn";

const suffix = randomBytes(4).toString("hex");
const namespace = `soak-${suffix}`;
const table = `soak_effects_${suffix}`;
const groups = ["soak-a", "soak-b", "soak-c"];
const databaseUrl = chaosDatabaseUrl();
const spec = { databaseUrl, namespace, groups, table, concurrency: 2, prefetch: 10, visibilityMs: 5_000 };

interface Sample {
  minute: number;
  emitted: number;
  effects: number;
  effectsPerSecond: number;
  queueDepth: number;
  rssMb: Record<string, number>;
}

const mb = (bytes: number | undefined): number => Math.round(((bytes ?? 0) / 1_048_576) * 10) / 10;
const lastRss = (child: FixtureProcess<ConsumerReport>): number | undefined => child.reports.findLast((report) => report.rss !== undefined)?.rss;

const scenario = await openScenario(databaseUrl, namespace, table);
const stable = [await startConsumer(spec), await startConsumer(spec)];
let victim = await startConsumer(spec);
let kills = 0;
const samples: Sample[] = [];
const stopProducing = new AbortController();
const startedAt = Date.now();
const endAt = startedAt + minutes * 60_000;
log("soak started", { namespace, minutes, rate, killEverySeconds: killEveryMs / 1000, database: databaseUrl.replace(/\/\/[^@]*@/, "//") });

// The producer: a batch every 100 ms, until the end (bounded by `total`).
const batchSize = Math.max(1, Math.round(rate / 10));
const production = produce(scenario.producer, { total: Math.ceil((minutes * 60 * rate) / batchSize) * batchSize, batchSize, intervalMs: 100, signal: stopProducing.signal, payload: (index) => ({ index, at: Date.now() }) });
let emitted = 0;
void production.then((outcome) => (emitted = outcome.emitted));

/** A replacement consumer; on a loaded machine one may not get ready in time: kill it and try again. */
async function respawn(): Promise<FixtureProcess<ConsumerReport>> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startConsumer(spec);
    } catch (error) {
      if (attempt >= 5) throw error;
      log("replacement consumer not ready; retrying", { attempt, error: (error as Error).message.split("\n")[0] });
    }
  }
}

// The killer: a random point within each period.
const killer = (async () => {
  while (Date.now() + killEveryMs < endAt) {
    await new Promise((resolve) => setTimeout(resolve, killEveryMs * (0.5 + Math.random())));
    await victim.kill();
    kills += 1;
    victim = await respawn();
  }
})();

let previousEffects = 0;
let previousAt = startedAt;
async function sample(): Promise<void> {
  const now = Date.now();
  const [{ rows }, depth, logged] = await Promise.all([
    scenario.system.pool.query<{ n: number }>(`select count(*)::int as n from ${table}`),
    queueDepth(scenario.system),
    scenario.system.pool.query<{ n: number }>("select count(*)::int as n from core.event_log where namespace = $1", [namespace]),
  ]);
  const effects = rows[0]!.n;
  const entry: Sample = {
    minute: Math.round(((now - startedAt) / 60_000) * 10) / 10,
    emitted: logged.rows[0]!.n,
    effects,
    effectsPerSecond: Math.round((effects - previousEffects) / ((now - previousAt) / 1000)),
    queueDepth: depth,
    rssMb: { producer: mb(process.memoryUsage().rss), "consumer 1": mb(lastRss(stable[0]!)), "consumer 2": mb(lastRss(stable[1]!)), "killed consumer": mb(lastRss(victim)) },
  };
  previousEffects = effects;
  previousAt = now;
  samples.push(entry);
  log("sample", { minute: entry.minute, emitted: entry.emitted, effects, perSecond: entry.effectsPerSecond, queueDepth: depth, kills, ...entry.rssMb });
}

while (Date.now() < endAt) {
  await new Promise((resolve) => setTimeout(resolve, Math.min(sampleEveryMs, Math.max(0, endAt - Date.now()))));
  await sample();
}
stopProducing.abort();
await production;
await killer;
log("producer stopped; draining", { emitted });
// Memory is judged on the samples taken under load: the reconciliation below loads every id into this process.
const underLoad = samples.length;
const drainStarted = Date.now();
const result = await reconcileWhenDrained(scenario.system, table, groups, 180_000);
const drainSeconds = Math.round((Date.now() - drainStarted) / 1000);
await sample();
for (const child of [...stable, victim]) await child.kill();
for (const group of groups) await scenario.system.dropGroup(group).catch(() => 0);
await scenario.close();
process.stderr.write(`${formatReconciliation("soak", result)}\n`);

// Memory of the long-lived processes: the first sample after a minute of warm-up against the last.
const warm = samples.find((entry) => entry.minute >= 1) ?? samples[0]!;
const last = samples[underLoad - 1] ?? samples.at(-1)!;
const growth = (name: string): number => Math.round(((last.rssMb[name]! - warm.rssMb[name]!) / warm.rssMb[name]!) * 1000) / 10;
const longLived = ["producer", "consumer 1", "consumer 2"];
const steady = samples.slice(0, underLoad).filter((entry) => entry.minute >= 1);
const meanRate = steady.length > 0 ? Math.round(steady.reduce((sum, entry) => sum + entry.effectsPerSecond, 0) / steady.length) : 0;

const lines: string[] = [];
lines.push(`### Soak: ${minutes} minutes, ${rate} events/s into 3 groups, a consumer SIGKILLed every ~${killEveryMs / 1000} s`);
lines.push("");
lines.push(`Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "unknown"}), Node ${process.version}, PostgreSQL chaos cluster on 127.0.0.1. ${new Date().toISOString().slice(0, 10)}.`);
lines.push("");
lines.push("| minute | events emitted | effects committed | effects/s | queue depth | RSS producer (MB) | RSS consumer 1 (MB) | RSS consumer 2 (MB) | RSS killed consumer (MB) |");
lines.push("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const entry of samples) {
  lines.push(`| ${entry.minute} | ${entry.emitted} | ${entry.effects} | ${entry.effectsPerSecond} | ${entry.queueDepth} | ${entry.rssMb.producer} | ${entry.rssMb["consumer 1"]} | ${entry.rssMb["consumer 2"]} | ${entry.rssMb["killed consumer"]} |`);
}
lines.push("");
lines.push(`- Consumer kills: ${kills}; steady effects/s (mean after minute 1): ${meanRate}; drain after the producer stopped: ${drainSeconds} s.`);
lines.push(`- RSS growth from minute ${warm.minute} to minute ${last.minute} (the last sample under load; the final row follows the reconciliation, which loads every id into the producer): ${longLived.map((name) => `${name} ${growth(name)} %`).join(", ")} (limit ${maxRssGrowth} %).`);
lines.push(
  `- Reconciliation: ${result.events} events × ${groups.length} groups: ${result.groups.map((group) => `${group.group} ${group.effects} effects + ${group.deadLetters} dead letters`).join(", ")}; ${result.missing} missing, ${result.duplicated} duplicated, ${result.orphans} orphan effects.`,
);
process.stdout.write(`${lines.join("\n")}\n`);

const memoryGrew = longLived.filter((name) => growth(name) > maxRssGrowth);
if (!isExact(result) || memoryGrew.length > 0) {
  process.stderr.write(`soak FAILED: ${!isExact(result) ? "reconciliation not exact; " : ""}${memoryGrew.length > 0 ? `memory grew: ${memoryGrew.join(", ")}` : ""}\n`);
  process.exit(1);
}
