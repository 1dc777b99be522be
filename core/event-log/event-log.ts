/**
 * Event log maintenance: partitions of `core.event_log` ahead of time, partition
 * retention, and per-namespace retention. One pass is {@link maintainEventLog}; the
 * scheduler (or any node) calls it periodically through `CoreSystem.maintainEventLog()`.
 *
 * With pg_partman (4.x or 5.x) the first pass registers `core.event_log` with it and every
 * pass lets `partman.run_maintenance` create and drop partitions; without it the pass does
 * the same with the project's SQL (`sql/000008_event_log.sql`). Per-namespace retention
 * shorter than the partition retention deletes that namespace's expired rows, since a
 * partition holds every namespace.
 */
import { ValidationError } from "../model/errors.js";
import type { NamespaceContext } from "../model/context.js";
import { assertKnownKeys } from "../model/options.js";
import { replay, type ReplayOptions, type ReplayResult } from "./replay.js";
import { deleteExpiredEvents } from "./queries/delete-expired-events.js";
import { maintainEventLogPartitions } from "./queries/maintain-event-log.js";

/** Options of the event log (`eventLog` of `CoreSystem.connect`). */
export interface EventLogOptions {
  /**
   * Width of a partition, aligned to UTC hours or days (default `daily`). With pg_partman
   * it applies when the table is first registered; a registered set keeps its interval.
   */
  partitionInterval?: "hourly" | "daily";
  /** Partitions kept ready ahead of the current one (default 4, at most 1000). */
  premake?: number;
  /**
   * Milliseconds a partition is kept after its upper bound has passed; then it is dropped
   * with its rows (default 7 days). Applies to every namespace of the database.
   */
  retentionMs?: number;
  /**
   * Milliseconds this namespace's events are kept, when shorter than `retentionMs`: each
   * maintenance pass deletes the namespace's older rows. Default: none (the partition
   * retention alone).
   */
  namespaceRetentionMs?: number;
  /**
   * Milliseconds between the maintenance passes each started node runs (default 10
   * minutes; the first comes 5-30 s after start). Passes are safe to run from many nodes:
   * one at a time runs, the others return at once. 0 turns them off (call
   * `system.maintainEventLog()` yourself).
   */
  maintenanceIntervalMs?: number;
}

/** The event log settings in force, every default applied. */
export interface EventLogSettings {
  partitionInterval: "hourly" | "daily";
  premake: number;
  retentionMs: number;
  namespaceRetentionMs: number | undefined;
  maintenanceIntervalMs: number;
}

/** What one maintenance pass did. */
export interface EventLogMaintenanceReport {
  /** False when another pass (any node) was running: this one did nothing. */
  ran: boolean;
  /** `partman`: pg_partman manages the partitions; `builtin`: the project's SQL does. */
  mode: "partman" | "builtin" | undefined;
  /** The pg_partman version in use, or null. */
  partmanVersion: string | null;
  /** True when this pass registered `core.event_log` with pg_partman. */
  registered: boolean;
  /** The interval in force: `hourly`, `daily`, or pg_partman's interval text for another one. */
  partitionInterval: string | undefined;
  /** Partitions created (schema-qualified names). */
  created: string[];
  /** Partitions dropped (schema-qualified names), with their rows. */
  dropped: string[];
  /** Rows moved out of the default partition (or out of the partitions a pg_partman registration replaced). */
  movedFromDefault: number;
  /** Rows of this namespace deleted by `namespaceRetentionMs`. */
  namespaceRowsDeleted: number;
  /** Things the pass could not do as configured (e.g. an interval pg_partman cannot change). */
  warnings: string[];
}

const DAY_MS = 86_400_000;
const MAX_RETENTION_MS = 100 * 365 * DAY_MS;
const OPTION_KEYS = ["partitionInterval", "premake", "retentionMs", "namespaceRetentionMs", "maintenanceIntervalMs"] as const;
/** Rows deleted per statement by the namespace retention, and statements per pass. */
const DELETE_BATCH = 10_000;
const MAX_DELETE_BATCHES = 100;

/** The default settings: daily partitions, 4 ahead, kept 7 days. */
export const DEFAULT_EVENT_LOG_SETTINGS: Readonly<EventLogSettings> = Object.freeze({
  partitionInterval: "daily",
  premake: 4,
  retentionMs: 7 * DAY_MS,
  namespaceRetentionMs: undefined,
  maintenanceIntervalMs: 10 * 60_000,
});

