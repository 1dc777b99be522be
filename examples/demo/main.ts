/**
 * `npm start`: a small tour of Nexus Core on a real PostgreSQL: the server named by
 * CORE_DATABASE_URL, or an embedded one started from npm in `.nexus/pgdata`.
 * It connects (applying the migrations), registers two nodes, lets them heartbeat,
 * lists the namespace's nodes, and stops them.
 */
import { pino } from "pino";
import { CoreSystem } from "../../core/index.js";
import { resolveDatabaseServer } from "../shared/database.js";

const logger = pino({ name: "demo", level: process.env.CORE_LOG_LEVEL ?? "info" });
const namespace = process.env.CORE_NAMESPACE ?? "demo";

async function main(): Promise<void> {
  const server = await resolveDatabaseServer({ dataDir: ".nexus/pgdata", log: (message) => logger.info(message) });
  const system = await CoreSystem.connect({ connectionString: server.url, namespace, logger, heartbeatIntervalMs: 500 });
  const stopSignals = ["SIGINT", "SIGTERM"] as const;
  let stopping = false;
  const shutdown = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await system.close();
    await server.stop();
  };
  for (const signal of stopSignals) process.once(signal, () => void shutdown().then(() => process.exit(0)));

  try {
    const api = await system.registerNode({ displayName: "api", metadata: { role: "producer" } });
    const worker = await system.registerNode({ displayName: "worker", metadata: { role: "consumer" } });
    await new Promise((resolve) => setTimeout(resolve, 1_200));
    const { rows } = await system.pool.query(
      `select display_name, status, metadata, last_heartbeat_at
         from core.nodes where node_id = any($1::uuid[]) order by display_name`,
      [[api.nodeId, worker.nodeId]],
    );
    logger.info({ nodes: rows }, `namespace ${namespace}: ${rows.length} nodes alive and heartbeating`);
  } finally {
    await shutdown();
  }
  logger.info("demo finished");
}

main().catch((error: unknown) => {
  logger.error({ err: error }, "demo failed");
  process.exitCode = 1;
});
