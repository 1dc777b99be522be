import pg from "pg";
import { Registry, register as globalRegistry, Gauge } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ValidationError, groupQueueName } from "../../core/index.js";
import { testDatabaseUrl } from "../support/database.js";
import { useSystems } from "../support/systems.js";
import { waitUntil } from "../support/wait.js";

const FAST = { pollInterval: 100, backoff: { type: "fixed" as const, delay: 0 } };

let admin: pg.Pool;
beforeAll(() => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 2 });
});
afterAll(() => admin.end());

const { connect } = useSystems({ label: "metrics" });

// ---------------------------------------------------------------------------------------
// A strict reader of the Prometheus text exposition format, version 0.0.4
// ---------------------------------------------------------------------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
}

const METRIC_NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL_NAME = "[a-zA-Z_][a-zA-Z0-9_]*";
const LABEL_VALUE = '"(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
const VALUE = "(?:[+-]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?|[+-]Inf|NaN)";
const SAMPLE_LINE = new RegExp(`^(${METRIC_NAME})(?:\\{((?:${LABEL_NAME}=${LABEL_VALUE})(?:,${LABEL_NAME}=${LABEL_VALUE})*,?)?\\})? (${VALUE})(?: (-?\\d+))?$`);
const HELP_LINE = new RegExp(`^# HELP (${METRIC_NAME}) (.*)$`);
const TYPE_LINE = new RegExp(`^# TYPE (${METRIC_NAME}) (counter|gauge|histogram|summary|untyped)$`);
const LABEL_PAIR = new RegExp(`(${LABEL_NAME})=(${LABEL_VALUE})`, "g");

/**
 * Parses exposition text, failing on anything the format does not allow: malformed lines,
 * a sample before its family's TYPE, a TYPE or HELP given twice, a family's lines split,
 * a duplicate series, a repeated label, a histogram without an increasing le series
 * ending at +Inf = _count.
 */
