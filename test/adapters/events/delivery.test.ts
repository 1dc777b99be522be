/**
 * PgEventEmitter across instances: each instance works on a CoreSystem of its own (its
 * own pool and LISTEN connection, as a separate process has); process.test.ts runs the
 * same in child processes. Exact counts: every broadcast instance hears each event once
 * (the emitting one synchronously, and not again from the bus); one instance of each
 * group handles each event; a failing listener in group mode is retried, then
 * dead-lettered.
 */
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, ErrorCode, InvalidNameError, ValidationError } from "../../../core/index.js";
import { PgEventEmitter, PublishError, type PgEventEmitterOptions } from "../../../adapters/events/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../../support/database.js";
import { sleep, waitUntil } from "../../support/wait.js";

/** Group consumers that poll often and retry at once. */
const FAST = { pollInterval: 100, backoff: { type: "fixed" as const, delay: 0 } };

let admin: pg.Pool;
beforeAll(() => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
});
afterAll(() => admin.end());

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

/** `count` started emitters of `namespace`, each on a system of its own that its close() closes. */
async function instances(count: number, namespace: string, options: PgEventEmitterOptions = {}): Promise<PgEventEmitter[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const emitter = await PgEventEmitter.create({ connectionString: testDatabaseUrl(), namespace }, options);
      cleanups.push(() => emitter.close());
      return emitter;
    }),
  );
}

async function count(sql: string, values: unknown[]): Promise<number> {
  const { rows } = await admin.query<{ n: string }>(`select count(*) as n from (${sql}) counted`, values);
  return Number(rows[0]!.n);
}

/** The event subscriptions a node holds for itself (its queue is named like its group). */
function nodeSubscriptions(emitter: PgEventEmitter): Promise<number> {
  const queue = `n_${emitter.node.nodeId.replace(/-/g, "")}`;
  return count("select 1 from core.subscriptions where namespace = $1 and queue_name = $2", [emitter.system.namespace, queue]);
}

function logRows(namespace: string): Promise<number> {
  return count("select 1 from core.event_log where namespace = $1", [namespace]);
}

