/**
 * Dead-letter tooling: list, read, retry and purge the dead letters of a consumer group
 * (`system.deadLetters`). A message lands in its group's dead-letter queue `<queue>_dlq`
 * after `maxAttempts` failed deliveries (see `core.fail_message`); a dead letter is the
 * original event envelope plus what went wrong. Every call returns plain JSON values
 * (times as ISO 8601 strings, ids as strings), so the HTTP server and the CLI pass them
 * through unchanged.
 */
import type { NamespaceContext } from "../model/context.js";
import { UnknownGroupError, ValidationError } from "../model/errors.js";
import { assertGroup, assertPattern, groupQueueName } from "../model/names.js";
import { assertKnownKeys } from "../model/options.js";
import { getDeadLetter } from "./queries/get-dead-letter.js";
import { listDeadLetters, type DeadLetterRow } from "./queries/list-dead-letters.js";
import { purgeDeadLetters } from "./queries/purge-dead-letters.js";
import { retryDeadLetters, type RetrySelection } from "./queries/retry-dead-letters.js";

/** The error a handler threw on its last attempt. */
export interface DeadLetterError {
  /** The error's name, e.g. `TypeError` (`NonError` when something else was thrown). */
  name: string;
  message: string;
  /** The error's `code` property, when it had a string one. */
  code?: string;
  /** The stack; only {@link DeadLetters.get} returns it. */
  stack?: string;
}

/** A dead letter as {@link DeadLetters.list} returns it: everything but the payload, the headers and the stack. */
export interface DeadLetterSummary {
  /** The dead letter's id: its message id in the dead-letter queue (a bigint, as a string). Paging and retry use it. */
  id: string;
  /** The event's id (the same in the event log and in every group's copy). */
  eventId: string | null;
  /** The event type, e.g. `order.created`. */
  type: string | null;
  /** The error of the last attempt. */
  error: DeadLetterError;
  /** Deliveries made before giving up. */
  attempts: number;
  /** When the first delivery failed (ISO 8601). */
  firstFailedAt: string | null;
  /** When the last delivery failed (ISO 8601). */
  lastFailedAt: string | null;
  /** When it entered the dead-letter queue (ISO 8601). */
  deadLetteredAt: string;
  /** The message id it had in the group's queue. */
  originalMessageId: string | null;
  /** When it was first put in the group's queue (ISO 8601). */
  originalEnqueuedAt: string | null;
}

/** A whole dead letter, as {@link DeadLetters.get} returns it. */
export interface DeadLetter extends DeadLetterSummary {
  /** The event's JSON payload. */
  payload: unknown;
  /** The event's headers. */
  headers: Record<string, string>;
  /** When the event was emitted (ISO 8601). */
  emittedAt: string | null;
  /** The node that emitted it. */
  sourceNode: string | null;
}

/** Options of {@link DeadLetters.list}. */
export interface DeadLetterListOptions {
  /** Dead letters per page, 1-1000 (default 100). */
  limit?: number;
  /** Start after this dead-letter id: the previous page's `nextAfter`. */
  after?: string | number;
  /** Only this event type, or a pattern (`order.*`, `billing.**`). */
  type?: string;
}

/** One page of {@link DeadLetters.list}. */
export interface DeadLetterPage {
  /** Dead letters by ascending id. */
  items: DeadLetterSummary[];
  /** Pass as `after` for the next page; null on the last page. */
  nextAfter: string | null;
}

/** Which dead letters {@link DeadLetters.retry} moves when not given ids. Every field narrows; `{}` retries them all. */
export interface DeadLetterFilter {
  /** Only this event type, or a pattern (`order.*`). */
  type?: string;
  /** Only those dead-lettered before this time (a Date or an ISO 8601 string). */
  before?: Date | string;
}

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
const MAX_RETRY_IDS = 10_000;
const MESSAGE_ID = /^[1-9][0-9]{0,18}$/;
/** SQLSTATE the dead-letter functions raise for a missing queue (no_data_found). */
const NO_QUEUE = "P0002";

