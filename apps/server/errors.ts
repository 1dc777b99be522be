/**
 * How the server answers errors: every failure becomes `{ error: { code, message } }`
 * with a status that says whose fault it is. The library's typed errors map onto HTTP:
 * a bad name or argument is 400, an unknown group 404, an unreachable database (or a
 * system shutting down) 503. Anything unexpected is a 500 whose body says only that it
 * was logged: stacks and SQL never reach the client.
 */
import { ClosedError, ConnectionError, InvalidNameError, PermissionError, UnknownGroupError, ValidationError } from "../../core/index.js";

/** The body of every error answer. */
export interface ErrorBody {
  error: { code: string; message: string };
}

/** An answer other than 2xx that a route decided on itself. */
export class HttpError extends Error {
  readonly statusCode: number;
  readonly code: string;
  readonly headers: Record<string, string>;

  constructor(statusCode: number, code: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = "HttpError";
    this.statusCode = statusCode;
    this.code = code;
    this.headers = headers;
  }
}

/** Seconds a client should wait before retrying a 503. */
export const RETRY_AFTER_SECONDS = 5;

/** What to answer for `error`. */
export interface ErrorAnswer {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
  /** True for failures of the server or its database (logged at error level). */
  serverFault: boolean;
}

const unavailable = (code: string, message: string): ErrorAnswer => ({
  status: 503,
  body: { error: { code, message } },
  headers: { "retry-after": String(RETRY_AFTER_SECONDS) },
  serverFault: true,
});

/** Fastify's own client errors, by their code, with a code and a message of ours. */
const FRAMEWORK_ERRORS: Record<string, { code: string; message?: string }> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: "unsupported_media_type",
    message: "The body must be JSON: send it with content-type: application/json.",
  },
  FST_ERR_CTP_BODY_TOO_LARGE: { code: "payload_too_large" },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: "malformed_json" },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: "malformed_json", message: "The body is empty but its content-type is application/json: send a JSON document." },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: "bad_request" },
  // Router errors: their own messages repeat the whole URL back to the client.
  FST_ERR_MAX_PARAM_LENGTH: { code: "uri_too_long", message: "A path parameter is longer than the server accepts (100 characters); group names have at most 40." },
  FST_ERR_BAD_URL: { code: "bad_request", message: "The URL is malformed (an invalid percent-encoding)." },
};

/** Maps any error a route or Fastify raised onto the answer the client gets. */
export function answerFor(error: unknown): ErrorAnswer {
  if (error instanceof HttpError) {
    return { status: error.statusCode, body: { error: { code: error.code, message: error.message } }, headers: error.headers, serverFault: error.statusCode >= 500 };
  }
  if (error instanceof ConnectionError || isPoolConnectionFailure(error)) {
    return unavailable("database_unavailable", "The database is unreachable; the request was not carried out. Retry later.");
  }
  if (error instanceof ClosedError) return unavailable("shutting_down", "The server is shutting down; retry on another instance or later.");
  if (error instanceof InvalidNameError) return clientError(400, "invalid_name", error.message);
  if (error instanceof ValidationError) return clientError(400, "invalid_argument", error.message);
  if (error instanceof UnknownGroupError) return clientError(404, "unknown_group", error.message);
  // A namespace role refused by the database (row-level security, queue grants).
  if (error instanceof PermissionError) return clientError(403, "permission_denied", error.message);
  const fastify = error as { statusCode?: unknown; code?: unknown; message?: unknown; validation?: unknown; validationContext?: unknown };
  if (fastify.validation !== undefined) return clientError(400, "invalid_request", String(fastify.message));
  const status = typeof fastify.statusCode === "number" ? fastify.statusCode : 500;
  if (status >= 400 && status < 500) {
    const known = typeof fastify.code === "string" ? FRAMEWORK_ERRORS[fastify.code] : undefined;
    const code = known?.code ?? (status === 429 ? "rate_limited" : status === 404 ? "not_found" : "bad_request");
    return clientError(status, code, known?.message ?? String(fastify.message));
  }
  return {
    status: 500,
    body: { error: { code: "internal_error", message: "The server failed to handle the request; the error was logged." } },
    headers: {},
    serverFault: true,
  };
}

const CONNECTION_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH", "57P01", "57P02", "57P03"]);

/** A driver error that means no connection could be had or kept (class 08, refused, reset, shut down, pool timeout). */
export function isPoolConnectionFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && (CONNECTION_CODES.has(code) || code.startsWith("08"))) return true;
  const message = error instanceof Error ? error.message : "";
  return /timeout exceeded when trying to connect|Connection terminated|Client has encountered a connection error/i.test(message);
}

function clientError(status: number, code: string, message: string): ErrorAnswer {
  return { status, body: { error: { code, message } }, headers: {}, serverFault: false };
}

/**
 * The library reports a payload over `maxPayloadBytes` as a ValidationError of argument
 * `payload`; HTTP calls that 413. Returns the 413 when that is what `error` is.
 */
export function payloadTooLarge(error: unknown, payloads: readonly unknown[], maxBytes: number): HttpError | undefined {
  if (!(error instanceof ValidationError) || error.argument !== "payload") return undefined;
  const tooLarge = payloads.some((payload) => {
    try {
      return Buffer.byteLength(JSON.stringify(payload) ?? "") > maxBytes;
    } catch {
      return false;
    }
  });
  return tooLarge ? new HttpError(413, "payload_too_large", error.message) : undefined;
}