describe("broadcast mode", () => {
  it("lets every instance hear each event once, the emitting one synchronously and not again from the bus", async () => {
    const namespace = uniqueNamespace("ee-broadcast");
    const emitters = await instances(3, namespace);
    const heard = emitters.map(() => [] as string[]);
    emitters.forEach((emitter, index) => emitter.on("chat.message", (from: string, n: number) => void heard[index]!.push(`${from}${n}`)));
    await Promise.all(emitters.map((emitter) => emitter.ready()));

    for (let n = 0; n < 10; n += 1) {
      expect(emitters[0]!.emit("chat.message", "a", n)).toBe(true);
      expect(heard[0]!.at(-1)).toBe(`a${n}`);
    }
    for (let n = 0; n < 5; n += 1) emitters[1]!.emit("chat.message", "b", n);

    await waitUntil("every instance to hear 15 events", () => heard.map((list) => list.length), (lengths) => lengths.every((n) => n >= 15));
    await sleep(500);
    const fromA = Array.from({ length: 10 }, (_, n) => `a${n}`);
    const fromB = Array.from({ length: 5 }, (_, n) => `b${n}`);
    for (const list of heard) {
      expect(list).toHaveLength(15);
      expect(list.filter((entry) => entry.startsWith("a"))).toEqual(fromA);
      expect(list.filter((entry) => entry.startsWith("b"))).toEqual(fromB);
    }
    expect(await logRows(namespace)).toBe(15);
  });

  it("emitAsync resolves once committed, and every instance, the emitting one included, hears it from the bus once", async () => {
    const emitters = await instances(3, uniqueNamespace("ee-async"));
    const heard = emitters.map(() => [] as unknown[][]);
    emitters.forEach((emitter, index) => emitter.on("order.created", (...args: unknown[]) => void heard[index]!.push(args)));
    await Promise.all(emitters.map((emitter) => emitter.ready()));

    const publishing = emitters[0]!.emitAsync("order.created", { id: 7 }, "web");
    expect(heard[0]).toEqual([]);
    const id = await publishing;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    await waitUntil("all three to hear it", () => heard.map((list) => list.length), (lengths) => lengths.every((n) => n >= 1));
    await sleep(400);
    expect(heard).toEqual([[[{ id: 7 }, "web"]], [[{ id: 7 }, "web"]], [[{ id: 7 }, "web"]]]);
  });

  it("subscribes an instance per name when its first listener comes, and unsubscribes when the last goes", async () => {
    const [sender, receiver] = await instances(2, uniqueNamespace("ee-lazy"));
    expect(await nodeSubscriptions(receiver!)).toBe(0);
    const heard: unknown[] = [];
    const first = (n: unknown): void => void heard.push(n);
    const second = (): void => {};
    receiver!.on("stock.changed", first).on("stock.changed", second);
    await receiver!.ready();
    expect(await nodeSubscriptions(receiver!)).toBe(1);

    sender!.emit("stock.changed", 1);
    await waitUntil("the receiver to hear it", () => heard.length, (n) => n >= 1);

    receiver!.off("stock.changed", first);
    await receiver!.ready();
    expect(await nodeSubscriptions(receiver!)).toBe(1);
    receiver!.removeAllListeners("stock.changed");
    await receiver!.ready();
    expect(await nodeSubscriptions(receiver!)).toBe(0);

    receiver!.once("stock.changed", first);
    await receiver!.ready();
    expect(await nodeSubscriptions(receiver!)).toBe(1);
    await sender!.emitAsync("stock.changed", 2);
    await waitUntil("the once listener to hear it", () => heard.length, (n) => n >= 2);
    expect(heard).toEqual([1, 2]);
    await receiver!.ready();
    expect(await nodeSubscriptions(receiver!)).toBe(0);
  });

  it("close removes the instance's subscriptions and leaves a given system open", async () => {
    const system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: uniqueNamespace("ee-close") });
    cleanups.push(() => system.close());
    const emitter = await PgEventEmitter.create(system);
    emitter.on("a.b", () => {});
    await emitter.ready();
    expect(await nodeSubscriptions(emitter)).toBe(1);
    await emitter.close();
    expect(await nodeSubscriptions(emitter)).toBe(0);
    expect(() => emitter.emit("a.b")).toThrow(expect.objectContaining({ code: ErrorCode.closed }));
    emitter.on("error", () => {});
    expect(emitter.emit("error", new Error("still local"))).toBe(true);
    const other = await system.registerNode({ displayName: "still-open" });
    await other.emit("a.b", []);
  });

  it("removes the subscriptions of an instance that went away without closing, once its node's grace period has passed", async () => {
    const namespace = uniqueNamespace("ee-gone");
    const [gone] = await instances(1, namespace);
    gone!.on("x.y", () => {});
    await gone!.ready();
    const queue = `n_${gone!.node.nodeId.replace(/-/g, "")}`;
    await gone!.node.stop(); // as if its process ended: the node stops, its subscription stays
    expect(await nodeSubscriptions(gone!)).toBe(1);

    const sweeper = await PgEventEmitter.create(
      { connectionString: testDatabaseUrl(), namespace, heartbeatIntervalMs: 200, nodeTtlMs: 1_000, nodeQueueGraceMs: 1_000 },
    );
    cleanups.push(() => sweeper.close());
    await sweeper.emitAsync("x.y", 1);
    await waitUntil("the gone instance's subscription to be removed", () => nodeSubscriptions(gone!), (n) => n === 0, 10_000);
    await waitUntil("its queue to be dropped", () => count("select 1 from pgmq.meta where queue_name = $1", [queue]), (n) => n === 0, 10_000);
    await expect(sweeper.emitAsync("x.y", 2)).resolves.toMatch(/^[0-9a-f-]{36}$/);
  });

  it("publishes an event whose local listener throws, and the throw reaches the caller of emit as in Node", async () => {
    const [sender, receiver] = await instances(2, uniqueNamespace("ee-throw"));
    const heard: unknown[] = [];
    receiver!.on("task.done", (n: unknown) => void heard.push(n));
    sender!.on("task.done", () => {
      throw new Error("local listener failed");
    });
    await Promise.all([sender!.ready(), receiver!.ready()]);
    expect(() => sender!.emit("task.done", 1)).toThrow("local listener failed");
    await waitUntil("the receiver to hear it", () => heard.length, (n) => n >= 1);
    expect(heard).toEqual([1]);
  });

  it("retries a bus delivery whose listener throws, with the attempt in currentDelivery()", async () => {
    const [sender, receiver] = await instances(2, uniqueNamespace("ee-retry-b"));
    const attempts: number[] = [];
    receiver!.on("mail.send", async () => {
      const delivery = receiver!.currentDelivery()!;
      attempts.push(delivery.context.attempt);
      if (delivery.context.attempt === 1) throw new Error("smtp down");
    });
    await receiver!.ready();
    sender!.emit("mail.send", "to@example.com");
    await waitUntil("the second attempt", () => attempts.length, (n) => n >= 2, 15_000);
    await sleep(300);
    expect(attempts).toEqual([1, 2]);
    expect(receiver!.currentDelivery()).toBeUndefined();
  });
});

