/**
 * The consumer of one group's queue on one node. `concurrency` lanes each loop:
 *
 *   1. read up to `prefetch` messages (pgmq.read: invisible to others for the visibility
 *      timeout; read_ct counts the attempt even if this process then dies);
 *   2. open a transaction and lock those messages (FOR UPDATE SKIP LOCKED), so no other
 *      consumer runs them while this transaction lives, however long the handler takes;
 *   3. run each message's handlers, each behind its own savepoint;
 *   4. in the same transaction, delete the handled messages and record the failed ones
 *      (retry after a backoff, or move to the dead-letter queue after the last attempt);
 *   5. commit: a handler's writes and its acknowledgement are atomic.
 *
 * A lane with nothing to read sleeps until a NOTIFY for its queue (see listener.ts) or
 * the poll interval.
 */
import type pg from "pg";
import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { isConnectionFailure } from "./database.js";
import type { CoreEvent, EventHandler, HandlerContext } from "./events.js";
import { SavepointClient } from "./handler-client.js";
import type { Logger } from "./logger.js";
import { ackMessages } from "./queries/ack-messages.js";
import { failMessage, type RecordedError } from "./queries/fail-message.js";
import { lockMessages } from "./queries/lock-messages.js";
import { readMessages, type QueueMessage } from "./queries/read-messages.js";
import { releaseMessages } from "./queries/release-messages.js";
import { jitteredBackoff } from "./listener.js";

/** Settings of a group's consumer, defaults applied. */
export interface ConsumerSettings {
  concurrency: number;
  prefetch: number;
  maxAttempts: number;
  backoff: BackoffOptions;
  visibilityTimeoutMs: number;
  pollIntervalMs: number;
}

/** A handler and the pattern it was registered with. */
export interface Route {
  pattern: string;
  matches: (type: string) => boolean;
  handler: EventHandler;
}

/** What a consumer needs from its node. */
export interface ConsumerInit {
  pool: pg.Pool;
  group: string;
  queue: string;
  settings: ConsumerSettings;
  routes: () => readonly Route[];
  logger: Logger;
}

interface Envelope {
  id: string;
  type: string;
  payload: unknown;
  headers?: Record<string, string>;
  emittedAt: string;
  sourceNode: string | null;
}

/** Consumes one group queue. */
export class GroupConsumer {
  readonly group: string;
  readonly queue: string;
  readonly settings: ConsumerSettings;
  readonly #pool: pg.Pool;
  readonly #routes: () => readonly Route[];
  readonly #logger: Logger;
  readonly #lanes: Promise<void>[] = [];
  readonly #inFlight = new Set<AbortController>();
  #wakeGeneration = 0;
  #wakers = new Set<() => void>();
  #running = false;

  constructor(init: ConsumerInit) {
    this.group = init.group;
    this.queue = init.queue;
    this.settings = init.settings;
    this.#pool = init.pool;
    this.#routes = init.routes;
    this.#logger = init.logger.child({ group: init.group, queue: init.queue });
  }

  /** Starts the lanes. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    for (let lane = 0; lane < this.settings.concurrency; lane += 1) this.#lanes.push(this.#runLane());
  }

  /** Something may be waiting in the queue: wake sleeping lanes. */
  wake(): void {
    this.#wakeGeneration += 1;
    for (const waker of this.#wakers) waker();
  }

  /**
   * Stops reading, lets in-flight handlers finish and gives back what was read but not
   * started. After `graceMs` the handlers' signals abort.
   */
  async stop(graceMs: number): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.wake();
    const grace = setTimeout(() => this.#inFlight.forEach((controller) => controller.abort(new Error("consumer stopping"))), graceMs);
    grace.unref();
    await Promise.all(this.#lanes.splice(0));
    clearTimeout(grace);
  }

  async #runLane(): Promise<void> {
    let failures = 0;
    while (this.#running) {
      const generation = this.#wakeGeneration;
      try {
        const messages = await readMessages(this.#pool, this.queue, this.#visibilitySeconds(), this.settings.prefetch);
        failures = 0;
        if (messages.length === 0) {
          await this.#sleep(generation, this.settings.pollIntervalMs);
          continue;
        }
        await this.#handleBatch(messages);
      } catch (error) {
        failures += 1;
        const retryInMs = jitteredBackoff(failures);
        this.#logger.warn({ err: describe(error), retryInMs }, "consumer lane failed; retrying");
        await this.#sleep(Number.NaN, retryInMs);
      }
    }
  }

  #visibilitySeconds(): number {
    return Math.max(1, Math.ceil(this.settings.visibilityTimeoutMs / 1000));
  }

  /** Waits for a wake newer than `generation` (NaN: only the timeout) or `timeoutMs`. */
  #sleep(generation: number, timeoutMs: number): Promise<void> {
    if (!this.#running || this.#wakeGeneration > generation) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wakers.delete(waker);
        resolve();
      };
      const waker = (): void => {
        if (!this.#running || !Number.isNaN(generation)) done();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#wakers.add(waker);
    });
  }

