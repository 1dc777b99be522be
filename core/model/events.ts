/**
 * The event envelope and the handler contract, shared by every adapter.
 */
import type { BackoffOptions } from "./backoff.js";
import type { HandlerClient } from "../delivery/handler-client.js";
import type { EventHeaders } from "./payload.js";

/** An event as a handler receives it. */
export interface CoreEvent<TPayload = unknown> {
  /** The event's UUID: the same in the log and in every group's copy. */
  id: string;
  /** The queue message id of this group's copy (a bigint, as a string). */
  messageId: string;
  /** The event type, e.g. `order.created`. */
  type: string;
  /** The JSON payload as emitted (with jsonb's key order). */
  payload: TPayload;
  /** Headers as emitted. */
  headers: EventHeaders;
  /** When the event was emitted (its transaction's start). */
  emittedAt: Date;
  /** The node that emitted it, if any. */
  sourceNode: string | null;
}

/** What a handler gets beside the event. */
export interface HandlerContext {
  /**
   * The handler's transaction: its writes commit together with the message's
   * acknowledgement, or roll back with it when the handler throws.
   */
  client: HandlerClient;
  /** 1 on the first delivery, 2 on the first retry, and so on. */
  attempt: number;
  /** The queue message id of this copy, as on the event. */
  messageId: string;
  /** The event's headers. */
  headers: EventHeaders;
  /** Aborted when the handler should give up: its timeout passed, or the node is stopping past its grace period. */
  signal: AbortSignal;
}

/** A handler of events; a throw (or rejection) rolls its transaction back and retries the event later. */
export type EventHandler<TPayload = unknown> = (event: CoreEvent<TPayload>, context: HandlerContext) => unknown;

/** Options of {@link CoreNode.emit}. */
export interface EmitOptions {
  /** Headers carried with the event (string values). */
  headers?: EventHeaders;
  /** Milliseconds before the event becomes visible to consumers (rounded up to whole seconds). */
  delay?: number;
  /** A key that makes repeats within the idempotency window publish nothing and return the first event's id. */
  idempotencyKey?: string;
  /**
   * A `pg` client inside an open transaction: the event is published only if that
   * transaction commits (a transactional outbox without an outbox table).
   */
  client?: { query: (config: { text: string; values: unknown[] }) => Promise<{ rows: unknown[] }> };
}

/** One event of {@link CoreNode.emitBatch}. */
export interface BatchEvent {
  type: string;
  payload: unknown;
  headers?: EventHeaders;
  delay?: number;
  idempotencyKey?: string;
}

/** Options of {@link CoreNode.onEvent}; every option applies to the whole group on this node. */
export interface SubscribeOptions {
  /** The consumer group; instances of one group share its events. Default: the node's display name. */
  group?: string;
  /** Handler transactions running at once (default 1). */
  concurrency?: number;
  /** Messages read per transaction (default 10). */
  prefetch?: number;
  /** Deliveries before a failing event moves to the dead-letter queue (default 5). */
  maxAttempts?: number;
  /** Delay before each retry (default exponential from 1 s, 20 % jitter, at most 5 min). */
  backoff?: BackoffOptions;
  /** Milliseconds a read message stays invisible to other consumers (default 30,000; whole seconds). */
  visibilityTimeout?: number;
  /** Milliseconds between reads when no NOTIFY arrives (default 2,000). */
  pollInterval?: number;
  /**
   * Milliseconds a handler may run. Past it, its `signal` aborts, its transaction is
   * rolled back (a running statement is cancelled), its client refuses further use, and
   * the event is retried. Default: no limit.
   */
  timeout?: number;
}
