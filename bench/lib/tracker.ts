/**
 * Bounded, verified measurement loops. A {@link DeliveryTracker} counts what producers
 * sent and what consumers handled (by a unique key, so duplicates are seen), and
 * {@link watch} waits for it to complete while printing progress every second, failing
 * with a clear error when the phase runs past its deadline or stops making progress.
 */
import { performance } from "node:perf_hooks";
import { log } from "./log.js";
import { perSecond } from "./stats.js";

/** A measured loop that did not finish or whose counts do not add up. */
export class BenchFailure extends Error {
  override readonly name = "BenchFailure";
}

/** Counts of one phase: sent, handled (unique keys), duplicate deliveries. */
export class DeliveryTracker {
  readonly phase: string;
  readonly expected: number;
  sent = 0;
  handled = 0;
  duplicates = 0;
  /** Handled items whose delivery was not the first attempt (a redelivery after the visibility timeout). */
  redelivered = 0;
  /** performance.now() of the first send, set by {@link markStart}. */
  startedAt = Number.NaN;
  /** performance.now() of the handling that completed the phase. */
  finishedAt = Number.NaN;
  readonly #seen = new Set<string>();
  readonly #done: Promise<void>;
  #resolve!: () => void;

  constructor(phase: string, expected: number) {
    this.phase = phase;
    this.expected = expected;
    this.#done = new Promise((resolve) => (this.#resolve = resolve));
  }

  /** Call just before the first send. */
  markStart(): void {
    if (Number.isNaN(this.startedAt)) this.startedAt = performance.now();
  }

  /** Records `count` sent items. */
  recordSent(count = 1): void {
    this.sent += count;
  }

  /** Records one handled item (`attempt` > 1: a redelivery); returns false for a duplicate. */
  recordHandled(key: string, at = performance.now(), attempt = 1): boolean {
    if (attempt > 1) this.redelivered += 1;
    if (this.#seen.has(key)) {
      this.duplicates += 1;
      return false;
    }
    this.#seen.add(key);
    this.handled += 1;
    if (this.handled === this.expected) {
      this.finishedAt = at;
      this.#resolve();
    }
    return true;
  }

  /** True when `key` was handled. */
  has(key: string): boolean {
    return this.#seen.has(key);
  }

  /** Resolves when `expected` distinct items are handled. */
  get done(): Promise<void> {
    return this.#done;
  }

  /** Milliseconds from the first send to the completing handling. */
  get elapsedMs(): number {
    return this.finishedAt - this.startedAt;
  }
}

/** Limits of {@link watch}. */
export interface WatchOptions {
  /** The whole phase must finish within this many milliseconds. */
  timeoutMs: number;
  /** Fail when `handled` has not moved for this many milliseconds. */
  stallMs: number;
  /** Milliseconds between progress lines (default 1,000). */
  progressEveryMs?: number;
  /** Rejections of the producers: a failed send fails the phase at once. */
  producers?: Promise<unknown>;
}

/**
 * Waits until `tracker` is done, printing progress; rejects with a {@link BenchFailure}
 * on timeout, stall, or a producer failure.
 */
export async function watch(tracker: DeliveryTracker, options: WatchOptions): Promise<void> {
  const began = performance.now();
  let lastHandled = -1;
  let lastMoveAt = began;
  let lastTickHandled = 0;
  let lastTickAt = began;
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      const now = performance.now();
      if (tracker.handled !== lastHandled) {
        lastHandled = tracker.handled;
        lastMoveAt = now;
      }
      log("progress", {
        phase: tracker.phase,
        elapsed: `${((now - began) / 1000).toFixed(1)}s`,
        sent: `${tracker.sent}/${tracker.expected}`,
        handled: tracker.handled,
        duplicates: tracker.duplicates,
        redelivered: tracker.redelivered,
        rate: `${perSecond(tracker.handled - lastTickHandled, now - lastTickAt)}/s`,
      });
      lastTickHandled = tracker.handled;
      lastTickAt = now;
      if (now - began > options.timeoutMs) {
        reject(new BenchFailure(`${tracker.phase}: timed out after ${Math.round(options.timeoutMs / 1000)} s with ${tracker.handled}/${tracker.expected} handled (${tracker.sent} sent).`));
      } else if (now - lastMoveAt > options.stallMs) {
        reject(
          new BenchFailure(
            `${tracker.phase}: consumption stalled for ${Math.round(options.stallMs / 1000)} s at ${tracker.handled}/${tracker.expected} handled ` +
              `(${tracker.sent} sent, ${tracker.redelivered} redelivered so far). Messages that were read but neither handled nor released ` +
              `stay invisible until their visibility timeout passes.`,
          ),
        );
      }
    }, options.progressEveryMs ?? 1_000);
  });
  const producerFailure = (options.producers ?? new Promise<never>(() => {})).then(
    () => new Promise<never>(() => {}),
    (error: unknown) => {
      throw new BenchFailure(`${tracker.phase}: a producer failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    },
  );
  // Whatever loses the race must not surface later as an unhandled rejection.
  guard.catch(() => {});
  producerFailure.catch(() => {});
  try {
    await Promise.race([tracker.done, guard, producerFailure]);
  } finally {
    clearInterval(timer);
  }
}

/**
 * Checks a finished phase: `handled` equals what was sent and expected, no duplicates,
 * and every key in `sentKeys` (when given) was handled. Throws a {@link BenchFailure}
 * listing what is wrong; logs the verified counts otherwise.
 */
export function verify(tracker: DeliveryTracker, sentKeys?: Iterable<string>): void {
  const problems: string[] = [];
  if (tracker.sent !== tracker.expected) problems.push(`sent ${tracker.sent}, expected ${tracker.expected}`);
  if (tracker.handled !== tracker.sent) problems.push(`handled ${tracker.handled} distinct, sent ${tracker.sent}`);
  if (tracker.duplicates > 0) problems.push(`${tracker.duplicates} duplicate deliveries`);
  let missing = 0;
  let keys = 0;
  if (sentKeys) {
    for (const key of sentKeys) {
      keys += 1;
      if (!tracker.has(key)) missing += 1;
    }
    if (keys !== tracker.sent) problems.push(`${keys} ids returned for ${tracker.sent} sent`);
    if (missing > 0) problems.push(`${missing} sent ids never handled`);
  }
  log("verified", {
    phase: tracker.phase,
    sent: tracker.sent,
    handled: tracker.handled,
    duplicates: tracker.duplicates,
    redelivered: tracker.redelivered,
    ids: sentKeys ? keys : undefined,
    missing: sentKeys ? missing : undefined,
    ok: problems.length === 0,
  });
  if (problems.length > 0) throw new BenchFailure(`${tracker.phase}: counts do not match: ${problems.join("; ")}.`);
}

/**
 * Runs `task(index)` for index 0..count-1 with at most `concurrency` in flight; stops
 * starting new ones when `signal` aborts. Rejects with the first failure.
 */
export async function inFlight(count: number, concurrency: number, task: (index: number) => Promise<void>, signal?: AbortSignal): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && !signal?.aborted) {
      const index = next;
      next += 1;
      await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** Polls `probe` until it returns true or `timeoutMs` passes; returns the last answer. */
export async function waitFor(probe: () => Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