describe("group mode", () => {
  it("has one instance of each group handle each event, and runs no listener inside emit", async () => {
    const namespace = uniqueNamespace("ee-group");
    const workers = await instances(3, namespace, { mode: "group", group: "workers", ...FAST });
    const [audit] = await instances(1, namespace, { mode: "group", group: "audit", ...FAST });
    const handled = workers.map(() => [] as number[]);
    const audited: number[] = [];
    workers.forEach((worker, index) => worker.on("job.run", (n: number) => void handled[index]!.push(n)));
    audit!.on("job.run", (n: number) => void audited.push(n));
    await Promise.all([...workers, audit!].map((emitter) => emitter.ready()));

    for (let n = 0; n < 30; n += 1) expect(workers[0]!.emit("job.run", n)).toBe(true);
    expect(handled[0]).toEqual([]);

    const total = (): number => handled.reduce((sum, list) => sum + list.length, 0);
    await waitUntil("30 jobs handled by the workers and audited", () => [total(), audited.length], ([w, a]) => w! >= 30 && a! >= 30, 20_000);
    await sleep(500);
    const all = handled.flat().sort((x, y) => x - y);
    expect(all).toEqual(Array.from({ length: 30 }, (_, n) => n));
    expect(audited.sort((x, y) => x - y)).toEqual(all);
  });

  it("retries a throwing listener, then dead-letters the event, with maxAttempts and backoff passed through", async () => {
    const [payments] = await instances(1, uniqueNamespace("ee-dlq"), { mode: "group", group: "payments", maxAttempts: 3, ...FAST });
    const attempts: number[] = [];
    payments!.on("payment.capture", (order: { id: number }) => {
      attempts.push(payments!.currentDelivery()!.context.attempt);
      if (order.id === 1) throw new Error("card declined");
    });
    payments!.on("payment.refund", async () => {
      attempts.push(-payments!.currentDelivery()!.context.attempt);
      await sleep(1);
      throw new Error("refund rejected");
    });
    await payments!.ready();
    await payments!.emitAsync("payment.capture", { id: 1 });
    await payments!.emitAsync("payment.refund", { id: 2 });

    const deadLetters = payments!.system.deadLetters;
    const page = await waitUntil("two dead letters", () => deadLetters.list("payments"), (result) => result.items.length >= 2, 15_000);
    expect(page.items.map((item) => [item.type, item.attempts, item.error.message]).sort()).toEqual([
      ["payment.capture", 3, "card declined"],
      ["payment.refund", 3, "refund rejected"],
    ]);
    expect(attempts.filter((n) => n > 0)).toEqual([1, 2, 3]);
    expect(attempts.filter((n) => n < 0)).toEqual([-1, -2, -3]);
    const letter = await deadLetters.get("payments", page.items.find((item) => item.type === "payment.capture")!.id);
    expect(letter?.payload).toEqual([{ id: 1 }]);
  });

  it("keeps the group's subscription when the last listener goes: events wait for the next listener", async () => {
    const namespace = uniqueNamespace("ee-keep");
    const [worker] = await instances(1, namespace, { mode: "group", group: "later", maxAttempts: 1_000, ...FAST });
    const [producer] = await instances(1, namespace);
    const heard: number[] = [];
    const listener = (n: number): void => void heard.push(n);
    worker!.on("report.requested", listener);
    await worker!.ready();
    worker!.off("report.requested", listener);
    await worker!.ready();
    expect(await count("select 1 from core.subscriptions where namespace = $1 and group_name = 'later'", [namespace])).toBe(1);

    await producer!.emitAsync("report.requested", 1);
    await producer!.emitAsync("report.requested", 2);
    await sleep(400);
    expect(heard).toEqual([]);
    worker!.on("report.requested", listener);
    await waitUntil("both kept events", () => heard.length, (n) => n >= 2, 10_000);
    expect(heard.sort()).toEqual([1, 2]);
  });
});

