/**
 * The consumer of one queue on one node. `concurrency` lanes each loop:
 *
 *   1. read up to `prefetch` messages, as pgmq.read does but by a statement prepared per
 *      queue (queries/queue-table.ts): invisible to others for the visibility timeout;
 *      read_ct counts the attempt even if this process then dies;
 *   2. open a transaction and lock those messages (FOR UPDATE, by id and read count), so
 *      no other consumer runs them while this transaction lives, however long the
 *      handler takes (reads skip locked rows); with `readInTransaction`, steps 1 and 2
 *      are one take inside the transaction (locks only, nothing written);
 *   3. hand each message to the dispatcher (events, requests, direct messages), its
 *      handler behind its own savepoint and, if set, a timeout;
 *   4. in the same transaction, run the dispatcher's follow-up (a reply), delete the
 *      settled messages and record the failed ones (retry after a backoff, or move to the
 *      dead-letter queue after the last attempt);
 *   5. commit: a handler's writes, its reply and its acknowledgement are atomic.
 *
 * On a pipelining connection `begin` leaves with the read and `commit` with the
 * settlement, so a batch whose handlers do not query costs two round trips.
 *
 * A lane with nothing to read sleeps until a NOTIFY for its queue or the poll interval.
 */
import type pg from "pg";
import { backoffDelay, type BackoffOptions } from "../model/backoff.js";
import { isConnectionFailure } from "../db/database.js";
import { HandlerTimeoutError, asError } from "../model/errors.js";
import { SavepointClient, type HandlerClient } from "./handler-client.js";
import type { Logger } from "../model/logger.js";
import type { ConsumerObserver } from "../metrics/metrics.js";
import { jitteredBackoff } from "../db/dedicated-connection.js";
import { failMessage, type RecordedError } from "./queries/fail-message.js";
import { QueueTable, type QueueMessage } from "./queries/queue-table.js";
import type { NodeMessage } from "../requests/queries/send-to-node.js";

/** Settings of a consumer, defaults applied. */
export interface ConsumerSettings {
  concurrency: number;
  prefetch: number;
  maxAttempts: number;
  backoff: BackoffOptions;
  visibilityTimeoutMs: number;
  pollIntervalMs: number;
  /** Milliseconds a handler may run before it is aborted and rolled back; undefined: no limit. */
  timeoutMs: number | undefined;
  /**
   * Take messages inside the batch transaction (one phase: row locks, nothing written)
   * instead of reading them in a commit of their own. Saves a round trip, a lock step and a
   * row version per message, but attempts are not counted: a process that dies mid-batch
   * rolls the take back and the message is visible again at once. Only for dispatchers
   * that settle every message they are given (requests answer a failure with an error
   * reply; their deadline bounds re-runs); events do not use it (a poison event must reach
   * maxAttempts).
   */
  readInTransaction: boolean;
}

/** What a dispatcher gets for one message. */
export interface DeliveryScope {
  /** The handler's transaction (savepoint-guarded). */
  transaction: HandlerClient;
  /** Aborted on the handler's timeout or when the consumer stops past its grace period. */
  signal: AbortSignal;
}

/**
 * Messages to send in the batch transaction once a message is settled (a request's
 * reply): the batch sends all of them in one statement before its acknowledgements, and
 * they leave when it commits.
 */
export type FollowUp = NodeMessage[];

/** Turns queue messages into handler calls; the consumer owns reading, locking, acks and retries. */
export interface Dispatcher {
  /** Handles one message; resolves to keep the handler's writes (and run the follow-up), throws to fail it. */
  deliver(message: QueueMessage, scope: DeliveryScope): Promise<FollowUp | void>;
  /** A delivery failed or timed out: return a follow-up to acknowledge it anyway (requests answer with the error), or nothing to retry it. */
  failed?(message: QueueMessage, error: unknown): FollowUp | undefined;
}

