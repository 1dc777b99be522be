/**
 * `Job`: BullMQ's job object over a row of `core.bull_jobs`. Fields mirror BullMQ's
 * (`id`, `name`, `data`, `opts`, `progress`, `returnvalue`, `failedReason`,
 * `attemptsMade`, ...); methods write through the facade's statements.
 */
import type { JobProgress, JobState } from "bullmq";
import { InvalidStateError, type CoreSystem } from "../../core/index.js";
import type { JobOptions } from "./options.js";
import type { JobRow } from "./queries/job-row.js";
import { getJobs } from "./queries/get-jobs.js";
import { updateJob } from "./queries/update-job.js";
import { UnsupportedOptionError } from "./errors.js";

/** @internal What a job needs from the Queue or Worker it came from. */
export interface JobHost {
  /** The queue's name. */
  readonly name: string;
  /** Resolves to the connected system. */
  readonly ready: Promise<CoreSystem>;
  /** Called after a progress update (the Worker emits `progress`). */
  onProgress?(job: Job, progress: JobProgress): void;
}

/** A job of a queue, as BullMQ's `Job`. */
export class Job<DataType = unknown, ReturnType = unknown, NameType extends string = string> {
  /** The job's id (generated integers as strings, or the `jobId` option). */
  id: string;
  /** The job's name. */
  name: NameType;
  /** The job's data. */
  data: DataType;
  /** The options it was added with. */
  opts: JobOptions;
  /** The last progress reported (0 until then). */
  progress: JobProgress;
  /** The processor's return value once completed. */
  returnvalue: ReturnType | null;
  /** The message of the last failure. */
  failedReason: string | undefined;
  /** The stacks of the failures so far. */
  stacktrace: string[];
  /** Attempts finished (completed or failed). */
  attemptsMade: number;
  /** Attempts started. */
  attemptsStarted: number;
  /** Times the job stalled. */
  stalledCounter: number;
  /** Epoch milliseconds when it was added. */
  timestamp: number;
  /** Epoch milliseconds when the current or last attempt started. */
  processedOn: number | undefined;
  /** Epoch milliseconds when it completed or failed for good. */
  finishedOn: number | undefined;
  /** The delay it was added with, in milliseconds. */
  delay: number;
  /** Its priority (0: none; 1 is the highest). */
  priority: number;
  /** The queue's name. */
  readonly queueName: string;
  /** The lock token while a worker processes it. */
  token: string | undefined;
  readonly #host: JobHost;

  /** @internal Jobs come from `Queue.add`, `Queue.getJob` or a Worker. */
  constructor(host: JobHost, row: JobRow) {
    this.#host = host;
    this.queueName = host.name;
    this.id = row.id;
    this.name = row.name as NameType;
    this.data = row.data as DataType;
    this.opts = row.opts as JobOptions;
    this.progress = row.progress as JobProgress;
    this.returnvalue = (row.returnvalue ?? null) as ReturnType | null;
    this.failedReason = row.failed_reason ?? undefined;
    this.stacktrace = row.stacktrace;
    this.attemptsMade = row.attempts_made;
    this.attemptsStarted = row.attempts_started;
    this.stalledCounter = row.stalled_counter;
    this.timestamp = Number(row.created_ms);
    this.processedOn = row.processed_ms === null ? undefined : Number(row.processed_ms);
    this.finishedOn = row.finished_ms === null ? undefined : Number(row.finished_ms);
    this.delay = this.opts.delay ?? 0;
    this.priority = row.priority;
    this.token = row.lock_token ?? undefined;
  }

  /** The job `id` of `queue`, or undefined. */
  static async fromId<T = unknown, R = unknown, N extends string = string>(queue: JobHost, id: string): Promise<Job<T, R, N> | undefined> {
    const system = await queue.ready;
    const [row] = await getJobs(system.pool, system.namespace, queue.name, { ids: [id] });
    return row ? new Job<T, R, N>(queue, row) : undefined;
  }

  async #update(change: "progress" | "log" | "retry" | "remove", value: unknown): Promise<JobRow | null> {
    const system = await this.#host.ready;
    try {
      return await updateJob(system.pool, system.namespace, this.queueName, this.id, change, value);
    } catch (error) {
      throw system.toError(error, `${change} job ${this.id}`);
    }
  }

  /** Records progress (a number or an object) and emits `progress` on the worker and QueueEvents. */
  async updateProgress(progress: JobProgress): Promise<void> {
    await this.#update("progress", progress);
    this.progress = progress;
    this.#host.onProgress?.(this as Job, progress);
    const system = await this.#host.ready;
    await system.broadcast(`bullmq.${this.queueName}.events`, { event: "progress", jobId: this.id, data: progress });
  }

  /** Appends a line to the job's log; returns the number of lines. */
  async log(logRow: string): Promise<number> {
    const row = await this.#update("log", String(logRow));
    return row?.logs.length ?? 0;
  }

  /** The job's logs (facade helper; BullMQ reads them with `queue.getJobLogs`). */
  async getLogs(): Promise<string[]> {
    const system = await this.#host.ready;
    const [row] = await getJobs(system.pool, system.namespace, this.queueName, { ids: [this.id] });
    return row?.logs ?? [];
  }

  /** The job's state: waiting, prioritized, delayed, active, completed, failed, or unknown when gone. */
  async getState(): Promise<JobState | "unknown"> {
    const system = await this.#host.ready;
    const [row] = await getJobs(system.pool, system.namespace, this.queueName, { ids: [this.id] });
    if (!row) return "unknown";
    if (row.state !== "waiting") return row.state;
    if (row.run_at.getTime() > Date.now()) return "delayed";
    return row.priority > 0 ? "prioritized" : "waiting";
  }

  /** True once completed. */
  async isCompleted(): Promise<boolean> {
    return (await this.getState()) === "completed";
  }

  /** True once failed for good. */
  async isFailed(): Promise<boolean> {
    return (await this.getState()) === "failed";
  }

  /** True while delayed. */
  async isDelayed(): Promise<boolean> {
    return (await this.getState()) === "delayed";
  }

  /** True while a worker processes it. */
  async isActive(): Promise<boolean> {
    return (await this.getState()) === "active";
  }

  /** True while waiting (or prioritized). */
  async isWaiting(): Promise<boolean> {
    const state = await this.getState();
    return state === "waiting" || state === "prioritized";
  }

  /** Moves a failed job back to waiting, attempts reset. Throws unless it is failed. */
  async retry(state: "failed" | "completed" = "failed"): Promise<void> {
    if (state !== "failed") throw new UnsupportedOptionError("retry(state)", "only failed jobs can be retried; retry('completed') is not supported");
    const row = await this.#update("retry", null);
    if (!row) throw new InvalidStateError(`Job ${this.id} is not in the failed state and cannot be retried.`);
    this.failedReason = undefined;
    this.attemptsMade = 0;
  }

  /** Deletes the job. Throws while it is active (locked by a worker), as BullMQ. */
  async remove(): Promise<void> {
    const row = await this.#update("remove", null);
    if (!row && (await this.getState()) === "active") throw new InvalidStateError(`Job ${this.id} could not be removed because it is locked by another worker.`);
  }

  /** The job as plain JSON fields. */
  asJSON(): Record<string, unknown> {
    return {
      id: this.id, name: this.name, data: this.data, opts: this.opts, progress: this.progress, returnvalue: this.returnvalue,
      failedReason: this.failedReason, stacktrace: this.stacktrace, attemptsMade: this.attemptsMade, timestamp: this.timestamp,
      processedOn: this.processedOn, finishedOn: this.finishedOn, delay: this.delay, priority: this.priority,
    };
  }
}
