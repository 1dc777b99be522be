/**
 * `npm start`: a small tour of Nexus Core on a real PostgreSQL: the server named by
 * CORE_DATABASE_URL, or an embedded one started from npm in `.nexus/pgdata`.
 *
 * A producer emits orders; two consumer groups, `billing` and `shipping`, each get every
 * order once. Billing records an invoice in the same transaction that acknowledges the
 * event, and fails the first attempt of one order to show a retry.
 */
import { pino } from "pino";
import { CoreSystem } from "../../core/index.js";
import { resolveDatabaseServer } from "../../apps/shared/database.js";

const logger = pino({ name: "demo", level: process.env.CORE_LOG_LEVEL ?? "info" });
const namespace = process.env.CORE_NAMESPACE ?? "demo";
const ORDERS = 5;

async function main(): Promise<void> {
  const server = await resolveDatabaseServer({ dataDir: ".nexus/pgdata", log: (message) => logger.info(message) });
  const system = await CoreSystem.connect({ connectionString: server.url, namespace, logger: logger.child({ component: "core" }) });
  let stopping = false;
  const shutdown = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await system.close();
    await server.stop();
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void shutdown().then(() => process.exit(0)));

  try {
    await system.pool.query("create table if not exists demo_invoices (event_id uuid primary key, order_id int not null)");
    const producer = await system.registerNode({ displayName: "api", metadata: { role: "producer" } });
    const billing = await system.registerNode({ displayName: "billing" });
    const shipping = await system.registerNode({ displayName: "shipping" });

    const done = { billing: 0, shipping: 0 };
    const allHandled = new Promise<void>((resolve) => {
      const check = (): void => void (done.billing === ORDERS && done.shipping === ORDERS && resolve());
      void billing.onEvent<{ orderId: number }>(
        "order.*",
        async (event, { client, attempt }) => {
          if (event.payload.orderId === 3 && attempt === 1) throw new Error("payment provider timed out (demo)");
          await client.query("insert into demo_invoices (event_id, order_id) values ($1, $2) on conflict do nothing", [event.id, event.payload.orderId]);
          logger.info({ group: "billing", orderId: event.payload.orderId, attempt }, "invoice recorded with the ack");
          done.billing += 1;
          check();
        },
        { backoff: { type: "fixed", delay: 500 } },
      );
      void shipping.onEvent<{ orderId: number }>("order.created", (event) => {
        logger.info({ group: "shipping", orderId: event.payload.orderId }, "parcel scheduled");
        done.shipping += 1;
        check();
      });
    });
    await Promise.all([billing.start(), shipping.start()]);

    for (let orderId = 1; orderId <= ORDERS; orderId += 1) {
      const id = await producer.emit("order.created", { orderId }, { headers: { "x-demo": "true" } });
      logger.info({ orderId, eventId: id }, "order emitted");
    }
    const timeout = setTimeout(() => logger.error(done, "demo timed out waiting for handlers"), 30_000);
    await allHandled;
    clearTimeout(timeout);
    logger.info(done, `every order reached billing and shipping once (namespace ${namespace})`);
  } finally {
    await shutdown();
  }
  logger.info("demo finished");
}

main().catch((error: unknown) => {
  logger.error({ err: error }, "demo failed");
  process.exitCode = 1;
});