/** What a consumer needs. */
export interface ConsumerInit {
  pool: pg.Pool;
  /** Name for logs and errors, e.g. the group. */
  name: string;
  queue: string;
  settings: ConsumerSettings;
  dispatcher: Dispatcher;
  logger: Logger;
  /** Metrics hooks: handler outcomes and durations, dead letters (core/metrics.ts). */
  observer?: ConsumerObserver | undefined;
}

/** Milliseconds a cancelled statement gets to return before its connection is discarded. */
const CANCEL_GRACE_MS = 5_000;

type Delivery = { ok: true; followUp: FollowUp | undefined } | { ok: false; error: unknown };

/** How a batch ended: whether its lane should read again at once (a full batch, or a failed message visible again now) rather than sleep. */
interface BatchOutcome {
  readAgain: boolean;
}

/** Consumes one queue. */
export class QueueConsumer {
  readonly name: string;
  readonly queue: string;
  readonly settings: ConsumerSettings;
  readonly #pool: pg.Pool;
  readonly #dispatcher: Dispatcher;
  readonly #logger: Logger;
  readonly #observer: ConsumerObserver | undefined;
  readonly #lanes: Promise<void>[] = [];
  readonly #inFlight = new Set<AbortController>();
  /** Lanes waiting for work, woken one at a time. */
  readonly #wakers = new Set<() => void>();
  /** Lanes waiting after a failure, woken only by a stop. */
  readonly #backingOff = new Set<() => void>();
  #wakeGeneration = 0;
  #running = false;
  /** The queue's table and statements, looked up by the first read (again after a failure). */
  #table: Promise<QueueTable> | undefined;

  constructor(init: ConsumerInit) {
    this.name = init.name;
    this.queue = init.queue;
    this.settings = init.settings;
    this.#pool = init.pool;
    this.#dispatcher = init.dispatcher;
    this.#logger = init.logger.child({ consumer: init.name, queue: init.queue });
    this.#observer = init.observer;
  }

  /** Starts the lanes. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    for (let lane = 0; lane < this.settings.concurrency; lane += 1) this.#lanes.push(this.#runLane());
  }

  /**
   * Something may be waiting in the queue: wake one sleeping lane. A lane that then reads
   * a full batch wakes the next, so a burst spreads over the lanes without every NOTIFY
   * sending all of them to read at once.
   */
  wake(): void {
    this.#wakeGeneration += 1;
    const [first] = this.#wakers;
    first?.();
  }

  #wakeAll(): void {
    this.#wakeGeneration += 1;
    for (const waker of [...this.#wakers, ...this.#backingOff]) waker();
  }

  /**
   * Stops reading, lets in-flight handlers finish and gives back what was read but not
   * started. After `graceMs` the handlers' signals abort.
   */
  async stop(graceMs: number): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#wakeAll();
    const grace = setTimeout(() => {
      const reason = new HandlerTimeoutError(`The handler of ${this.name} (stopping, past the grace period)`, graceMs);
      this.#inFlight.forEach((controller) => controller.abort(reason));
    }, graceMs);
    grace.unref();
    await Promise.all(this.#lanes.splice(0));
    clearTimeout(grace);
  }

  async #runLane(): Promise<void> {
    let failures = 0;
    while (this.#running) {
      const generation = this.#wakeGeneration;
      try {
        const batch = this.settings.readInTransaction ? await this.#handleBatch((client) => this.#fetch(client)) : await this.#readThenHandle();
        failures = 0;
        // A partial batch with nothing to retry emptied the queue as far as this lane can
        // see; what arrives later wakes it (NOTIFY bumps the generation, even mid-batch).
        // Reading again at once would cost a transaction per batch for nothing.
        if (!batch.readAgain) await this.#sleep(generation, this.settings.pollIntervalMs);
      } catch (error) {
        failures += 1;
        const retryInMs = jitteredBackoff(failures);
        this.#logger.warn({ err: asError(error), retryInMs }, "consumer lane failed; retrying");
        await this.#sleep(undefined, retryInMs);
      }
    }
  }