/** Validates `eventLog` options (throwing {@link ValidationError}) and applies the defaults. */
export function resolveEventLogOptions(options: EventLogOptions | undefined): EventLogSettings {
  if (options === undefined) return { ...DEFAULT_EVENT_LOG_SETTINGS };
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new ValidationError("eventLog", "eventLog must be an object: { partitionInterval?, premake?, retentionMs?, namespaceRetentionMs?, maintenanceIntervalMs? }.");
  }
  assertKnownKeys("CoreSystem.connect options.eventLog", options, OPTION_KEYS, "eventLog");
  const { partitionInterval = "daily", premake = 4, retentionMs = 7 * DAY_MS, namespaceRetentionMs, maintenanceIntervalMs = 10 * 60_000 } = options;
  if (!Number.isInteger(maintenanceIntervalMs) || maintenanceIntervalMs < 0) {
    throw new ValidationError("eventLog.maintenanceIntervalMs", `eventLog.maintenanceIntervalMs must be a whole number of milliseconds (0 turns maintenance off); got ${String(maintenanceIntervalMs)}.`);
  }
  if (partitionInterval !== "hourly" && partitionInterval !== "daily") {
    throw new ValidationError("eventLog.partitionInterval", `eventLog.partitionInterval must be 'hourly' or 'daily'; got ${JSON.stringify(partitionInterval)}.`);
  }
  if (!Number.isInteger(premake) || premake < 1 || premake > 1000) {
    throw new ValidationError("eventLog.premake", `eventLog.premake must be a whole number of partitions from 1 to 1000; got ${String(premake)}.`);
  }
  assertRetention("eventLog.retentionMs", retentionMs);
  if (namespaceRetentionMs !== undefined) {
    assertRetention("eventLog.namespaceRetentionMs", namespaceRetentionMs);
    if (namespaceRetentionMs > retentionMs) {
      throw new ValidationError(
        "eventLog.namespaceRetentionMs",
        `eventLog.namespaceRetentionMs (${namespaceRetentionMs}) is longer than eventLog.retentionMs (${retentionMs}): ` +
          `partitions are dropped after retentionMs whatever the namespace, so a namespace can only keep its events for less.`,
      );
    }
  }
  return { partitionInterval, premake, retentionMs, namespaceRetentionMs, maintenanceIntervalMs };
}

function assertRetention(argument: string, value: unknown): void {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1000 || value > MAX_RETENTION_MS) {
    throw new ValidationError(argument, `${argument} must be a whole number of milliseconds from 1,000 to ${MAX_RETENTION_MS}; got ${String(value)}.`);
  }
}

/**
 * Runs one maintenance pass: partitions (pg_partman's or the project's), then this
 * namespace's retention. Safe to call from many nodes at once: a pass that finds another
 * running returns `ran: false` at once.
 */
async function maintainEventLog(context: NamespaceContext, settings: EventLogSettings): Promise<EventLogMaintenanceReport> {
  const started = Date.now();
  let row;
  try {
    row = await maintainEventLogPartitions(
      context.pool,
      settings.partitionInterval === "hourly" ? "1 hour" : "1 day",
      settings.premake,
      settings.retentionMs,
    );
  } catch (error) {
    throw context.toError(error, "maintain the event log partitions (the next pass retries; a lock timeout changed nothing)");
  }

  let namespaceRowsDeleted = 0;
  if (settings.namespaceRetentionMs !== undefined) {
    try {
      for (let batch = 0; batch < MAX_DELETE_BATCHES; batch += 1) {
        const deleted = await deleteExpiredEvents(context.pool, context.namespace, settings.namespaceRetentionMs, DELETE_BATCH);
        namespaceRowsDeleted += deleted;
        if (deleted < DELETE_BATCH) break;
      }
    } catch (error) {
      throw context.toError(error, `delete the expired events of namespace ${context.namespace}`);
    }
  }

  const report: EventLogMaintenanceReport = {
    ran: row.ran,
    mode: row.mode,
    partmanVersion: row.partmanVersion ?? null,
    registered: row.registered ?? false,
    partitionInterval: row.partitionInterval,
    created: row.created ?? [],
    dropped: row.dropped ?? [],
    movedFromDefault: Number(row.movedFromDefault ?? 0),
    namespaceRowsDeleted,
    warnings: row.warnings ?? [],
  };
  for (const warning of report.warnings) context.logger.warn({ warning }, "event log maintenance");
  const changed = report.created.length + report.dropped.length + report.movedFromDefault + namespaceRowsDeleted > 0 || report.registered;
  context.logger[changed ? "info" : "debug"](
    {
      ran: report.ran,
      mode: report.mode,
      registered: report.registered,
      created: report.created,
      dropped: report.dropped,
      movedFromDefault: report.movedFromDefault,
      namespaceRowsDeleted,
      durationMs: Date.now() - started,
    },
    report.ran ? "event log maintained" : "event log maintenance skipped: another pass is running",
  );
  return report;
}

/** The event log of a namespace: maintenance passes and replays. Reach it through `system.maintainEventLog()` and `system.replay()`. */
export class EventLog {
  readonly #context: NamespaceContext;
  /** The settings in force (nodes run maintenance on `maintenanceIntervalMs`). */
  readonly settings: EventLogSettings;

  constructor(context: NamespaceContext, settings: EventLogSettings) {
    this.#context = context;
    this.settings = settings;
  }

  /** One maintenance pass: see {@link maintainEventLog}. */
  maintain(): Promise<EventLogMaintenanceReport> {
    this.#context.assertOpen();
    return maintainEventLog(this.#context, this.settings);
  }

  /** Re-enqueues logged events to one group: see {@link replay}. */
  replay(options: ReplayOptions): Promise<ReplayResult> {
    this.#context.assertOpen();
    return replay(this.#context, options);
  }
}
