/**
 * `Worker`: BullMQ's consumer API. It takes jobs in batches (`core.bull_claim`, SKIP
 * LOCKED, up to its free slots), runs the processor with up to `concurrency` jobs in
 * flight, writes completions in batches (`core.bull_complete`), retries failures with
 * the core's backoff and sleeps on the core's broadcast (NOTIFY) or until the next
 * delayed job is due.
 */
import { EventEmitter } from "node:events";
import { randomUUID } from "node:crypto";
import type { JobProgress, RateLimiterOptions } from "bullmq";
import { backoffDelay, ClosedError, InvalidStateError, ValidationError, asError, type CoreSystem } from "../../core/index.js";
import { Connection, assertKnownOptions, assertQueueName, toCoreBackoff, type ConnectionOptions } from "./options.js";
import { UnrecoverableError } from "./errors.js";
import { Job, type JobHost } from "./job.js";
import { followingFire } from "./repeat.js";
import { claimJobs } from "./queries/claim-jobs.js";
import { completeJobs } from "./queries/complete-jobs.js";
import { failJob } from "./queries/fail-job.js";
import { extendLocks } from "./queries/extend-locks.js";
import { requeueStalled } from "./queries/requeue-stalled.js";
import { nextDue } from "./queries/next-due.js";
import { nextFire } from "./queries/next-fire.js";

/** BullMQ's processor: `(job, token, signal)`; its result is the job's return value. */
export type Processor<DataType = unknown, ResultType = unknown, NameType extends string = string> = (
  job: Job<DataType, ResultType, NameType>,
  token?: string,
  signal?: AbortSignal,
) => Promise<ResultType>;

/** Options of {@link Worker}, BullMQ's names. */
export interface WorkerOptions {
  /** The core's connection options or a connected `CoreSystem`. */
  connection: ConnectionOptions;
  /** The namespace (default `bull`). */
  prefix?: string;
  /** Start processing on construction (default true); else call `run()`. */
  autorun?: boolean;
  /** Jobs in flight at once (default 1). */
  concurrency?: number;
  /** At most `max` jobs started per `duration` ms, by this worker (BullMQ: per queue). */
  limiter?: RateLimiterOptions;
  /** Milliseconds a job stays locked without renewal before it counts as stalled (default 30,000). */
  lockDuration?: number;
  /** Milliseconds between lock renewals (default lockDuration / 2). */
  lockRenewTime?: number;
  /** Milliseconds between checks for stalled jobs (default 30,000). */
  stalledInterval?: number;
  /** Times a job may stall before it fails (default 1). */
  maxStalledCount?: number;
  /** Seconds an idle worker sleeps at most before looking again (default 5). */
  drainDelay?: number;
  /** Skip the stalled-jobs check in this worker. */
  skipStalledCheck?: boolean;
  /** A name for logs. */
  name?: string;
}

const WORKER_OPTIONS = new Set([
  "connection", "prefix", "autorun", "concurrency", "limiter", "lockDuration", "lockRenewTime", "stalledInterval",
  "maxStalledCount", "drainDelay", "skipStalledCheck", "name",
]);

/** A worker, as BullMQ's `Worker`. Events: active, completed, failed, progress, stalled, error, drained, paused, resumed, closing, closed, ready. */
export class Worker<DataType = unknown, ResultType = unknown, NameType extends string = string> extends EventEmitter implements JobHost {
  /** The queue's name. */
  readonly name: string;
  /** The options given. */
  readonly opts: WorkerOptions;
  /** Resolves to the connected system. */
  readonly ready: Promise<CoreSystem>;
  /** Jobs in flight at once. */
  concurrency: number;
  readonly #processor: Processor<DataType, ResultType, NameType>;
  readonly #connection: Connection;
  readonly #token = randomUUID();
  readonly #lockMs: number;
  readonly #active = new Map<string, { job: Job<DataType, ResultType, NameType>; controller: AbortController }>();
  #pendingCompletions: { id: string; value: unknown; done: (error?: unknown) => void }[] = [];
  #flushing: Promise<void> | null = null;
  #running: Promise<void> | null = null;
  #closing: Promise<void> | null = null;
  #paused = false;
  #wakePending = false;
  #wake: (() => void) | null = null;
  #timers: NodeJS.Timeout[] = [];
  #limiterWindowStart = 0;
  #limiterCount = 0;