describe("names and arguments", () => {
  it("rejects names outside the event type grammar with Node-style errors, and publishes nothing", async () => {
    const namespace = uniqueNamespace("ee-names");
    const [emitter] = await instances(1, namespace);
    for (const call of [() => emitter!.emit("order created"), () => emitter!.on("order..created", () => {}), () => emitter!.once("", () => {})]) {
      expect(call).toThrow(TypeError);
      expect(call).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_VALUE", message: expect.stringContaining("The argument 'eventName' must be an event type") }));
    }
    expect(() => emitter!.emit(42 as unknown as string)).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_TYPE" }));
    await expect(emitter!.emitAsync("bad name")).rejects.toMatchObject({ code: "ERR_INVALID_ARG_VALUE" });
    expect(emitter!.eventNames()).toEqual([]);
    expect(await logRows(namespace)).toBe(0);
  });

  it("keeps symbols, error, newListener and removeListener local: never published, never subscribed", async () => {
    const namespace = uniqueNamespace("ee-local");
    const [emitter, other] = await instances(2, namespace);
    const heard: string[] = [];
    const symbol = Symbol("tick");
    emitter!.on(symbol, () => void heard.push("symbol"));
    emitter!.on("error", () => void heard.push("error"));
    emitter!.on("removeListener", () => void heard.push("removeListener"));
    other!.on("error", () => void heard.push("other error"));
    await Promise.all([emitter!.ready(), other!.ready()]);
    emitter!.emit(symbol);
    emitter!.emit("error", new Error("local"));
    emitter!.emit("removeListener", "x", () => {});
    await expect(emitter!.emitAsync("error", new Error("x"))).rejects.toMatchObject({ code: "ERR_INVALID_ARG_VALUE" });
    await sleep(300);
    expect(heard).toEqual(["symbol", "error", "removeListener"]);
    expect(await logRows(namespace)).toBe(0);
    expect(await nodeSubscriptions(emitter!)).toBe(0);
  });

  it("sends the arguments as a JSON array taken at emit time, and refuses arguments that are not JSON", async () => {
    const namespace = uniqueNamespace("ee-args");
    const [sender, receiver] = await instances(2, namespace);
    const received: unknown[][] = [];
    receiver!.on("cart.updated", (...args: unknown[]) => void received.push(args));
    const local: unknown[][] = [];
    sender!.on("cart.updated", (...args: unknown[]) => {
      local.push(args);
      (args[0] as { items: string[] }).items.push("changed by a local listener");
    });
    await Promise.all([sender!.ready(), receiver!.ready()]);

    sender!.emit("cart.updated", { items: ["apple"] }, undefined, new Date("2024-05-01T00:00:00Z"), 2);
    expect(() => sender!.emit("cart.updated", 10n)).toThrow(expect.objectContaining({ code: "ERR_INVALID_ARG_VALUE", message: expect.stringContaining("JSON") }));
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => sender!.emit("cart.updated", cyclic)).toThrow(TypeError);
    expect(local).toHaveLength(1);

    await waitUntil("the receiver to hear it", () => received.length, (n) => n >= 1);
    await sleep(200);
    expect(received).toEqual([[{ items: ["apple"] }, null, "2024-05-01T00:00:00.000Z", 2]]);
    expect(await logRows(namespace)).toBe(1);
  });
});

