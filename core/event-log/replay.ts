/**
 * Replay: logged events of a time window, re-enqueued to one consumer group's queue.
 *
 * Copies go, in (emitted_at, id) order and in batches (one `pgmq.send_batch` per batch,
 * keyset pagination), only to the named group's queue, and only for the events the group
 * is subscribed to (its current event patterns; a copy its handlers could not route would
 * only be retried into the dead-letter queue). Each copy is the envelope the emit sent,
 * with the header `nexus-replay: <replay id>` added, so handlers see the original
 * `event.id`. Replaying twice is the caller's choice: each replay is a new copy.
 */
import { randomUUID } from "node:crypto";
import { UnknownGroupError, ValidationError } from "../model/errors.js";
import type { NamespaceContext } from "../model/context.js";
import { assertGroup, assertPattern, groupQueueName } from "../model/names.js";
import { assertKnownKeys } from "../model/options.js";
import { sendReplayBatch, type ReplayCursor } from "./queries/replay-batch.js";
import { planReplay } from "./queries/replay-plan.js";

/** The header that marks a replayed copy; its value is the replay's id. */
export const REPLAY_HEADER = "nexus-replay";

/** A point in time: a Date, an ISO 8601 string or milliseconds since the epoch. */
export type ReplayTime = Date | string | number;

/** Options of `CoreSystem.replay`. */
export interface ReplayOptions {
  /** The consumer group whose queue receives the copies; it must have an event subscription in the namespace. */
  group: string;
  /** Start of the window (inclusive), compared with each event's `emittedAt`. */
  from: ReplayTime;
  /** End of the window (exclusive); a time after the replay starts means "until now". */
  to: ReplayTime;
  /** Event types or patterns (`*` one segment, `**` one or more) to replay; default every type the group subscribes to. */
  types?: string[];
  /** Count the events that would be replayed, and send nothing (default false). */
  dryRun?: boolean;
  /** Events per batch, each sent in one transaction (default 500, at most 5,000). */
  batchSize?: number;
}

/** What `CoreSystem.replay` did. */
export interface ReplayResult {
  /** The replay's id: the value of the `nexus-replay` header of every copy. */
  replayId: string;
  /** Events re-enqueued (with `dryRun`, the number that would be). */
  count: number;
}

const DEFAULT_BATCH_SIZE = 500;
const MAX_BATCH_SIZE = 5_000;
const MAX_TYPES = 100;
const OPTION_KEYS = ["group", "from", "to", "types", "dryRun", "batchSize"] as const;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$/;

interface ValidReplay {
  group: string;
  from: Date;
  to: Date;
  types: string[] | null;
  dryRun: boolean;
  batchSize: number;
}

/** Checks every option of a replay, throwing {@link ValidationError} (or {@link InvalidNameError}) before anything runs. */
export function validateReplayOptions(options: ReplayOptions): ValidReplay {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new ValidationError("options", "replay needs an options object: { group, from, to, types?, dryRun?, batchSize? }.");
  }
  assertKnownKeys("system.replay options", options, OPTION_KEYS);
  assertGroup(options.group);
  const from = toTime("from", options.from);
  const to = toTime("to", options.to);
  if (from.getTime() >= to.getTime()) {
    throw new ValidationError("to", `to (${to.toISOString()}) must be later than from (${from.toISOString()}): the window is [from, to).`);
  }
  let types: string[] | null = null;
  if (options.types !== undefined) {
    if (!Array.isArray(options.types) || options.types.length === 0 || options.types.length > MAX_TYPES) {
      throw new ValidationError("types", `types must be an array of 1-${MAX_TYPES} event types or patterns (omit it to replay every type).`);
    }
    options.types.forEach((type) => assertPattern(type));
    types = [...new Set(options.types)];
  }
  if (options.dryRun !== undefined && typeof options.dryRun !== "boolean") {
    throw new ValidationError("dryRun", `dryRun must be true or false; got ${String(options.dryRun)}.`);
  }
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (typeof batchSize !== "number" || !Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
    throw new ValidationError("batchSize", `batchSize must be a whole number from 1 to ${MAX_BATCH_SIZE}; got ${String(options.batchSize)}.`);
  }
  return { group: options.group, from, to, types, dryRun: options.dryRun ?? false, batchSize };
}

function toTime(argument: string, value: unknown): Date {
  let time: Date | undefined;
  if (value instanceof Date) time = new Date(value.getTime());
  else if (typeof value === "number" && Number.isInteger(value)) time = new Date(value);
  else if (typeof value === "string" && ISO_DATE.test(value)) time = new Date(value);
  if (!time || Number.isNaN(time.getTime())) {
    throw new ValidationError(
      argument,
      `${argument} must be a valid Date, an ISO 8601 string such as 2024-05-01T12:00:00Z, or milliseconds since the epoch; got ${describe(value)}.`,
    );
  }
  return time;
}

function describe(value: unknown): string {
  if (value instanceof Date) return "an invalid Date";
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value);
  return value === null ? "null" : `${typeof value} ${String(value)}`;
}

/**
 * Re-enqueues the logged events of `[from, to)` (in this namespace, matching `types`
 * and the group's subscriptions) to the group's queue, in emitted order, in batches.
 * Events emitted after the replay starts are not replayed: they reach the group normally.
 */
export async function replay(context: NamespaceContext, options: ReplayOptions): Promise<ReplayResult> {
  const request = validateReplayOptions(options);
  const queue = groupQueueName(context.namespace, request.group);
  const replayId = randomUUID();
  const logger = context.logger.child({ replayId, group: request.group });

  let plan;
  try {
    plan = await planReplay(context.pool, context.namespace, request.group, queue, request.types, request.from, request.to);
  } catch (error) {
    throw context.toError(error, `plan the replay to group ${request.group}`);
  }
  if (!plan.queueExists) throw new UnknownGroupError(request.group, context.namespace);
  if (!plan.subscribed) {
    throw new ValidationError(
      "group",
      `Group ${request.group} has no event subscription in namespace ${context.namespace}: a replay sends a group only ` +
        `the events it subscribes to. Subscribe it (node.onEvent(pattern, handler, { group: "${request.group}" })) first.`,
    );
  }

  const window = { from: request.from.toISOString(), to: request.to.toISOString(), types: request.types };
  if (request.dryRun) {
    logger.info({ ...window, total: plan.total }, "replay dry run: nothing sent");
    return { replayId, count: plan.total };
  }

  logger.info({ ...window, total: plan.total, batchSize: request.batchSize }, "replay started");
  let count = 0;
  let after: ReplayCursor | null = null;
  for (let batch = 1; ; batch += 1) {
    let page;
    try {
      page = await sendReplayBatch(context.pool, {
        namespace: context.namespace,
        group: request.group,
        queue,
        replayId,
        patterns: request.types,
        from: request.from,
        to: plan.cutoff,
        after,
        limit: request.batchSize,
      });
    } catch (error) {
      throw context.toError(error, `replay to group ${request.group} (replay ${replayId}; ${count} of ${plan.total} events were sent before this failure)`);
    }
    count += page.sent;
    if (page.sent > 0) logger.info({ batch, sent: page.sent, count, total: plan.total, through: page.last?.emittedAt }, "replay batch sent");
    if (page.sent < request.batchSize || !page.last) break;
    after = page.last;
  }
  logger.info({ count }, "replay finished");
  return { replayId, count };
}
