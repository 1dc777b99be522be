/**
 * Metrics of a system, as Prometheus text (prom-client) and as a typed object, both built
 * from the same figures:
 *
 * - per group, read from the database at each scrape: queue length, visible length,
 *   oldest message age and dead-letter length (`pgmq.metrics` through
 *   `core.group_queue_metrics`);
 * - per group, counted by the consumers of this process: handler calls that returned and
 *   that threw, messages dead-lettered, and a histogram of handler durations;
 * - per node, read from `core.nodes`: liveness and last heartbeat;
 * - per namespace, counted in this process: events published by its emits.
 *
 * The metrics live on a registry owned by the system (never prom-client's global one), or
 * on one passed in `ConnectOptions.metrics.registry`; several systems may share a
 * registry, each contributing the series of its namespace.
 */
import type { NamespaceContext } from "../model/context.js";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { ValidationError, asError } from "../model/errors.js";
import { assertKnownKeys, assertWholeNumber } from "../model/options.js";
import { groupQueueName, requestQueueName } from "../model/names.js";
import { groupQueueMetrics, type GroupQueueRow } from "./queries/group-queue-metrics.js";
import { nodeMetrics, type NodeMetricsRow } from "./queries/node-metrics.js";
import { readTopQueries, type TopQueryRow } from "./queries/read-top-queries.js";

/** Metrics options of `CoreSystem.connect`. */
export interface MetricsOptions {
  /**
   * The prom-client registry to put the metrics on (default: a new one owned by the
   * system). Systems sharing a registry each add the series of their namespace.
   */
  registry?: Registry;
}

/** Receives a consumer's outcomes (see `core/consumer.ts`). Never throws. */
export interface ConsumerObserver {
  /** A handler returned (`ok`) or threw, after `ms` milliseconds. */
  delivered(ok: boolean, ms: number): void;
  /** A message moved to the dead-letter queue after its last attempt. */
  deadLettered(): void;
}

/** A histogram as plain numbers: cumulative bucket counts by upper bound, the `+Inf` bucket being `count`. */
export interface DurationHistogram {
  count: number;
  sumSeconds: number;
  buckets: { le: number; count: number }[];
}

/** The figures of one consumer group. */
export interface GroupMetrics {
  group: string;
  /** `event` for an event group's queue, `request` for a responder group's request queue. */
  kind: "event" | "request";
  queue: string;
  /** Messages in the queue, visible or not (null: the group has no subscription in the database). */
  queueLength: number | null;
  /** Messages that a consumer could read now. */
  visibleLength: number | null;
  /** Age in seconds of the oldest message (null when the queue is empty). */
  oldestMessageAgeSeconds: number | null;
  /** Messages in the dead-letter queue (null for request groups, which answer errors instead). */
  deadLetterLength: number | null;
  /** Handler calls of this process that returned. */
  handled: number;
  /** Handler calls of this process that threw (each attempt counts). */
  failed: number;
  /** Messages this process moved to the dead-letter queue. */
  deadLettered: number;
  /** Durations of this process's handler calls. */
  handlerDuration: DurationHistogram;
}

/** A node of the namespace: alive ones, and those stopped or dead within the last hour. */
export interface NodeMetrics {
  nodeId: string;
  displayName: string;
  status: "alive" | "stopped" | "dead";
  /** Status alive and a heartbeat within the node TTL. */
  alive: boolean;
  startedAt: string;
  lastHeartbeatAt: string;
  heartbeatAgeSeconds: number;
}

/** What `system.metrics()` returns: the same figures as `system.metricsText()`. */
export interface MetricsSnapshot {
  namespace: string;
  /** When the figures were read (ISO 8601). */
  collectedAt: string;
  groups: GroupMetrics[];
  nodes: NodeMetrics[];
  /** Events published by this process's emits in the namespace (not counting idempotent repeats). */
  emittedEvents: number;
}

/** One statement from pg_stat_statements: id (a bigint, as a string), normalised text, calls, times in ms, rows. */
export type TopQuery = TopQueryRow;

