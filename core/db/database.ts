/**
 * Pools and the translation of driver errors into the package's typed errors.
 */
import pg from "pg";
import { ConnectionError, DatabaseError, NexusError, PermissionError, asError } from "../model/errors.js";
import { redactConnectionString, scrubSecret, type Logger } from "../model/logger.js";

/** SQLSTATE codes the package acts on, by name. */
export const SqlState = {
  adminShutdown: "57P01",
  crashShutdown: "57P02",
  cannotConnectNow: "57P03",
  queryCanceled: "57014",
  insufficientPrivilege: "42501",
  uniqueViolation: "23505",
  checkViolation: "23514",
} as const;

const CONNECTION_ERROR_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH"]);

/** Pool settings accepted by {@link CoreSystem.connect}. */
export interface PoolOptions {
  /** Most connections the pool opens (default 10). */
  max?: number;
  /** Milliseconds an idle connection is kept (default 10,000). */
  idleTimeoutMs?: number;
  /** Milliseconds to wait for a new connection before failing (default 10,000). */
  connectionTimeoutMs?: number;
}

/**
 * Creates a pool whose background errors (a server restart, a terminated idle client) are
 * logged, not thrown. With `preparedStatements: false`, statements go unnamed (a pooler
 * in transaction mode older than PgBouncer 1.21 cannot route named prepared statements).
 */
export function createPool(connectionString: string, options: PoolOptions, logger: Logger, applicationName: string, preparedStatements = true): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    idleTimeoutMillis: options.idleTimeoutMs ?? 10_000,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 10_000,
    application_name: applicationName,
    // node-postgres' pipelining (8.23): a statement is sent without waiting for the one
    // before it to return, so statements issued together (a consumer's `begin` and read,
    // its settlement and `commit`) cost one round trip. Results and errors stay per
    // statement, in order. Off behind a transaction pooler (no prepared statements).
    ...(preparedStatements ? { pipeline: true } : {}),
  });
  if (!preparedStatements) pool.on("connect", unnameStatements);
  const password = passwordOf(connectionString);
  pool.on("error", (error) => {
    // A fresh error without the driver's as its cause: the cause's message would bring the password back into the log line.
    logger.warn({ err: new ConnectionError(scrubSecret(error.message, password), { sqlState: (error as { code?: string }).code }) }, "idle database connection lost");
  });
  return pool;
}

/** Makes a client send every statement unnamed (see {@link createPool}). */
function unnameStatements(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as { query: (...args: unknown[]) => unknown }).query = (config: unknown, ...rest: unknown[]) =>
    query(config !== null && typeof config === "object" && "name" in config ? { ...config, name: undefined } : config, ...rest);
}

/** The password inside a connection string, if any (for scrubbing it from messages). */
export function passwordOf(connectionString: string): string | undefined {
  try {
    const password = decodeURIComponent(new URL(connectionString).password);
    return password || undefined;
  } catch {
    return /password\s*=\s*('([^']*)'|(\S+))/i.exec(connectionString)?.slice(2).find(Boolean);
  }
}

/** True for errors that mean the connection, not the statement, failed. */
export function isConnectionFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && (CONNECTION_ERROR_CODES.has(code) || code.startsWith("08"))) return true;
  if (code === SqlState.adminShutdown || code === SqlState.crashShutdown || code === SqlState.cannotConnectNow) return true;
  const message = error instanceof Error ? error.message : "";
  return /Connection terminated|connection timeout|Client has encountered a connection error/i.test(message);
}

/**
 * Wraps a driver error in the package's typed error, with `doing` saying what failed,
 * the SQLSTATE kept and the password scrubbed. A NexusError passes through unchanged.
 */
export function toNexusError(error: unknown, doing: string, connectionString: string): NexusError {
  if (error instanceof NexusError) return error;
  const password = passwordOf(connectionString);
  const sqlState = typeof (error as { code?: unknown })?.code === "string" ? (error as { code: string }).code : undefined;
  const reason = scrubSecret(asError(error).message, password);
  if (isConnectionFailure(error)) {
    return new ConnectionError(
      `Could not ${doing}: the database at ${redactConnectionString(connectionString)} is unreachable (${reason}). ` +
        `Check that PostgreSQL is running and that CORE_DATABASE_URL (or connectionString) is right.`,
      { cause: error, sqlState },
    );
  }
  if (sqlState === SqlState.insufficientPrivilege) {
    // A namespace role outside its namespace (row-level security, queue grants) or a role
    // short of a privilege: say so plainly rather than pass on the raw database message.
    return new PermissionError(
      `Could not ${doing}: permission denied (${reason}). The database role of this connection may not do this: ` +
        `a namespace role works only in its own namespace; use that namespace, or connect with a role that holds the privilege.`,
      { cause: error, sqlState },
    );
  }
  return new DatabaseError(`Could not ${doing}: ${reason}`, { cause: error, sqlState });
}
