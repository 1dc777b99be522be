/**
 * BullMQ options to the facade: the connection (core connection options or a
 * `CoreSystem`; `prefix` is the namespace) and job options to a `core.bull_add` row. Every
 * option the facade cannot honour throws an {@link UnsupportedOptionError} naming it.
 */
import type { BackoffOptions as BullBackoffOptions, DeduplicationOptions, JobsOptions, KeepJobs, RepeatOptions } from "bullmq";
import { type ConnectOptions, type CoreSystem, type BackoffOptions, assertEventType, ValidationError, CONNECT_OPTION_KEYS, assertKnownKeys, closestKey, unknownKeyOf } from "../../core/index.js";
import { assertBackoff, isCoreSystem, openSystem, type AdapterSystem } from "../../core/internal.js";
import { UnsupportedOptionError } from "./errors.js";
import type { AddRow } from "./queries/job-row.js";

/** Where the facade connects: the core's connection options (without `namespace`: `prefix` is it) or a connected `CoreSystem`, shared and not closed by the facade. */
export type ConnectionOptions = CoreSystem | Omit<ConnectOptions, "namespace">;

/** BullMQ 6's job options plus BullMQ 5's `repeat` and `debounce`, as the facade takes them. */
export type JobOptions = JobsOptions & {
  /** BullMQ 5: makes the job repeatable (a job scheduler keyed by `repeat.key` or name and pattern/every). */
  repeat?: RepeatOptions & { count?: number };
  /** BullMQ 5's name of `deduplication`. */
  debounce?: DeduplicationOptions;
};

/** The keys of the connection options: the core's, but `namespace` (`prefix` is it). */
const CONNECTION_OPTION_KEYS = CONNECT_OPTION_KEYS.filter((key) => key !== "namespace");

/** BullMQ's default prefix, used as the namespace when `prefix` is not given. */
export const DEFAULT_PREFIX = "bull";

/** One connection of a Queue, Worker or QueueEvents: the system once connected, and whether it owns it. */
export class Connection {
  readonly ready: Promise<CoreSystem>;
  readonly #opened: Promise<AdapterSystem>;

  constructor(connection: ConnectionOptions | undefined, prefix: string | undefined) {
    if (connection === undefined || connection === null) {
      throw new ValidationError("connection", "connection is required: pass the core's connection options ({ connectionString }) or a CoreSystem.");
    }
    if (isCoreSystem(connection) && prefix !== undefined && prefix !== connection.namespace) {
      throw new ValidationError("prefix", `prefix ${prefix} differs from the CoreSystem's namespace ${connection.namespace}: omit prefix or connect the system to that namespace.`);
    }
    if (!isCoreSystem(connection)) {
      assertKnownKeys("opts.connection (the core's connection options; prefix is the namespace)", connection, CONNECTION_OPTION_KEYS, "opts.connection");
    }
    this.#opened = openSystem(isCoreSystem(connection) ? connection : { ...connection, namespace: prefix ?? DEFAULT_PREFIX });
    this.ready = this.#opened.then((opened) => opened.system);
    // Errors surface on the first awaited call; this only keeps an unused failure from crashing the process.
    this.ready.catch(() => {});
  }

  /** Closes the system if this connection opened it. */
  async close(): Promise<void> {
    const opened = await this.#opened.catch(() => null);
    if (opened?.owned) await opened.system.close();
  }
}

/** Throws unless `name` can be a queue name (the core's event type grammar: it names broadcast channels). */
export function assertQueueName(name: unknown): asserts name is string {
  if (typeof name !== "string" || name.length === 0) throw new ValidationError("name", "The queue name must be a non-empty string.");
  assertEventType(`bullmq.${name}`, "queue name");
}

/**
 * Throws an {@link UnsupportedOptionError} for any own key of `options` outside `allowed` whose value is not undefined
 * (found by the core's options module, which also suggests the closest supported key).
 */
export function assertKnownOptions(options: object | undefined, allowed: ReadonlySet<string>, prefix: string): void {
  if (!options) return;
  const keys = [...allowed];
  const key = unknownKeyOf(options, keys, true);
  if (key === undefined) return;
  const suggestion = closestKey(key, keys);
  throw new UnsupportedOptionError(
    `${prefix}.${key}`,
    `${suggestion === undefined ? "remove it" : `did you mean ${prefix}.${suggestion}? Else remove it`}; supported here: ${keys.join(", ")} (see the README of @nexus-core/core/bullmq)`,
  );
}

