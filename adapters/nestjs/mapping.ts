/**
 * How Nest's patterns and streams map onto the core: a normalised Nest pattern becomes a
 * core type (a deterministic, documented mapping when it is outside the core's grammar),
 * and a handler's Observable becomes a core reply (one value, or a stream of values).
 */
import { createHash } from "node:crypto";
import type { Observable } from "rxjs";
import { isEventType } from "../../core/index.js";

/** Header set when a custom serializer produced the payload: it is then the whole serialised Nest packet. */
export const NEST_PACKET_HEADER = "nest-packet";

const KEY_VALUE = /^[A-Za-z0-9_\-$]+$/;

/** Routes seen and their core types: an app has few routes, and each call asks again. */
const coreTypes = new Map<string, string>();
const MAX_REMEMBERED_ROUTES = 10_000;

/**
 * The core type of a Nest route (the string Nest's `normalizePattern` makes of a pattern).
 *
 * - A route that is a valid core type (`sum`, `order.created`, `math:*`) is used as is, so
 *   Nest events are core events of the same name.
 * - An object pattern with flat string or number values, such as `{ cmd: "sum" }` (route
 *   `{"cmd":"sum"}`), becomes its sorted `key:value` pairs joined by dots: `cmd:sum`,
 *   `{ cmd: "sum", role: "math" }` -> `cmd:sum.role:math`.
 * - Anything else becomes `nest.h` + the first 32 hex digits of the route's SHA-256.
 */
export function coreTypeOf(route: string): string {
  let type = coreTypes.get(route);
  if (type === undefined) {
    type = mapRoute(route);
    if (coreTypes.size < MAX_REMEMBERED_ROUTES) coreTypes.set(route, type);
  }
  return type;
}

function mapRoute(route: string): string {
  if (isEventType(route)) return route;
  const flat = flatPairs(route);
  if (flat !== undefined && isEventType(flat)) return flat;
  return `nest.h${createHash("sha256").update(route).digest("hex").slice(0, 32)}`;
}

/** `key:value` pairs of a normalised object route whose keys and values are simple; undefined otherwise. */
function flatPairs(route: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(route);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return undefined;
  const pairs: string[] = [];
  // Nest sorts the keys when it normalises, so the route's order is already canonical.
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value !== "string" && typeof value !== "number") return undefined;
    const text = String(value);
    if (!KEY_VALUE.test(key) || !KEY_VALUE.test(text)) return undefined;
    pairs.push(`${key}:${text}`);
  }
  return pairs.length > 0 ? pairs.join(".") : undefined;
}

/** What a message handler's Observable becomes for the core: one reply value, or a stream. */
export type CoreReply = { kind: "value"; value: unknown } | { kind: "stream"; values: AsyncIterable<unknown> };

/**
 * Subscribes to a handler's Observable and resolves once its shape is known: completed
 * with exactly one value -> that value (a plain core reply); any other count -> a stream
 * of the values in order. So a `Promise`/plain return answers like a core `onRequest`
 * handler, and only real streams pay for streaming. An error rejects (before the first
 * value) or ends the stream with it. Aborting `signal` unsubscribes.
 */
export function replyOf(source: Observable<unknown>, signal: AbortSignal): Promise<CoreReply> {
  const buffered: unknown[] = [];
  let done = false;
  let isStream = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  let settle: ((reply: CoreReply) => void) | undefined;
  let fail: ((error: unknown) => void) | undefined;
  const decided = new Promise<CoreReply>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });

  async function* stream(): AsyncGenerator<unknown, void, undefined> {
    try {
      for (;;) {
        if (buffered.length > 0) {
          yield buffered.shift();
          continue;
        }
        if (failure) throw failure.error;
        if (done) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      subscription.unsubscribe();
    }
  }
  const decideStream = (): void => {
    if (isStream) return;
    isStream = true;
    settle?.({ kind: "stream", values: stream() });
  };

  const subscription = source.subscribe({
    next: (value) => {
      buffered.push(value);
      if (buffered.length === 2) decideStream();
      wake?.();
    },
    error: (error: unknown) => {
      failure = { error };
      if (!isStream && buffered.length === 0) fail?.(error);
      else decideStream();
      wake?.();
    },
    complete: () => {
      done = true;
      if (!isStream && buffered.length === 1) settle?.({ kind: "value", value: buffered.shift() });
      else decideStream();
      wake?.();
    },
  });
  signal.addEventListener("abort", () => subscription.unsubscribe(), { once: true });
  return decided;
}
