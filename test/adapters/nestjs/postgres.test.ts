/**
 * What only the Postgres transport promises (issue 7): retries and dead letters for a
 * failing event handler, a handler's writes committing with its ack, redelivery after a
 * killed instance, and a clear timeout (never a late second answer) for a down responder.
 */
import "reflect-metadata";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Controller, Module, type INestMicroservice } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { Ctx, EventPattern, MessagePattern, Payload } from "@nestjs/microservices";
import { lastValueFrom } from "rxjs";
import { afterEach, describe, expect, it } from "vitest";
import { CoreSystem, RequestTimeoutError } from "../../../core/index.js";
import { NO_MESSAGE_HANDLER, PgClient, PgRecordBuilder, PgServer, type PgContext, type PgServerOptions } from "../../../adapters/nestjs/index.js";
import { testDatabaseUrl, uniqueNamespace, withClient } from "../../support/database.js";
import { FixtureProcess } from "../../support/fixture-process.js";
import { sleep, waitUntil } from "../../support/wait.js";

const FAST = { pollInterval: 100, backoff: { type: "fixed" as const, delay: 0 } };
const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures/worker.ts");

/** What the handlers below did, per test. */
const log = { attempts: 0, acked: [] as string[], served: 0, seen: [] as Record<string, unknown>[] };

@Controller()
class OrdersController {
  @EventPattern("order.failing")
  failing(): never {
    log.attempts += 1;
    throw new Error("cannot process this order");
  }

  @EventPattern("order.recorded")
  async recorded(@Payload() data: { id: number; table: string }, @Ctx() context: PgContext): Promise<void> {
    await context.getClient().query(`insert into ${data.table} (id, attempt) values ($1, $2)`, [data.id, context.getAttempt()]);
    // The first attempt fails after its insert: the insert must roll back with it.
    if (context.getAttempt() === 1) throw new Error("fail after the insert");
  }

  @EventPattern("order.manual")
  manual(@Payload() data: { id: string }, @Ctx() context: PgContext): void {
    log.acked.push(`${data.id}:${context.getAttempt()}`);
    if (context.getAttempt() === 1) context.nack(new Error("not yet"));
    else context.ack();
  }

  @EventPattern("order.traced")
  traced(@Payload() data: unknown, @Ctx() context: PgContext): void {
    log.seen.push({ data, pattern: context.getPattern(), type: context.getType(), attempt: context.getAttempt(), headers: context.getHeaders(), id: context.getId(), messageId: context.getMessageId(), signal: context.getSignal() instanceof AbortSignal });
  }

  @MessagePattern({ cmd: "slow" })
  slow(@Payload() n: number): number {
    log.served += 1;
    return n * 2;
  }
}

@Module({ controllers: [OrdersController] })
class OrdersModule {}

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  Object.assign(log, { attempts: 0, acked: [], served: 0, seen: [] });
});

async function startServer(namespace: string, options: Partial<PgServerOptions> = {}): Promise<INestMicroservice> {
  const strategy = new PgServer({ connectionString: testDatabaseUrl(), namespace, group: "orders", events: { ...FAST, maxAttempts: 3 }, requests: { pollInterval: 100 }, ...options });
  const app = await NestFactory.createMicroservice(OrdersModule, { strategy, logger: false });
  await app.listen();
  closers.push(() => app.close());
  return app;
}

async function client(namespace: string, timeout = 10_000, delivery: "direct" | "queue" = "direct"): Promise<PgClient> {
  const proxy = new PgClient({ connectionString: testDatabaseUrl(), namespace, timeout, delivery });
  closers.push(() => proxy.close());
  await proxy.connect();
  return proxy;
}