const JOB_OPTIONS = new Set([
  "delay", "attempts", "backoff", "priority", "lifo", "jobId", "removeOnComplete", "removeOnFail",
  "deduplication", "debounce", "timestamp", "repeat", "repeatJobKey", "prevMillis",
]);
const REPEAT_OPTIONS = new Set(["every", "pattern", "limit", "immediately", "key", "count", "tz", "utc", "jobId", "prevMillis"]);
const DEDUP_OPTIONS = new Set(["id", "ttl"]);
const MAX_PRIORITY = 2_097_152;

/** The core's backoff for BullMQ's `backoff` (a number is a fixed delay); BullMQ has no cap, so neither has this. */
export function toCoreBackoff(backoff: number | BullBackoffOptions | undefined): BackoffOptions | undefined {
  if (backoff === undefined) return undefined;
  if (typeof backoff === "number") return { type: "fixed", delay: backoff, maxDelay: Number.MAX_SAFE_INTEGER };
  if (backoff.type !== "fixed" && backoff.type !== "exponential") {
    throw new UnsupportedOptionError("opts.backoff.type", `custom backoff strategies are not supported; use 'fixed' or 'exponential' (got ${String(backoff.type)})`);
  }
  const core: BackoffOptions = { type: backoff.type as "fixed" | "exponential", delay: backoff.delay ?? 0, maxDelay: Number.MAX_SAFE_INTEGER, jitter: backoff.jitter };
  assertBackoff(core);
  return core;
}

function assertKeep(option: string, value: boolean | number | KeepJobs | undefined): void {
  if (value === undefined || typeof value === "boolean") return;
  if (typeof value === "number" && Number.isInteger(value) && value >= 0) return;
  if (typeof value === "object" && value !== null) {
    assertKnownOptions(value, new Set(["count", "age"]), `opts.${option}`);
    const { count, age } = value as { count?: number; age?: number };
    if ((count === undefined || (Number.isInteger(count) && count >= 0)) && (age === undefined || (typeof age === "number" && age >= 0))) return;
  }
  throw new ValidationError(`opts.${option}`, `opts.${option} must be a boolean, a count >= 0 or { count?, age? (seconds) }.`);
}

/** Validates merged job options and returns the `core.bull_add` row (without repeat handling). */
export function toAddRow(name: string, data: unknown, opts: JobOptions): AddRow {
  assertKnownOptions(opts, JOB_OPTIONS, "opts");
  const { delay = 0, attempts = 1, priority = 0, jobId } = opts;
  if (!Number.isFinite(delay) || delay < 0) throw new ValidationError("opts.delay", "opts.delay must be milliseconds >= 0.");
  if (!Number.isInteger(attempts) || attempts < 1) throw new ValidationError("opts.attempts", "opts.attempts must be an integer >= 1.");
  if (!Number.isInteger(priority) || priority < 0 || priority > MAX_PRIORITY) {
    throw new ValidationError("opts.priority", `opts.priority must be an integer between 0 and ${MAX_PRIORITY} (as BullMQ).`);
  }
  if (jobId !== undefined && (typeof jobId !== "string" || jobId.length === 0 || /^\d+$/.test(jobId))) {
    // Generated ids are integers: a custom integer id could collide with one, as in BullMQ.
    throw new ValidationError("opts.jobId", "opts.jobId must be a non-empty string that is not an integer (custom ids cannot be integers, as in BullMQ).");
  }
  toCoreBackoff(opts.backoff);
  assertKeep("removeOnComplete", opts.removeOnComplete);
  assertKeep("removeOnFail", opts.removeOnFail);
  const dedup = opts.deduplication ?? opts.debounce;
  if (dedup !== undefined) {
    assertKnownOptions(dedup, DEDUP_OPTIONS, "opts.deduplication");
    if (typeof dedup.id !== "string" || dedup.id.length === 0) throw new ValidationError("opts.deduplication.id", "opts.deduplication.id must be a non-empty string.");
  }
  if (opts.repeat !== undefined) assertKnownOptions(opts.repeat, REPEAT_OPTIONS, "opts.repeat");
  const { debounce: _debounce, ...stored } = opts;
  return {
    id: jobId,
    name,
    data: data ?? null,
    opts: { ...stored, ...(dedup ? { deduplication: dedup } : {}) },
    priority,
    lifo: opts.lifo === true,
    delay,
    attempts,
    timestamp: opts.timestamp,
    dedupId: dedup?.id,
    dedupTtl: dedup?.ttl,
  };
}
