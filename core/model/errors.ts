/**
 * The package's error hierarchy. Every error it throws is a {@link NexusError} with a
 * stable `code`, a `retryable` flag, the `cause` that led to it and, when the database
 * raised it, the PostgreSQL SQLSTATE.
 */

/** Stable machine-readable codes of {@link NexusError}. */
export const ErrorCode = {
  invalidArgument: "ERR_NEXUS_INVALID_ARGUMENT",
  invalidName: "ERR_NEXUS_INVALID_NAME",
  migrationChanged: "ERR_NEXUS_MIGRATION_CHANGED",
  schemaTooNew: "ERR_NEXUS_SCHEMA_TOO_NEW",
  migrationFailed: "ERR_NEXUS_MIGRATION_FAILED",
  connection: "ERR_NEXUS_CONNECTION",
  database: "ERR_NEXUS_DATABASE",
  closed: "ERR_NEXUS_CLOSED",
  requestTimeout: "ERR_NEXUS_REQUEST_TIMEOUT",
  noResponder: "ERR_NEXUS_NO_RESPONDER",
  /** The node a direct request went to stopped or died before it answered. */
  responderGone: "ERR_NEXUS_RESPONDER_GONE",
  remote: "ERR_NEXUS_REMOTE",
  handlerTimeout: "ERR_NEXUS_HANDLER_TIMEOUT",
  cancelled: "ERR_NEXUS_CANCELLED",
  unknownGroup: "ERR_NEXUS_UNKNOWN_GROUP",
  permissionDenied: "ERR_NEXUS_PERMISSION_DENIED",
  /** No handler on this node matches a delivered event, request or message: {@link NoHandlerError}. */
  noHandler: "ERR_NEXUS_NO_HANDLER",
  /** A durable stream's responder died mid-stream and another instance restarted it; the values received are incomplete. */
  streamRestarted: "ERR_NEXUS_STREAM_RESTARTED",
  /** A value that is not an `Error` was thrown or rejected; {@link asError} wrapped it in a {@link NonError}. */
  nonError: "ERR_NEXUS_NON_ERROR",
  /** A call came at a time its object does not allow it (not started, already running, ...): {@link InvalidStateError}. */
  invalidState: "ERR_NEXUS_INVALID_STATE",
  /** A framework's handler failed and the adapter learnt only that it failed; the message is retried. */
  handlerFailed: "ERR_NEXUS_HANDLER_FAILED",
  /** The EventEmitter adapter: `emit` returned, then publishing its event failed (`PublishError`). */
  publishFailed: "ERR_NEXUS_PUBLISH_FAILED",
  /** The NestJS adapter: a Nest event handler's stream errored (`NestEventHandlerError`). */
  nestEventHandlerFailed: "ERR_NEXUS_NEST_EVENT_HANDLER",
  /** The NestJS adapter: a Nest message handler's stream errored (`NestRpcError`). */
  nestRpcError: "ERR_NEXUS_NEST_RPC",
} as const;

/** One of the values of {@link ErrorCode}. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Options every {@link NexusError} accepts. */
export interface NexusErrorOptions {
  /** The error that led to this one. */
  cause?: unknown;
  /** Whether trying the same call again may succeed. */
  retryable?: boolean;
  /** The PostgreSQL SQLSTATE, when the database raised the error. */
  sqlState?: string;
}

/** Base class of every error the package throws. */
export class NexusError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;
  /** Whether trying the same call again may succeed. */
  readonly retryable: boolean;
  /** The PostgreSQL SQLSTATE, when the database raised the error. */
  readonly sqlState: string | undefined;

  constructor(code: ErrorCode, message: string, options: NexusErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.sqlState = options.sqlState;
  }
}

/** An argument of a public call is outside what the call allows; nothing was written. */
export class ValidationError extends NexusError {
  /** Which argument was wrong, e.g. `namespace`. */
  readonly argument: string;

  constructor(argument: string, message: string, code: ErrorCode = ErrorCode.invalidArgument) {
    super(code, message);
    this.argument = argument;
  }
}

/** A namespace, group or event type that breaks the naming grammar. */
export class InvalidNameError extends ValidationError {
  constructor(argument: string, message: string) {
    super(argument, message, ErrorCode.invalidName);
  }
}

/** The database's migrations do not match the ones this release ships. */
export class MigrationError extends NexusError {}

/** The database cannot be reached or the connection was lost. */
export class ConnectionError extends NexusError {
  constructor(message: string, options: NexusErrorOptions = {}) {
    super(ErrorCode.connection, message, { retryable: true, ...options });
  }
}

/** The database refused a statement for a reason that is not a connection problem. */
export class DatabaseError extends NexusError {
  constructor(message: string, options: NexusErrorOptions = {}) {
    super(ErrorCode.database, message, options);
  }
}

/** A call was made on a system or node that has been closed. */
export class ClosedError extends NexusError {
  constructor(what: string) {
    super(ErrorCode.closed, `${what} is closed; create a new one to continue`);
  }
}

/** A request got no (complete) reply before its timeout. */
export class RequestTimeoutError extends NexusError {
  /** The request's type. */
  readonly type: string;
  /** The timeout that passed, in milliseconds. */
  readonly timeoutMs: number;

  constructor(type: string, timeoutMs: number) {
    super(
      ErrorCode.requestTimeout,
      `Request ${type} got no reply within ${timeoutMs} ms: no responder of its group is running, or it is too slow. ` +
        `Start a responder (node.onRequest) or raise the timeout option.`,
      { retryable: true },
    );
    this.type = type;
    this.timeoutMs = timeoutMs;
  }
}

/** No group of the namespace answers requests of this type. */
export class NoResponderError extends NexusError {
  /** The request's type. */
  readonly type: string;