describe("PgServer and PgClient on PostgreSQL", () => {
  it("retries a throwing event handler, then dead-letters the event", async () => {
    const namespace = uniqueNamespace("nest-dlq");
    await startServer(namespace);
    const proxy = await client(namespace);
    const id = await lastValueFrom(proxy.emit("order.failing", { id: 7 }));
    expect(typeof id).toBe("string");
    const system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace });
    closers.push(() => system.close());
    const page = await waitUntil("a dead letter", () => system.deadLetters.list("orders"), (p) => p.items.length === 1, 20_000);
    expect(log.attempts).toBe(3);
    expect(page.items[0]).toMatchObject({ eventId: id, type: "order.failing", attempts: 3 });
    // Nest's exception filters ran first: an unknown error becomes Nest's "Internal server error" (the original is logged by Nest).
    expect(page.items[0]!.error.message).toContain('{"status":"error","message":"Internal server error"}');
  });

  it("commits a handler's insert together with its ack, and rolls it back with a failure", async () => {
    const namespace = uniqueNamespace("nest-tx");
    const table = `nest_tx_${namespace.replace(/-/g, "_")}`;
    await withClient(testDatabaseUrl(), (db) => db.query(`create table ${table} (id int, attempt int)`));
    closers.push(() => withClient(testDatabaseUrl(), (db) => db.query(`drop table ${table}`)));
    await startServer(namespace);
    const proxy = await client(namespace);
    await lastValueFrom(proxy.emit("order.recorded", { id: 1, table }));
    const rows = await waitUntil("the committed insert", () => withClient(testDatabaseUrl(), (db) => db.query(`select id, attempt from ${table}`)), (r) => r.rows.length > 0);
    await sleep(300);
    expect(rows.rows).toEqual([{ id: 1, attempt: 2 }]);
    const again = await withClient(testDatabaseUrl(), (db) => db.query(`select count(*)::int as n from ${table}`));
    expect(again.rows[0]).toEqual({ n: 1 });
  });

  it("with noAck: false, the handler rejects and acknowledges through the context", async () => {
    const namespace = uniqueNamespace("nest-noack");
    await startServer(namespace, { noAck: false });
    const proxy = await client(namespace);
    await lastValueFrom(proxy.emit("order.manual", { id: "m1" }));
    await waitUntil("two attempts", () => log.acked.length, (n) => n >= 2);
    await sleep(500);
    expect(log.acked).toEqual(["m1:1", "m1:2"]);
  });

  it("passes headers (a traceparent untouched), delay and the context's fields", async () => {
    const namespace = uniqueNamespace("nest-ctx");
    await startServer(namespace);
    const proxy = await client(namespace);
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const record = new PgRecordBuilder({ n: 1 }).setHeaders({ traceparent }).setIdempotencyKey("traced-1").build();
    const first = await lastValueFrom(proxy.emit("order.traced", record));
    const repeat = await lastValueFrom(proxy.emit("order.traced", record));
    expect(repeat).toBe(first);
    await waitUntil("the traced event", () => log.seen.length, (n) => n >= 1);
    await sleep(300);
    expect(log.seen).toEqual([
      { data: { n: 1 }, pattern: "order.traced", type: "order.traced", attempt: 1, headers: { traceparent }, id: first, messageId: expect.any(String), signal: true },
    ]);
  });

  it.each([
    { delivery: "queue" as const, expected: "a RequestTimeoutError at the client's timeout" },
    { delivery: "direct" as const, expected: "Nest's no-handler error at once (the default)" },
  ])("fails a request to a down responder clearly ($expected) and does not answer it after the responder returns", async ({ delivery }) => {
    const namespace = uniqueNamespace("nest-down");
    const app = await startServer(namespace);
    const proxy = await client(namespace, 1_000, delivery);
    await expect(lastValueFrom(proxy.send({ cmd: "slow" }, 2))).resolves.toBe(4);
    await app.close();
    closers.splice(closers.length - 2, 1);

    const answers: unknown[] = [];
    const sentAt = performance.now();
    const failure = await new Promise<unknown>((resolve) =>
      proxy.send({ cmd: "slow" }, 3).subscribe({ next: (value) => answers.push(value), error: resolve, complete: () => resolve(undefined) }),
    );
    if (delivery === "queue") {
      expect(failure).toBeInstanceOf(RequestTimeoutError);
      expect((failure as Error).message).toMatch(/got no reply within 1000 ms/);
    } else {
      // The core's NoResponderError, as Nest's own transports report a pattern nobody serves.
      expect(failure).toBe(NO_MESSAGE_HANDLER);
      expect(performance.now() - sentAt, "no wait for the timeout").toBeLessThan(1_000);
    }

    log.served = 0;
    await startServer(namespace);
    await expect(lastValueFrom(proxy.send({ cmd: "slow" }, 5))).resolves.toBe(10);
    await sleep(500);
    expect(log.served).toBe(1);
    expect(answers).toEqual([]);
  });

  it("redelivers an event to a second instance when the first is killed mid-handler", async () => {
    const namespace = uniqueNamespace("nest-kill");
    const env = { NEST_DATABASE_URL: testDatabaseUrl(), NEST_NAMESPACE: namespace, NEST_HOLD_MS: "60000" };
    const first = new FixtureProcess<{ ready?: boolean; started?: number; finished?: number; pid: number; attempt?: number }>(worker, env);
    closers.push(() => first.kill());
    await first.waitForReport("the first worker", (r) => r.ready === true, 30_000);
    const proxy = await client(namespace);
    await lastValueFrom(proxy.emit("job.created", { id: 1 }));
    await first.waitForReport("the handler to start", (r) => r.started === 1, 15_000);
    await first.kill();

    const second = new FixtureProcess<{ ready?: boolean; started?: number; finished?: number; pid: number; attempt?: number }>(worker, { ...env, NEST_HOLD_MS: "0" });
    closers.push(() => second.kill());
    const redelivered = await second.waitForReport("the redelivery", (r) => r.finished === 1, 30_000);
    expect(redelivered.pid).toBe(second.child.pid);
    const started = second.reports.find((r) => r.started === 1);
    expect(started?.attempt).toBe(2);
  });
});