  /** Two-phase: the read commits on its own (so the attempt counts even if this process dies), then the batch locks what it read. */
  async #readThenHandle(): Promise<BatchOutcome> {
    const messages = await this.#fetch(this.#pool);
    if (messages.length === 0) return { readAgain: false };
    const batch = await this.#handleBatch(async (client) => {
      const locked = await (await this.#queueTable()).lock(client, messages);
      return messages.filter((message) => locked.has(message.msgId));
    });
    return { readAgain: batch.readAgain || messages.length === this.settings.prefetch };
  }

  /**
   * A batch: read in a commit of its own (`db` is the pool) or, with `readInTransaction`,
   * taken in the batch transaction (`db` is its client). A full batch wakes another lane,
   * since more may be waiting.
   */
  async #fetch(db: pg.Pool | pg.PoolClient): Promise<QueueMessage[]> {
    const table = await this.#queueTable();
    const messages = this.settings.readInTransaction
      ? await table.take(db, this.settings.prefetch)
      : await table.read(db, this.#visibilitySeconds(), this.settings.prefetch);
    if (messages.length === this.settings.prefetch) this.wake();
    return messages;
  }

  #queueTable(): Promise<QueueTable> {
    this.#table ??= QueueTable.of(this.#pool, this.queue).catch((error: unknown) => {
      this.#table = undefined;
      throw error;
    });
    return this.#table;
  }

  #visibilitySeconds(): number {
    return Math.max(1, Math.ceil(this.settings.visibilityTimeoutMs / 1000));
  }

  /** Waits for a wake newer than `generation` (undefined: only for a stop) or `timeoutMs`. */
  #sleep(generation: number | undefined, timeoutMs: number): Promise<void> {
    if (!this.#running || (generation !== undefined && this.#wakeGeneration > generation)) return Promise.resolve();
    const sleepers = generation === undefined ? this.#backingOff : this.#wakers;
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      sleepers.add(done);
    });
  }

  /** Runs one batch transaction over the messages `take` claims in it. */
  async #handleBatch(take: (client: pg.PoolClient) => Promise<QueueMessage[]>): Promise<BatchOutcome> {
    const client = await this.#pool.connect();
    // pg-pool listens for errors only on idle clients: without this listener a backend
    // that dies while the batch holds its client would be an uncaught exception.
    let broken: Error | undefined;
    const onError = (error: Error): void => void (broken ??= error);
    client.on("error", onError);
    try {
      // On a pipelining connection (core/db/database.ts) the begin and the read, and
      // below the settlement and the commit, each leave in one write and cost one round trip.
      const [, messages] = await Promise.all([client.query("begin"), take(client)]);
      const settled: string[] = [];
      const unstarted: string[] = [];
      const outbound: NodeMessage[] = [];
      let retrying = false;
      for (const message of messages) {
        if (!this.#running) {
          unstarted.push(message.msgId);
          continue;
        }
        const startedAt = performance.now();
        const delivery = await this.#deliver(client, message);
        this.#observer?.delivered(delivery.ok, performance.now() - startedAt);
        const followUp = delivery.ok ? delivery.followUp : this.#dispatcher.failed?.(message, delivery.error);
        if (delivery.ok || followUp) {
          if (followUp) outbound.push(...followUp);
          settled.push(message.msgId);
        } else {
          if (await this.#recordFailure(client, message, delivery.error)) retrying = true;
        }
      }
      const table = await this.#queueTable();
      // A commit after a failed settlement only rolls back (and reports no error): the
      // settlement's rejection is what fails the batch.
      // Taken messages (readInTransaction) were never hidden: the commit gives back the unstarted ones.
      const released = this.settings.readInTransaction ? [] : unstarted;
      await Promise.all([table.settle(client, { acked: settled, released, outbound }), client.query("commit")]);
      return { readAgain: retrying || messages.length === this.settings.prefetch };
    } catch (error) {
      if (broken === undefined && (isConnectionFailure(error) || error instanceof PoisonedConnectionError)) broken = asError(error);
      if (broken === undefined) await client.query("rollback").catch(() => {});
      throw error;
    } finally {
      client.off("error", onError);
      // A connection that failed, or still runs an abandoned statement, is discarded, not pooled.
      client.release(broken);
    }
  }

  /** Hands one message to the dispatcher behind a savepoint and the handler timeout. */
  async #deliver(client: pg.PoolClient, message: QueueMessage): Promise<Delivery> {
    const transaction = new SavepointClient(client);
    const controller = new AbortController();
    this.#inFlight.add(controller);
    try {
      const followUp = await this.#bounded(this.#dispatcher.deliver(message, { transaction, signal: controller.signal }), controller.signal);
      try {
        await transaction.finish(true);
      } catch (error) {
        // The handler swallowed a failed statement and left its savepoint aborted.
        await transaction.finish(false);
        return { ok: false, error };
      }
      return { ok: true, followUp: followUp ?? undefined };
    } catch (error) {
      if (error instanceof HandlerTimeoutError) await this.#abandon(client, transaction, controller, error);
      await transaction.finish(false);
      return { ok: false, error: asError(error) };
    } finally {
      this.#inFlight.delete(controller);
    }
  }

  /**
   * The handler's work, given up with a HandlerTimeoutError when its timeout passes or when
   * `signal` aborts (a stop past its grace period): either way the handler is abandoned.
   */
  #bounded<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
    const timeoutMs = this.settings.timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const abandoned = new Promise<never>((_resolve, reject) => {
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => reject(new HandlerTimeoutError(`The handler of ${this.name}`, timeoutMs)), timeoutMs);
      }
      onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
    });
    work.catch(() => {}); // an abandoned handler may still reject later
    return Promise.race([work, abandoned]).finally(() => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort!);
    });
  }

  /**
   * A handler ran past its timeout (or a stop's grace): abort its signal, refuse its client, and stop its
   * running statement (pg_cancel_backend) so its savepoint can be rolled back. A statement
   * that will not stop poisons the connection: the whole batch is rolled back instead.
   */
  async #abandon(client: pg.PoolClient, transaction: SavepointClient, controller: AbortController, error: HandlerTimeoutError): Promise<void> {
    controller.abort(error);
    transaction.close("the handler timed out");
    if (await transaction.settled(50)) return;
    const pid = (client as unknown as { processID?: number }).processID;
    if (pid !== undefined) await this.#pool.query("select pg_cancel_backend($1)", [pid]).catch(() => {});
    if (!(await transaction.settled(CANCEL_GRACE_MS))) throw new PoisonedConnectionError(this.name);
  }

  /** Records a failed delivery (retry or dead letter); true when the message is visible again at once. */
  async #recordFailure(client: pg.PoolClient, message: QueueMessage, error: unknown): Promise<boolean> {
    const retryDelaySeconds = Math.ceil(backoffDelay(this.settings.backoff, message.readCount) / 1000);
    const outcome = await failMessage(client, {
      queue: this.queue,
      msgId: message.msgId,
      attempt: message.readCount,
      maxAttempts: this.settings.maxAttempts,
      retryDelaySeconds,
      error: recordError(error),
    });
    const log = { err: asError(error), msgId: message.msgId, attempt: message.readCount };
    if (outcome === "dead") this.#observer?.deadLettered();
    if (outcome === "dead") this.#logger.error(log, "handler failed on its last attempt; message dead-lettered");
    else this.#logger.warn({ ...log, retryInSeconds: retryDelaySeconds }, "handler failed; message will be retried");
    return outcome === "retry" && retryDelaySeconds === 0;
  }
}

/** A timed-out handler's statement would not stop: its connection cannot be reused. */
class PoisonedConnectionError extends Error {
  constructor(name: string) {
    super(`A timed-out handler of ${name} kept its statement running after pg_cancel_backend; its batch is rolled back and its connection discarded.`);
  }
}

function recordError(error: unknown): RecordedError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return { name: error.name, message: error.message, stack: error.stack, ...(typeof code === "string" ? { code } : {}) };
  }
  return { name: "NonError", message: String(error) };
}
