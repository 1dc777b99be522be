/**
 * One bus (issue 9, DESIGN.md "Adapters"): with the default JSON serialisers, the same
 * event reaches every kind of consumer. An emitter `emit(name, ...args)` is a core event
 * of type `name` whose payload is the argument array; a core event reaches emitter
 * listeners with its payload as the arguments when it is an array, else as the only
 * argument.
 *
 * The NestJS rows: a core `node.emit('order.created', x)` reaches a Nest
 * `@EventPattern('order.created')` handler with data `x`; a Nest `ClientProxy.emit` reaches
 * a core `onEvent` handler with payload `data` and emitter listeners with `(data)` (or the
 * elements of `data` when it is an array); an emitter `emit('order.created', a, b)` reaches
 * a Nest handler with data `[a, b]`.
 */
import "reflect-metadata";
import { Controller, Module } from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import { EventPattern, Payload } from "@nestjs/microservices";
import { lastValueFrom } from "rxjs";
import { afterEach, describe, expect, it } from "vitest";
import { PgClient, PgServer } from "../../../adapters/nestjs/index.js";
import type { CoreEvent, CoreSystem } from "../../../core/index.js";
import { PgEventEmitter, type PgEventEmitterOptions } from "../../../adapters/events/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../../support/database.js";
import { testSystems } from "../../support/systems.js";
import { sleep, waitUntil } from "../../support/wait.js";

const FAST = { pollInterval: 100, backoff: { type: "fixed" as const, delay: 0 } };

const systems = testSystems();
const nestClosers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of nestClosers.splice(0)) await close();
  await systems.close();
});

/** What the Nest app's handler heard. */
const nestHeard: unknown[] = [];

@Controller()
class OrdersController {
  @EventPattern("order.created")
  created(@Payload() data: unknown): void {
    nestHeard.push(data);
  }
}

@Module({ controllers: [OrdersController] })
class OrdersModule {}

/** A Nest microservice on PgServer in `namespace`, listening as group `nest-orders`. */
async function nestApp(namespace: string): Promise<void> {
  nestHeard.length = 0;
  const strategy = new PgServer({ connectionString: testDatabaseUrl(), namespace, group: "nest-orders", events: FAST });
  const app = await NestFactory.createMicroservice(OrdersModule, { strategy, logger: false });
  await app.listen();
  nestClosers.push(() => app.close());
}

function connect(namespace: string): Promise<CoreSystem> {
  return systems.connect({ namespace });
}

/** A started emitter on a system of its own (closed with the test's systems). */
async function emitterOn(namespace: string, options: PgEventEmitterOptions = {}): Promise<PgEventEmitter> {
  return PgEventEmitter.create(await connect(namespace), options);
}

describe.each([
  ["broadcast", {}],
  ["group", { mode: "group", group: "listeners", ...FAST }],
] as [string, PgEventEmitterOptions][])("one bus with an emitter in %s mode", (_mode, options) => {
  it("delivers a core emit to emitter listeners: an array payload as the arguments, anything else as the one argument", async () => {
    const namespace = uniqueNamespace("ee-core-to-ee");
    const emitter = await emitterOn(namespace, options);
    const heard: unknown[][] = [];
    emitter.on("order.created", (...args: unknown[]) => void heard.push(args));
    await emitter.ready();

    const core = await (await connect(namespace)).registerNode({ displayName: "api" });
    await core.emit("order.created", { orderId: 42 });
    await core.emit("order.created", [{ orderId: 43 }, "express"]);
    await core.emit("order.created", null);

    await waitUntil("three events", () => heard.length, (n) => n >= 3);
    await sleep(300);
    expect(heard).toEqual([[{ orderId: 42 }], [{ orderId: 43 }, "express"], [null]]);
  });

  it("delivers an emitter emit to a core onEvent handler with the argument array as payload", async () => {
    const namespace = uniqueNamespace("ee-ee-to-core");
    const system = await connect(namespace);
    const billing = await system.registerNode({ displayName: "billing" });
    const received: CoreEvent[] = [];
    await billing.onEvent("order.*", (event) => void received.push(event), { group: "billing", ...FAST });
    await billing.start();

    const emitter = await emitterOn(namespace, options);
    emitter.emit("order.created", { orderId: 42 }, "express");
    await emitter.emitAsync("order.cancelled", 42);

    await waitUntil("two events", () => received.length, (n) => n >= 2);
    await sleep(300);
    expect(received.map((event) => [event.type, event.payload])).toEqual([
      ["order.created", [{ orderId: 42 }, "express"]],
      ["order.cancelled", [42]],
    ]);
    expect(received.every((event) => event.sourceNode === emitter.node.nodeId)).toBe(true);
    const expectedHeaders = options.mode === "group" ? {} : { "nexus-delivered-locally": "1" };
    expect(received[0]!.headers).toEqual(expectedHeaders);
    expect(received[1]!.headers).toEqual({});
  });
});

describe("one bus with a Nest app", () => {
  it("delivers a core emit to a Nest @EventPattern handler with the payload as data", async () => {
    const namespace = uniqueNamespace("ee-core-to-nest");
    await nestApp(namespace);
    const core = await (await connect(namespace)).registerNode({ displayName: "api" });
    await core.emit("order.created", { orderId: 42 });
    await waitUntil("the Nest handler", () => nestHeard.length, (n) => n >= 1);
    await sleep(300);
    expect(nestHeard).toEqual([{ orderId: 42 }]);
  });

  it("delivers a Nest ClientProxy.emit to a core onEvent handler and to emitter listeners", async () => {
    const namespace = uniqueNamespace("ee-nest-to-all");
    const system = await connect(namespace);
    const billing = await system.registerNode({ displayName: "billing" });
    const received: CoreEvent[] = [];
    await billing.onEvent("order.created", (event) => void received.push(event), { group: "billing", ...FAST });
    await billing.start();
    const emitter = await emitterOn(namespace);
    const heard: unknown[][] = [];
    emitter.on("order.created", (...args: unknown[]) => void heard.push(args));
    await emitter.ready();

    const client = new PgClient({ connectionString: testDatabaseUrl(), namespace });
    nestClosers.push(() => client.close());
    await lastValueFrom(client.emit("order.created", { orderId: 42 }));
    await lastValueFrom(client.emit("order.created", [{ orderId: 43 }, "express"]));

    await waitUntil("both events everywhere", () => Math.min(received.length, heard.length), (n) => n >= 2);
    await sleep(300);
    expect(received.map((event) => [event.type, event.payload])).toEqual([
      ["order.created", { orderId: 42 }],
      ["order.created", [{ orderId: 43 }, "express"]],
    ]);
    expect(heard).toEqual([[{ orderId: 42 }], [{ orderId: 43 }, "express"]]);
  });

  it("delivers an emitter emit to a Nest @EventPattern handler with the argument array as data", async () => {
    const namespace = uniqueNamespace("ee-ee-to-nest");
    await nestApp(namespace);
    const emitter = await emitterOn(namespace);
    await emitter.emitAsync("order.created", { orderId: 42 }, "express");
    await waitUntil("the Nest handler", () => nestHeard.length, (n) => n >= 1);
    await sleep(300);
    expect(nestHeard).toEqual([[{ orderId: 42 }, "express"]]);
  });
});