/** What `system.topQueries(n)` returns: the statements, or why there are none. */
export type TopQueries = { available: true; queries: TopQuery[] } | { available: false; reason: string };

/** What a {@link Metrics} needs beside its namespace. */
export interface MetricsSettings {
  /** Nodes silent for longer count as dead. */
  nodeTtlMs: number;
  /** The registry to put the metrics on (default: one of its own). */
  registry?: Registry | undefined;
}

/** Label names: per group, per node, per namespace. */
const GROUP_LABELS = ["namespace", "group", "kind"] as const;
const NODE_LABELS = ["namespace", "node_id", "display_name"] as const;
const NAMESPACE_LABELS = ["namespace"] as const;
/** Seconds: from a fast in-database handler to a slow remote call. */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Stopped and dead nodes stay in the metrics this long. */
const RECENT_NODES_MS = 3_600_000;
/** SQLSTATEs that mean pg_stat_statements cannot be read here. */
const STATEMENTS_UNAVAILABLE = new Set(["0A000", "55000", "42501", "42P01", "42883"]);

type GroupLabels = Record<(typeof GROUP_LABELS)[number], string>;
interface DatabaseFigures {
  groups: GroupQueueRow[];
  nodes: NodeMetricsRow[];
}

/** The metric objects of one registry, shared by the systems on it. */
class Families {
  readonly sources = new Set<Metrics>();
  readonly queueLength: Gauge<(typeof GROUP_LABELS)[number]>;
  readonly visibleLength: Gauge<(typeof GROUP_LABELS)[number]>;
  readonly oldestAge: Gauge<(typeof GROUP_LABELS)[number]>;
  readonly deadLetterLength: Gauge<(typeof GROUP_LABELS)[number]>;
  readonly nodeAlive: Gauge<(typeof NODE_LABELS)[number]>;
  readonly nodeHeartbeat: Gauge<(typeof NODE_LABELS)[number]>;
  readonly databaseUp: Gauge<(typeof NAMESPACE_LABELS)[number]>;
  readonly handled: Counter<(typeof GROUP_LABELS)[number]>;
  readonly failed: Counter<(typeof GROUP_LABELS)[number]>;
  readonly deadLettered: Counter<(typeof GROUP_LABELS)[number]>;
  readonly duration: Histogram<(typeof GROUP_LABELS)[number]>;
  readonly emitted: Counter<(typeof NAMESPACE_LABELS)[number]>;
  #refreshing: Promise<void> | undefined;

