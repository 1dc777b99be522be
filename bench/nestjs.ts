/**
 * `tsx bench/nestjs.ts`: Nest microservices request/response at concurrency 1 (calls/s,
 * p50, p99) and 100 (calls/s, p50, p99), and emitted events/s (emit to handled), on Nest's
 * Redis and NATS transports and on PgServer/PgClient, in one run; each Postgres figure is
 * printed with its ratio to each peer. One microservice and one client per transport in
 * this process, Nest's default (JSON) serialisation.
 *
 * Knobs: BENCH_NEST_CALLS (calls at concurrency 1, default 2,000), BENCH_NEST_TOTAL (calls
 * at concurrency 100 and events, default 10,000), BENCH_NEST_INFLIGHT (default 100).
 * CORE_DATABASE_URL or the embedded server; NATS at nats://127.0.0.1:4222, Redis at
 * 127.0.0.1:6379.
 */
import "reflect-metadata";
import { performance } from "node:perf_hooks";
import { randomBytes } from "node:crypto";
import { Controller, Module, type INestMicroservice } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { ClientProxyFactory, EventPattern, MessagePattern, Payload, Transport, type ClientProxy } from "@nestjs/microservices";
import pg from "pg";
import { lastValueFrom } from "rxjs";
import { PgClient, PgServer } from "../adapters/nestjs/index.js";
import { benchDatabase, serverFacts } from "./lib/database.js";
import { intFromEnv } from "./lib/env.js";
import { log } from "./lib/log.js";
import { grouped, perSecond, summarise, table } from "./lib/stats.js";
import { inFlight, waitFor } from "./lib/tracker.js";

const CALLS = intFromEnv("BENCH_NEST_CALLS", 2_000);
const TOTAL = intFromEnv("BENCH_NEST_TOTAL", 10_000);
const IN_FLIGHT = intFromEnv("BENCH_NEST_INFLIGHT", 100);

type Kind = "Redis" | "NATS" | "Postgres";

interface Row {
  transport: Kind;
  c1PerSecond: number;
  p50: number;
  p99: number;
  cNPerSecond: number;
  cNp50: number;
  cNp99: number;
  eventsPerSecond: number;
}

let received = 0;

@Controller()
class BenchController {
  @MessagePattern({ cmd: "add" })
  add(@Payload() data: { a: number; b: number }): number {
    return data.a + data.b;
  }

  @EventPattern("bench.event")
  event(): void {
    received += 1;
  }
}

@Module({ controllers: [BenchController] })
class BenchModule {}

function endpoints(kind: Kind, url: string, namespace: string): { server: Record<string, unknown>; client: ClientProxy } {
  if (kind === "Redis") {
    const options = { host: "127.0.0.1", port: 6379 };
    return { server: { transport: Transport.REDIS, options }, client: ClientProxyFactory.create({ transport: Transport.REDIS, options }) };
  }
  if (kind === "NATS") {
    const options = { servers: ["nats://127.0.0.1:4222"] };
    return { server: { transport: Transport.NATS, options }, client: ClientProxyFactory.create({ transport: Transport.NATS, options }) };
  }
  return {
    server: { strategy: new PgServer({ connectionString: url, namespace, group: "bench", requests: { concurrency: 8 }, events: { concurrency: 8, prefetch: 50 } }) },
    // Typed as the base ClientProxy, as Nest's own ClientRedis/ClientNats are by ClientProxyFactory.
    client: new PgClient({ connectionString: url, namespace }) as unknown as ClientProxy,
  };
}

async function timed(count: number, concurrency: number, call: (index: number) => Promise<unknown>): Promise<{ perSecond: number; p50: number; p99: number }> {
  const latencies: number[] = [];
  const started = performance.now();
  await inFlight(count, concurrency, async (index) => {
    const begun = performance.now();
    await call(index);
    latencies.push(performance.now() - begun);
  });
  const summary = summarise(latencies);
  return { perSecond: perSecond(count, performance.now() - started), p50: summary.p50, p99: summary.p99 };
}

