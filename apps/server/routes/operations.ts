/**
 * Operations: liveness, readiness, Prometheus metrics, and the namespace's nodes and
 * queues as JSON.
 *
 * - `/healthz` answers as long as the process serves HTTP; it never touches the database,
 *   so a database outage does not get the server restarted.
 * - `/readyz` runs one cheap query, the newest applied migration, within a timeout: 200
 *   when the database answers and carries the schema this release ships, else 503.
 */
import type { FastifyInstance } from "fastify";
import { loadMigrations, type CoreSystem } from "../../../core/index.js";
import type { RouteContext } from "../app.js";
import { HttpError, RETRY_AFTER_SECONDS } from "../errors.js";
import { errorResponses, nodesSchema, queuesSchema } from "../schemas.js";

/** SQLSTATE of a missing relation: the schema was never migrated. */
const UNDEFINED_TABLE = "42P01";

export function registerOperationRoutes(app: FastifyInstance, context: RouteContext): void {
  const { system } = context;
  const expectedVersion = loadMigrations().then((migrations) => migrations.length);
  expectedVersion.catch(() => {});

  app.get(
    "/healthz",
    { schema: { summary: "Liveness: the process serves HTTP (no database query)", tags: ["operations"], response: { 200: statusSchema } } },
    () => ({ status: "ok" }),
  );

  app.get(
    "/readyz",
    {
      schema: {
        summary: "Readiness: the database answers and is migrated",
        tags: ["operations"],
        response: { 200: { type: "object", properties: { status: { type: "string" }, schemaVersion: { type: "integer" } } }, ...errorResponses(503) },
      },
    },
    async () => {
      const version = await withTimeout(schemaVersion(system), context.readinessTimeoutMs);
      const expected = await expectedVersion;
      if (version < expected) {
        throw notReady("not_migrated", `The database's schema is at version ${version}; this release needs ${expected}. Start a node (it migrates on connect).`);
      }
      return { status: "ready", schemaVersion: version };
    },
  );

  app.get(
    "/metrics",
    {
      schema: {
        summary: "Prometheus metrics (text exposition format)",
        tags: ["operations"],
        produces: ["text/plain"],
        response: { 200: { type: "string" }, ...errorResponses(503) },
      },
    },
    async (_request, reply) => {
      const text = await system.metricsText();
      return reply.type(system.metricsRegistry.contentType).send(text);
    },
  );

  app.get(
    "/nodes",
    { schema: { summary: "Nodes of the namespace (alive, and stopped or dead within the hour)", tags: ["operations"], response: { 200: nodesSchema, ...errorResponses(503) } } },
    async () => {
      const { namespace, collectedAt, nodes } = await system.metrics();
      return { namespace, collectedAt, nodes };
    },
  );

  app.get(
    "/queues",
    { schema: { summary: "Consumer groups of the namespace: queue and dead-letter lengths, handler counts", tags: ["operations"], response: { 200: queuesSchema, ...errorResponses(503) } } },
    async () => {
      const { namespace, collectedAt, groups } = await system.metrics();
      return { namespace, collectedAt, groups };
    },
  );
}

const statusSchema = { type: "object", properties: { status: { type: "string" } } } as const;

async function schemaVersion(system: CoreSystem): Promise<number> {
  try {
    const { rows } = await system.pool.query<{ version: number | null }>("select max(version)::int as version from core.schema_migrations");
    return rows[0]?.version ?? 0;
  } catch (error) {
    if ((error as { code?: unknown }).code === UNDEFINED_TABLE) return 0;
    throw system.toError(error, "check readiness");
  }
}

function notReady(code: string, message: string): HttpError {
  return new HttpError(503, code, message, { "retry-after": String(RETRY_AFTER_SECONDS) });
}

async function withTimeout<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(notReady("database_unavailable", `The database did not answer within ${timeoutMs} ms.`)), timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
