/**
 * Repeatable jobs (job schedulers). As in BullMQ, a scheduler keeps exactly one pending
 * fire: the worker that takes a fire adds the next one (`core.bull_next_fire`), so fires
 * need no clock process of their own and a scheduler removed stops at once.
 */
import type { RepeatOptions } from "bullmq";
import { parseCronExpression, ValidationError } from "../../core/index.js";
import { toAddRow, type JobOptions } from "./options.js";
import type { AddRow } from "./queries/job-row.js";

/** Throws unless `repeat` has exactly one of `every` (ms > 0) and `pattern` (a cron expression). */
export function assertRepeat(repeat: RepeatOptions): void {
  const hasEvery = repeat.every !== undefined;
  if (hasEvery === (repeat.pattern !== undefined)) throw new ValidationError("repeat", "repeat needs exactly one of every (milliseconds) or pattern (a cron expression).");
  if (hasEvery && (!Number.isInteger(repeat.every) || (repeat.every ?? 0) <= 0)) throw new ValidationError("repeat.every", "repeat.every must be an integer number of milliseconds > 0.");
  if (repeat.pattern !== undefined) parseCronExpression(repeat.pattern, repeat.tz ?? "UTC");
  if (repeat.limit !== undefined && (!Number.isInteger(repeat.limit) || repeat.limit < 1)) throw new ValidationError("repeat.limit", "repeat.limit must be an integer >= 1.");
}

/** Epoch milliseconds of the fire after `after` (BullMQ aligns `every` on its multiples); null when the pattern has no more fires. */
export function nextFireMillis(repeat: RepeatOptions, after: number, immediately: boolean): number | null {
  if (repeat.every !== undefined) return immediately ? after : Math.floor(after / repeat.every) * repeat.every + repeat.every;
  const next = parseCronExpression(repeat.pattern, repeat.tz ?? "UTC").cron.nextRun(new Date(after));
  return next ? next.getTime() : null;
}

/** The `core.bull_add` row of fire number `count` (1-based) of scheduler `key` at `millis`. */
export function fireRow(key: string, name: string, data: unknown, opts: JobOptions, repeat: NonNullable<JobOptions["repeat"]>, millis: number, count: number): AddRow {
  const { jobId: _jobId, repeat: _repeat, delay: _delay, ...rest } = opts;
  const fireOpts: JobOptions = { ...rest, delay: Math.max(0, millis - Date.now()), repeat: { ...repeat, count }, repeatJobKey: key, prevMillis: millis };
  return { ...toAddRow(name, data, fireOpts), id: `repeat:${key}:${millis}` };
}

/** The next fire of the job scheduler `opts.repeatJobKey` after the fire `opts` describes, or null when the scheduler is done. */
export function followingFire(name: string, data: unknown, opts: JobOptions): { key: string; row: AddRow } | null {
  const { repeat, repeatJobKey: key, prevMillis } = opts;
  if (!repeat || !key || prevMillis === undefined) return null;
  const count = (repeat.count ?? 1) + 1;
  if (repeat.limit !== undefined && count > repeat.limit) return null;
  const next = nextFireMillis(repeat, Math.max(prevMillis, Date.now() - 1), false);
  return next === null ? null : { key, row: fireRow(key, name, data, opts, repeat, next, count) };
}
