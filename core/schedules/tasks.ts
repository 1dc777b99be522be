/**
 * Scheduled tasks: a task emits one event on a cron schedule, run by pg_cron where
 * installed, else by the started nodes' fallback scheduler (`scheduler.ts`). This is the
 * task API behind `system.schedules` and `node.scheduleTask(...)` and its siblings.
 */
import type { NamespaceContext } from "../model/context.js";
import { ValidationError } from "../model/errors.js";
import { assertEventType } from "../model/names.js";
import { assertKnownKeys } from "../model/options.js";
import { assertHeaders, assertPayload } from "../model/payload.js";
import { assertTaskName, parseCronExpression } from "./cron.js";
import { deleteTask } from "./queries/delete-task.js";
import { listTaskRows, type TaskListRow } from "./queries/list-task-rows.js";
import { setTaskEnabled } from "./queries/set-task-enabled.js";
import { upsertTask, type ScheduledTaskRow } from "./queries/upsert-task.js";
import { Scheduler, wakeSchedulers, type SchedulerSettings } from "./scheduler.js";

/** Options of `node.scheduleTask`. */
export interface ScheduleTaskOptions {
  /** The task's name, unique in the namespace: 1-200 letters, digits, `_`, `-`, `.`, `:`. Scheduling an existing name replaces it. */
  name: string;
  /** 5 fields (minutes; UTC) or 6 (a leading seconds field), checked with croner; nicknames such as `@hourly` too. */
  cronExpression: string;
  /** The type of the event emitted at each fire. */
  eventType: string;
  /** The event's JSON payload (default `{}`). */
  payload?: unknown;
  /** Headers added to the event; each fire also carries `nexus-task`, `nexus-task-id` and `nexus-scheduled-for`. */
  headers?: Record<string, string>;
  /** IANA time zone the expression is read in (default `UTC`). Other zones run on the fallback scheduler. */
  timezone?: string;
}

/** A scheduled task. */
export interface ScheduledTask {
  /** The task's id (a UUID). */
  id: string;
  name: string;
  /** The expression as stored: nicknames expanded, single spaces. */
  expression: string;
  timezone: string;
  eventType: string;
  payload: unknown;
  headers: Record<string, string>;
  paused: boolean;
  /** `pg_cron` when a pg_cron job runs it, `scheduler` when the package's fallback scheduler does. */
  runner: "pg_cron" | "scheduler";
  /** The `cron.job` id while `runner` is `pg_cron`. */
  cronJobId: number | null;
  /** The next fire time from now (null while paused, or when it never fires again). */
  nextRunAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** One recorded fire of a task. */
export interface TaskFire {
  scheduledFor: Date;
  firedAt: Date;
  /** `fired` (the event was emitted), `failed` (the emit failed: see `error`) or `skipped` (missed outside the catch-up window). */
  outcome: "fired" | "failed" | "skipped";
  error: string | null;
  /** The emitted event's id, for `fired`. */
  eventId: string | null;
}

/** A task as {@link CoreNode.listTasks} returns it: with its newest recorded fire. */
export interface ScheduledTaskStatus extends ScheduledTask {
  lastFire: TaskFire | null;
}

const SCHEDULE_TASK_OPTION_KEYS = ["name", "cronExpression", "eventType", "payload", "headers", "timezone"] as const;

/** The scheduled tasks of a namespace. */
export class Schedules {
  readonly #context: NamespaceContext;
  readonly #settings: SchedulerSettings;

  constructor(context: NamespaceContext, settings: SchedulerSettings) {
    this.#context = context;
    this.#settings = settings;
  }

  // ---------------------------------------------------------------------------------------

