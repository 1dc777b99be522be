/**
 * A node's consumers: one per event group, one per request group, and one for the node's
 * own queue. Options are per group and must agree across a group's handlers on a node.
 */
import type pg from "pg";
import { assertBackoff, DEFAULT_BACKOFF } from "../model/backoff.js";
import { QueueConsumer, type ConsumerSettings, type Dispatcher, type FollowUp } from "./consumer.js";
import { LazyTransactionClient } from "./handler-client.js";
import type { QueueMessage } from "./queries/queue-table.js";
import { EventDispatcher, patternMatcher, type Route } from "./dispatch.js";
import { RequestDispatcher, type ReplyOptions, type RequestHandler } from "../requests/dispatch.js";
import { HandlerTimeoutError, ValidationError } from "../model/errors.js";
import type { RequestEnvelope } from "../model/messages.js";
import type { EventHandler, SubscribeOptions } from "../model/events.js";
import type { NamespaceContext } from "../model/context.js";
import type { Logger } from "../model/logger.js";
import { assertGroup, assertPattern, groupQueueName, requestQueueName } from "../model/names.js";
import type { ConsumerObserver } from "../metrics/metrics.js";
import { assertCount, assertMilliseconds } from "../model/payload.js";
import { assertKnownKeys, optionKeys } from "../model/options.js";
import { subscribe } from "./queries/subscribe.js";
import { unsubscribe } from "./queries/unsubscribe.js";

/** Options of {@link CoreNode.onRequest}. */
export interface RespondOptions {
  /** The responder group (default: the node's display name). */
  group?: string;
  /** Transactions answering requests at once (default 4). */
  concurrency?: number;
  /**
   * Requests read per transaction (default 10). Replies leave when their transaction
   * commits, so a slow request delays the replies of the others read with it: use 1 for
   * slow handlers. The benchmark (bench/RESULTS.md) shows 1 costs most of the throughput.
   */
  prefetch?: number;
  /** Milliseconds a handler may run; past it, it is rolled back and the caller gets a timeout error. */
  timeout?: number;
  /** Milliseconds between reads when no NOTIFY arrives (default 2,000). */
  pollInterval?: number;
}

/** The keys {@link SubscribeOptions} allows. */
export const SUBSCRIBE_OPTION_KEYS = optionKeys<SubscribeOptions>({
  group: true, concurrency: true, prefetch: true, maxAttempts: true, backoff: true, visibilityTimeout: true, pollInterval: true, timeout: true,
});
/** The keys {@link RespondOptions} allows. */
export const RESPOND_OPTION_KEYS = optionKeys<RespondOptions>({ group: true, concurrency: true, prefetch: true, timeout: true, pollInterval: true });

type Kind = "event" | "request";

interface GroupEntry<THandler> {
  settings: ConsumerSettings;
  routes: Route<THandler>[];
  consumer: QueueConsumer;
  dispatcher: Dispatcher;
}

/** Applies defaults to, and validates, an event group's options. */
export function eventSettings(options: SubscribeOptions): ConsumerSettings {
  assertKnownKeys("node.onEvent options", options ?? null, SUBSCRIBE_OPTION_KEYS);
  assertCount("concurrency", options.concurrency, 1, 1000);
  assertCount("prefetch", options.prefetch, 1, 1000, "messages");
  assertCount("maxAttempts", options.maxAttempts, 1, 1_000_000, "attempts");
  assertBackoff(options.backoff);
  assertMilliseconds("visibilityTimeout", options.visibilityTimeout, 1_000, 86_400_000);
  assertMilliseconds("pollInterval", options.pollInterval, 10, 3_600_000);
  assertMilliseconds("timeout", options.timeout, 1, 86_400_000);
  return {
    concurrency: options.concurrency ?? 1,
    prefetch: options.prefetch ?? 10,
    maxAttempts: options.maxAttempts ?? 5,
    backoff: options.backoff ?? DEFAULT_BACKOFF,
    visibilityTimeoutMs: options.visibilityTimeout ?? 30_000,
    pollIntervalMs: options.pollInterval ?? 2_000,
    timeoutMs: options.timeout,
    readInTransaction: false,
  };
}

