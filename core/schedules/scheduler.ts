/**
 * The fallback scheduler each started node runs (the task API is `tasks.ts`; a task emits
 * one event on a cron schedule, see `sql/000007_schedules.sql`).
 *
 * - {@link Scheduler}: the node's part in the fallback scheduler. The leader is the
 *   node whose dedicated connection (`listenConnectionString ?? connectionString`, never a
 *   pooled one) holds the namespace's session advisory lock. It computes due times with
 *   croner and fires each through `core.run_scheduled_task`, which records the (task,
 *   time) once and emits only then, in one transaction, so two leaders never fire one
 *   time twice. Followers hold no connection: every `takeoverIntervalMs` (jittered) they
 *   check on the pool whether there is work and no leader, and only then connect and try
 *   the lock; so they take over after the leader's session ends. A leader that has had no
 *   task for 30 s lets go. After a takeover or a restart, times missed within
 *   `catchUpWindowMs` are fired; older ones are recorded as skipped. Timers are unref'd,
 *   and the leader sleeps until the next due time (at most `pollIntervalMs`, so tasks
 *   scheduled by other processes are picked up; this process's own changes wake it).
 */
import type pg from "pg";
import type { Cron } from "croner";
import { parseCronExpression } from "./cron.js";
import { isConnectionFailure } from "../db/database.js";
import { ValidationError, asError } from "../model/errors.js";
import { assertKnownKeys, assertWholeNumber } from "../model/options.js";
import { DedicatedConnection, jitteredBackoff } from "../db/dedicated-connection.js";
import type { Logger } from "../model/logger.js";
import { pruneScheduleFires } from "./queries/prune-schedule-fires.js";
import { runScheduledTask, type FireResult } from "./queries/run-scheduled-task.js";
import { schedulerTasks, type SchedulerTaskRow } from "./queries/scheduler-tasks.js";
import { skipScheduledFire } from "./queries/skip-scheduled-fire.js";
import { schedulerState } from "./queries/scheduler-state.js";
import { tryLockScheduler } from "./queries/try-scheduler-lock.js";
import type { Queryable } from "../db/queryable.js";

/** Option `scheduler` of `CoreSystem.connect`: the fallback scheduler of this system's started nodes. */
export interface SchedulerOptions {
  /** Whether started nodes take part in the fallback scheduler (default true). */
  enabled?: boolean;
  /** Missed fire times younger than this are fired after a restart or takeover; older ones are recorded as skipped (default 60,000 ms). */
  catchUpWindowMs?: number;
  /** Longest the leader sleeps before looking at the tasks again, so new tasks are picked up (default 1,000 ms). */
  pollIntervalMs?: number;
  /** How often a node that is not the leader tries to become it, jittered (default 2,000 ms). */
  takeoverIntervalMs?: number;
  /** How long fire records are kept; each task's newest is always kept (default 7 days). */
  fireRetentionMs?: number;
}

/** @internal {@link SchedulerOptions} with defaults, and the connection the scheduler's lock lives on. */
export interface SchedulerSettings extends Required<SchedulerOptions> {
  /** `listenConnectionString ?? connectionString`: a direct connection, never a transaction pooler. */
  connectionString: string;
  applicationName: string;
}

const DEFAULTS: Required<SchedulerOptions> = {
  enabled: true,
  catchUpWindowMs: 60_000,
  pollIntervalMs: 1_000,
  takeoverIntervalMs: 2_000,
  fireRetentionMs: 7 * 86_400_000,
};

const SCHEDULER_OPTION_KEYS = ["enabled", "catchUpWindowMs", "pollIntervalMs", "takeoverIntervalMs", "fireRetentionMs"] as const;