  /**
   * Creates or replaces the task `options.name` of the node's namespace. Everything is
   * checked before anything is written. A paused task stays paused.
   */
  async schedule(options: ScheduleTaskOptions): Promise<ScheduledTask> {
    if (options === null || typeof options !== "object") {
      throw new ValidationError("options", "scheduleTask needs { name, cronExpression, eventType, payload?, headers?, timezone? }.");
    }
    assertKnownKeys("node.scheduleTask options", options, SCHEDULE_TASK_OPTION_KEYS);
    assertTaskName(options.name);
    const parsed = parseCronExpression(options.cronExpression, options.timezone);
    assertEventType(options.eventType);
    const payload = options.payload === undefined ? {} : options.payload;
    assertPayload(payload, this.#context.limits.maxPayloadBytes);
    assertHeaders(options.headers);
    const { pool, namespace } = this.#context;
    let row: ScheduledTaskRow;
    try {
      row = await upsertTask(pool, {
        namespace,
        name: options.name,
        expression: parsed.expression,
        timezone: parsed.timezone,
        pgCronCompatible: parsed.pgCronCompatible,
        eventType: options.eventType,
        payload,
        headers: options.headers ?? {},
      });
    } catch (error) {
      throw this.#context.toError(error, `schedule task ${options.name}`);
    }
    const task = toTask(row);
    this.#context.logger.info({ task: task.name, expression: task.expression, timezone: task.timezone, runner: task.runner, nextRunAt: task.nextRunAt }, "task scheduled");
    wakeSchedulers(namespace);
    return task;
  }

  /** The tasks of the node's namespace, by name, each with its newest recorded fire. */
  async list(): Promise<ScheduledTaskStatus[]> {
    try {
      const rows = await listTaskRows(this.#context.pool, this.#context.namespace);
      return rows.map(toTaskStatus);
    } catch (error) {
      throw this.#context.toError(error, "list tasks");
    }
  }

  /** Pauses or resumes a task; false when the namespace has no task of that name. */
  async setPaused(name: string, paused: boolean): Promise<boolean> {
    assertTaskName(name);
    let row: ScheduledTaskRow | undefined;
    try {
      row = await setTaskEnabled(this.#context.pool, this.#context.namespace, name, !paused);
    } catch (error) {
      throw this.#context.toError(error, `${paused ? "pause" : "resume"} task ${name}`);
    }
    if (row) {
      this.#context.logger.info({ task: name }, paused ? "task paused" : "task resumed");
      wakeSchedulers(this.#context.namespace);
    }
    return row !== undefined;
  }

  /** Removes a task, its pg_cron job and its fire records; false when there was none. */
  async unschedule(name: string): Promise<boolean> {
    assertTaskName(name);
    try {
      const removed = await deleteTask(this.#context.pool, this.#context.namespace, name);
      if (removed) this.#context.logger.info({ task: name }, "task unscheduled");
      return removed;
    } catch (error) {
      throw this.#context.toError(error, `unschedule task ${name}`);
    }
  }

  /** @internal Starts the fallback scheduler of a node that starts; `undefined` when disabled. */
  startScheduler(nodeId: string, logger = this.#context.logger): Scheduler | undefined {
    if (!this.#settings.enabled) return undefined;
    const scheduler = new Scheduler({ namespace: this.#context.namespace, nodeId, pool: this.#context.pool, logger, settings: this.#settings });
    scheduler.start();
    return scheduler;
  }
}

function nextRunOf(expression: string, timezone: string, paused: boolean): Date | null {
  if (paused) return null;
  try {
    return parseCronExpression(expression, timezone).cron.nextRun();
  } catch {
    return null; // an expression written to the table by hand
  }
}

function toTask(row: ScheduledTaskRow | TaskListRow): ScheduledTask {
  return {
    id: row.task_id,
    name: row.name,
    expression: row.cron_expression,
    timezone: row.timezone,
    eventType: row.event_type,
    payload: row.payload,
    headers: row.headers,
    paused: !row.enabled,
    runner: row.runner,
    cronJobId: row.cron_job_id === null ? null : Number(row.cron_job_id),
    nextRunAt: nextRunOf(row.cron_expression, row.timezone, !row.enabled),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toTaskStatus(row: TaskListRow): ScheduledTaskStatus {
  return {
    ...toTask(row),
    lastFire:
      row.last_scheduled_for === null
        ? null
        : {
            scheduledFor: row.last_scheduled_for,
            firedAt: row.last_fired_at!,
            outcome: row.last_outcome!,
            error: row.last_error,
            eventId: row.last_event_id,
          },
  };
}