  constructor(name: string, processor: Processor<DataType, ResultType, NameType>, opts: WorkerOptions) {
    super();
    assertQueueName(name);
    assertKnownOptions(opts, WORKER_OPTIONS, "opts");
    if (typeof processor !== "function") throw new ValidationError("processor", "The processor must be a function (sandboxed processor files are not supported).");
    const concurrency = opts.concurrency ?? 1;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new ValidationError("opts.concurrency", "opts.concurrency must be an integer >= 1.");
    if (opts.limiter) {
      assertKnownOptions(opts.limiter, new Set(["max", "duration"]), "opts.limiter");
      if (!(opts.limiter.max >= 1 && opts.limiter.duration > 0)) throw new ValidationError("opts.limiter", "opts.limiter must be { max >= 1, duration > 0 (ms) }.");
    }
    this.name = name;
    this.opts = opts;
    this.concurrency = concurrency;
    this.#processor = processor;
    this.#lockMs = opts.lockDuration ?? 30_000;
    this.#connection = new Connection(opts.connection, opts.prefix);
    this.ready = this.#connection.ready;
    this.ready.then(() => this.emit("ready"), (error: unknown) => this.emit("error", error));
    if (opts.autorun !== false) void this.run().catch((error: unknown) => this.emit("error", error));
  }

  /** Resolves once connected. */
  async waitUntilReady(): Promise<CoreSystem> {
    return this.ready;
  }

  /** Starts processing; resolves when the worker is closed. Throws if already running. */
  run(): Promise<void> {
    if (this.#running) throw new InvalidStateError("Worker is already running.");
    this.#running = this.#loop();
    return this.#running;
  }

  /** Whether the processing loop runs. */
  isRunning(): boolean {
    return this.#running !== null && this.#closing === null;
  }

  /** Whether the worker is paused. */
  isPaused(): boolean {
    return this.#paused;
  }

  /** Stops taking jobs; unless `doNotWaitActive`, resolves once the jobs in flight are done. */
  async pause(doNotWaitActive = false): Promise<void> {
    this.#paused = true;
    if (!doNotWaitActive) await this.#idle();
    this.emit("paused");
  }

  /** Takes jobs again. */
  resume(): void {
    this.#paused = false;
    this.#signal();
    this.emit("resumed");
  }

  /** Stops taking jobs, waits for those in flight (unless `force`, which aborts their signals) and closes. */
  close(force = false): Promise<void> {
    this.#closing ??= (async () => {
      this.emit("closing", "closing");
      this.#signal();
      if (force) for (const { controller } of this.#active.values()) controller.abort(new ClosedError("Worker"));
      await this.#idle();
      await this.#running?.catch(() => {});
      this.#timers.forEach((timer) => clearInterval(timer));
      await this.#connection.close();
      this.emit("closed");
    })();
    return this.#closing;
  }

  /** @internal Emits `progress` for a job of this worker. */
  onProgress(job: Job, progress: JobProgress): void {
    this.emit("progress", job, progress);
  }