  constructor(registry: Registry) {
    const registers = [registry];
    // Every database gauge waits for one shared read per scrape, which sets them all.
    const collect = (): Promise<void> => (this.#refreshing ??= this.#refresh().finally(() => (this.#refreshing = undefined)));
    const gauge = <T extends string>(name: string, help: string, labelNames: readonly T[]): Gauge<T> =>
      new Gauge({ name, help, labelNames, registers, collect });
    this.queueLength = gauge("nexus_queue_length", "Messages in the group's queue, visible or not (pgmq.metrics queue_length).", GROUP_LABELS);
    this.visibleLength = gauge("nexus_queue_visible_length", "Messages in the group's queue that a consumer could read now.", GROUP_LABELS);
    this.oldestAge = gauge("nexus_queue_oldest_message_age_seconds", "Age of the oldest message in the group's queue; absent when empty.", GROUP_LABELS);
    this.deadLetterLength = gauge("nexus_dead_letter_queue_length", "Messages in the group's dead-letter queue.", GROUP_LABELS);
    this.nodeAlive = gauge("nexus_node_alive", "1 when the node's status is alive and its last heartbeat is within the node TTL, else 0.", NODE_LABELS);
    this.nodeHeartbeat = gauge("nexus_node_last_heartbeat_timestamp_seconds", "Unix time of the node's last heartbeat.", NODE_LABELS);
    this.databaseUp = gauge("nexus_database_up", "1 when the last scrape read the namespace's figures from the database, else 0.", NAMESPACE_LABELS);
    this.handled = new Counter({ name: "nexus_handled_total", help: "Handler calls of this process that returned.", labelNames: GROUP_LABELS, registers });
    this.failed = new Counter({ name: "nexus_handler_failures_total", help: "Handler calls of this process that threw (each attempt).", labelNames: GROUP_LABELS, registers });
    this.deadLettered = new Counter({ name: "nexus_dead_lettered_total", help: "Messages this process moved to a dead-letter queue.", labelNames: GROUP_LABELS, registers });
    this.duration = new Histogram({
      name: "nexus_handler_duration_seconds",
      help: "Duration of this process's handler calls, inside their transaction.",
      labelNames: GROUP_LABELS,
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.emitted = new Counter({ name: "nexus_events_emitted_total", help: "Events published by this process's emits (idempotent repeats excluded).", labelNames: NAMESPACE_LABELS, registers });
  }

  /** Reads every source's database figures and sets the gauges from them. */
  async #refresh(): Promise<void> {
    const sources = [...this.sources];
    const figures = await Promise.all(sources.map((source) => source.readDatabaseForScrape()));
    for (const gauge of [this.queueLength, this.visibleLength, this.oldestAge, this.deadLetterLength, this.nodeAlive, this.nodeHeartbeat, this.databaseUp]) {
      gauge.reset();
    }
    sources.forEach((source, index) => {
      const namespace = source.namespace;
      const read = figures[index];
      this.databaseUp.set({ namespace }, read ? 1 : 0);
      if (!read) return;
      for (const row of read.groups) {
        const labels = { namespace, group: row.group, kind: row.kind };
        this.queueLength.set(labels, row.queueLength);
        this.visibleLength.set(labels, row.visibleLength);
        if (row.oldestMessageAgeSeconds !== null) this.oldestAge.set(labels, row.oldestMessageAgeSeconds);
        if (row.deadLetterLength !== null) this.deadLetterLength.set(labels, row.deadLetterLength);
      }
      for (const node of read.nodes) {
        const labels = { namespace, node_id: node.nodeId, display_name: node.displayName };
        this.nodeAlive.set(labels, node.alive ? 1 : 0);
        this.nodeHeartbeat.set(labels, node.lastHeartbeatAt.getTime() / 1000);
      }
    });
  }
}

const familiesByRegistry = new WeakMap<Registry, Families>();

function familiesOf(registry: Registry): Families {
  let families = familiesByRegistry.get(registry);
  if (!families) {
    try {
      families = new Families(registry);
    } catch (error) {
      throw new ValidationError(
        "metrics.registry",
        `The metrics registry already holds a metric named like one of Nexus Core's (nexus_*): ${asError(error).message}`,
      );
    }
    familiesByRegistry.set(registry, families);
  }
  return families;
}

/**
 * Checks `ConnectOptions.metrics` before anything is opened: an object whose `registry`,
 * if given, is a prom-client registry without foreign metrics under Nexus Core's names.
 */
export function validateMetricsOptions(options: unknown): asserts options is MetricsOptions | undefined {
  if (options === undefined) return;
  if (options === null || typeof options !== "object") {
    throw new ValidationError("metrics", "metrics must be an object { registry? }.");
  }
  assertKnownKeys("CoreSystem.connect options.metrics", options, ["registry"], "metrics");
  const registry = (options as MetricsOptions).registry;
  if (registry === undefined) return;
  if (registry === null || typeof registry !== "object" || typeof registry.metrics !== "function" || typeof registry.getSingleMetric !== "function") {
    throw new ValidationError("metrics.registry", "metrics.registry must be a prom-client Registry (new Registry() from prom-client 15).");
  }
  familiesOf(registry);
}

/** A system's metrics. Created by the system; read it through `system.metricsText()`, `system.metrics()` and `system.topQueries()`. */
export class Metrics {
  /** The registry the metrics are on. */
  readonly registry: Registry;
  readonly namespace: string;
  readonly #context: NamespaceContext;
  readonly #nodeTtlMs: number;
  readonly #families: Families;

  constructor(context: NamespaceContext, settings: MetricsSettings) {
    this.#context = context;
    this.#nodeTtlMs = settings.nodeTtlMs;
    this.namespace = context.namespace;
    this.registry = settings.registry ?? new Registry();
    this.#families = familiesOf(this.registry);
    this.#families.sources.add(this);
    this.#families.emitted.inc({ namespace: context.namespace }, 0);
  }

  /** @internal The observer of one group's consumer; its series start at zero. */
  observer(labels: GroupLabels): ConsumerObserver {
    const { handled, failed, deadLettered, duration } = this.#families;
    handled.inc(labels, 0);
    failed.inc(labels, 0);
    deadLettered.inc(labels, 0);
    duration.zero(labels);
    return {
      delivered: (ok, ms) => {
        (ok ? handled : failed).inc(labels);
        duration.observe(labels, ms / 1000);
      },
      deadLettered: () => deadLettered.inc(labels),
    };
  }

  /** @internal Counts the events an emit published; returns its outcomes unchanged. */
  countEmitted<T extends { published: boolean }>(outcomes: T[]): T[] {
    const published = outcomes.filter((outcome) => outcome.published).length;
    if (published > 0) this.#families.emitted.inc({ namespace: this.namespace }, published);
    return outcomes;
  }

  /** The registry's metrics in the Prometheus text format (version 0.0.4). */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of {@link text}, for an HTTP response. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The same figures as {@link text}, for this system's namespace, as an object. */
  async snapshot(): Promise<MetricsSnapshot> {
    let figures: DatabaseFigures;
    try {
      figures = await this.#readDatabase();
    } catch (error) {
      throw this.#context.toError(error, "read the metrics");
    }
    const collectedAt = new Date().toISOString();
    const process = await this.#processFigures();
    const groups = new Map<string, GroupMetrics>();
    const keyOf = (group: string, kind: string): string => `${kind}\u0000${group}`;
    for (const row of figures.groups) {
      groups.set(keyOf(row.group, row.kind), {
        group: row.group,
        kind: row.kind,
        queue: row.queue,
        queueLength: row.queueLength,
        visibleLength: row.visibleLength,
        oldestMessageAgeSeconds: row.oldestMessageAgeSeconds,
        deadLetterLength: row.deadLetterLength,
        ...emptyCounts(),
      });
    }
    for (const [key, counts] of process.groups) {
      const [kind, group] = key.split("\u0000") as ["event" | "request", string];
      const entry = groups.get(key) ?? {
        group,
        kind,
        queue: kind === "event" ? groupQueueName(this.namespace, group) : requestQueueName(this.namespace, group),
        queueLength: null,
        visibleLength: null,
        oldestMessageAgeSeconds: null,
        deadLetterLength: null,
        ...emptyCounts(),
      };
      groups.set(key, { ...entry, ...counts });
    }
    return {
      namespace: this.namespace,
      collectedAt,
      groups: [...groups.values()].sort((a, b) => (a.group === b.group ? a.kind.localeCompare(b.kind) : a.group < b.group ? -1 : 1)),
      nodes: figures.nodes.map((node) => ({
        nodeId: node.nodeId,
        displayName: node.displayName,
        status: node.status,
        alive: node.alive,
        startedAt: node.startedAt.toISOString(),
        lastHeartbeatAt: node.lastHeartbeatAt.toISOString(),
        heartbeatAgeSeconds: node.heartbeatAgeSeconds,
      })),
      emittedEvents: process.emitted,
    };
  }

  /**
   * The `limit` statements of this database with the most total execution time, from
   * pg_stat_statements; `{ available: false, reason }` where it is not installed or not
   * loaded (never an exception for that).
   */
  async topQueries(limit: number): Promise<TopQueries> {
    if (typeof limit !== "number") throw new ValidationError("limit", `limit must be a whole number of statements from 1 to 1000; got ${String(limit)}.`);
    assertWholeNumber("limit", limit, { min: 1, max: 1000, unit: "statements" });
    try {
      return { available: true, queries: await readTopQueries(this.#context.pool, limit) };
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      if (typeof code === "string" && STATEMENTS_UNAVAILABLE.has(code)) {
        return {
          available: false,
          reason:
            `${asError(error).message}. pg_stat_statements needs shared_preload_libraries = 'pg_stat_statements' on the ` +
            `server and CREATE EXTENSION pg_stat_statements by a superuser (migration 2 creates it where the role may).`,
        };
      }
      throw this.#context.toError(error, "read pg_stat_statements");
    }
  }

  /** Stops contributing to the registry (the system is closing); its counters stay. */
  close(): void {
    this.#families.sources.delete(this);
    this.#families.databaseUp.remove({ namespace: this.namespace });
  }

  /** @internal For a scrape: the database figures, or undefined (logged) when they cannot be read. */
  async readDatabaseForScrape(): Promise<DatabaseFigures | undefined> {
    try {
      return await this.#readDatabase();
    } catch (error) {
      this.#context.logger.warn({ err: this.#context.toError(error, "read queue and node metrics") }, "could not read queue and node metrics");
      return undefined;
    }
  }

  async #readDatabase(): Promise<DatabaseFigures> {
    const { pool, namespace } = this.#context;
    const nodeTtlMs = this.#nodeTtlMs;
    const [groups, nodes] = await Promise.all([groupQueueMetrics(pool, namespace), nodeMetrics(pool, namespace, nodeTtlMs, RECENT_NODES_MS)]);
    return { groups, nodes };
  }

  /** This namespace's in-process counters, read back from prom-client. */
  async #processFigures(): Promise<{ groups: Map<string, Pick<GroupMetrics, "handled" | "failed" | "deadLettered" | "handlerDuration">>; emitted: number }> {
    const { handled, failed, deadLettered, duration, emitted } = this.#families;
    const groups = new Map<string, Pick<GroupMetrics, "handled" | "failed" | "deadLettered" | "handlerDuration">>();
    const entry = (labels: Partial<Record<string, string | number>>): Pick<GroupMetrics, "handled" | "failed" | "deadLettered" | "handlerDuration"> | undefined => {
      if (labels.namespace !== this.namespace) return undefined;
      const key = `${String(labels.kind)}\u0000${String(labels.group)}`;
      let found = groups.get(key);
      if (!found) groups.set(key, (found = emptyCounts()));
      return found;
    };
    for (const [counter, field] of [[handled, "handled"], [failed, "failed"], [deadLettered, "deadLettered"]] as const) {
      for (const value of (await counter.get()).values) {
        const found = entry(value.labels);
        if (found) found[field] = value.value;
      }
    }
    for (const value of (await duration.get()).values) {
      const found = entry(value.labels);
      if (!found) continue;
      const histogram = found.handlerDuration;
      if (value.metricName?.endsWith("_count")) histogram.count = value.value;
      else if (value.metricName?.endsWith("_sum")) histogram.sumSeconds = value.value;
      else {
        const le = (value.labels as { le?: string | number }).le;
        if (le !== undefined && le !== "+Inf") histogram.buckets.push({ le: Number(le), count: value.value });
      }
    }
    for (const found of groups.values()) found.handlerDuration.buckets.sort((a, b) => a.le - b.le);
    const emittedValues = (await emitted.get()).values.filter((value) => value.labels.namespace === this.namespace);
    return { groups, emitted: emittedValues.reduce((sum, value) => sum + value.value, 0) };
  }
}

function emptyCounts(): Pick<GroupMetrics, "handled" | "failed" | "deadLettered" | "handlerDuration"> {
  return { handled: 0, failed: 0, deadLettered: 0, handlerDuration: { count: 0, sumSeconds: 0, buckets: [] } };
}
