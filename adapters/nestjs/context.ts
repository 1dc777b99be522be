/**
 * `PgContext`: what `@Ctx()` gives a handler on the Postgres transport, like `RmqContext`
 * or `RedisContext` on Nest's own.
 */
import { BaseRpcContext } from "@nestjs/microservices";
import { InvalidStateError, type EventHeaders, type HandlerClient } from "../../core/index.js";

/** The arguments a {@link PgContext} carries (`getArgs()`, as Nest's contexts do). */
export interface PgContextArgs {
  /** The Nest pattern as Nest normalises it (`{"cmd":"sum"}` for `{ cmd: "sum" }`). */
  pattern: string;
  /** The core type the pattern maps to (see the README's mapping). */
  type: string;
  /** The queue message id (events) or the request's correlation id (requests). */
  messageId: string;
  /** The event's id in the event log; for requests, the correlation id. */
  id: string;
  /** 1 on the first delivery, 2 on the first retry, and so on (requests: always 1). */
  attempt: number;
  /** Headers as sent (a W3C `traceparent` included, untouched). */
  headers: EventHeaders;
  /** Aborted when the handler should give up (its timeout passed, the server is stopping, or the caller cancelled). */
  signal: AbortSignal;
  /** The handler's transaction: its writes commit with the acknowledgement (or the reply). */
  client: HandlerClient;
  /** Settles a `noAck: false` event; undefined when the server acknowledges on its own. */
  settle: ((outcome: { ack: true } | { ack: false; error?: unknown }) => void) | undefined;
}

/** The context of one message on the Postgres transport: `@Ctx() context: PgContext`. */
export class PgContext extends BaseRpcContext<[PgContextArgs]> {
  constructor(args: [PgContextArgs]) {
    super(args);
  }

  /** The Nest pattern as Nest normalises it (`{"cmd":"sum"}` for `{ cmd: "sum" }`). */
  getPattern(): string {
    return this.args[0].pattern;
  }

  /** The core type the pattern maps to (e.g. `cmd:sum`). */
  getType(): string {
    return this.args[0].type;
  }

  /** The queue message id (events) or the request's correlation id (requests). */
  getMessageId(): string {
    return this.args[0].messageId;
  }

  /** The event's id in the event log (the same in every group's copy); for requests, the correlation id. */
  getId(): string {
    return this.args[0].id;
  }

  /** 1 on the first delivery, 2 on the first retry, and so on. */
  getAttempt(): number {
    return this.args[0].attempt;
  }

  /** The message's headers (metadata), e.g. a `traceparent`. */
  getHeaders(): EventHeaders {
    return this.args[0].headers;
  }

  /** Aborted when the handler should give up. */
  getSignal(): AbortSignal {
    return this.args[0].signal;
  }

  /**
   * The handler's transaction client: writes through it commit together with the
   * message's acknowledgement (events) or reply (requests), and roll back on failure.
   */
  getClient(): HandlerClient {
    return this.args[0].client;
  }

  /**
   * With `noAck: false`: acknowledges the event; the handler's transaction commits when
   * the handler's stream has completed. Throws when the server acknowledges on its own.
   */
  ack(): void {
    this.#settler()({ ack: true });
  }

  /**
   * With `noAck: false`: rejects the event; its transaction rolls back and it is retried,
   * then dead-lettered after `maxAttempts`, as a throwing handler's is.
   */
  nack(error?: unknown): void {
    this.#settler()({ ack: false, error });
  }

  #settler(): NonNullable<PgContextArgs["settle"]> {
    const settle = this.args[0].settle;
    if (!settle) throw new InvalidStateError("ack()/nack() need the PgServer option noAck: false; with the default (noAck: true) events are acknowledged when the handler's stream completes.");
    return settle;
  }
}
