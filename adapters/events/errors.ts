/**
 * The adapter's errors. Bad arguments are Node-style `TypeError`s with a `code`
 * (`ERR_INVALID_ARG_VALUE`, `ERR_INVALID_ARG_TYPE`), as `node:events` throws them; a
 * publish that fails after `emit` returned is a {@link PublishError}.
 */
import { inspect } from "node:util";
import { ErrorCode, NexusError, asError } from "../../core/index.js";

/**
 * A `TypeError` carrying a Node error code, its stack starting at the caller of `caller`.
 * Deliberately Node's vocabulary, not `ErrorCode`: the adapter stands in for `node:events`.
 */
export class NodeStyleTypeError extends TypeError {
  /** `ERR_INVALID_ARG_VALUE` or `ERR_INVALID_ARG_TYPE`, as in Node's own errors. */
  readonly code: "ERR_INVALID_ARG_VALUE" | "ERR_INVALID_ARG_TYPE";

  constructor(code: NodeStyleTypeError["code"], message: string, caller?: (...args: never[]) => unknown) {
    super(message);
    this.code = code;
    if (caller) Error.captureStackTrace(this, caller);
  }
}

/** `The argument '<argument>' <reason>. Received <value>`: Node's ERR_INVALID_ARG_VALUE. */
export function invalidArgValue(argument: string, reason: string, value: unknown, caller?: (...args: never[]) => unknown): NodeStyleTypeError {
  return new NodeStyleTypeError("ERR_INVALID_ARG_VALUE", `The argument '${argument}' ${reason}. Received ${inspect(value, { depth: 0 })}`, caller);
}

/** `The "<argument>" argument must be of type <types>. Received type ...`: Node's ERR_INVALID_ARG_TYPE. */
export function invalidArgType(argument: string, types: string, value: unknown, caller?: (...args: never[]) => unknown): NodeStyleTypeError {
  const received = value === null || value === undefined ? String(value) : `type ${typeof value} (${inspect(value, { depth: 0 })})`;
  return new NodeStyleTypeError("ERR_INVALID_ARG_TYPE", `The "${argument}" argument must be of type ${types}. Received ${received}`, caller);
}

/**
 * `emit` returned before its event was committed, and publishing it then failed. Sent to
 * the emitter's `error` event; `cause` is the core's error (a `ConnectionError`, a
 * `ClosedError`, ...).
 */
export class PublishError extends NexusError {
  /** The event that was not published. */
  readonly eventName: string;

  /** `retryable` is the cause's: whether emitting it again may succeed. */
  constructor(eventName: string, cause: unknown) {
    super(ErrorCode.publishFailed, `Event ${eventName} was emitted but could not be published: ${asError(cause).message}`, {
      cause,
      retryable: (cause as { retryable?: unknown } | null)?.retryable === true,
    });
    this.name = "PublishError";
    this.eventName = eventName;
  }
}
