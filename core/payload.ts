/**
 * Checks of what an emit carries, made before anything is written: the payload must be
 * JSON that PostgreSQL's jsonb can hold, within the size limit; headers are a flat map
 * of strings.
 */
import { ValidationError } from "./errors.js";

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
    throw new ValidationError(argument, `The ${argument} is not JSON-serialisable (${(error as Error).message}); send plain JSON data.`);
  }
  if (json === undefined) {
    throw new ValidationError(argument, `The ${argument} is not JSON-serialisable (${typeof payload}); send plain JSON data (use null for "nothing").`);
  }
  if (json.includes("\\u0000")) {
    throw new ValidationError(argument, `The ${argument} contains the character \\u0000, which PostgreSQL's jsonb cannot store; remove or encode it.`);
  }
  const bytes = Buffer.byteLength(json);
  if (bytes > maxBytes) {
    throw new ValidationError(argument, `The ${argument} is ${bytes} bytes as JSON; the limit is ${maxBytes} bytes (option maxPayloadBytes).`);
  }
  return bytes;
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
  }
}

/** Checks an optional whole number of milliseconds within [min, max]. */
export function assertMilliseconds(argument: string, value: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): asserts value is number | undefined {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new ValidationError(argument, `${argument} must be a whole number of milliseconds from ${min} to ${max}; got ${String(value)}.`);
  }
}

/** Checks an optional whole number within [min, max]. */
export function assertCount(argument: string, value: unknown, min: number, max: number): asserts value is number | undefined {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new ValidationError(argument, `${argument} must be a whole number from ${min} to ${max}; got ${String(value)}.`);
  }
}