/** Throws a ValidationError unless `options` is a valid {@link SchedulerOptions} (or absent). */
export function validateSchedulerOptions(options: unknown): void {
  if (options === undefined) return;
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new ValidationError("scheduler", "scheduler must be an object: { enabled?, catchUpWindowMs?, pollIntervalMs?, takeoverIntervalMs?, fireRetentionMs? }.");
  }
  assertKnownKeys("CoreSystem.connect options.scheduler", options, SCHEDULER_OPTION_KEYS, "scheduler");
  const given = options as Record<string, unknown>;
  if (given.enabled !== undefined && typeof given.enabled !== "boolean") {
    throw new ValidationError("scheduler.enabled", `scheduler.enabled must be true or false; got ${String(given.enabled)}.`);
  }
  const limits: Record<string, [number, number]> = {
    catchUpWindowMs: [0, 30 * 86_400_000],
    pollIntervalMs: [10, 3_600_000],
    takeoverIntervalMs: [10, 3_600_000],
    fireRetentionMs: [60_000, 3_650 * 86_400_000],
  };
  for (const [key, [min, max]] of Object.entries(limits)) {
    assertWholeNumber(`scheduler.${key}`, given[key], { min, max, unit: "milliseconds" });
  }
}

/**
 * @internal The settings of a system's schedulers (options already validated); the lock
 * lives on a dedicated connection to `connectionString` (never a transaction pooler).
 */
