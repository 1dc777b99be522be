/**
 * The controllers and modules of the NestJS scenario suite, modelled on Nest's own
 * `integration/microservices` apps. Injection uses explicit tokens so the suite does not
 * depend on emitted constructor metadata.
 */
import { Controller, Inject, Module } from "@nestjs/common";
import { ClientsModule, Ctx, EventPattern, MessagePattern, Payload, RpcException, Transport, type ClientProxy, type ClientProvider } from "@nestjs/microservices";
import { from, lastValueFrom, of, reduce, scan, takeLast, type Observable } from "rxjs";
import { PgClient, PgServer, type PgContext } from "../../../adapters/nestjs/index.js";

/** What handlers recorded, read by the tests. */
export const seen = {
  notifications: [] as unknown[],
  alsoNotified: [] as unknown[],
  contexts: [] as { pattern: string; attempt: number; traceparent: string | undefined }[],
};

/** The handlers every transport runs unchanged. */
@Controller()
export class MathController {
  @MessagePattern({ cmd: "sum" })
  sum(@Payload() data: number[]): number {
    return (data ?? []).reduce((a, b) => a + b, 0);
  }

  @MessagePattern({ cmd: "asyncSum" })
  async asyncSum(@Payload() data: number[]): Promise<number> {
    await Promise.resolve();
    return data.reduce((a, b) => a + b, 0);
  }

  @MessagePattern({ cmd: "streamSum" })
  streamSum(@Payload() data: number[]): Observable<number> {
    return of(data.reduce((a, b) => a + b, 0));
  }

  @MessagePattern({ cmd: "streaming" })
  streaming(@Payload() data: number[]): Observable<number> {
    return from(data);
  }

  @MessagePattern({ cmd: "rpcError" })
  rpcError(): never {
    throw new RpcException({ code: "BAD_NUMBERS", message: "numbers must be positive" });
  }

  @MessagePattern("math.context")
  context(@Payload() data: unknown, @Ctx() context: { getPattern?: () => string; getAttempt?: () => number; getHeaders?: () => Record<string, string> }): unknown {
    const pg = context as Partial<PgContext>;
    return { data, pattern: pg.getPattern?.() ?? null, traceparent: pg.getHeaders?.()["traceparent"] ?? null };
  }

  @EventPattern("notification")
  notify(@Payload() data: unknown): void {
    seen.notifications.push(data);
  }

  @EventPattern("notification")
  alsoNotify(@Payload() data: unknown): void {
    seen.alsoNotified.push(data);
  }
}

/** A transport under test: how the microservice starts and how clients register. */
export interface TransportCase {
  name: string;
  /** Options of `NestFactory.createMicroservice`. */
  server: () => Record<string, unknown>;
  /** Options of one `ClientsModule.register` entry, without `name`. */
  client: () => ClientProvider;
}

/** The Postgres transport in `namespace`: PgServer, and PgClient on `delivery` (default: its own, direct). */
function postgresCase(name: string, connectionString: string, namespace: string, delivery?: "queue" | "direct"): TransportCase {
  return {
    name,
    server: () => ({ strategy: new PgServer({ connectionString, namespace, group: "math", events: { pollInterval: 100 }, requests: { pollInterval: 100 } }) }),
    client: () => ({ customClass: PgClient, options: { connectionString, namespace, timeout: 10_000, ...(delivery ? { delivery } : {}) } }),
  };
}

/**
 * Redis and NATS as Nest ships them, and the Postgres transport twice: with PgClient's
 * default (`delivery: "direct"`) and with `delivery: "queue"`, each in a namespace of its own.
 */
export function transportCases(connectionString: string, namespace: string): TransportCase[] {
  return [
    {
      name: "redis",
      server: () => ({ transport: Transport.REDIS, options: { host: "127.0.0.1", port: 6379 } }),
      client: () => ({ transport: Transport.REDIS, options: { host: "127.0.0.1", port: 6379 } }),
    },
    {
      name: "nats",
      server: () => ({ transport: Transport.NATS, options: { servers: ["nats://127.0.0.1:4222"] } }),
      client: () => ({ transport: Transport.NATS, options: { servers: ["nats://127.0.0.1:4222"] } }),
    },
    postgresCase("postgres", connectionString, namespace),
    postgresCase("postgres-queue", connectionString, `${namespace}-q`, "queue"),
  ];
}

/** The server module. */
@Module({ controllers: [MathController] })
export class MathModule {}

/** Token of the registered client. */
export const MATH_CLIENT = "MATH_CLIENT";

/** A caller that uses the client as Nest's e2e controllers do. */
export class Caller {
  constructor(@Inject(MATH_CLIENT) readonly client: ClientProxy) {}

  sum(cmd: string, data: number[]): Promise<number> {
    return lastValueFrom(this.client.send<number>({ cmd }, data));
  }

  streamed(data: number[]): Promise<number> {
    return lastValueFrom(this.client.send<number>({ cmd: "streaming" }, data).pipe(reduce((a, b) => a + b, 0)));
  }

  running(data: number[]): Promise<number> {
    return lastValueFrom(this.client.send<number>({ cmd: "streaming" }, data).pipe(scan((a, b) => a + b, 0), takeLast(1)));
  }
}

/** The client module: `register` or `registerAsync`. */
export function clientModule(transport: TransportCase, mode: "register" | "registerAsync"): unknown {
  const clients =
    mode === "register"
      ? ClientsModule.register([{ name: MATH_CLIENT, ...transport.client() }])
      : ClientsModule.registerAsync([{ name: MATH_CLIENT, useFactory: async () => transport.client() }]);
  @Module({ imports: [clients], providers: [Caller], exports: [Caller] })
  class CallerModule {}
  return CallerModule;
}