describe("transactions, failures and options", () => {
  it("publishes with({ client }) only when the caller's transaction commits", async () => {
    const namespace = uniqueNamespace("ee-tx");
    const [sender, receiver] = await instances(2, namespace);
    const heard: unknown[] = [];
    receiver!.on("order.created", (order: unknown) => void heard.push(order));
    await receiver!.ready();
    const client = await admin.connect();
    try {
      await client.query("begin");
      await sender!.with({ client }).emitAsync("order.created", { id: 1 });
      await client.query("rollback");
      await client.query("begin");
      // The header that only emit() sets is dropped: the emitting instance hears an emitAsync from the bus.
      const headers = { traceparent: "00-abc", "nexus-delivered-locally": "1" };
      const id = await sender!.with({ client, headers }).emitAsync("order.created", { id: 2 });
      expect(heard).toEqual([]);
      await client.query("commit");
      await waitUntil("the committed event", () => heard.length, (n) => n >= 1);
      await sleep(300);
      expect(heard).toEqual([{ id: 2 }]);
      const { rows } = await admin.query("select headers from core.event_log where id = $1", [id]);
      expect(rows[0].headers).toEqual({ traceparent: "00-abc" });
    } finally {
      client.release();
    }
    expect(await logRows(namespace)).toBe(1);
  });

  it("sends a publish that fails after emit returned to the error event as a PublishError", async () => {
    const system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: uniqueNamespace("ee-fail") });
    const emitter = await PgEventEmitter.create(system);
    cleanups.push(() => emitter.close());
    const errors: unknown[] = [];
    emitter.on("error", (error) => void errors.push(error));
    emitter.on("invoice.sent", () => {});
    await emitter.ready();
    await system.close();
    expect(emitter.emit("invoice.sent", 1)).toBe(true);
    await waitUntil("the error event", () => errors.length, (n) => n >= 1);
    expect(errors[0]).toBeInstanceOf(PublishError);
    expect(errors[0]).toMatchObject({ code: "ERR_NEXUS_PUBLISH_FAILED", eventName: "invoice.sent", cause: expect.objectContaining({ code: ErrorCode.closed }) });
    await expect(emitter.emitAsync("invoice.sent", 2)).rejects.toMatchObject({ code: ErrorCode.closed });
    // Its system is gone: close still resolves, leaving the subscription to the core's clean-up.
    await expect(emitter.close()).resolves.toBeUndefined();
  });

  it("touches no database before ready(), which rejects when the emitter cannot start; a failed lazy start goes to error", async () => {
    const unreachable = { connectionString: "postgres://postgres@127.0.0.1:1/nowhere", namespace: "ee-unreachable" };
    const emitter = new PgEventEmitter(unreachable);
    const heard: unknown[] = [];
    emitter.on("a.b", (n: unknown) => void heard.push(n));
    await sleep(100);
    await expect(emitter.ready()).rejects.toMatchObject({ code: ErrorCode.connection });

    const lazy = new PgEventEmitter(unreachable);
    const errors: unknown[] = [];
    lazy.on("error", (error) => void errors.push(error));
    lazy.on("a.b", (n: unknown) => void heard.push(n));
    expect(lazy.emit("a.b", 1)).toBe(true);
    expect(heard).toEqual([1]);
    await waitUntil("the error event", () => errors.length, (n) => n >= 1);
    expect(errors[0]).toMatchObject({ code: "ERR_NEXUS_PUBLISH_FAILED", retryable: true, cause: expect.objectContaining({ code: ErrorCode.connection }) });
    await Promise.all([emitter.close(), lazy.close()]);
  });

  it("subscribes the listeners added before ready() when it starts", async () => {
    const namespace = uniqueNamespace("ee-before");
    const [sender] = await instances(1, namespace);
    const late = new PgEventEmitter({ connectionString: testDatabaseUrl(), namespace });
    cleanups.push(() => late.close());
    const heard: unknown[] = [];
    late.on("news.published", (title: unknown) => void heard.push(title));
    await late.ready();
    expect(await nodeSubscriptions(late)).toBe(1);
    sender!.emit("news.published", "hello");
    await waitUntil("the early listener to hear it", () => heard.length, (n) => n >= 1);
    expect(heard).toEqual(["hello"]);
  });

  it("validates its options", () => {
    const connection = { connectionString: testDatabaseUrl(), namespace: "ee-options" };
    expect(() => new PgEventEmitter(connection, { mode: "fanout" as "group" })).toThrow(ValidationError);
    expect(() => new PgEventEmitter(connection, { mode: "group" })).toThrow(InvalidNameError);
    expect(() => new PgEventEmitter(connection, { mode: "group", group: "Billing" })).toThrow(InvalidNameError);
    expect(() => new PgEventEmitter(connection, { maxAttempts: 3 })).toThrow(/mode 'group' only/);
    expect(() => new PgEventEmitter(connection, { group: "billing" })).toThrow(/mode 'group' only/);
    expect(() => new PgEventEmitter(null as unknown as typeof connection)).toThrow(ValidationError);
  });
});
