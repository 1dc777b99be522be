/**
 * `PgRecordBuilder`: per-message options for `PgClient.send`/`emit`, as `RmqRecordBuilder`
 * is for the RMQ transport.
 */
import type { EventHeaders } from "../../core/index.js";

/** Per-message options a {@link PgRecord} carries. */
export interface PgRecordOptions {
  /** Headers (metadata) carried to the handler, e.g. a W3C `traceparent`. */
  headers?: EventHeaders;
  /** Events: milliseconds before the event becomes visible (rounded up to whole seconds by the core). */
  delay?: number;
  /** Events: repeats of this key within the core's idempotency window publish nothing. */
  idempotencyKey?: string;
}

/** Data with per-message options; build it with {@link PgRecordBuilder}. */
export class PgRecord<TData = unknown> {
  constructor(
    /** The message's data, as the handler receives it. */
    readonly data: TData,
    /** Headers, delay and idempotency key. */
    readonly options: PgRecordOptions = {},
  ) {}
}

/**
 * Builds a {@link PgRecord}.
 *
 * @example
 * client.emit("order.created", new PgRecordBuilder({ id: 1 }).setHeaders({ traceparent }).setIdempotencyKey("order-1").build());
 */
export class PgRecordBuilder<TData = unknown> {
  #options: PgRecordOptions = {};

  constructor(private data?: TData) {}

  /** Sets the data. */
  setData(data: TData): this {
    this.data = data;
    return this;
  }

  /** Sets the headers (replacing earlier ones). */
  setHeaders(headers: EventHeaders): this {
    this.#options = { ...this.#options, headers };
    return this;
  }

  /** Sets an event's delay in milliseconds. */
  setDelay(delay: number): this {
    this.#options = { ...this.#options, delay };
    return this;
  }

  /** Sets an event's idempotency key. */
  setIdempotencyKey(idempotencyKey: string): this {
    this.#options = { ...this.#options, idempotencyKey };
    return this;
  }

  /** The record. */
  build(): PgRecord<TData> {
    return new PgRecord(this.data as TData, this.#options);
  }
}