async function measure(kind: Kind, url: string): Promise<Row> {
  const namespace = `bench-${randomBytes(4).toString("hex")}`;
  const { server, client } = endpoints(kind, url, namespace);
  const app: INestMicroservice = await NestFactory.createMicroservice(BenchModule, { ...server, logger: false });
  await app.listen();
  await client.connect();
  const call = (index: number): Promise<number> => lastValueFrom(client.send<number>({ cmd: "add" }, { a: index, b: 1 }));
  try {
    for (let i = 0; i < 200; i += 1) await call(i); // warm-up
    const c1 = await timed(CALLS, 1, call);
    log(`${kind}: concurrency 1 done`, { calls: CALLS });
    const cN = await timed(TOTAL, IN_FLIGHT, call);
    log(`${kind}: concurrency ${IN_FLIGHT} done`, { calls: TOTAL });
    received = 0;
    const eventsStarted = performance.now();
    await inFlight(TOTAL, IN_FLIGHT, async (index) => void (await lastValueFrom(client.emit("bench.event", { index }), { defaultValue: undefined })));
    if (!(await waitFor(async () => received >= TOTAL, 120_000))) throw new Error(`${kind}: only ${received} of ${TOTAL} events arrived`);
    const eventsMs = performance.now() - eventsStarted;
    log(`${kind}: events done`, { events: TOTAL });
    return { transport: kind, c1PerSecond: c1.perSecond, p50: c1.p50, p99: c1.p99, cNPerSecond: cN.perSecond, cNp50: cN.p50, cNp99: cN.p99, eventsPerSecond: perSecond(TOTAL, eventsMs) };
  } finally {
    await client.close();
    await app.close();
  }
}

async function main(): Promise<void> {
  const server = await benchDatabase();
  const rows: Row[] = [];
  try {
    for (const kind of ["Redis", "NATS", "Postgres"] as Kind[]) rows.push(await measure(kind, server.url));
    const admin = new pg.Pool({ connectionString: server.url, max: 1 });
    const facts = await serverFacts(admin).finally(() => admin.end());
    report(rows, facts);
  } finally {
    await server.stop();
  }
}

function report(rows: Row[], facts: Record<string, string>): void {
  console.log(`NestJS microservices, default serialisation, ${IN_FLIGHT} in flight`);
  console.log(
    table(
      ["transport", "c=1 calls/s", "p50 ms", "p99 ms", `c=${IN_FLIGHT} calls/s`, "p50 ms", "p99 ms", "events/s"],
      rows.map((row) => [row.transport, grouped(row.c1PerSecond), row.p50.toFixed(2), row.p99.toFixed(2), grouped(row.cNPerSecond), row.cNp50.toFixed(2), row.cNp99.toFixed(2), grouped(row.eventsPerSecond)]),
    ),
  );
  const postgres = rows.find((row) => row.transport === "Postgres")!;
  const ratio = (ours: number, theirs: number): string => (theirs === 0 ? "n/a" : `${(ours / theirs).toFixed(2)}x`);
  console.log(
    table(
      ["Postgres vs", "c=1 calls/s", "c=1 p50 (lower is better)", `c=${IN_FLIGHT} calls/s`, "events/s"],
      rows
        .filter((row) => row.transport !== "Postgres")
        .map((peer) => [peer.transport, ratio(postgres.c1PerSecond, peer.c1PerSecond), ratio(postgres.p50, peer.p50), ratio(postgres.cNPerSecond, peer.cNPerSecond), ratio(postgres.eventsPerSecond, peer.eventsPerSecond)]),
    ),
  );
  console.log(JSON.stringify({ bench: "nestjs", calls: CALLS, total: TOTAL, inFlight: IN_FLIGHT, ...facts, rows }));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
