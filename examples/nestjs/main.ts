/**
 * A small Nest app: a `@MessagePattern` sum, an `@EventPattern` handler, and a caller that
 * uses both through a `ClientProxy`. It runs on PostgreSQL or on Redis, chosen by one
 * option; the handlers and the caller do not know which.
 *
 *   npx tsx examples/nestjs/main.ts                     # on PostgreSQL (CORE_DATABASE_URL, or an embedded server in .nexus/pgdata)
 *   npx tsx examples/nestjs/main.ts --transport redis   # the same on Redis (127.0.0.1:6379)
 */
import "reflect-metadata";
import { Controller, Inject, Injectable, Module } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { ClientsModule, EventPattern, MessagePattern, Payload, Transport, type ClientProvider, type ClientProxy } from "@nestjs/microservices";
import { lastValueFrom } from "rxjs";
import { PgClient, PgServer } from "../../adapters/nestjs/index.js";
import { resolveDatabaseServer } from "../../apps/shared/database.js";

const transport = process.argv.includes("--transport") ? process.argv[process.argv.indexOf("--transport") + 1] : "pg";
let delivered: (order: unknown) => void = () => {};
const orderSeen = new Promise<unknown>((resolve) => (delivered = resolve));

/** The handlers: unchanged whatever the transport. */
@Controller()
class MathController {
  @MessagePattern({ cmd: "sum" })
  sum(@Payload() numbers: number[]): number {
    return numbers.reduce((a, b) => a + b, 0);
  }

  @EventPattern("order.created")
  orderCreated(@Payload() order: { orderId: number; total: number }): void {
    console.log(`event order.created received: ${JSON.stringify(order)}`);
    delivered(order);
  }
}

@Module({ controllers: [MathController] })
class MathModule {}

/** The caller: sends a request and emits an event through the registered client. */
@Injectable()
class CheckoutController {
  constructor(@Inject("MATH") private readonly client: ClientProxy) {}

  async checkout(items: number[]): Promise<number> {
    const total = await lastValueFrom(this.client.send<number>({ cmd: "sum" }, items));
    await lastValueFrom(this.client.emit("order.created", { orderId: 42, total }), { defaultValue: undefined });
    return total;
  }
}

async function main(): Promise<void> {
  const database = transport === "redis" ? undefined : await resolveDatabaseServer({ dataDir: ".nexus/pgdata", log: (message) => console.log(message) });
  // The one switch: the server strategy and the client registration.
  const redis = { host: "127.0.0.1", port: 6379 };
  const pg = { connectionString: database?.url ?? "", namespace: "example-nest" };
  const serverOptions = transport === "redis" ? { transport: Transport.REDIS, options: redis } : { strategy: new PgServer({ ...pg, group: "math" }) };
  const client: ClientProvider = transport === "redis" ? { transport: Transport.REDIS, options: redis } : { customClass: PgClient, options: pg };

  @Module({ imports: [ClientsModule.register([{ name: "MATH", ...client }])], providers: [CheckoutController] })
  class CallerModule {}

  const microservice = await NestFactory.createMicroservice(MathModule, { ...serverOptions, logger: ["error", "warn"] });
  await microservice.listen();
  const caller = await NestFactory.createApplicationContext(CallerModule, { logger: ["error", "warn"] });
  try {
    const total = await caller.get(CheckoutController).checkout([10, 20, 12]);
    console.log(`transport ${transport}: sum of [10, 20, 12] = ${total}`);
    await orderSeen;
  } finally {
    await caller.close();
    await microservice.close();
    await database?.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
