/**
 * The naming grammar of DESIGN.md, checked before anything reaches the database.
 * Every violation is an {@link InvalidNameError} that names the value and what is allowed.
 */
import { createHash } from "node:crypto";
import { InvalidNameError } from "./errors.js";

const SERVICE_NAME = /^[a-z0-9][a-z0-9_-]{0,39}$/;
const TYPE_SEGMENT = /^[A-Za-z0-9_\-:$]+$/;
const MAX_TYPE_LENGTH = 255;
/** pgmq's limit on queue names, less room for the `_dlq` suffix of the dead-letter queue. */
const MAX_QUEUE_BASE_LENGTH = 47 - "_dlq".length;

const SERVICE_NAME_RULE =
  "1-40 characters of lowercase letters, digits, '_' and '-', starting with a letter or digit";
const TYPE_RULE =
  "1-255 characters: dot-separated segments of letters, digits, '_', '-', ':' and '$'";

/** Shows a user's value safely inside an error message. */
function quote(value: unknown): string {
  if (typeof value !== "string") return `a ${value === null ? "null" : typeof value}`;
  const shown = value.length > 60 ? `${value.slice(0, 60)}...` : value;
  return JSON.stringify(shown);
}

function assertServiceName(argument: string, value: unknown): asserts value is string {
  if (typeof value !== "string" || !SERVICE_NAME.test(value)) {
    throw new InvalidNameError(argument, `Invalid ${argument} ${quote(value)}: use ${SERVICE_NAME_RULE}.`);
  }
}

/** Throws unless `value` is a valid namespace name. */
export function assertNamespace(value: unknown): asserts value is string {
  assertServiceName("namespace", value);
}

/** Throws unless `value` is a valid consumer group name. */
export function assertGroup(value: unknown): asserts value is string {
  assertServiceName("group", value);
}

/** True when `value` is a valid consumer group name (what {@link assertGroup} accepts). */
export function isValidGroup(value: unknown): value is string {
  return typeof value === "string" && SERVICE_NAME.test(value);
}

/** True when `value` is a valid event type (what {@link assertEventType} accepts), without building an error. */
export function isEventType(value: unknown): value is string {
  return isWellFormed(value, (segment) => TYPE_SEGMENT.test(segment));
}

/** Throws unless `value` is a valid event type such as `order.created`. */
export function assertEventType(value: unknown, argument = "event type"): asserts value is string {
  if (!isEventType(value)) {
    throw new InvalidNameError(argument, `Invalid ${argument} ${quote(value)}: use ${TYPE_RULE}.`);
  }
}

/** Throws unless `value` is a valid pattern: an event type whose segments may also be `*` or `**`. */
export function assertPattern(value: unknown): asserts value is string {
  if (!isWellFormed(value, (segment) => segment === "*" || segment === "**" || TYPE_SEGMENT.test(segment))) {
    throw new InvalidNameError(
      "pattern",
      `Invalid pattern ${quote(value)}: use ${TYPE_RULE}; a segment may also be '*' (one segment) or '**' (any number).`,
    );
  }
}

function isWellFormed(value: unknown, segmentIsValid: (segment: string) => boolean): value is string {
  return (
    typeof value === "string" &&
    value.length >= 1 &&
    value.length <= MAX_TYPE_LENGTH &&
    value.split(".").every(segmentIsValid)
  );
}

/** Suffixes that derived queues add to a group's queue name. */
const DERIVED_SUFFIXES = ["_dlq", "_rq"] as const;

/**
 * The pgmq queue of a (namespace, group). The readable form `namespace__group` is used
 * when it is unambiguous, short enough and does not end like a derived queue; otherwise a
 * sanitised prefix and a hash of both names. Readable names always contain `__` and hashed
 * ones never do, so the two forms cannot collide, and no group's queue is another's
 * dead-letter or request queue.
 */
export function groupQueueName(namespace: string, group: string): string {
  assertNamespace(namespace);
  assertGroup(group);
  const plain = /^[a-z0-9]+(_[a-z0-9]+)*$/;
  const readable = `${namespace}__${group}`;
  const looksDerived = DERIVED_SUFFIXES.some((suffix) => readable.endsWith(suffix));
  if (plain.test(namespace) && plain.test(group) && !looksDerived && readable.length <= MAX_QUEUE_BASE_LENGTH) return readable;
  const hash = createHash("sha256").update(`${namespace}\0${group}`).digest("hex").slice(0, 12);
  const prefix = `${namespace}_${group}`.replace(/[-_]+/g, "_").slice(0, MAX_QUEUE_BASE_LENGTH - hash.length - 2);
  return `${prefix.replace(/_$/, "")}_h${hash}`;
}

/** The queue on which a group answers requests. */
export function requestQueueName(namespace: string, group: string): string {
  return `${groupQueueName(namespace, group)}_rq`;
}

/** The dead-letter queue that belongs to a group queue. */
export function deadLetterQueueName(queueName: string): string {
  return `${queueName}_dlq`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a UUID in its canonical text form (node ids, event ids). */
export function isUuid(value: unknown): value is string {
  return typeof value === "string" && UUID.test(value);
}
