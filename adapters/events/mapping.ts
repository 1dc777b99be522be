/**
 * How `node:events` calls map onto core events (README.md, "Mapping"): which names
 * travel, and how arguments become a payload and back.
 */
import { asError, assertEventType } from "../../core/index.js";
import { invalidArgType, invalidArgValue } from "./errors.js";

/** Events with a meaning of their own in `node:events`: they never leave the process. */
export const LOCAL_EVENTS: ReadonlySet<string> = new Set(["error", "newListener", "removeListener"]);

/**
 * Header of events published by `emit` in broadcast mode: the emitting instance (the
 * event's `sourceNode`) already ran its own listeners, so it skips its own copy.
 */
export const DELIVERED_LOCALLY_HEADER = "nexus-delivered-locally";

const NAME_RULE =
  "must be an event type of 1-255 characters: dot-separated segments of letters, digits, '_', '-', ':' and '$' " +
  "(symbols, 'error', 'newListener' and 'removeListener' stay local)";

/**
 * The name under which `eventName` travels on the bus, or undefined for a local-only
 * event (a symbol, `error`, `newListener`, `removeListener`). Throws a Node-style
 * `TypeError` for anything else outside the core's event type grammar.
 */
export function busName(eventName: unknown, caller: (...args: never[]) => unknown): string | undefined {
  if (typeof eventName === "symbol") return undefined;
  if (typeof eventName !== "string") throw invalidArgType("eventName", "string or symbol", eventName, caller);
  if (LOCAL_EVENTS.has(eventName)) return undefined;
  try {
    assertEventType(eventName, "eventName");
  } catch {
    throw invalidArgValue("eventName", NAME_RULE, eventName, caller);
  }
  return eventName;
}

/** True when `eventName` is a name that travels (no throw: for removals and counts). */
export function isBusName(eventName: unknown): eventName is string {
  if (typeof eventName !== "string" || LOCAL_EVENTS.has(eventName)) return false;
  try {
    assertEventType(eventName);
    return true;
  } catch {
    return false;
  }
}

/**
 * The payload of `emit(name, ...args)`: the arguments as a JSON array, taken now (a
 * listener that later changes an argument object does not change what is published).
 * Throws a Node-style `TypeError` when they are not JSON, hold `\u0000`, or exceed
 * `maxBytes` as JSON.
 */
export function argsToPayload(args: readonly unknown[], maxBytes: number, caller: (...args: never[]) => unknown): unknown[] {
  let json: string;
  try {
    json = JSON.stringify(args);
  } catch (error) {
    throw invalidArgValue("args", `must be JSON-serialisable to be published (${asError(error).message})`, args, caller);
  }
  if (json.includes("\\u0000")) throw invalidArgValue("args", "must not contain \\u0000, which PostgreSQL's jsonb cannot store", args, caller);
  const bytes = Buffer.byteLength(json);
  if (bytes > maxBytes) throw invalidArgValue("args", `must be at most ${maxBytes} bytes as JSON (option maxPayloadBytes); they are ${bytes}`, args, caller);
  return JSON.parse(json) as unknown[];
}

/** The listener arguments of a core event: an array payload is the argument list, anything else the only argument. */
export function payloadToArgs(payload: unknown): unknown[] {
  return Array.isArray(payload) ? payload : [payload];
}
