/**
 * The server as the environment configures it, on an existing system: used by
 * `npm run dev:server` (main.ts) and by `npm start` (apps/start).
 *
 * PORT (3000), HOST (127.0.0.1; 0.0.0.0 in a container), CORE_ADMIN_TOKEN (admin routes
 * disabled without it), CORE_MAX_BATCH (1000 events per batch), CORE_ADMIN_RATE_LIMIT
 * (admin requests per minute and client, 30), CORE_INGEST_RATE_LIMIT (ingest requests per
 * minute and client; unset: not limited), CORE_LOG_REQUESTS (1: log every request).
 */
import type { FastifyInstance } from "fastify";
import type { CoreSystem, Logger } from "../../core/index.js";
import { buildServer } from "./app.js";
import { intFromEnv } from "./runtime.js";

/** A listening server. */
export interface RunningServer {
  readonly app: FastifyInstance;
  /** e.g. `http://127.0.0.1:3000`. */
  readonly url: string;
  /** Stops accepting, lets in-flight requests finish, stops the server's node. */
  close(): Promise<void>;
}

/** Registers the server's node and listens on PORT/HOST. */
export async function serveFromEnv(system: CoreSystem, logger: Logger, nodeId?: string): Promise<RunningServer> {
  const node = await system.registerNode({ displayName: "server", metadata: { role: "http-ingest" }, ...(nodeId ? { nodeId } : {}) });
  const adminToken = process.env.CORE_ADMIN_TOKEN || undefined;
  const app = await buildServer({
    system,
    node,
    adminToken,
    maxBatch: intFromEnv("CORE_MAX_BATCH", 1_000, 1, 100_000),
    adminRateLimit: { max: intFromEnv("CORE_ADMIN_RATE_LIMIT", 30, 1), timeWindowMs: 60_000 },
    ingestRateLimit: process.env.CORE_INGEST_RATE_LIMIT ? { max: intFromEnv("CORE_INGEST_RATE_LIMIT", 1, 1), timeWindowMs: 60_000 } : false,
    logger,
    logRequests: /^(1|true|yes)$/i.test(process.env.CORE_LOG_REQUESTS ?? ""),
  });
  const port = intFromEnv("PORT", 3000, 0, 65_535);
  const host = process.env.HOST || "127.0.0.1";
  await app.listen({ port, host });
  const address = app.server.address();
  const boundPort = typeof address === "object" && address ? address.port : port;
  const url = `http://${host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host}:${boundPort}`;
  logger.info({ url, namespace: system.namespace, admin: adminToken ? "enabled" : "disabled (no CORE_ADMIN_TOKEN)" }, "server listening");
  return {
    app,
    url,
    async close() {
      await app.close();
      await node.stop();
    },
  };
}