  async #handleBatch(messages: QueueMessage[]): Promise<void> {
    const client = await this.#pool.connect();
    let broken: unknown;
    const unstarted: string[] = [];
    try {
      await client.query("begin");
      const locked = await lockMessages(client, this.queue, messages.map((message) => message.msgId));
      const handled: string[] = [];
      for (const message of messages) {
        if (!locked.has(message.msgId)) continue;
        if (!this.#running) {
          unstarted.push(message.msgId);
          continue;
        }
        const error = await this.#deliver(client, message);
        if (error === undefined) handled.push(message.msgId);
        else await this.#recordFailure(client, message, error);
      }
      if (handled.length > 0) await ackMessages(client, this.queue, handled);
      if (unstarted.length > 0) await releaseMessages(client, this.queue, unstarted);
      await client.query("commit");
    } catch (error) {
      broken = isConnectionFailure(error) ? error : undefined;
      await client.query("rollback").catch(() => {});
      throw error;
    } finally {
      // A connection that failed is discarded, not returned to the pool.
      client.release(broken instanceof Error ? broken : undefined);
    }
  }

  /** Runs every matching handler of one message behind a savepoint; returns the error, if any. */
  async #deliver(client: pg.PoolClient, message: QueueMessage): Promise<unknown> {
    const envelope = message.message as Envelope;
    const event: CoreEvent = {
      id: envelope.id,
      messageId: message.msgId,
      type: envelope.type,
      payload: envelope.payload,
      headers: envelope.headers ?? {},
      emittedAt: new Date(envelope.emittedAt),
      sourceNode: envelope.sourceNode,
    };
    const routes = this.#routes().filter((route) => route.matches(event.type));
    if (routes.length === 0) {
      return new Error(`No handler for event type ${event.type} in group ${this.group} on this node; another instance of the group subscribed it.`);
    }
    const transaction = new SavepointClient(client);
    const controller = new AbortController();
    this.#inFlight.add(controller);
    const context: HandlerContext = {
      client: transaction,
      attempt: message.readCount,
      messageId: message.msgId,
      headers: event.headers,
      signal: controller.signal,
    };
    try {
      for (const route of routes) await route.handler(event, context);
    } catch (error) {
      await transaction.finish(false);
      return error ?? new Error("handler threw a nullish value");
    } finally {
      this.#inFlight.delete(controller);
    }
    try {
      await transaction.finish(true);
      return undefined;
    } catch (error) {
      // The handler swallowed a failed statement and left its savepoint aborted.
      await transaction.finish(false).catch(() => {});
      return error;
    }
  }

  async #recordFailure(client: pg.PoolClient, message: QueueMessage, error: unknown): Promise<void> {
    const retryDelaySeconds = Math.ceil(backoffDelay(this.settings.backoff, message.readCount) / 1000);
    const outcome = await failMessage(client, {
      queue: this.queue,
      msgId: message.msgId,
      attempt: message.readCount,
      maxAttempts: this.settings.maxAttempts,
      retryDelaySeconds,
      error: recordError(error),
    });
    const log = { msgId: message.msgId, attempt: message.readCount, err: describe(error) };
    if (outcome === "dead") this.#logger.error(log, "handler failed on its last attempt; message dead-lettered");
    else this.#logger.warn({ ...log, retryInSeconds: retryDelaySeconds }, "handler failed; message will be retried");
  }
}

function recordError(error: unknown): RecordedError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name, message: error.message, stack: error.stack, ...(typeof code === "string" ? { code } : {}) };
  }
  return { name: "NonError", message: String(error) };
}

function describe(error: unknown): { message: string; code?: string } {
  const code = (error as { code?: unknown } | null)?.code;
  return { message: error instanceof Error ? error.message : String(error), ...(typeof code === "string" ? { code } : {}) };
}
