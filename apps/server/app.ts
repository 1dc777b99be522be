/**
 * The HTTP ingest server as a Fastify app factory: `buildServer({ system, node })`
 * returns an app that is ready to `listen`. `main.ts` wires it to the environment; tests
 * and the HTTP benchmark build it directly.
 *
 * Routes (every one validated by JSON Schema and described at `GET /openapi.json`):
 *   POST /events, POST /events/batch                  emit (202)
 *   GET /healthz, /readyz, /metrics, /nodes, /queues   operations
 *   GET /dead-letters/:group[/:id]                      read dead letters
 *   POST /dead-letters/:group/retry, DELETE /dead-letters/:group, POST /replay
 *                                                      admin: bearer CORE_ADMIN_TOKEN, rate-limited
 */
import rateLimit from "@fastify/rate-limit";
import swagger from "@fastify/swagger";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from "fastify";
import type { CoreNode, CoreSystem, Logger } from "../../core/index.js";
import { AdminToken } from "./auth.js";
import { answerFor } from "./errors.js";
import { registerAdminRoutes } from "./routes/admin.js";
import { registerEventRoutes } from "./routes/events.js";
import { registerOperationRoutes } from "./routes/operations.js";
import { errorBodySchema } from "./schemas.js";

/** What the event routes need of a node: its emits (a stub stands in for it in the benchmark's ceiling). */
export type EventSink = Pick<CoreNode, "emit" | "emitBatch">;

/** Options of {@link buildServer}. */
export interface ServerOptions {
  /** The system whose namespace the server serves (metrics, dead letters, readiness). */
  system: CoreSystem;
  /** The node that emits the events posted to the server. */
  node: EventSink;
  /** The admin token of the routes that change state; without it they answer 403. */
  adminToken?: string;
  /** Most events in one `POST /events/batch` (default 1,000). */
  maxBatch?: number;
  /** Largest body of `POST /events` and the other routes, in bytes (default: the system's maxPayloadBytes + 64 KiB). */
  bodyLimit?: number;
  /** Largest body of `POST /events/batch`, in bytes (default 16 MiB). */
  batchBodyLimit?: number;
  /** Admin requests allowed per client (IP) and window; false turns the limit off (default 30 per minute). */
  adminRateLimit?: { max: number; timeWindowMs: number } | false;
  /** Ingest requests allowed per client, route (`POST /events`, `POST /events/batch`) and window; default false: not limited. */
  ingestRateLimit?: { max: number; timeWindowMs: number } | false;
  /** Milliseconds `/readyz` waits for the database (default 2,000). */
  readinessTimeoutMs?: number;
  /** The logger of requests and errors (default: the system's). */
  logger?: Logger;
  /** Log every request at info level (default false: errors only). */
  logRequests?: boolean;
  /** Trust X-Forwarded-For for the client address (behind a proxy; default false). */
  trustProxy?: boolean;
}

/** Settings the route modules share. */
export interface RouteContext {
  system: CoreSystem;
  node: EventSink;
  token: AdminToken;
  maxBatch: number;
  bodyLimit: number;
  batchBodyLimit: number;
  adminRateLimit: { max: number; timeWindow: number } | false;
  ingestRateLimit: { max: number; timeWindow: number } | false;
  readinessTimeoutMs: number;
}

const BODY_OVERHEAD_BYTES = 64 * 1024;

/** Builds the server (not yet listening). Closing it does not close `system`: its owner does. */
export async function buildServer(options: ServerOptions): Promise<FastifyInstance> {
  const context = resolveContext(options);
  const app = Fastify({
    loggerInstance: (options.logger ?? options.system.logger) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: options.logRequests !== true }),
    bodyLimit: context.bodyLimit,
    trustProxy: options.trustProxy ?? false,
    // Unknown fields are an error to report, not something to drop silently.
    ajv: { customOptions: { removeAdditional: false } },
    // Keep-alive sockets that sit idle are closed on shutdown; busy ones finish their request.
    forceCloseConnections: "idle",
    // Errors the router raises before any route (a path parameter too long, a malformed
    // URL) get the same error body as the others, without the URL echoed back.
    frameworkErrors: (error, _request, reply) => {
      const answer = answerFor(error);
      void (reply as FastifyReply).code(answer.status).headers(answer.headers).send(answer.body);
    },
  });
  // On close, answers still in flight end their keep-alive connection, so close() does not
  // wait for clients' idle sockets (Fastify closes only the connections idle at that moment).
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  app.addHook("onSend", (_request, reply, payload, done) => {
    if (closing) reply.header("connection", "close");
    done(null, payload);
  });
  // JSON only: without the text/plain parser, a non-JSON body is a 415.
  app.removeContentTypeParser("text/plain");
  app.addSchema(errorBodySchema);
  app.setErrorHandler((error, request, reply) => {
    const answer = answerFor(error);
    const where = { code: answer.body.error.code, url: request.url };
    // A database outage fails every request alike: one line each, without the stack.
    if (answer.status === 503) request.log.warn({ ...where, reason: (error as Error).message }, "request refused: service unavailable");
    else if (answer.serverFault) request.log.error({ ...where, err: error }, "request failed");
    else request.log.debug(where, "request refused");
    return reply.code(answer.status).headers(answer.headers).send(answer.body);
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { code: "not_found", message: `No route ${request.method} ${request.url.split("?")[0]}; see GET /openapi.json.` } }),
  );

  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "Nexus Core HTTP ingest",
        version: "0.1.0",
        description: `Emits events into namespace ${options.system.namespace} of a Nexus Core database, and exposes its metrics and dead letters.`,
      },
      components: { securitySchemes: { adminToken: { type: "http", scheme: "bearer", description: "CORE_ADMIN_TOKEN" } } },
    },
  });
  await app.register(rateLimit, { global: false });

  registerEventRoutes(app, context);
  registerOperationRoutes(app, context);
  registerAdminRoutes(app, context);
  app.get("/openapi.json", { schema: { hide: true } }, () => app.swagger());
  await app.ready();
  return app;
}

function resolveContext(options: ServerOptions): RouteContext {
  const maxBatch = options.maxBatch ?? 1_000;
  if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 100_000) throw new RangeError(`maxBatch must be a whole number from 1 to 100000; got ${maxBatch}.`);
  const limit = rateLimitOf("adminRateLimit", options.adminRateLimit ?? { max: 30, timeWindowMs: 60_000 });
  const ingestLimit = rateLimitOf("ingestRateLimit", options.ingestRateLimit ?? false);
  return {
    system: options.system,
    node: options.node,
    token: new AdminToken(options.adminToken),
    maxBatch,
    bodyLimit: options.bodyLimit ?? options.system.maxPayloadBytes + BODY_OVERHEAD_BYTES,
    batchBodyLimit: options.batchBodyLimit ?? 16 * 1024 * 1024,
    adminRateLimit: limit,
    ingestRateLimit: ingestLimit,
    readinessTimeoutMs: options.readinessTimeoutMs ?? 2_000,
  };
}

/** A rate limit option in @fastify/rate-limit's terms, checked: whole numbers of at least 1. */
function rateLimitOf(name: string, limit: { max: number; timeWindowMs: number } | false): { max: number; timeWindow: number } | false {
  if (limit === false) return false;
  if (!Number.isInteger(limit?.max) || limit.max < 1 || !Number.isInteger(limit.timeWindowMs) || limit.timeWindowMs < 1) {
    throw new RangeError(`${name} must be false or { max, timeWindowMs } with whole numbers of at least 1; got ${JSON.stringify(limit)}.`);
  }
  return { max: limit.max, timeWindow: limit.timeWindowMs };
}