/** Applies defaults to, and validates, a request group's options; `defaultPollIntervalMs` is shorter on a system that cannot hear notifications. */
export function requestSettings(options: RespondOptions, defaultPollIntervalMs = 2_000): ConsumerSettings {
  assertKnownKeys("node.onRequest options", options ?? null, RESPOND_OPTION_KEYS);
  assertCount("concurrency", options.concurrency, 1, 1000);
  assertCount("prefetch", options.prefetch, 1, 1000, "messages");
  assertMilliseconds("timeout", options.timeout, 1, 86_400_000);
  assertMilliseconds("pollInterval", options.pollInterval, 10, 3_600_000);
  return {
    concurrency: options.concurrency ?? 4,
    prefetch: options.prefetch ?? 10,
    // A request is answered (with its error) on the first failure, never retried.
    maxAttempts: 1,
    backoff: DEFAULT_BACKOFF,
    visibilityTimeoutMs: Math.max(30_000, (options.timeout ?? 0) + 5_000),
    pollIntervalMs: options.pollInterval ?? defaultPollIntervalMs,
    timeoutMs: options.timeout,
    readInTransaction: true,
  };
}

/** The consumers of one node. */
export class NodeSubscriptions {
  readonly #pool: pg.Pool;
  readonly #namespace: string;
  readonly #logger: Logger;
  readonly #replies: ReplyOptions;
  readonly #observe: (group: string, kind: Kind) => ConsumerObserver;
  readonly #requestPollIntervalMs: number | undefined;
  readonly #events = new Map<string, GroupEntry<EventHandler>>();
  readonly #requests = new Map<string, GroupEntry<RequestHandler>>();
  /** Direct requests being answered, with what aborts each when a stop's grace runs out. */
  readonly #answering = new Map<Promise<unknown>, AbortController>();
  #started = false;

  /**
   * `context.logger` is the node's; `observe` gives each group's consumer its metrics;
   * `requestPollIntervalMs`, when given, replaces the default `pollInterval` of request
   * groups (see {@link requestSettings}).
   */
  constructor(context: NamespaceContext, replies: ReplyOptions, observe: (group: string, kind: Kind) => ConsumerObserver, requestPollIntervalMs?: number) {
    this.#pool = context.pool;
    this.#namespace = context.namespace;
    this.#logger = context.logger;
    this.#replies = replies;
    this.#observe = observe;
    this.#requestPollIntervalMs = requestPollIntervalMs;
  }