  constructor(type: string, namespace: string, delivery: "queue" | "direct" = "queue") {
    super(
      ErrorCode.noResponder,
      delivery === "direct"
        ? `No live node in namespace ${namespace} answers requests of type ${type} directly: start a node with node.onRequest(pattern, handler) ` +
            `(connected without replies: 'queue', on a LISTEN connection that hears notifications), or send with delivery: 'queue'.`
        : `No group in namespace ${namespace} answers requests of type ${type}: register one with node.onRequest(pattern, handler) ` +
            `(and start its node) before sending.`,
      { retryable: true },
    );
    this.type = type;
  }
}

/**
 * The node a direct request went to stopped (at once) or was marked dead (its heartbeat
 * lapsed) before it answered. The request ran at most once there, maybe partly.
 */
export class ResponderGoneError extends NexusError {
  /** The request's type. */
  readonly type: string;
  /** The node that went away. */
  readonly nodeId: string;

  constructor(type: string, nodeId: string) {
    super(ErrorCode.responderGone, `The node ${nodeId} answering request ${type} directly went away before it replied; the request ran at most once there.`, { retryable: true });
    this.type = type;
    this.nodeId = nodeId;
  }
}

/** What a responder's error becomes on the wire: serialisable, without a stack unless asked. */
export interface SerializedError {
  name: string;
  message: string;
  /** The responder's error code, when it had one. */
  code?: string;
  /** JSON data the responder attached to its error (`error.data`). */
  data?: unknown;
  /** Present only when the responder was configured to send stacks. */
  stack?: string;
}

/** A responder's handler failed; its message, code and data travel back in this error. */
export class RemoteError extends NexusError {
  /** The responder's error code (its `code` property), if any. */
  readonly remoteCode: string | undefined;
  /** The responder's error name, e.g. `TypeError`. */
  readonly remoteName: string;
  /** JSON data the responder attached (`error.data`). */
  readonly data: unknown;
  /** The responder's stack, when it sends stacks. */
  readonly remoteStack: string | undefined;

  constructor(serialized: SerializedError) {
    super(ErrorCode.remote, serialized.message);
    this.remoteCode = serialized.code;
    this.remoteName = serialized.name;
    this.data = serialized.data;
    this.remoteStack = serialized.stack;
  }
}

/** A handler ran past its timeout: its transaction was rolled back and its signal aborted. */
export class HandlerTimeoutError extends NexusError {
  constructor(what: string, timeoutMs: number) {
    super(ErrorCode.handlerTimeout, `${what} ran past its timeout of ${timeoutMs} ms; its transaction was rolled back.`, { retryable: true });
  }
}

/** The caller cancelled a request (its AbortSignal fired, or it stopped reading a stream). */
export class CancelledError extends NexusError {
  constructor(what: string, cause?: unknown) {
    super(ErrorCode.cancelled, `${what} was cancelled by the caller.`, { cause });
  }
}

/** A consumer group has no queue in the namespace: never subscribed there, or dropped. */
export class UnknownGroupError extends NexusError {
  /** The group asked for. */
  readonly group: string;

  constructor(group: string, namespace: string, cause?: unknown) {
    super(
      ErrorCode.unknownGroup,
      `Group ${group} has no queue in namespace ${namespace}: subscribe it first (node.onEvent(pattern, handler, { group: "${group}" }) ` +
        `and node.start()), or it was removed with dropGroup.`,
      { cause },
    );
    this.group = group;
  }
}

/**
 * The database refused the call for want of a privilege (SQLSTATE 42501): a namespace
 * role working outside its namespace, or a role without a privilege an operation needs
 * (e.g. CREATEROLE to create namespace roles).
 */
export class PermissionError extends NexusError {
  /** The privilege that is missing, when the package knows it (e.g. `CREATEROLE`). */
  readonly privilege: string | undefined;

  constructor(message: string, options: NexusErrorOptions & { privilege?: string } = {}) {
    super(ErrorCode.permissionDenied, message, { ...options, sqlState: options.sqlState ?? "42501" });
    this.privilege = options.privilege;
  }
}

/**
 * No handler on this node matches what was delivered: an event of a group (retried, as
 * another instance of the group may handle it, then dead-lettered), a request (the
 * requester gets a {@link RemoteError} whose `remoteCode` is {@link ErrorCode.noHandler}),
 * or a direct message.
 */
export class NoHandlerError extends NexusError {
  /** The event or request type (or the adapter's pattern) nothing matched. */
  readonly type: string;
  /** Where a handler was looked for, e.g. `group billing on this node`. */
  readonly where: string;

  constructor(type: string, where: string, consequence?: string) {
    super(ErrorCode.noHandler, `No handler for ${type} in ${where}${consequence ? `; ${consequence}` : ""}.`, { retryable: true });
    this.type = type;
    this.where = where;
  }
}

/** A call came at a time its object does not allow it: not started yet, already running, in the wrong state. */
export class InvalidStateError extends NexusError {
  constructor(message: string, options: NexusErrorOptions = {}) {
    super(ErrorCode.invalidState, message, options);
  }
}

/** A value that is not an `Error` was thrown or rejected; `cause` is that value. See {@link asError}. */
export class NonError extends NexusError {
  constructor(value: unknown) {
    super(ErrorCode.nonError, textOf(value), { cause: value });
  }
}

/**
 * The value as an `Error`: an `Error` is returned as it is, anything else (a string, a
 * plain object, `undefined`) is wrapped in a {@link NonError} whose message is its text
 * and whose `cause` is the value. Use it wherever a caught `unknown` is read or logged.
 */
export function asError(value: unknown): Error {
  return value instanceof Error ? value : new NonError(value);
}

function textOf(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === null || value === undefined) return `${String(value)} was thrown instead of an Error`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
