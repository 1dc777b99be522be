/**
 * `Queue`: BullMQ's producer API on `core.bull_jobs`. `add` / `addBulk` are one statement
 * each; given a transaction client (the facade's extra last argument) the jobs exist only
 * if that transaction commits.
 */
import { EventEmitter } from "node:events";
import type { JobType, RepeatOptions } from "bullmq";
import type { CoreSystem } from "../../core/index.js";
import type { Queryable } from "../../core/internal.js";
import { ValidationError } from "../../core/index.js";
import { Connection, assertKnownOptions, assertQueueName, toAddRow, type ConnectionOptions, type JobOptions } from "./options.js";
import { Job, type JobHost } from "./job.js";
import { assertRepeat, fireRow, nextFireMillis } from "./repeat.js";
import { addJobs } from "./queries/add-jobs.js";
import { getJobs } from "./queries/get-jobs.js";
import { jobCounts } from "./queries/job-counts.js";
import { setPaused } from "./queries/set-paused.js";
import { isPaused } from "./queries/is-paused.js";
import { removeJobs } from "./queries/remove-jobs.js";
import { upsertScheduler } from "./queries/upsert-scheduler.js";
import { removeScheduler } from "./queries/remove-scheduler.js";
import type { AddRow } from "./queries/job-row.js";

/** Options of {@link Queue}: BullMQ's `connection`, `prefix` and `defaultJobOptions`. */
export interface QueueOptions {
  /** The core's connection options (`{ connectionString, ... }`) or a connected `CoreSystem`. */
  connection: ConnectionOptions;
  /** The namespace (default `bull`, BullMQ's default prefix). Must equal a given CoreSystem's namespace. */
  prefix?: string;
  /** Options merged under every added job's own. */
  defaultJobOptions?: JobOptions;
  /** Accepted for compatibility; the facade never waits for anything before its first call. */
  skipWaitingForReady?: boolean;
}

/** The facade's extra last argument of `add` / `addBulk`: a client inside your transaction. */
export interface AddContext {
  /** A pg client (or anything with `query`) in an open transaction: the jobs exist only if it commits. */
  client: Queryable;
}

/** A state name of BullMQ's getters, including BullMQ 5's `paused`. */
export type JobStateName = JobType | "paused";

/** The job counts BullMQ reports, by state. */
export type JobCounts = Record<string, number>;

const QUEUE_OPTIONS = new Set(["connection", "prefix", "defaultJobOptions", "skipWaitingForReady"]);
const ALL_STATES = ["waiting", "prioritized", "delayed", "active", "completed", "failed", "paused"];

/** The states a BullMQ type name covers ('wait' is 'waiting'; 'waiting' includes 'paused' rows when listing). */
function statesOf(types: JobStateName[]): JobStateName[] {
  return types.flatMap((type): JobStateName[] => (type === "wait" || type === "waiting" ? ["waiting", "paused"] : [type]));
}

/** A queue, as BullMQ's `Queue`. */
export class Queue<DataType = unknown, ResultType = unknown, NameType extends string = string> extends EventEmitter implements JobHost {
  /** The queue's name. */
  readonly name: string;
  /** The options given. */
  readonly opts: QueueOptions;
  readonly #connection: Connection;
  /** Resolves to the connected system. */
  readonly ready: Promise<CoreSystem>;

  constructor(name: string, opts: QueueOptions) {
    super();
    assertQueueName(name);
    assertKnownOptions(opts, QUEUE_OPTIONS, "opts");
    this.name = name;
    this.opts = opts;
    this.#connection = new Connection(opts?.connection, opts?.prefix);
    this.ready = this.#connection.ready;
  }

  /** Resolves once connected (the schema migrated); rejects with the connection error. */
  async waitUntilReady(): Promise<CoreSystem> {
    return this.ready;
  }