function parseExposition(text: string): Exposition {
  expect(text.endsWith("\n"), "the text ends with a newline").toBe(true);
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const finished = new Set<string>();
  const series = new Set<string>();
  const samples: Sample[] = [];
  let current: string | undefined;
  const enter = (family: string, line: number): void => {
    if (family === current) return;
    if (finished.has(family)) throw new Error(`line ${line}: the lines of ${family} are not together`);
    if (current !== undefined) finished.add(current);
    current = family;
  };
  const familyOf = (name: string): string | undefined => {
    if (types.has(name)) return name;
    for (const suffix of ["_bucket", "_sum", "_count"]) {
      const base = name.endsWith(suffix) ? name.slice(0, -suffix.length) : undefined;
      if (base && ["histogram", "summary"].includes(types.get(base) ?? "")) return base;
    }
    return undefined;
  };
  text.slice(0, -1).split("\n").forEach((line, index) => {
    const number = index + 1;
    if (line === "") return;
    if (line.startsWith("#")) {
      const help = HELP_LINE.exec(line);
      const type = TYPE_LINE.exec(line);
      if (help) {
        if (helps.has(help[1]!)) throw new Error(`line ${number}: second HELP for ${help[1]}`);
        helps.add(help[1]!);
        enter(help[1]!, number);
      } else if (type) {
        if (types.has(type[1]!)) throw new Error(`line ${number}: second TYPE for ${type[1]}`);
        if ([...series].some((key) => key.startsWith(`${type[1]}{`) || key.startsWith(`${type[1]}_`))) throw new Error(`line ${number}: TYPE after samples`);
        types.set(type[1]!, type[2]!);
        enter(type[1]!, number);
      } else if (/^# (HELP|TYPE)\b/.test(line)) {
        throw new Error(`line ${number}: malformed ${line}`);
      }
      return;
    }
    const match = SAMPLE_LINE.exec(line);
    if (!match) throw new Error(`line ${number}: not a sample line: ${line}`);
    const name = match[1]!;
    const family = familyOf(name);
    if (!family) throw new Error(`line ${number}: sample ${name} before its TYPE`);
    enter(family, number);
    const labels: Record<string, string> = {};
    for (const [, label, quoted] of (match[2] ?? "").matchAll(LABEL_PAIR)) {
      if (label! in labels) throw new Error(`line ${number}: label ${label} repeated`);
      labels[label!] = quoted!.slice(1, -1).replace(/\\(["\\n])/g, (_all, c: string) => (c === "n" ? "\n" : c));
    }
    const key = `${name}{${Object.keys(labels).sort().map((label) => `${label}=${JSON.stringify(labels[label])}`).join(",")}}`;
    if (series.has(key)) throw new Error(`line ${number}: duplicate series ${key}`);
    series.add(key);
    const raw = match[3]!;
    samples.push({ name, labels, value: raw.endsWith("Inf") ? (raw.startsWith("-") ? -Infinity : Infinity) : Number(raw) });
  });
  for (const [family, type] of types) {
    if (type !== "histogram") continue;
    const groups = new Map<string, Sample[]>();
    for (const sample of samples.filter((s) => s.name === `${family}_bucket`)) {
      const { le: _le, ...rest } = sample.labels;
      const key = JSON.stringify(rest);
      groups.set(key, [...(groups.get(key) ?? []), sample]);
    }
    for (const [key, buckets] of groups) {
      const bounds = buckets.map((bucket) => (bucket.labels.le === "+Inf" ? Infinity : Number(bucket.labels.le)));
      expect(bounds.every((bound, i) => !Number.isNaN(bound) && (i === 0 || bound > bounds[i - 1]!)), `${family} le increasing`).toBe(true);
      expect(bounds.at(-1), `${family} ends at +Inf`).toBe(Infinity);
      expect(buckets.every((bucket, i) => i === 0 || bucket.value >= buckets[i - 1]!.value), `${family} cumulative`).toBe(true);
      const count = samples.find((s) => s.name === `${family}_count` && JSON.stringify(s.labels) === key);
      expect(count?.value, `${family}_count of ${key}`).toBe(buckets.at(-1)!.value);
    }
  }
  return { types, samples };
}

function sample(exposition: Exposition, name: string, labels: Record<string, string>): number | undefined {
  return exposition.samples.find((s) => s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value))?.value;
}

describe("the exposition parser", () => {
  it("rejects what the format forbids", () => {
    const ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    expect(parseExposition(ok).samples).toEqual([{ name: "a_total", labels: { x: "1" }, value: 2 }]);
    for (const bad of [
      "a_total 1\n",
      "# TYPE a_total counter\na_total{x=1} 2\n",
      "# TYPE a_total counter\na_total{x=\"1\"} 2\na_total{x=\"1\"} 3\n",
      "# TYPE a_total counter\na_total two\n",
      "# TYPE a gauge\n# TYPE b gauge\na 1\n",
      "# TYPE a gauge\na 1",
      "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
    ]) {
      expect(() => parseExposition(bad), bad).toThrow();
    }
  });
});

// ---------------------------------------------------------------------------------------

describe("queue gauges", () => {
  it("reports the queue length of a stopped group as pgmq.metrics does, in text and object alike", async () => {
    const system = await connect();
    const sink = await system.registerNode({ displayName: "sink" });
    await sink.onEvent("gauge.*", () => {}, FAST);
    await sink.start();
    await sink.stop();
    const producer = await system.registerNode({ displayName: "producer" });
    const sends = 7;
    await producer.emitBatch(Array.from({ length: sends }, (_, n) => ({ type: "gauge.tick", payload: { n } })));

    const queue = groupQueueName(system.namespace, "sink");
    const { rows } = await admin.query<{ queue_length: string; queue_visible_length: string }>(
      "select queue_length, queue_visible_length from pgmq.metrics($1)",
      [queue],
    );
    expect(Number(rows[0]!.queue_length)).toBe(sends);

    const text = await system.metricsText();
    const exposition = parseExposition(text);
    const labels = { namespace: system.namespace, group: "sink", kind: "event" };
    expect(exposition.types.get("nexus_queue_length")).toBe("gauge");
    expect(sample(exposition, "nexus_queue_length", labels)).toBe(Number(rows[0]!.queue_length));
    expect(sample(exposition, "nexus_queue_visible_length", labels)).toBe(Number(rows[0]!.queue_visible_length));
    expect(sample(exposition, "nexus_dead_letter_queue_length", labels)).toBe(0);
    expect(sample(exposition, "nexus_queue_oldest_message_age_seconds", labels)).toBeGreaterThanOrEqual(0);
    expect(sample(exposition, "nexus_events_emitted_total", { namespace: system.namespace })).toBe(sends);
    expect(sample(exposition, "nexus_database_up", { namespace: system.namespace })).toBe(1);
    expect(sample(exposition, "nexus_node_alive", { node_id: producer.nodeId })).toBe(1);
    expect(sample(exposition, "nexus_node_alive", { node_id: sink.nodeId })).toBe(0);
    expect(sample(exposition, "nexus_node_last_heartbeat_timestamp_seconds", { node_id: producer.nodeId })).toBeGreaterThan(Date.now() / 1000 - 60);

    const snapshot = await system.metrics();
    expect(JSON.parse(JSON.stringify(snapshot))).toEqual(snapshot);
    expect(snapshot.namespace).toBe(system.namespace);
    expect(snapshot.emittedEvents).toBe(sends);
    expect(snapshot.groups).toEqual([
      expect.objectContaining({ group: "sink", kind: "event", queue, queueLength: sends, visibleLength: sends, deadLetterLength: 0, handled: 0, failed: 0, deadLettered: 0 }),
    ]);
    expect(snapshot.nodes.map((node) => [node.displayName, node.status, node.alive]).sort()).toEqual([
      ["producer", "alive", true],
      ["sink", "stopped", false],
    ]);
  });
});

describe("consumer counters", () => {
  it("counts handled, failed and dead-lettered events and their durations", async () => {
    const system = await connect();
    const worker = await system.registerNode({ displayName: "worker" });
    await worker.onEvent(
      "work.*",
      (event) => {
        if ((event.payload as { fail: boolean }).fail) throw new Error("refused");
      },
      { ...FAST, maxAttempts: 1 },
    );
    await worker.start();
    await worker.emitBatch([false, true, false, true, false].map((fail) => ({ type: "work.item", payload: { fail } })));

    // Counters move when a handler returns; the queue empties when its batch commits.
    const snapshot = await waitUntil(
      "five outcomes, committed",
      () => system.metrics(),
      (s) => s.groups.some((g) => g.group === "worker" && g.handled + g.failed >= 5 && g.queueLength === 0),
    );
    const group = snapshot.groups.find((g) => g.group === "worker")!;
    expect(group).toMatchObject({ kind: "event", handled: 3, failed: 2, deadLettered: 2, deadLetterLength: 2, queueLength: 0 });
    expect(group.handlerDuration.count).toBe(5);
    expect(group.handlerDuration.sumSeconds).toBeGreaterThanOrEqual(0);
    expect(group.handlerDuration.buckets.at(-1)!.count).toBeLessThanOrEqual(5);

    const exposition = parseExposition(await system.metricsText());
    const labels = { namespace: system.namespace, group: "worker", kind: "event" };
    expect(exposition.types.get("nexus_handled_total")).toBe("counter");
    expect(sample(exposition, "nexus_handled_total", labels)).toBe(3);
    expect(sample(exposition, "nexus_handler_failures_total", labels)).toBe(2);
    expect(sample(exposition, "nexus_dead_lettered_total", labels)).toBe(2);
    expect(sample(exposition, "nexus_handler_duration_seconds_count", labels)).toBe(5);
    expect(sample(exposition, "nexus_handler_duration_seconds_bucket", { ...labels, le: "+Inf" })).toBe(5);
    expect(sample(exposition, "nexus_dead_letter_queue_length", labels)).toBe(2);
  });

  it("counts a request group's answers under kind=request", async () => {
    const system = await connect();
    const responder = await system.registerNode({ displayName: "calc" });
    await responder.onRequest("calc.sum", (request) => {
      const { a, b } = request.payload as { a: number; b: number };
      if (a < 0) throw new Error("negative");
      return a + b;
    });
    await responder.start();
    expect(await responder.request("calc.sum", { a: 1, b: 2 })).toBe(3);
    await expect(responder.request("calc.sum", { a: -1, b: 2 })).rejects.toThrow(/negative/);
    const group = (await system.metrics()).groups.find((g) => g.group === "calc" && g.kind === "request");
    expect(group).toMatchObject({ handled: 1, failed: 1, deadLettered: 0, deadLetterLength: null, queueLength: 0 });
  });
});

describe("registries", () => {
  it("keeps each system's metrics on its own registry, never prom-client's global one", async () => {
    const [one, two] = await Promise.all([connect(), connect()]);
    expect(one.metricsRegistry).not.toBe(two.metricsRegistry);
    expect(globalRegistry.getSingleMetric("nexus_queue_length")).toBeUndefined();
    const [textOne, textTwo] = await Promise.all([one.metricsText(), two.metricsText()]);
    expect(textOne).toContain(`namespace="${one.namespace}"`);
    expect(textOne).not.toContain(`namespace="${two.namespace}"`);
    expect(textTwo).toContain(`namespace="${two.namespace}"`);
    expect(one.metricsRegistry.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it("shares a given registry between systems, each adding its namespace's series", async () => {
    const registry = new Registry();
    const mine = new Gauge({ name: "app_ready", help: "The app's own metric.", registers: [registry] });
    mine.set(1);
    const [one, two] = await Promise.all([connect({ metrics: { registry } }), connect({ metrics: { registry } })]);
    for (const system of [one, two]) {
      const node = await system.registerNode({ displayName: "g" });
      await node.onEvent("x.*", () => {}, FAST);
      await node.start();
      await node.stop();
    }
    const exposition = parseExposition(await registry.metrics());
    expect(sample(exposition, "app_ready", {})).toBe(1);
    for (const system of [one, two]) {
      expect(sample(exposition, "nexus_queue_length", { namespace: system.namespace, group: "g" })).toBe(0);
      expect(sample(exposition, "nexus_database_up", { namespace: system.namespace })).toBe(1);
    }
    await one.close();
    const after = parseExposition(await two.metricsText());
    expect(sample(after, "nexus_queue_length", { namespace: one.namespace })).toBeUndefined();
    expect(sample(after, "nexus_queue_length", { namespace: two.namespace, group: "g" })).toBe(0);
  });

  it("rejects a registry that is not one, or that holds a foreign metric under a nexus_ name", async () => {
    await expect(connect({ metrics: { registry: {} as Registry } })).rejects.toBeInstanceOf(ValidationError);
    const taken = new Registry();
    new Gauge({ name: "nexus_queue_length", help: "Someone else's.", registers: [taken] });
    await expect(connect({ metrics: { registry: taken } })).rejects.toThrow(/already holds a metric/);
  });
});

describe("top queries", () => {
  it("returns the costliest statements with pg_stat_statements, and says so without it", async () => {
    const system = await connect();
    const { rows } = await admin.query<{ installed: boolean }>(
      "select exists (select 1 from pg_extension where extname = 'pg_stat_statements') as installed",
    );
    const installed = rows[0]!.installed;
    // Installed but not in shared_preload_libraries (e.g. the embedded server): the view refuses to be read.
    const loaded = installed && (await admin.query("select count(*) from pg_stat_statements").then(() => true, () => false));
    await expect(system.topQueries(0)).rejects.toBeInstanceOf(ValidationError);
    const top = await system.topQueries(5);
    if (installed && !loaded) {
      expect(top).toEqual({ available: false, reason: expect.stringMatching(/shared_preload_libraries/) });
    } else if (installed) {
      if (!top.available) throw new Error(`pg_stat_statements is installed but topQueries said: ${top.reason}`);
      expect(top.queries.length).toBeGreaterThan(0);
      expect(top.queries.length).toBeLessThanOrEqual(5);
      for (const query of top.queries) {
        expect(query).toEqual({
          queryId: expect.any(String),
          query: expect.any(String),
          calls: expect.any(Number),
          totalTimeMs: expect.any(Number),
          meanTimeMs: expect.any(Number),
          rows: expect.any(Number),
        });
        expect(query.calls).toBeGreaterThan(0);
      }
      const totals = top.queries.map((query) => query.totalTimeMs);
      expect(totals).toEqual([...totals].sort((a, b) => b - a));
    } else {
      expect(top).toEqual({ available: false, reason: expect.stringMatching(/pg_stat_statements is not installed/) });
    }
  });
});