export function schedulerSettings(options: SchedulerOptions | undefined, connectionString: string, applicationName: string): SchedulerSettings {
  return { ...DEFAULTS, ...definedOnly(options ?? {}), connectionString, applicationName: `${applicationName}-scheduler` };
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

// ---------------------------------------------------------------------------------------
// The fallback scheduler
// ---------------------------------------------------------------------------------------

/** Schedulers of this process by namespace, woken when a task of theirs changes here. */
const localSchedulers = new Map<string, Set<Scheduler>>();

/** Wakes this process's schedulers of `namespace`: one of its tasks changed here. */
export function wakeSchedulers(namespace: string): void {
  localSchedulers.get(namespace)?.forEach((scheduler) => scheduler.wake());
}

/** At most this many times of one task are fired per pass; the next pass follows at once. */
const MAX_FIRES_PER_PASS = 100;
/** Added to a sleep so the leader wakes after the due time on the database's clock. */
const WAKE_SLACK_MS = 5;
/** How often the leader prunes old fire records. */
const PRUNE_EVERY_MS = 10 * 60_000;
/** A leader with no tasks to run for this long releases the lock and its connection. */
const IDLE_RELEASE_MS = 30_000;

/** What a {@link Scheduler} needs. */
export interface SchedulerInit {
  namespace: string;
  /** The node firing as leader: the `source_node` of its fires and events. */
  nodeId: string;
  /** The system's pool: followers check on it whether to contend (they hold no connection). */
  pool: Queryable;
  logger: Logger;
  settings: SchedulerSettings;
  /**
   * @internal Test seam: lead without the lock, as a second leader in a split brain would
   * (to test that two leaders never fire one scheduled time twice).
   */
  forceLeader?: boolean;
}

/** The fallback scheduler of one started node. Created by {@link CoreNode.start}; see the module comment. */
export class Scheduler {
  readonly #namespace: string;
  readonly #nodeId: string;
  readonly #pool: Queryable;
  readonly #logger: Logger;
  readonly #settings: SchedulerSettings;
  readonly #forceLeader: boolean;
  readonly #crons = new Map<string, Cron | Error>();
  readonly #connection: DedicatedConnection;
  #leader = false;
  #idleSince: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #wakeRequested = false;
  #failures = 0;
  #lastPruneAt = 0;
  #started = false;
  #stopped = false;

  constructor(init: SchedulerInit) {
    this.#namespace = init.namespace;
    this.#nodeId = init.nodeId;
    this.#pool = init.pool;
    this.#logger = init.logger;
    this.#settings = init.settings;
    this.#forceLeader = init.forceLeader === true;
    this.#connection = new DedicatedConnection({
      connectionString: init.settings.connectionString,
      applicationName: init.settings.applicationName,
      purpose: "scheduler",
      logger: init.logger,
    });
    this.#connection.on("lost", (error) => this.#lost(error));
  }

  /** True while this scheduler holds the namespace's lock and fires due tasks. */
  get isLeader(): boolean {
    return this.#leader;
  }

  /** Starts taking part in the background. Idempotent. */
  start(): void {
    if (this.#started || this.#stopped || !this.#settings.enabled) return;
    this.#started = true;
    const peers = localSchedulers.get(this.#namespace) ?? new Set<Scheduler>();
    localSchedulers.set(this.#namespace, peers.add(this));
    this.#schedule(0);
  }

  /** Looks at the tasks now instead of at the next due time (a task of the namespace changed here). */
  wake(): void {
    if (this.#stopped || !this.#started) return;
    if (this.#running) this.#wakeRequested = true;
    else this.#schedule(0);
  }

  /** Stops firing, waits for a fire in progress, and ends the connection (releasing the lock). Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    localSchedulers.get(this.#namespace)?.delete(this);
    if (localSchedulers.get(this.#namespace)?.size === 0) localSchedulers.delete(this.#namespace);
    await this.#running;
    const wasLeader = this.#leader;
    await this.#disconnect();
    if (wasLeader) this.#logger.info("scheduler stopped; leadership released");
  }

  #schedule(delayMs: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#run(), Math.max(0, delayMs));
    this.#timer.unref();
  }

  #run(): void {
    if (this.#running || this.#stopped) return;
    this.#wakeRequested = false;
    this.#running = this.#step()
      .catch((error: unknown) => this.#onError(error))
      .then((delayMs) => {
        this.#running = undefined;
        if (!this.#stopped) this.#schedule(this.#wakeRequested ? 0 : delayMs);
      });
  }

  /** One pass: contend, or fire what is due. Resolves to the milliseconds until the next pass. */
  async #step(): Promise<number> {
    if (!this.#leader && !(await this.#contend())) return jittered(this.#settings.takeoverIntervalMs);
    const client = this.#connection.client;
    if (!client) return jitteredBackoff((this.#failures += 1)); // lost between passes
    return this.#fireDue(client);
  }

  /**
   * Becomes the leader if there is work and no leader: checks on the pool first (so a
   * follower holds no connection), then takes the session lock on a dedicated connection.
   */
  async #contend(): Promise<boolean> {
    if (this.#forceLeader) {
      await this.#connection.open();
    } else {
      const state = await schedulerState(this.#pool, this.#namespace);
      if (!state.hasWork || state.leaderPid !== null || this.#stopped) return false;
      const client = await this.#connection.open();
      if (!(await tryLockScheduler(client, this.#namespace))) {
        await this.#disconnect(); // another node won the race
        return false;
      }
    }
    if (this.#stopped) return false;
    this.#failures = 0;
    this.#leader = true;
    this.#idleSince = undefined;
    this.#logger.info({ forced: this.#forceLeader || undefined }, "became the scheduler leader of the namespace");
    return true;
  }

  /** Ends the dedicated connection, and with it the session lock. */
  async #disconnect(): Promise<void> {
    this.#leader = false;
    await this.#connection.close();
  }

  /** The dedicated connection is gone, and the session lock with it: contend again, with backoff. */
  #lost(error: Error): void {
    const wasLeader = this.#leader;
    this.#leader = false;
    if (this.#stopped) return;
    this.#logger.warn({ err: error, wasLeader }, "scheduler connection lost; contending for leadership again");
    if (!this.#running) {
      this.#failures += 1;
      this.#schedule(jitteredBackoff(this.#failures));
    }
  }

  #onError(error: unknown): number {
    if (this.#stopped) return 0;
    if (isConnectionFailure(error) || !this.#connection.connected) {
      void this.#disconnect();
      this.#failures += 1;
      const delay = jitteredBackoff(this.#failures);
      this.#logger.warn({ err: asError(error), retryInMs: delay }, "scheduler could not reach the database; contending again after a backoff");
      return delay;
    }
    this.#logger.warn({ err: asError(error) }, "scheduler pass failed; retrying");
    return this.#settings.pollIntervalMs;
  }

  /** Fires every due time of every task, then returns how long to sleep. */
  async #fireDue(client: pg.Client): Promise<number> {
    const tasks = await schedulerTasks(client, this.#namespace);
    if (tasks.length === 0 && !this.#forceLeader) {
      this.#idleSince ??= Date.now();
      if (Date.now() - this.#idleSince >= IDLE_RELEASE_MS) {
        this.#logger.info("no tasks for the fallback scheduler; leadership released");
        await this.#disconnect();
        return jittered(this.#settings.takeoverIntervalMs);
      }
    } else {
      this.#idleSince = undefined;
    }
    const clockOffset = tasks.length > 0 ? tasks[0]!.db_now.getTime() - Date.now() : 0;
    let next = Number.POSITIVE_INFINITY;
    let more = false;
    for (const task of tasks) {
      if (this.#stopped || !this.#leader) return 0;
      const cron = this.#cronOf(task);
      if (!cron) continue;
      const outcome = await this.#fireTask(client, task, cron);
      if (outcome.more) more = true;
      if (outcome.next) next = Math.min(next, outcome.next.getTime());
    }
    await this.#maybePrune(client);
    if (more) return 0;
    const untilNext = next - (Date.now() + clockOffset) + WAKE_SLACK_MS;
    return Math.min(this.#settings.pollIntervalMs, Math.max(0, untilNext));
  }

  /** Fires the due times of one task (catching up within the window, skipping older ones). */
  async #fireTask(client: pg.Client, task: SchedulerTaskRow, cron: Cron): Promise<{ next: Date | null; more: boolean }> {
    const now = task.db_now;
    const since = task.last_scheduled_for && task.last_scheduled_for > task.fire_from ? task.last_scheduled_for : task.fire_from;
    const windowStart = new Date(now.getTime() - this.#settings.catchUpWindowMs);
    let due = cron.nextRun(since);
    if (due && due < windowStart) {
      const previous = cron.previousRuns(1, new Date(windowStart.getTime() - 1))[0];
      const newestMissed = previous && previous > due ? previous : due;
      const reason =
        `missed the scheduled times from ${due.toISOString()} to ${newestMissed.toISOString()} by more than the catch-up window ` +
        `(scheduler.catchUpWindowMs = ${this.#settings.catchUpWindowMs}); recorded as skipped at the newest of them`;
      await skipScheduledFire(client, task.task_id, newestMissed, reason);
      this.#logger.warn({ task: task.name, from: due, to: newestMissed }, "scheduled times missed outside the catch-up window were skipped");
      due = cron.nextRun(newestMissed);
    }
    let fires = 0;
    while (due && due <= now) {
      if (fires === MAX_FIRES_PER_PASS) return { next: due, more: true };
      if (this.#stopped || !this.#leader) return { next: null, more: false };
      const result = await runScheduledTask(client, task.task_id, due, this.#nodeId);
      this.#logFire(task, due, result, now);
      fires += 1;
      due = cron.nextRun(due);
    }
    return { next: due, more: false };
  }

  #logFire(task: SchedulerTaskRow, scheduledFor: Date, result: FireResult, now: Date): void {
    const fields = { task: task.name, scheduledFor, lateMs: now.getTime() - scheduledFor.getTime(), result };
    if (result === "failed") this.#logger.warn(fields, "scheduled task failed to emit its event (recorded in core.schedule_fires)");
    else if (result === "fired") this.#logger.debug(fields, "scheduled task fired");
    else this.#logger.debug(fields, "scheduled time not fired here");
  }

  #cronOf(task: SchedulerTaskRow): Cron | undefined {
    const key = `${task.timezone}\n${task.cron_expression}`;
    let cron = this.#crons.get(key);
    if (!cron) {
      if (this.#crons.size > 1_000) this.#crons.clear();
      try {
        cron = parseCronExpression(task.cron_expression, task.timezone).cron;
      } catch (error) {
        cron = asError(error);
        this.#logger.error({ err: cron, task: task.name, expression: task.cron_expression }, "scheduled task has an invalid expression; it is not fired");
      }
      this.#crons.set(key, cron);
    }
    return cron instanceof Error ? undefined : cron;
  }

  async #maybePrune(client: pg.Client): Promise<void> {
    if (Date.now() - this.#lastPruneAt < PRUNE_EVERY_MS) return;
    this.#lastPruneAt = Date.now();
    const deleted = await pruneScheduleFires(client, this.#namespace, this.#settings.fireRetentionMs);
    if (deleted > 0) this.#logger.debug({ deleted }, "pruned old schedule fire records");
  }
}

/** `ms` with ±20 % jitter. */
function jittered(ms: number): number {
  return Math.round(ms * (0.8 + Math.random() * 0.4));
}