  #signal(): void {
    this.#wakePending = true;
    this.#wake?.();
  }

  /** Sleeps until signalled (a job added, a slot freed, resume, close) or `ms` passed. */
  async #sleep(ms: number): Promise<void> {
    if (this.#wakePending) {
      this.#wakePending = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
    this.#wake = null;
    this.#wakePending = false;
  }

  async #idle(): Promise<void> {
    while (this.#active.size > 0 || this.#flushing) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async #loop(): Promise<void> {
    const system = await this.ready;
    const unsubscribe = system.onBroadcast(`bullmq.${this.name}`, () => this.#signal());
    this.#startTimers(system);
    const idleMs = (this.opts.drainDelay ?? 5) * 1000;
    let hadJobs = false;
    try {
      while (!this.#closing) {
        if (this.#paused) {
          await this.#sleep(idleMs);
          continue;
        }
        let free = this.concurrency - this.#active.size;
        if (free <= 0) {
          await this.#sleep(idleMs);
          continue;
        }
        const limited = this.#limiterRoom();
        if (limited.waitMs > 0) {
          await new Promise((resolve) => setTimeout(resolve, limited.waitMs));
          continue;
        }
        free = Math.min(free, limited.room);
        this.#wakePending = false;
        let rows;
        try {
          rows = await claimJobs(system.pool, system.namespace, this.name, free, this.#token, this.#lockMs);
        } catch (error) {
          if (this.#closing) break;
          this.emit("error", system.toError(error, `take jobs of queue ${this.name}`));
          await this.#sleep(idleMs);
          continue;
        }
        this.#limiterCount += rows.length;
        for (const row of rows) this.#start(system, new Job<DataType, ResultType, NameType>(this, row));
        if (rows.length > 0) hadJobs = true;
        // A full batch: more may wait. A short one: the queue is empty for now.
        if (rows.length === free) continue;
        if (hadJobs && this.#active.size === 0) {
          hadJobs = false;
          this.emit("drained");
        }
        const due = await nextDue(system.pool, system.namespace, this.name).catch(() => null);
        await this.#sleep(due === null ? idleMs : Math.min(idleMs, Math.max(1, Math.ceil(due))));
      }
    } finally {
      unsubscribe();
    }
  }

  #limiterRoom(): { room: number; waitMs: number } {
    const limiter = this.opts.limiter;
    if (!limiter) return { room: Number.MAX_SAFE_INTEGER, waitMs: 0 };
    const now = Date.now();
    if (now - this.#limiterWindowStart >= limiter.duration) {
      this.#limiterWindowStart = now;
      this.#limiterCount = 0;
    }
    const room = limiter.max - this.#limiterCount;
    return room > 0 ? { room, waitMs: 0 } : { room: 0, waitMs: this.#limiterWindowStart + limiter.duration - now };
  }

  #startTimers(system: CoreSystem): void {
    const renew = setInterval(() => {
      const ids = [...this.#active.keys()];
      if (ids.length === 0) return;
      extendLocks(system.pool, system.namespace, this.name, this.#token, ids, this.#lockMs).catch((error: unknown) =>
        this.emit("error", system.toError(error, `renew job locks of queue ${this.name}`)),
      );
    }, this.opts.lockRenewTime ?? this.#lockMs / 2);
    this.#timers.push(renew);
    if (this.opts.skipStalledCheck) return;
    const stalled = setInterval(() => {
      requeueStalled(system.pool, system.namespace, this.name, this.opts.maxStalledCount ?? 1).then(
        (rows) => rows.forEach((row) => this.emit("stalled", row.id, "active")),
        (error: unknown) => this.emit("error", system.toError(error, `check stalled jobs of queue ${this.name}`)),
      );
    }, this.opts.stalledInterval ?? 30_000);
    this.#timers.push(stalled);
    renew.unref();
    stalled.unref();
  }

  #start(system: CoreSystem, job: Job<DataType, ResultType, NameType>): void {
    const controller = new AbortController();
    this.#active.set(job.id, { job, controller });
    void this.#process(system, job, controller.signal).finally(() => {
      this.#active.delete(job.id);
      this.#signal();
    });
  }

  async #process(system: CoreSystem, job: Job<DataType, ResultType, NameType>, signal: AbortSignal): Promise<void> {
    this.emit("active", job, "waiting");
    const following = followingFire(job.name, job.data, job.opts);
    if (following) {
      await nextFire(system.pool, system.namespace, this.name, following.key, following.row).catch((error: unknown) =>
        this.emit("error", system.toError(error, `add the next fire of job scheduler ${following.key}`)),
      );
    }
    let result: ResultType;
    try {
      result = await this.#processor(job, this.#token, signal);
    } catch (error) {
      await this.#fail(system, job, error);
      return;
    }
    try {
      const completed = await this.#complete(system, job.id, result);
      if (!completed) return;
      job.returnvalue = result;
      job.attemptsMade += 1;
      job.finishedOn = Date.now();
      this.emit("completed", job, result, "active");
    } catch (error) {
      this.emit("error", system.toError(error, `complete job ${job.id}`));
    }
  }

  /** Queues a completion for the next batch; resolves true once written (false: the lock was lost). */
  #complete(system: CoreSystem, id: string, value: unknown): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#pendingCompletions.push({ id, value, done: (error) => (error === undefined ? resolve(true) : error === false ? resolve(false) : reject(error)) });
      this.#flushing ??= this.#flush(system);
    });
  }

  async #flush(system: CoreSystem): Promise<void> {
    // One statement per batch: completions pile up while the previous batch is written.
    await Promise.resolve();
    while (this.#pendingCompletions.length > 0) {
      const batch = this.#pendingCompletions;
      this.#pendingCompletions = [];
      try {
        const done = new Set(await completeJobs(system.pool, system.namespace, this.name, this.#token, batch.map((item) => item.id), batch.map((item) => item.value)));
        batch.forEach((item) => item.done(done.has(item.id) ? undefined : false));
      } catch (error) {
        batch.forEach((item) => item.done(error));
      }
    }
    this.#flushing = null;
  }

  async #fail(system: CoreSystem, job: Job<DataType, ResultType, NameType>, error: unknown): Promise<void> {
    const err = asError(error);
    const attemptsMade = job.attemptsMade + 1;
    const backoff = toCoreBackoff(job.opts.backoff);
    const retry = !(err instanceof UnrecoverableError || err.name === "UnrecoverableError") && attemptsMade < (job.opts.attempts ?? 1);
    const delay = retry ? (backoff ? backoffDelay(backoff, attemptsMade) : 0) : null;
    try {
      const state = await failJob(system.pool, system.namespace, this.name, this.#token, job.id, { reason: err.message, stack: err.stack ?? "" }, delay);
      if (state === null) return;
      job.attemptsMade = attemptsMade;
      job.failedReason = err.message;
      job.stacktrace = [...job.stacktrace, err.stack ?? ""];
      if (state === "failed") job.finishedOn = Date.now();
      this.emit("failed", job, err, "active");
      await system.broadcast(`bullmq.${this.name}.events`, { event: "failed", jobs: [{ jobId: job.id, failedReason: err.message, final: state === "failed" }] });
    } catch (failure) {
      this.emit("error", system.toError(failure, `fail job ${job.id}`));
    }
  }
}
