/**
 * Argument parsers for commander. A value the library's grammar refuses is a usage error
 * (exit 2), reported by commander with the library's own explanation.
 */
import { InvalidArgumentError } from "commander";
import { asError, assertEventType, assertGroup, assertPattern, assertTaskName } from "../core/index.js";

function checked(assert: (value: unknown) => void): (value: string) => string {
  return (value) => {
    try {
      assert(value);
    } catch (error) {
      throw new InvalidArgumentError(asError(error).message);
    }
    return value;
  };
}

/** A consumer group name. */
export const groupName = checked(assertGroup);
/** An event type or a pattern (`*` one segment, `**` one or more). */
export const pattern = checked(assertPattern);
/** An event type. */
export const eventType = checked(assertEventType);
/** A scheduled task's name. */
export const taskName = checked(assertTaskName);

/** A whole number from `min` to `max`. */
export function wholeNumber(min: number, max: number): (value: string) => number {
  return (value) => {
    const number = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(number) || number < min || number > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}; got ${JSON.stringify(value)}.`);
    }
    return number;
  };
}

/** A dead-letter id: a positive whole number, kept as text (ids are bigints). */
export function messageId(value: string): string {
  if (!/^[1-9]\d{0,18}$/.test(value)) throw new InvalidArgumentError(`expected a dead-letter id (a positive whole number); got ${JSON.stringify(value)}.`);
  return value;
}

/** An ISO 8601 time such as 2025-01-31T12:00:00Z (a date alone means its midnight UTC). */
export function isoTime(value: string): string {
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$/.test(value) || Number.isNaN(new Date(value).getTime())) {
    throw new InvalidArgumentError(`expected an ISO 8601 time such as 2025-01-31T12:00:00Z; got ${JSON.stringify(value)}.`);
  }
  return value;
}

/** A JSON document. */
export function json(value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch (error) {
    throw new InvalidArgumentError(`expected JSON (${asError(error).message}); got ${JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value)}.`);
  }
}

/** A JSON object of string values (event headers). */
export function headers(value: string): Record<string, string> {
  const parsed = json(value);
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed) || !Object.values(parsed).every((item) => typeof item === "string")) {
    throw new InvalidArgumentError('expected a JSON object of strings, such as {"team":"ops"}.');
  }
  return parsed as Record<string, string>;
}

/** Collects a repeatable option's values: `--type a --type b`. */
export function collect<T>(parse: (value: string) => T): (value: string, previous: T[] | undefined) => T[] {
  return (value, previous) => [...(previous ?? []), parse(value)];
}