/** The dead-letter queues of a system's namespace. Reach it as `system.deadLetters`. */
export class DeadLetters {
  readonly #context: NamespaceContext;

  /** @internal Created by the system. */
  constructor(context: NamespaceContext) {
    this.#context = context;
  }

  /**
   * One page of the group's dead letters, oldest first (by id), without payloads: use
   * {@link get} for one in full. Throws `UnknownGroupError` for a group without queues.
   *
   * @example
   * let page = await system.deadLetters.list("billing", { limit: 50, type: "order.*" });
   * while (page.nextAfter) page = await system.deadLetters.list("billing", { limit: 50, type: "order.*", after: page.nextAfter });
   */
  async list(group: string, options: DeadLetterListOptions = {}): Promise<DeadLetterPage> {
    assertGroup(group);
    if (options === null || typeof options !== "object") {
      throw new ValidationError("options", "list options must be an object { limit?, after?, type? }.");
    }
    assertKeys("list options", options, ["limit", "after", "type"]);
    const limit = options.limit ?? DEFAULT_LIMIT;
    if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
      throw new ValidationError("limit", `limit must be a whole number from 1 to ${MAX_LIMIT}; got ${String(options.limit)}.`);
    }
    const after = options.after === undefined ? null : messageId("after", options.after);
    const pattern = typePattern(options.type);
    const rows = await this.#run(group, "list the dead letters", (queue) => listDeadLetters(this.#context.pool, queue, after, limit + 1, pattern));
    const items = rows.slice(0, limit).map((row) => summaryOf(row));
    return { items, nextAfter: rows.length > limit ? items.at(-1)!.id : null };
  }

  /** The whole dead letter `id` of the group (payload, headers, error with its stack), or null when there is none. */
  async get(group: string, id: string | number): Promise<DeadLetter | null> {
    assertGroup(group);
    const msgId = messageId("id", id);
    const row = await this.#run(group, `read dead letter ${msgId}`, (queue) => getDeadLetter(this.#context.pool, queue, msgId));
    return row ? deadLetterOf(row) : null;
  }

  /**
   * Moves dead letters back to the group's queue and wakes its consumers: the given ids
   * (ids not in the dead-letter queue are ignored), or those a filter selects (`{}`: all).
   * Each becomes a new message with its original envelope, handled again from attempt 1.
   * Atomic: a dead letter is either still dead or back in the queue, never both or lost,
   * and concurrent retries never send one twice. Returns how many were moved.
   *
   * @example
   * await system.deadLetters.retry("billing", ["17", "18"]);
   * await system.deadLetters.retry("billing", { type: "order.*", before: new Date() });
   */
  async retry(group: string, selection: readonly (string | number)[] | DeadLetterFilter): Promise<number> {
    assertGroup(group);
    const chosen = retrySelection(selection);
    return this.#run(group, "retry dead letters", (queue) => retryDeadLetters(this.#context.pool, this.#context.namespace, queue, chosen));
  }

  /** Deletes every dead letter of the group (only its dead-letter queue); returns how many. */
  async purge(group: string): Promise<number> {
    assertGroup(group);
    return this.#run(group, "purge the dead letters", (queue) => purgeDeadLetters(this.#context.pool, queue));
  }

  async #run<T>(group: string, doing: string, work: (queue: string) => Promise<T>): Promise<T> {
    this.#context.assertOpen();
    try {
      return await work(groupQueueName(this.#context.namespace, group));
    } catch (error) {
      if ((error as { code?: unknown } | null)?.code === NO_QUEUE) throw new UnknownGroupError(group, this.#context.namespace, error);
      throw this.#context.toError(error, `${doing} of group ${group}`);
    }
  }
}

function assertKeys(argument: string, value: object, allowed: string[]): void {
  assertKnownKeys(`deadLetters.${argument}`, value, allowed);
}

function messageId(argument: string, value: unknown): string {
  const text = typeof value === "number" && Number.isSafeInteger(value) ? String(value) : value;
  if (typeof text !== "string" || !MESSAGE_ID.test(text) || BigInt(text) > 9_223_372_036_854_775_807n) {
    throw new ValidationError(argument, `${argument} must be a dead-letter id: a positive whole number (as a number or a string of digits); got ${JSON.stringify(value) ?? String(value)}.`);
  }
  return text;
}

function typePattern(type: unknown): string | null {
  if (type === undefined) return null;
  assertPattern(type);
  return type;
}

function retrySelection(selection: unknown): RetrySelection {
  if (Array.isArray(selection)) {
    if (selection.length > MAX_RETRY_IDS) {
      throw new ValidationError("ids", `retry takes at most ${MAX_RETRY_IDS} ids per call; got ${selection.length}. Use a filter, or several calls.`);
    }
    return { ids: selection.map((id: unknown) => messageId("ids", id)) };
  }
  if (selection === null || typeof selection !== "object") {
    throw new ValidationError("selection", "retry needs an array of dead-letter ids or a filter { type?, before? } ({} retries them all).");
  }
  assertKeys("retry filter", selection, ["type", "before"]);
  const { type, before } = selection as DeadLetterFilter;
  return { pattern: typePattern(type), before: before === undefined ? null : timestamp("before", before) };
}

function timestamp(argument: string, value: unknown): Date {
  const date = value instanceof Date ? value : typeof value === "string" ? new Date(value) : undefined;
  if (!date || Number.isNaN(date.getTime())) {
    throw new ValidationError(argument, `${argument} must be a Date or an ISO 8601 time such as 2025-01-31T12:00:00Z; got ${JSON.stringify(value) ?? String(value)}.`);
  }
  return date;
}

interface StoredDeadLetter {
  id?: string;
  type?: string;
  payload?: unknown;
  headers?: Record<string, string>;
  emittedAt?: string;
  sourceNode?: string | null;
  deadLetter?: {
    error?: Partial<DeadLetterError>;
    attempts?: number;
    firstFailedAt?: string;
    lastFailedAt?: string;
    msgId?: number | string;
    enqueuedAt?: string;
  };
}

function summaryOf(row: DeadLetterRow): DeadLetterSummary {
  const message = (row.message ?? {}) as StoredDeadLetter;
  const dead = message.deadLetter ?? {};
  const error = dead.error ?? {};
  return {
    id: row.msg_id,
    eventId: message.id ?? null,
    type: message.type ?? null,
    error: {
      name: typeof error.name === "string" ? error.name : "Error",
      message: typeof error.message === "string" ? error.message : "",
      ...(typeof error.code === "string" ? { code: error.code } : {}),
    },
    attempts: typeof dead.attempts === "number" ? dead.attempts : 0,
    firstFailedAt: iso(dead.firstFailedAt),
    lastFailedAt: iso(dead.lastFailedAt),
    deadLetteredAt: row.dead_lettered_at.toISOString(),
    originalMessageId: dead.msgId === undefined ? null : String(dead.msgId),
    originalEnqueuedAt: iso(dead.enqueuedAt),
  };
}

function deadLetterOf(row: DeadLetterRow): DeadLetter {
  const message = (row.message ?? {}) as StoredDeadLetter;
  const summary = summaryOf(row);
  const stack = message.deadLetter?.error?.stack;
  return {
    ...summary,
    error: { ...summary.error, ...(typeof stack === "string" ? { stack } : {}) },
    payload: message.payload ?? null,
    headers: message.headers ?? {},
    emittedAt: iso(message.emittedAt),
    sourceNode: message.sourceNode ?? null,
  };
}

/** A stored time (JSON text of a timestamptz) as ISO 8601, or null. */
function iso(value: string | undefined): string | null {
  if (typeof value !== "string") return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}
