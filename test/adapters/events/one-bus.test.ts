/**
 * One bus (issue 9, DESIGN.md "Adapters"): with the default JSON serialisers, the same
 * event reaches every kind of consumer. An emitter `emit(name, ...args)` is a core event
 * of type `name` whose payload is the argument array; a core event reaches emitter
 * listeners with its payload as the arguments when it is an array, else as the only
 * argument.
 *
 * TODO(Nest adapter issue): the NestJS rows of "One bus" need adapters/nestjs, which does
 * not exist yet. Add them there, beside these:
 *   - core `node.emit('order.created', x)` is heard by a Nest `@EventPattern('order.created')`
 *     handler with data `x`;
 *   - Nest `ClientProxy.emit('order.created', data)` is heard by a core `onEvent` handler
 *     with payload `data`, and by an emitter listener with arguments `(data)` (or the
 *     elements of `data` when it is an array);
 *   - emitter `emit('order.created', a, b)` is heard by a Nest `@EventPattern` handler
 *     with data `[a, b]`.
 */
import { afterEach, describe, expect, it } from "vitest";
import { CoreSystem, type CoreEvent } from "../../../core/index.js";
import { PgEventEmitter, type PgEventEmitterOptions } from "../../../adapters/events/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../../support/database.js";
import { sleep, waitUntil } from "../../support/wait.js";

const FAST = { pollInterval: 100, backoff: { type: "fixed" as const, delay: 0 } };

const systems: CoreSystem[] = [];
afterEach(async () => {
  await Promise.all(systems.splice(0).map((system) => system.close()));
});

async function connect(namespace: string): Promise<CoreSystem> {
  const system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace });
  systems.push(system);
  return system;
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
