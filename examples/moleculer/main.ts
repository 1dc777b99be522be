/**
 * Two Moleculer brokers in two processes: an API service calling a math service and
 * emitting an event, on PostgreSQL or on NATS, chosen by one option.
 *
 *   npx tsx examples/moleculer/main.ts                        # both brokers on PostgreSQL
 *   npx tsx examples/moleculer/main.ts --transporter nats     # the same on NATS (nats://127.0.0.1:4222)
 *   npx tsx examples/moleculer/main.ts --role math            # one broker (api in another terminal); needs CORE_DATABASE_URL
 *
 * Without --role, the script finds its PostgreSQL (CORE_DATABASE_URL, or an embedded
 * server in .nexus/pgdata), starts the math broker, then the api broker, and relays their
 * output. The services do not know which transporter carries them: only `transporterOf`
 * does.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import Moleculer from "moleculer";
import { PgTransporter } from "../../adapters/moleculer/index.js";
import { resolveDatabaseServer } from "../../apps/shared/database.js";

type Transport = "pg" | "nats";

/** The one option that differs between the two setups. */
function transporterOf(transport: Transport, connectionString: string): Moleculer.BrokerOptions["transporter"] {
  return transport === "nats" ? { type: "NATS", options: { url: "nats://127.0.0.1:4222" } } : new PgTransporter({ connectionString });
}

function argument(name: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

async function runRole(role: "api" | "math", transport: Transport, connectionString: string): Promise<void> {
  const broker = new Moleculer.ServiceBroker({ nodeID: `${role}-${process.pid}`, namespace: "example", logLevel: "warn", transporter: transporterOf(transport, connectionString) });
  if (role === "math") {
    const done = new Promise<void>((resolve) => {
      broker.createService({
        name: "math",
        actions: { add: (ctx: Moleculer.Context<{ a: number; b: number }>) => ctx.params.a + ctx.params.b },
        events: {
          "sum.computed"(ctx: Moleculer.Context<{ a: number; b: number; sum: number }>) {
            console.log(`[math] heard sum.computed: ${ctx.params.a} + ${ctx.params.b} = ${ctx.params.sum}`);
            resolve();
          },
        },
      });
    });
    await broker.start();
    console.log("[math] ready");
    await done;
  } else {
    broker.createService({ name: "api" });
    await broker.start();
    await broker.waitForServices(["math"]);
    const sum = await broker.call<number, { a: number; b: number }>("math.add", { a: 2, b: 3 });
    console.log(`[api] math.add(2, 3) = ${sum}`);
    await broker.emit("sum.computed", { a: 2, b: 3, sum });
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await broker.stop();
}

async function main(): Promise<void> {
  const transport = (argument("transporter") ?? "pg") as Transport;
  if (transport !== "pg" && transport !== "nats") throw new Error(`--transporter must be pg or nats, not ${transport}`);
  const role = argument("role");
  if (role === "api" || role === "math") {
    await runRole(role, transport, process.env.CORE_DATABASE_URL ?? "");
    return;
  }
  const server = await resolveDatabaseServer({ dataDir: ".nexus/pgdata", log: (message) => console.log(`[example] ${message}`) });
  try {
    const script = fileURLToPath(import.meta.url);
    const start = (which: string): ReturnType<typeof spawn> =>
      spawn(process.execPath, ["--import", "tsx", script, "--role", which, "--transporter", transport], {
        env: { ...process.env, CORE_DATABASE_URL: server.url },
        stdio: ["ignore", "inherit", "inherit"],
      });
    const math = start("math");
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const api = start("api");
    const [[apiCode], [mathCode]] = await Promise.all([once(api, "exit"), once(math, "exit")]);
    if (apiCode !== 0 || mathCode !== 0) throw new Error(`a broker failed (api ${apiCode}, math ${mathCode})`);
  } finally {
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
