/**
 * Retry delays, in BullMQ's shape: `{ type: 'exponential' | 'fixed', delay, maxDelay?, jitter? }`.
 */
import { ValidationError } from "./errors.js";
import { assertKnownKeys } from "./options.js";

/** How long to wait before the next attempt of a failed message. Milliseconds. */
export interface BackoffOptions {
  /** `fixed`: always `delay`; `exponential`: `delay * 2^(attempt-1)`. */
  type: "exponential" | "fixed";
  /** Base delay in milliseconds. */
  delay: number;
  /** Upper bound in milliseconds (default: one hour). */
  maxDelay?: number;
  /** Fraction (0-1) of the delay to randomise downwards, spreading retries out (default 0). */
  jitter?: number;
}

/** The consumer default: exponential from one second, capped at five minutes, 20 % jitter. */
export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = { type: "exponential", delay: 1_000, maxDelay: 300_000, jitter: 0.2 };

/** Milliseconds to wait after failed attempt number `attempt` (1-based). */
export function backoffDelay(options: BackoffOptions, attempt: number, random: () => number = Math.random): number {
  const base = options.type === "fixed" ? options.delay : options.delay * 2 ** Math.max(0, attempt - 1);
  const capped = Math.min(base, options.maxDelay ?? 3_600_000);
  const jitter = options.jitter ?? 0;
  return Math.round(capped * (1 - jitter * random()));
}

/** Throws unless `value` is a valid {@link BackoffOptions}. */
export function assertBackoff(value: unknown): asserts value is BackoffOptions | undefined {
  if (value === undefined) return;
  assertKnownKeys("backoff", value, ["type", "delay", "maxDelay", "jitter"], "backoff");
  const options = value as Partial<BackoffOptions> | null;
  const valid =
    options !== null &&
    typeof options === "object" &&
    (options.type === "exponential" || options.type === "fixed") &&
    Number.isInteger(options.delay) &&
    (options.delay ?? -1) >= 0 &&
    (options.maxDelay === undefined || (Number.isInteger(options.maxDelay) && options.maxDelay >= 0)) &&
    (options.jitter === undefined || (typeof options.jitter === "number" && options.jitter >= 0 && options.jitter <= 1));
  if (!valid) {
    throw new ValidationError(
      "backoff",
      "backoff must be { type: 'exponential' | 'fixed', delay: ms >= 0, maxDelay?: ms >= 0, jitter?: 0..1 }.",
    );
  }
}
