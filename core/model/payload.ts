/**
 * Checks of what an emit carries, made before anything is written: the payload must be
 * JSON that PostgreSQL's jsonb can hold, within the size limit; headers are a flat map
 * of strings.
 */
import { ValidationError, asError } from "./errors.js";
import { assertWholeNumber, type Unit } from "./options.js";

/** The default largest serialised event (payload plus headers), in bytes: 1 MiB. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/** Headers of an event: string keys to string values (W3C `traceparent`, correlation ids...). */
export type EventHeaders = Record<string, string>;

/**
 * Serialises `payload` and checks it: JSON-serialisable (no functions, symbols, bigints
 * or cycles at the top), no `\u0000` (jsonb cannot store it), at most `maxBytes` bytes.
 * Returns the JSON text's byte length.
 */
export function assertPayload(payload: unknown, maxBytes: number, argument = "payload"): number {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (error) {
    throw new ValidationError(argument, `The ${argument} is not JSON-serialisable (${asError(error).message}); send plain JSON data.`);
  }
  if (json === undefined) {
    throw new ValidationError(argument, `The ${argument} is not JSON-serialisable (${typeof payload}); send plain JSON data (use null for "nothing").`);
  }
  const escape = unstorableEscape(json);
  if (escape === "\\u0000") {
    throw new ValidationError(argument, `The ${argument} contains the character \\u0000, which PostgreSQL's jsonb cannot store; remove or encode it.`);
  }
  if (escape !== undefined) {
    throw new ValidationError(
      argument,
      `The ${argument} contains a lone UTF-16 surrogate (${escape}), which is not Unicode text and which PostgreSQL's jsonb refuses; send well-formed strings.`,
    );
  }
  const bytes = Buffer.byteLength(json);
  if (bytes > maxBytes) {
    throw new ValidationError(argument, `The ${argument} is ${bytes} bytes as JSON; the limit is ${maxBytes} bytes (option maxPayloadBytes).`);
  }
  return bytes;
}

/** A UTF-16 surrogate without its other half (not Unicode text: jsonb refuses it). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The first escape in JSON text that jsonb cannot store: `\u0000`, or a lone surrogate,
 * which JSON.stringify writes as `\udXXX`. An escape counts only after an even number of
 * backslashes: the text `\\u0000` is an escaped backslash followed by "u0000", which is fine.
 */
function unstorableEscape(json: string): string | undefined {
  return /(?<!\\)(?:\\\\)*(\\u(?:0000|d[89a-f][0-9a-f]{2}))/i.exec(json)?.[1];
}

/** Checks that headers are a plain object of string values without `\u0000`. */
export function assertHeaders(headers: unknown): asserts headers is EventHeaders | undefined {
  if (headers === undefined) return;
  if (headers === null || typeof headers !== "object" || Array.isArray(headers)) {
    throw new ValidationError("headers", "headers must be a plain object of string values, e.g. { traceparent: '00-...' }.");
  }
  for (const [key, value] of Object.entries(headers)) {
    if (typeof value !== "string") {
      throw new ValidationError("headers", `Header ${JSON.stringify(key)} is a ${typeof value}; header values must be strings.`);
    }
    if (key.includes("\u0000") || value.includes("\u0000")) {
      throw new ValidationError("headers", `Header ${JSON.stringify(key)} contains \\u0000, which PostgreSQL cannot store.`);
    }
    if (LONE_SURROGATE.test(key) || LONE_SURROGATE.test(value)) {
      throw new ValidationError("headers", `Header ${JSON.stringify(key)} contains a lone UTF-16 surrogate, which PostgreSQL's jsonb refuses; send well-formed strings.`);
    }
  }
}

/** Checks an optional idempotency key: 1-255 characters that PostgreSQL can store (no `\u0000`, no lone surrogate). */
export function assertIdempotencyKey(key: unknown): asserts key is string | undefined {
  if (key === undefined) return;
  if (typeof key !== "string" || key.length < 1 || key.length > 255) {
    throw new ValidationError("idempotencyKey", "idempotencyKey must be a string of 1-255 characters.");
  }
  if (key.includes("\u0000") || LONE_SURROGATE.test(key)) {
    throw new ValidationError("idempotencyKey", "idempotencyKey contains \\u0000 or a lone UTF-16 surrogate, which PostgreSQL cannot store; use well-formed text.");
  }
}

/** Checks an optional whole number of milliseconds within [min, max]. */
export function assertMilliseconds(argument: string, value: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): asserts value is number | undefined {
  assertWholeNumber(argument, value, { min, max, unit: "milliseconds" });
}

/** Checks an optional whole number within [min, max] (of `unit`, when given). */
export function assertCount(argument: string, value: unknown, min: number, max: number, unit?: Unit): asserts value is number | undefined {
  assertWholeNumber(argument, value, { min, max, unit });
}
