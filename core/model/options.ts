/**
 * Checks of option objects, shared by every public entry point and the adapters: an
 * unknown key is a {@link ValidationError} that names it, where it was given, the keys
 * allowed there and the closest one (`poool`: did you mean `pool`?), and a number out of
 * range names its unit. Options are never silently ignored.
 */
import { ValidationError } from "./errors.js";

/** What a whole-number option counts, named in its error message. */
export type Unit = "milliseconds" | "seconds" | "bytes" | "messages" | "connections" | "attempts" | "partitions" | "statements" | "events";

/** Range of {@link assertWholeNumber}. */
export interface WholeNumberRange {
  /** Smallest allowed value (default 0). */
  min?: number;
  /** Largest allowed value (default `Number.MAX_SAFE_INTEGER`: no bound is named). */
  max?: number;
  /** What the number counts, named in the message; omit for a plain count. */
  unit?: Unit;
}

/** Edit distance at most which an unknown key is taken for a misspelling of an allowed one. */
const SUGGESTION_DISTANCE = 2;

/**
 * The allowed keys of an options type, written as `{ key: true, ... }` so that the
 * compiler rejects a list missing or adding a key of `T`.
 *
 * @example
 * const POOL_KEYS = optionKeys<PoolOptions>({ max: true, idleTimeoutMs: true, connectionTimeoutMs: true });
 */
export function optionKeys<T>(keys: { readonly [K in keyof Required<T>]: true }): readonly string[] {
  return Object.freeze(Object.keys(keys));
}

/** The first own key of `options` not in `allowed` (with `skipUndefined`, keys whose value is undefined are ignored). */
export function unknownKeyOf(options: object, allowed: readonly string[], skipUndefined = false): string | undefined {
  return Object.keys(options).find((key) => !allowed.includes(key) && !(skipUndefined && (options as Record<string, unknown>)[key] === undefined));
}

/** The allowed key within edit distance 2 of `key` (the nearest; the first listed on a tie), if any. */
export function closestKey(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = SUGGESTION_DISTANCE + 1;
  for (const candidate of allowed) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** The message of an unknown key: the key, where it was given, the closest allowed key and every allowed key. */
export function unknownKeyMessage(where: string, key: string, allowed: readonly string[]): string {
  const suggestion = closestKey(key, allowed);
  const hint = suggestion === undefined ? "" : ` (did you mean ${JSON.stringify(suggestion)}?)`;
  const list = allowed.length > 0 ? `allowed: ${allowed.join(", ")}` : "it takes no options";
  return `Unknown option ${JSON.stringify(key)} in ${where}${hint}; ${list}.`;
}

/**
 * Throws a {@link ValidationError} unless `options` is undefined or an object whose own
 * keys are all in `allowed`. `where` says where the options were given (e.g.
 * `CoreSystem.connect options.pool`); the error's `argument` is the key, prefixed with
 * `path` when given (`pool.maxx`).
 */
export function assertKnownKeys(where: string, options: unknown, allowed: readonly string[], path?: string): void {
  if (options === undefined) return;
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new ValidationError(path ?? "options", `${where} must be an object with the keys ${allowed.join(", ")}; got ${Array.isArray(options) ? "an array" : String(options)}.`);
  }
  const key = unknownKeyOf(options, allowed);
  if (key !== undefined) throw new ValidationError(path === undefined ? key : `${path}.${key}`, unknownKeyMessage(where, key, allowed));
}

/** Throws a {@link ValidationError} unless `value` is undefined or a whole number within the range, naming its unit. */
export function assertWholeNumber(argument: string, value: unknown, range: WholeNumberRange = {}): asserts value is number | undefined {
  if (value === undefined) return;
  const { min = 0, max = Number.MAX_SAFE_INTEGER, unit } = range;
  if (typeof value === "number" && Number.isInteger(value) && value >= min && value <= max) return;
  const what = unit === undefined ? "a whole number" : `a whole number of ${unit}`;
  const bounds = max === Number.MAX_SAFE_INTEGER ? `, at least ${min}` : ` from ${min} to ${max}`;
  throw new ValidationError(argument, `${argument} must be ${what}${bounds}; got ${String(value)}.`);
}

/** Levenshtein distance (insertions, deletions and substitutions of one character). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
