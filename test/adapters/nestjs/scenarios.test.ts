/**
 * The scenario suite of issue 7, in the style of Nest's `integration/microservices` e2e
 * specs: the same controller and handlers on Nest's Redis and NATS transports and on
 * PgServer/PgClient, the latter with PgClient's default delivery (direct) and with
 * `delivery: "queue"`. Every row runs for every transport.
 */
import "reflect-metadata";
import { NestFactory } from "@nestjs/core";
import type { INestApplicationContext, INestMicroservice } from "@nestjs/common";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lastValueFrom, timeout, TimeoutError } from "rxjs";
import { Server } from "@nestjs/microservices";
import { NO_MESSAGE_HANDLER, PgServer } from "../../../adapters/nestjs/index.js";
import { Caller, MathModule, clientModule, seen, transportCases, type TransportCase } from "./apps.js";
import { testDatabaseUrl, uniqueNamespace } from "../../support/database.js";
import { waitUntil } from "../../support/wait.js";

it("runs against the Nest major the configuration selects (12 adds Server.handleRequest)", () => {
  const major = process.env.NEXUS_NEST_MAJOR ?? "11";
  expect(typeof (Server.prototype as unknown as Record<string, unknown>)["handleRequest"] === "function").toBe(major === "12");
  // PgServer extends the same Server class the app's Nest loads, not another copy.
  expect(new PgServer({ connectionString: "postgres://unused", namespace: "unused", group: "g" })).toBeInstanceOf(Server);
});

const cases = transportCases(testDatabaseUrl(), uniqueNamespace("nest-scn"));

describe.each(cases.map((c) => [c.name, c] as [string, TransportCase]))("Nest microservice on %s", (_name, transport) => {
  let server: INestMicroservice;
  let callers: INestApplicationContext;
  let caller: Caller;

  beforeAll(async () => {
    server = await NestFactory.createMicroservice(MathModule, { ...transport.server(), logger: false });
    await server.listen();
    callers = await NestFactory.createApplicationContext(clientModule(transport, "register") as never, { logger: false });
    caller = callers.get(Caller);
    await caller.client.connect();
  });

  afterAll(async () => {
    await callers?.close();
    await server?.close();
  });

  it("sums by command: plain value, Promise and Observable", async () => {
    await expect(caller.sum("sum", [1, 2, 3, 4, 5])).resolves.toBe(15);
    await expect(caller.sum("asyncSum", [1, 2, 3, 4, 5])).resolves.toBe(15);
    await expect(caller.sum("streamSum", [1, 2, 3, 4, 5])).resolves.toBe(15);
  });

  it("reduces a stream of five values to one", async () => {
    await expect(caller.streamed([1, 2, 3, 4, 5])).resolves.toBe(15);
    await expect(caller.running([1, 2, 3, 4, 5])).resolves.toBe(15);
    const values: number[] = [];
    await new Promise<void>((resolve, reject) =>
      caller.client.send<number>({ cmd: "streaming" }, [5, 4, 3, 2, 1]).subscribe({ next: (v) => values.push(v), error: reject, complete: resolve }),
    );
    expect(values).toEqual([5, 4, 3, 2, 1]);
  });

  it("answers 10 x 10 concurrent requests", async () => {
    const rounds = Array.from({ length: 10 }, async (_, round) => {
      const sums = await Promise.all(Array.from({ length: 10 }, (_, i) => caller.sum("sum", [round, i, 1])));
      return sums;
    });
    const results = await Promise.all(rounds);
    expect(results).toEqual(Array.from({ length: 10 }, (_, round) => Array.from({ length: 10 }, (_, i) => round + i + 1)));
  });

  it("fails a request to an unknown pattern, each transport in its own way", async () => {
    const error = await lastValueFrom(caller.client.send({ cmd: "nowhere" }, [1]).pipe(timeout(2_000))).then(
      () => undefined,
      (failure: unknown) => failure,
    );
    // Redis publishes to a channel nobody reads (the caller waits); NATS has no subscriber;
    // the Postgres transport answers with Nest's own "no message handler" error at once, on either delivery.
    const expected = {
      redis: (e: unknown) => e instanceof TimeoutError,
      nats: (e: unknown) => e instanceof Error && /no subscribers/.test(e.message),
      postgres: (e: unknown) => e === NO_MESSAGE_HANDLER,
      "postgres-queue": (e: unknown) => e === NO_MESSAGE_HANDLER,
    }[transport.name as "redis" | "nats" | "postgres" | "postgres-queue"];
    expect(expected(error), String(error)).toBe(true);
  });

  it("delivers an RpcException's error to the caller as is", async () => {
    await expect(caller.sum("rpcError", [1])).rejects.toEqual({ code: "BAD_NUMBERS", message: "numbers must be positive" });
  });

  it("notifies every handler of an event pattern", async () => {
    const before = seen.notifications.length;
    const alsoBefore = seen.alsoNotified.length;
    await lastValueFrom(caller.client.emit("notification", { n: transport.name }), { defaultValue: undefined });
    await waitUntil("both handlers", () => Math.min(seen.notifications.length - before, seen.alsoNotified.length - alsoBefore), (n) => n >= 1);
    expect(seen.notifications.slice(before)).toEqual([{ n: transport.name }]);
    expect(seen.alsoNotified.slice(alsoBefore)).toEqual([{ n: transport.name }]);
  });

  it("works with a client registered by registerAsync", async () => {
    const context = await NestFactory.createApplicationContext(clientModule(transport, "registerAsync") as never, { logger: false });
    try {
      await expect(context.get(Caller).sum("sum", [2, 3])).resolves.toBe(5);
    } finally {
      await context.close();
    }
  });
});
