/**
 * The adapter's errors. Bad options are a {@link PgNestOptionsError}, in the core's
 * `ValidationError` family; handler failures carry stable codes the core passes on (it
 * sends a responder error's `code` and `data` to the caller).
 */
import { ErrorCode, NexusError, ValidationError } from "../../core/index.js";

/** Codes of the adapter's handler errors, stable for callers that branch on them. */
export const NestErrorCode = {
  /** A Nest event handler's stream errored: the event is left for retry, then the dead-letter queue. */
  eventHandlerFailed: ErrorCode.nestEventHandlerFailed,
  /** A Nest message handler's stream errored: its error value travels as the remote error's data. */
  rpcError: ErrorCode.nestRpcError,
} as const;

/** An option of `PgServer` or `PgClient` is missing or has the wrong shape; the message says what is allowed. */
export class PgNestOptionsError extends ValidationError {
  constructor(argument: string, message: string) {
    super(argument, message);
    this.name = "PgNestOptionsError";
  }
}

/**
 * A Nest `@EventPattern` handler failed (it threw, or its Observable errored, after Nest's
 * exception filters ran). Thrown to the core so the event is retried and, after
 * `maxAttempts`, dead-lettered; `error` is what the filters produced.
 */
export class NestEventHandlerError extends NexusError {
  /** The Nest pattern (as Nest normalises it) whose handler failed. */
  readonly pattern: string;
  /** The value the handler's stream errored with. */
  readonly error: unknown;

  constructor(pattern: string, error: unknown) {
    super(
      NestErrorCode.eventHandlerFailed,
      `Nest event handler for ${pattern} failed: ${describe(error)}. The event will be retried, then dead-lettered after maxAttempts.`,
    );
    this.name = "NestEventHandlerError";
    this.pattern = pattern;
    this.error = error;
  }
}

/**
 * A Nest `@MessagePattern` handler's stream errored. The core answers the caller with this
 * error's message, code and `data`; `data` is the value Nest's exception filters produced
 * (an `RpcException`'s error, or `{ status: "error", message: "Internal server error" }`),
 * which `PgClient` hands to the caller's Observable as Nest's own transports do.
 */
export class NestRpcError extends NexusError {
  /** The value Nest's exception filters produced: it reaches the caller as is. */
  readonly data: unknown;

  constructor(data: unknown) {
    super(NestErrorCode.rpcError, describe(data));
    this.name = "NestRpcError";
    this.data = data;
  }
}

/** A short text for an error value of any shape (Nest errors are often plain objects or strings). */
export function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "string") return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}
