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