  /** Adds an event handler; once started, its subscription is recorded and its group consumed at once. */
  async addEvent(pattern: string, handler: EventHandler, group: string, options: SubscribeOptions): Promise<void> {
    const entry = this.#entry("event", pattern, handler, group, eventSettings(options), hasExplicitOptions(options));
    if (this.#started) await this.#record("event", group, pattern, entry);
  }

  /** Adds a request handler; once started, its subscription is recorded and its group consumed at once. */
  async addRequest(pattern: string, handler: RequestHandler, group: string, options: RespondOptions): Promise<void> {
    const entry = this.#entry("request", pattern, handler, group, requestSettings(options, this.#requestPollIntervalMs), hasExplicitOptions(options));
    if (this.#started) await this.#record("request", group, pattern, entry);
  }

  /** Removes a pattern's event handlers of a group here and its durable subscription; the queue keeps its messages. */
  async remove(pattern: string, group: string): Promise<boolean> {
    assertPattern(pattern);
    assertGroup(group);
    const entry = this.#events.get(group);
    if (entry) entry.routes = entry.routes.filter((route) => route.pattern !== pattern);
    return unsubscribe(this.#pool, this.#namespace, group, pattern);
  }

  /** The patterns this node answers requests of (in any group). */
  requestPatterns(): string[] {
    return [...new Set([...this.#requests.values()].flatMap((entry) => entry.routes.map((route) => route.pattern)))];
  }

  /**
   * Answers a request that came on the direct path: the handler of the first request
   * group here whose pattern matches runs outside a transaction (`ctx.client` opens one on
   * first use, committed when the handler returns), bounded by the group's `timeout`.
   * Resolves with the final reply to send (a stream's values leave as they come).
   */
  async answerDirect(request: RequestEnvelope): Promise<FollowUp> {
    const entry = [...this.#requests.values()].find((candidate) => candidate.routes.some((route) => route.matches(request.type)));
    const dispatcher = (entry?.dispatcher as RequestDispatcher | undefined) ?? new RequestDispatcher("(none on this node)", () => [], this.#replies);
    const now = new Date();
    const message: QueueMessage = { msgId: request.id, readCount: 1, enqueuedAt: now, readAt: now, receivedAt: performance.now(), message: request };
    const client = new LazyTransactionClient(this.#pool);
    const controller = new AbortController();
    const timeoutMs = entry?.settings.timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const handled = dispatcher.deliver(message, { transaction: client, signal: controller.signal });
    const settled = handled.catch(() => {});
    this.#answering.set(settled, controller);
    try {
      const timedOut =
        timeoutMs === undefined
          ? undefined
          : new Promise<never>((_, reject) => {
              timer = setTimeout(() => {
                const error = new HandlerTimeoutError(`request ${request.type}`, timeoutMs);
                controller.abort(error);
                reject(error);
              }, timeoutMs);
            });
      const replies = (await (timedOut ? Promise.race([handled, timedOut]) : handled)) ?? [];
      await client.finish(true);
      return replies;
    } catch (error) {
      await client.finish(false).catch(() => {});
      return dispatcher.failed(message, error);
    } finally {
      clearTimeout(timer);
      // Answered (or timed out, its signal aborted): a stop does not wait for it any longer.
      this.#answering.delete(settled);
    }
  }

  /** A requester cancelled request `correlationId`: stop its stream if it runs here. */
  cancel(correlationId: string): void {
    for (const entry of this.#requests.values()) (entry.dispatcher as RequestDispatcher).cancel(correlationId);
  }

  /** Records every subscription, then starts every consumer. */
  async start(): Promise<void> {
    this.#started = true;
    for (const [group, entry] of this.#events) {
      for (const pattern of patternsOf(entry)) await this.#record("event", group, pattern, entry);
    }
    for (const [group, entry] of this.#requests) {
      for (const pattern of patternsOf(entry)) await this.#record("request", group, pattern, entry);
    }
  }

  /** Wakes the consumers of `queue` (a NOTIFY named it), or all of them. */
  wake(queue?: string): void {
    for (const entry of [...this.#events.values(), ...this.#requests.values()]) {
      if (queue === undefined || entry.consumer.queue === queue) entry.consumer.wake();
    }
  }

  /** Stops every consumer gracefully, and lets direct requests being answered finish within `graceMs` (then aborts their signals). */
  async stop(graceMs: number): Promise<void> {
    this.#started = false;
    const entries = [...this.#events.values(), ...this.#requests.values()];
    await Promise.all([...entries.map((entry) => entry.consumer.stop(graceMs)), this.#finishAnswering(graceMs)]);
  }

  async #finishAnswering(graceMs: number): Promise<void> {
    if (this.#answering.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([Promise.all(this.#answering.keys()), graceOver]);
    clearTimeout(timer);
    for (const controller of this.#answering.values()) controller.abort(new Error("the node is stopping"));
  }

  async #record<THandler>(kind: Kind, group: string, pattern: string, entry: GroupEntry<THandler>): Promise<void> {
    await subscribe(this.#pool, this.#namespace, group, pattern, entry.consumer.queue, kind);
    entry.consumer.start();
  }

  #entry<THandler>(kind: Kind, pattern: string, handler: THandler, group: string, settings: ConsumerSettings, explicit: boolean): GroupEntry<THandler> {
    assertPattern(pattern);
    assertGroup(group);
    if (typeof handler !== "function") throw new ValidationError("handler", "handler must be a function (message, context) => ...");
    const groups = (kind === "event" ? this.#events : this.#requests) as Map<string, GroupEntry<THandler>>;
    let entry = groups.get(group);
    if (!entry) {
      entry = this.#createEntry<THandler>(kind, group, settings);
      groups.set(group, entry);
    } else if (explicit && JSON.stringify(entry.settings) !== JSON.stringify(settings)) {
      throw new ValidationError(
        "options",
        `Group ${group} already has other ${kind} options on this node (${JSON.stringify(entry.settings)}); ` +
          `give every handler of a group the same options, or use another group.`,
      );
    }
    entry.routes.push({ pattern, matches: patternMatcher(pattern), handler });
    return entry;
  }

  #createEntry<THandler>(kind: Kind, group: string, settings: ConsumerSettings): GroupEntry<THandler> {
    const routes: Route<THandler>[] = [];
    const entry = { settings, routes } as GroupEntry<THandler>;
    entry.dispatcher =
      kind === "event"
        ? new EventDispatcher(`group ${group}`, () => entry.routes as unknown as Route<EventHandler>[])
        : new RequestDispatcher(group, () => entry.routes as unknown as Route<RequestHandler>[], this.#replies);
    entry.consumer = new QueueConsumer({
      pool: this.#pool,
      name: `${kind} group ${group}`,
      queue: kind === "event" ? groupQueueName(this.#namespace, group) : requestQueueName(this.#namespace, group),
      settings,
      dispatcher: entry.dispatcher,
      logger: this.#logger,
      observer: this.#observe(group, kind),
    });
    return entry;
  }
}

function patternsOf(entry: GroupEntry<unknown>): Set<string> {
  return new Set(entry.routes.map((route) => route.pattern));
}

function hasExplicitOptions(options: object): boolean {
  return Object.entries(options).some(([key, value]) => key !== "group" && value !== undefined);
}
