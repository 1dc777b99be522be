/**
 * The one thing every capability is given: what it needs of the namespace it works in.
 * `CoreSystem` makes it once; capabilities (dead letters, metrics, the event log,
 * schedules, roles, membership, delivery and requests) take it in their constructor, so
 * none of them needs the system or a node.
 */
import type pg from "pg";
import type { Logger } from "./logger.js";

/** Limits that every entry point of the namespace enforces. */
export interface NamespaceLimits {
  /** Largest serialised payload, in bytes. */
  readonly maxPayloadBytes: number;
  /** Milliseconds during which a repeated idempotency key publishes nothing. */
  readonly idempotencyWindowMs: number;
}

/** A namespace of one database, as a capability sees it. */
export interface NamespaceContext {
  /** The namespace's name. */
  readonly namespace: string;
  /** The system's connection pool. */
  readonly pool: pg.Pool;
  /** The system's logger, bound to the namespace. */
  readonly logger: Logger;
  readonly limits: NamespaceLimits;
  /** Wraps a driver error in a typed error naming what failed (`doing`: "list dead letters"). */
  toError(error: unknown, doing: string): Error;
  /** Throws `ClosedError` once the system is closed. */
  assertOpen(): void;
}