  async #run<T>(doing: string, work: (system: CoreSystem) => Promise<T>): Promise<T> {
    const system = await this.ready;
    try {
      return await work(system);
    } catch (error) {
      throw error instanceof ValidationError ? error : system.toError(error, `${doing} on queue ${this.name}`);
    }
  }

  #rowOf(name: NameType, data: DataType, opts: JobOptions | undefined): AddRow {
    return toAddRow(name, data, { ...this.opts.defaultJobOptions, ...opts });
  }

  /** Adds a job; with `opts.repeat` (BullMQ 5) creates a job scheduler and returns its first fire. */
  async add(name: NameType, data: DataType, opts?: JobOptions, context?: AddContext): Promise<Job<DataType, ResultType, NameType>> {
    const merged: JobOptions = { ...this.opts.defaultJobOptions, ...opts };
    if (merged.repeat) {
      const { repeat, ...template } = merged;
      const key = repeat.key ?? `${name}:${merged.jobId ?? ""}:${repeat.every ?? repeat.pattern ?? ""}`;
      return this.#schedule(key, repeat, { name, data, opts: template }, repeat.immediately === true, context);
    }
    const row = this.#rowOf(name, data, opts);
    const [added] = await this.#run("add a job", (system) => addJobs(context?.client ?? system.pool, system.namespace, this.name, [row]));
    return this.#jobOf(row, added?.id ?? "", context);
  }

  /** Adds jobs in one statement (all or none). */
  async addBulk(jobs: { name: NameType; data: DataType; opts?: JobOptions }[], context?: AddContext): Promise<Job<DataType, ResultType, NameType>[]> {
    const rows = jobs.map((job) => {
      if (job.opts?.repeat) throw new ValidationError("opts.repeat", "addBulk does not take repeat: use add or upsertJobScheduler.");
      return this.#rowOf(job.name, job.data, job.opts);
    });
    if (rows.length === 0) return [];
    const added = await this.#run("add jobs", (system) => addJobs(context?.client ?? system.pool, system.namespace, this.name, rows));
    return Promise.all(rows.map((row, index) => this.#jobOf(row, added[index]?.id ?? "", context)));
  }

  /** The job just added (a de-duplicated add returns the existing job, read back). */
  async #jobOf(row: AddRow, id: string, context: AddContext | undefined): Promise<Job<DataType, ResultType, NameType>> {
    if (row.id !== undefined && row.id !== id && !context) {
      const existing = await this.getJob(id);
      if (existing) return existing;
    }
    const now = Date.now();
    return new Job<DataType, ResultType, NameType>(this, {
      id, name: row.name, data: row.data, opts: row.opts, state: "waiting", priority: row.priority ?? 0, run_at: new Date(now + (row.delay ?? 0)),
      attempts: row.attempts ?? 1, attempts_made: 0, attempts_started: 0, stalled_counter: 0, progress: 0, returnvalue: null, failed_reason: null,
      stacktrace: [], logs: [], created_ms: String(row.timestamp ?? now), processed_ms: null, finished_ms: null, lock_token: null,
    });
  }

  async #schedule(key: string, repeat: RepeatOptions, template: { name: NameType; data: DataType; opts: JobOptions }, immediately: boolean, context?: AddContext): Promise<Job<DataType, ResultType, NameType>> {
    assertRepeat(repeat);
    const millis = nextFireMillis(repeat, Date.now(), immediately);
    if (millis === null) throw new ValidationError("repeat.pattern", `repeat.pattern ${repeat.pattern} has no future fire.`);
    const row = fireRow(key, template.name, template.data, template.opts, repeat, millis, 1);
    const id = await this.#run("upsert a job scheduler", (system) => upsertScheduler(context?.client ?? system.pool, system.namespace, this.name, key, repeat, template, row));
    return this.#jobOf(row, id, context);
  }

  /** Creates or replaces the job scheduler `id`: a job every `every` ms or on `pattern`, from `template`. */
  async upsertJobScheduler(id: string, repeat: Omit<RepeatOptions, "key">, template: { name?: NameType; data?: DataType; opts?: JobOptions } = {}): Promise<Job<DataType, ResultType, NameType>> {
    const opts = { ...this.opts.defaultJobOptions, ...template.opts };
    // BullMQ 6 fires an `every` scheduler at once, then every interval.
    const immediately = repeat.every !== undefined || repeat.immediately === true;
    return this.#schedule(id, repeat, { name: template.name ?? (id as NameType), data: template.data as DataType, opts }, immediately);
  }

  /** Deletes a job scheduler and its pending fire; false when there was none. */
  async removeJobScheduler(id: string): Promise<boolean> {
    return this.#run("remove a job scheduler", (system) => removeScheduler(system.pool, system.namespace, this.name, id));
  }

  /** The job `id`, or undefined. */
  async getJob(id: string): Promise<Job<DataType, ResultType, NameType> | undefined> {
    return Job.fromId<DataType, ResultType, NameType>(this, id);
  }

  /** Jobs in `types` (default all), newest first unless `asc`, positions start..end inclusive (end -1: all). */
  async getJobs(types?: JobStateName[] | JobStateName, start = 0, end = -1, asc = false): Promise<Job<DataType, ResultType, NameType>[]> {
    const list = types === undefined ? undefined : statesOf(Array.isArray(types) ? types : [types]);
    const paused = await this.isPaused();
    const rows = await this.#run("list jobs", (system) =>
      getJobs(system.pool, system.namespace, this.name, { states: list && paused && list.includes("paused") ? [...list, "waiting", "prioritized"] : list, start, end, asc }),
    );
    return rows.map((row) => new Job<DataType, ResultType, NameType>(this, row));
  }

  /** Counts per state: waiting, prioritized, delayed, active, completed, failed, paused (or those named). */
  async getJobCounts(...types: JobStateName[]): Promise<JobCounts> {
    const counts = await this.#run("count jobs", (system) => jobCounts(system.pool, system.namespace, this.name));
    const names = types.length > 0 ? types : ALL_STATES;
    return Object.fromEntries(names.map((type) => [type, type === "wait" ? (counts.get("waiting") ?? 0) : (counts.get(type) ?? 0)]));
  }

  /** The sum of the counts of `types`. */
  async getJobCountByTypes(...types: JobStateName[]): Promise<number> {
    const counts = await this.getJobCounts(...statesOf(types));
    return Object.values(counts).reduce((sum, count) => sum + count, 0);
  }

  /** Jobs waiting to be processed: waiting, paused, delayed and prioritized, as BullMQ's `count`. */
  async count(): Promise<number> {
    return this.getJobCountByTypes("waiting", "paused", "delayed", "prioritized");
  }

  /** Waiting jobs. */
  async getWaitingCount(): Promise<number> {
    return this.getJobCountByTypes("waiting");
  }

  /** Active jobs. */
  async getActiveCount(): Promise<number> {
    return this.getJobCountByTypes("active");
  }

  /** Delayed jobs. */
  async getDelayedCount(): Promise<number> {
    return this.getJobCountByTypes("delayed");
  }

  /** Completed jobs kept. */
  async getCompletedCount(): Promise<number> {
    return this.getJobCountByTypes("completed");
  }

  /** Failed jobs kept. */
  async getFailedCount(): Promise<number> {
    return this.getJobCountByTypes("failed");
  }

  /** Stops every worker of the queue from taking jobs (those in flight finish). */
  async pause(): Promise<void> {
    await this.#run("pause", (system) => setPaused(system.pool, system.namespace, this.name, true));
    this.emit("paused");
  }

  /** Lets workers take jobs again. */
  async resume(): Promise<void> {
    await this.#run("resume", (system) => setPaused(system.pool, system.namespace, this.name, false));
    this.emit("resumed");
  }

  /** Whether the queue is paused. */
  async isPaused(): Promise<boolean> {
    return this.#run("read the paused flag", (system) => isPaused(system.pool, system.namespace, this.name));
  }

  /** Deletes the waiting jobs (and the delayed ones with `delayed`); active and finished jobs stay. */
  async drain(delayed = false): Promise<void> {
    await this.#run("drain", async (system) => {
      if (delayed) return removeJobs(system.pool, system.namespace, this.name, ["waiting"]);
      const due = await getJobs(system.pool, system.namespace, this.name, { states: ["waiting", "prioritized"] });
      await Promise.all(due.map((row) => new Job(this, row).remove()));
      return due.length;
    });
  }

  /** Deletes the queue: every job in every state and its paused flag. */
  async obliterate(opts: { force?: boolean; count?: number } = {}): Promise<void> {
    assertKnownOptions(opts, new Set(["force", "count"]), "obliterate.opts");
    await this.#run("obliterate", (system) => removeJobs(system.pool, system.namespace, this.name, null));
  }

  /** Closes the queue (and its connection, when it opened it). */
  async close(): Promise<void> {
    await this.#connection.close();
  }
}
