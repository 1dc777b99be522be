/**
 * A node's subscriptions: handlers grouped by consumer group, one {@link GroupConsumer}
 * per group. Options are per group, and must agree across a group's handlers on a node.
 */
import type pg from "pg";
import { assertBackoff, DEFAULT_BACKOFF } from "./backoff.js";
import { GroupConsumer, type ConsumerSettings, type Route } from "./consumer.js";
import { ValidationError } from "./errors.js";
import type { EventHandler, SubscribeOptions } from "./events.js";
import type { Logger } from "./logger.js";
import { assertGroup, assertPattern, groupQueueName } from "./names.js";
import { assertCount, assertMilliseconds } from "./payload.js";
import { subscribe } from "./queries/subscribe.js";
import { unsubscribe } from "./queries/unsubscribe.js";

interface GroupEntry {
  settings: ConsumerSettings;
  routes: Route[];
  consumer: GroupConsumer;
}

/** Compiles a validated pattern as `core.pattern_regex` does: `*` one segment, `**` one or more. */
export function patternMatcher(pattern: string): (type: string) => boolean {
  const source = pattern
    .split(".")
    .map((segment) => (segment === "**" ? ".+" : segment === "*" ? "[^.]+" : segment.replace(/\$/g, "\\$")))
    .join("\\.");
  const regex = new RegExp(`^${source}$`);
  return (type) => regex.test(type);
}

/** Applies defaults to, and validates, a group's options. */
export function consumerSettings(options: SubscribeOptions): ConsumerSettings {
  assertCount("concurrency", options.concurrency, 1, 1000);
  assertCount("prefetch", options.prefetch, 1, 1000);
  assertCount("maxAttempts", options.maxAttempts, 1, 1_000_000);
  assertBackoff(options.backoff);
  assertMilliseconds("visibilityTimeout", options.visibilityTimeout, 1_000, 86_400_000);
  assertMilliseconds("pollInterval", options.pollInterval, 10, 3_600_000);
  return {
    concurrency: options.concurrency ?? 1,
    prefetch: options.prefetch ?? 10,
    maxAttempts: options.maxAttempts ?? 5,
    backoff: options.backoff ?? DEFAULT_BACKOFF,
    visibilityTimeoutMs: options.visibilityTimeout ?? 30_000,
    pollIntervalMs: options.pollInterval ?? 2_000,
  };
}

/** The subscriptions of one node. */
export class NodeSubscriptions {
  readonly #pool: pg.Pool;
  readonly #namespace: string;
  readonly #logger: Logger;
  readonly #groups = new Map<string, GroupEntry>();
  #started = false;

  constructor(pool: pg.Pool, namespace: string, logger: Logger) {
    this.#pool = pool;
    this.#namespace = namespace;
    this.#logger = logger;
  }

  /** Adds a handler; once started, its subscription is recorded and its group consumed at once. */
  async add(pattern: string, handler: EventHandler, group: string, options: SubscribeOptions): Promise<void> {
    assertPattern(pattern);
    assertGroup(group);
    if (typeof handler !== "function") throw new ValidationError("handler", "handler must be a function (event, context) => ...");
    const settings = consumerSettings(options);
    const entry = this.#groups.get(group) ?? this.#createGroup(group, settings);
    if (!sameSettings(entry.settings, settings) && hasExplicitOptions(options)) {
      throw new ValidationError(
        "options",
        `Group ${group} already has other options on this node (${JSON.stringify(entry.settings)}); ` +
          `give every handler of a group the same options, or use another group.`,
      );
    }
    entry.routes.push({ pattern, matches: patternMatcher(pattern), handler });
    if (this.#started) {
      await subscribe(this.#pool, this.#namespace, group, pattern, entry.consumer.queue);
      entry.consumer.start();
    }
  }

  /** Removes a pattern's handlers of a group here and its durable subscription; the queue keeps its messages. */
  async remove(pattern: string, group: string): Promise<boolean> {
    assertPattern(pattern);
    assertGroup(group);
    const entry = this.#groups.get(group);
    if (entry) entry.routes = entry.routes.filter((route) => route.pattern !== pattern);
    return unsubscribe(this.#pool, this.#namespace, group, pattern);
  }

  /** Records every subscription, then starts every group's consumer. */
  async start(): Promise<void> {
    this.#started = true;
    for (const [group, entry] of this.#groups) {
      for (const pattern of new Set(entry.routes.map((route) => route.pattern))) {
        await subscribe(this.#pool, this.#namespace, group, pattern, entry.consumer.queue);
      }
    }
    for (const entry of this.#groups.values()) entry.consumer.start();
  }

  /** Wakes the consumers of `queue` (a NOTIFY named it), or all of them. */
  wake(queue?: string): void {
    for (const entry of this.#groups.values()) {
      if (queue === undefined || entry.consumer.queue === queue) entry.consumer.wake();
    }
  }

  /** Stops every consumer gracefully. */
  async stop(graceMs: number): Promise<void> {
    this.#started = false;
    await Promise.all([...this.#groups.values()].map((entry) => entry.consumer.stop(graceMs)));
  }

  #createGroup(group: string, settings: ConsumerSettings): GroupEntry {
    const entry: GroupEntry = {
      settings,
      routes: [],
      consumer: new GroupConsumer({
        pool: this.#pool,
        group,
        queue: groupQueueName(this.#namespace, group),
        settings,
        routes: () => entry.routes,
        logger: this.#logger,
      }),
    };
    this.#groups.set(group, entry);
    return entry;
  }
}

function hasExplicitOptions(options: SubscribeOptions): boolean {
  return Object.entries(options).some(([key, value]) => key !== "group" && value !== undefined);
}

function sameSettings(a: ConsumerSettings, b: ConsumerSettings): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
