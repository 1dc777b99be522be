import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CoreSystem,
  ValidationError,
  deadLetterQueueName,
  groupQueueName,
  type CoreEvent,
  type CoreNode,
  type HandlerContext,
} from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { useSystems } from "../support/systems.js";
import { sleep, waitUntil } from "../support/wait.js";

const FAST = { pollInterval: 100, backoff: { type: "fixed" as const, delay: 0 } };

let admin: pg.Pool;
beforeAll(() => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
});
afterAll(() => admin.end());

/** A fresh system (own namespace) per test, closed after it. */
const { connect } = useSystems({ label: "delivery" });

async function node(system: CoreSystem, displayName: string): Promise<CoreNode> {
  return system.registerNode({ displayName });
}

async function count(sql: string, values: unknown[] = []): Promise<number> {
  const { rows } = await admin.query<{ n: string }>(`select count(*) as n from (${sql}) counted`, values);
  return Number(rows[0]!.n);
}

function logRows(namespace: string): Promise<number> {
  return count("select 1 from core.event_log where namespace = $1", [namespace]);
}

async function effectsTable(): Promise<string> {
  const table = `effects_${randomBytes(4).toString("hex")}`;
  await admin.query(`create table ${table} (event_id uuid primary key, attempt int not null)`);
  return table;
}

describe("fan-out and competing consumers", () => {
  it("gives each group subscribed to order.* one copy of order.created, and nothing to others", async () => {
    const system = await connect();
    const seen: string[] = [];
    const billing = await node(system, "billing");
    const shipping = await node(system, "shipping");
    const audit = await node(system, "audit");
    await billing.onEvent("order.*", (event) => void seen.push(`billing:${event.type}`), FAST);
    await shipping.onEvent("order.*", (event) => void seen.push(`shipping:${event.type}`), FAST);
    await audit.onEvent("payment.*", (event) => void seen.push(`audit:${event.type}`), FAST);
    await Promise.all([billing.start(), shipping.start(), audit.start()]);

    await billing.emit("order.created", { id: 1 });
    await billing.emit("inventory.changed", { id: 2 });
    await waitUntil("both groups to get the event", () => seen.length, (n) => n >= 2);
    await sleep(300);
    expect(seen.sort()).toEqual(["billing:order.created", "shipping:order.created"]);
    expect(await logRows(system.namespace)).toBe(2);
  });

  it("shares 300 events among three instances of one group, none handled twice", async () => {
    const system = await connect();
    const handled: string[] = [];
    const perInstance = [0, 0, 0];
    const instances = await Promise.all([0, 1, 2].map((i) => node(system, `worker-${i}`)));
    for (const [index, instance] of instances.entries()) {
      await instance.onEvent(
        "job.run",
        async (event) => {
          handled.push(event.id);
          perInstance[index]! += 1;
          await sleep(1);
        },
        { group: "workers", prefetch: 5, ...FAST },
      );
    }
    await Promise.all(instances.map((instance) => instance.start()));
    const ids = await instances[0]!.emitBatch(Array.from({ length: 300 }, (_, n) => ({ type: "job.run", payload: { n } })));
    await waitUntil("300 events handled", () => handled.length, (n) => n >= 300, 20_000);
    await sleep(200);
    expect(handled).toHaveLength(300);
    expect(new Set(handled)).toEqual(new Set(ids));
    expect(perInstance.filter((n) => n > 0).length).toBeGreaterThan(1);
  });

  it("keeps a group's events while its consumers are stopped, and delivers them later", async () => {
    const system = await connect();
    const first = await node(system, "reports");
    await first.onEvent("report.*", () => {}, FAST);
    await first.start();
    await first.stop();

    const producer = await node(system, "producer");
    await producer.emitBatch([1, 2, 3].map((n) => ({ type: "report.requested", payload: n })));

    const later = await node(system, "reports");
    const payloads: unknown[] = [];
    await later.onEvent("report.*", (event) => void payloads.push(event.payload), FAST);
    await later.start();
    await waitUntil("the three kept events", () => payloads.length, (n) => n >= 3);
    expect(payloads).toEqual([1, 2, 3]);
  });
});

describe("transactions", () => {
  it("publishes nothing when the caller's transaction rolls back, and publishes on commit", async () => {
    const system = await connect();
    const received: unknown[] = [];
    const consumer = await node(system, "consumer");
    await consumer.onEvent("tx.*", (event) => void received.push(event.payload), FAST);
    await consumer.start();

    const client = await admin.connect();
    try {
      await client.query("begin");
      await consumer.emit("tx.rolled-back", 1, { client });
      await client.query("rollback");
      await client.query("begin");
      await consumer.emit("tx.committed", 2, { client });
      await client.query("commit");
    } finally {
      client.release();
    }
    await waitUntil("the committed event", () => received.length, (n) => n >= 1);
    await sleep(300);
    expect(received).toEqual([2]);
    expect(await logRows(system.namespace)).toBe(1);
  });

  it("emitStatement run on a raw transaction behaves the same", async () => {
    const system = await connect();
    const received: unknown[] = [];
    const consumer = await node(system, "consumer");
    await consumer.onEvent("raw.*", (event) => void received.push(event.payload), FAST);
    await consumer.start();

    const client = new pg.Client({ connectionString: testDatabaseUrl() });
    await client.connect();
    try {
      const rolledBack = system.emitStatement("raw.rolled-back", { n: 1 });
      await client.query("begin");
      await client.query(rolledBack.text, rolledBack.values);
      await client.query("rollback");
      const committed = system.emitStatement("raw.committed", { n: 2 }, { headers: { origin: "orm" } });
      await client.query("begin");
      const { rows } = await client.query(committed.text, committed.values);
      await client.query("commit");
      expect(rows).toEqual([{ event_id: expect.any(String), published: true }]);
    } finally {
      await client.end();
    }
    await waitUntil("the committed event", () => received.length, (n) => n >= 1);
    await sleep(300);
    expect(received).toEqual([{ n: 2 }]);
  });

  it("emitBatch is all-or-nothing", async () => {
    const system = await connect();
    const producer = await node(system, "producer");
    await expect(
      producer.emitBatch([
        { type: "batch.ok", payload: 1 },
        { type: "batch bad", payload: 2 },
      ]),
    ).rejects.toBeInstanceOf(ValidationError);
    const client = await admin.connect();
    try {
      await client.query("begin");
      await producer.emitBatch([1, 2, 3].map((n) => ({ type: "batch.ok", payload: n })), { client });
      await client.query("rollback");
    } finally {
      client.release();
    }
    expect(await logRows(system.namespace)).toBe(0);
    const ids = await producer.emitBatch([1, 2, 3].map((n) => ({ type: "batch.ok", payload: n })));
    expect(ids).toHaveLength(3);
    expect(await logRows(system.namespace)).toBe(3);
  });

  it("rolls back a handler's insert when it throws, and redelivers with attempt 2", async () => {
    const system = await connect();
    const table = await effectsTable();
    const attempts: number[] = [];
    const consumer = await node(system, "consumer");
    await consumer.onEvent(
      "pay.*",
      async (event: CoreEvent, ctx: HandlerContext) => {
        attempts.push(ctx.attempt);
        await ctx.client.query(`insert into ${table} (event_id, attempt) values ($1, $2)`, [event.id, ctx.attempt]);
        if (ctx.attempt === 1) throw new Error("first attempt fails");
      },
      FAST,
    );
    await consumer.start();
    const id = await consumer.emit("pay.captured", { amount: 5 });
    await waitUntil("the second attempt", () => attempts.length, (n) => n >= 2);
    await sleep(200);
    expect(attempts).toEqual([1, 2]);
    const { rows } = await admin.query(`select event_id, attempt from ${table}`);
    expect(rows).toEqual([{ event_id: id, attempt: 2 }]);
    await admin.query(`drop table ${table}`);
  });
});

describe("delays and idempotency", () => {
  it("does not handle a delayed event before its delay", async () => {
    const system = await connect();
    let handledAt = 0;
    const consumer = await node(system, "consumer");
    await consumer.onEvent("later.*", () => void (handledAt = Date.now()), FAST);
    await consumer.start();
    const emittedAt = Date.now();
    await consumer.emit("later.reminder", {}, { delay: 1_500 });
    await waitUntil("the delayed event", () => handledAt, (t) => t > 0, 10_000);
    expect(handledAt - emittedAt).toBeGreaterThanOrEqual(1_500);
  });

  it("publishes once for a repeated idempotency key and returns the first id", async () => {
    const system = await connect();
    const received: unknown[] = [];
    const consumer = await node(system, "consumer");
    await consumer.onEvent("idem.*", (event) => void received.push(event.payload), FAST);
    await consumer.start();
    const ids = await Promise.all([1, 2, 3].map((n) => consumer.emit("idem.charge", { n }, { idempotencyKey: "charge-42" })));
    const again = await consumer.emit("idem.charge", { n: 4 }, { idempotencyKey: "charge-42" });
    expect(new Set([...ids, again]).size).toBe(1);
    await waitUntil("one delivery", () => received.length, (n) => n >= 1);
    await sleep(300);
    expect(received).toHaveLength(1);
    expect(await logRows(system.namespace)).toBe(1);
  });
});

describe("retries and dead letters", () => {
  it("moves an event to the group's dead-letter queue after maxAttempts, with the error", async () => {
    const system = await connect();
    const attempts: number[] = [];
    const consumer = await node(system, "consumer");
    await consumer.onEvent(
      "doomed.*",
      (_event, ctx) => {
        attempts.push(ctx.attempt);
        throw new TypeError(`boom on attempt ${ctx.attempt}`);
      },
      { ...FAST, maxAttempts: 3 },
    );
    await consumer.start();
    const id = await consumer.emit("doomed.event", { x: 1 });
    const dlq = deadLetterQueueName(groupQueueName(system.namespace, "consumer"));
    const rows = await waitUntil(
      "the dead letter",
      async () => (await admin.query(`select message from pgmq.${pg.escapeIdentifier(`q_${dlq}`)}`)).rows,
      (r) => r.length > 0,
    );
    expect(attempts).toEqual([1, 2, 3]);
    const deadLetter = rows[0].message;
    expect(deadLetter).toMatchObject({
      id,
      type: "doomed.event",
      payload: { x: 1 },
      deadLetter: { attempts: 3, error: { name: "TypeError", message: "boom on attempt 3" } },
    });
    expect(deadLetter.deadLetter.error.stack).toContain("boom on attempt 3");
    expect(Date.parse(deadLetter.deadLetter.firstFailedAt)).toBeLessThanOrEqual(Date.parse(deadLetter.deadLetter.lastFailedAt));
    expect(await count(`select 1 from pgmq.${pg.escapeIdentifier(`q_${groupQueueName(system.namespace, "consumer")}`)}`)).toBe(0);
  });

  it("for 1000 events with random failures, handled + dead-lettered = emitted, exactly", async () => {
    const system = await connect();
    const table = await effectsTable();
    const consumer = await node(system, "flaky");
    await consumer.onEvent(
      "flaky.*",
      async (event, ctx) => {
        await ctx.client.query(`insert into ${table} (event_id, attempt) values ($1, $2)`, [event.id, ctx.attempt]);
        if (Math.random() < 0.4) throw new Error("random failure");
      },
      { ...FAST, maxAttempts: 3, prefetch: 50, concurrency: 4 },
    );
    await consumer.start();
    const ids = await consumer.emitBatch(Array.from({ length: 1000 }, (_, n) => ({ type: "flaky.work", payload: { n } })));
    const queue = groupQueueName(system.namespace, "flaky");
    const dlqTable = pg.escapeIdentifier(`q_${deadLetterQueueName(queue)}`);
    await waitUntil("the queue to drain", () => count(`select 1 from pgmq.${pg.escapeIdentifier(`q_${queue}`)}`), (n) => n === 0, 30_000);
    const handled = (await admin.query<{ event_id: string }>(`select event_id from ${table}`)).rows.map((r) => r.event_id);
    const dead = (await admin.query<{ id: string }>(`select message->>'id' as id from pgmq.${dlqTable}`)).rows.map((r) => r.id);
    expect(handled.length + dead.length).toBe(1000);
    expect(new Set([...handled, ...dead])).toEqual(new Set(ids));
    expect(dead.length).toBeGreaterThan(0);
    await admin.query(`drop table ${table}`);
  });
});

describe("input checks", () => {
  it.each([
    ["a function", () => 1, /not JSON-serialisable/],
    ["a bigint", { n: 10n }, /not JSON-serialisable/],
    ["a cycle", (() => { const o: Record<string, unknown> = {}; o.self = o; return o; })(), /not JSON-serialisable/],
    ["a \\u0000 in a string", { text: "a\u0000b" }, /\\u0000/],
    ["an oversized payload", { blob: "x".repeat(2_000) }, /limit is 1024 bytes/],
  ])("rejects %s with a typed error before writing anything", async (_label, payload, message) => {
    const system = await connect({ namespace: uniqueNamespace("input"), maxPayloadBytes: 1024 });
    const producer = await node(system, "producer");
    const error = await producer.emit("input.bad", payload).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as Error).message).toMatch(message);
    expect(() => system.emitStatement("input.bad", payload)).toThrow(ValidationError);
    expect(await logRows(system.namespace)).toBe(0);
  });

  it("rejects bad types, headers, delays and conflicting group options", async () => {
    const system = await connect();
    const producer = await node(system, "producer");
    await expect(producer.emit("x'); drop table core.nodes; --", {})).rejects.toThrow(/Invalid event type/);
    await expect(producer.emit("ok.type", {}, { headers: { n: 1 as unknown as string } })).rejects.toThrow(/header values must be strings/);
    await expect(producer.emit("ok.type", {}, { delay: -5 })).rejects.toThrow(/delay must be a whole number of milliseconds/);
    await producer.onEvent("a.*", () => {}, { group: "g", maxAttempts: 3 });
    await expect(producer.onEvent("b.*", () => {}, { group: "g", maxAttempts: 4 })).rejects.toThrow(/Group g already has other event options/);
    await expect(producer.onEvent("c.*", () => {}, { group: "g", concurrency: 0 })).rejects.toThrow(/concurrency must be a whole number from 1/);
    expect(await logRows(system.namespace)).toBe(0);
  });
});

describe("group lifecycle", () => {
  it("unsubscribe stops new copies; dropGroup removes the queues", async () => {
    const system = await connect();
    const consumer = await node(system, "temp");
    await consumer.onEvent("temp.*", () => {}, FAST);
    await consumer.start();
    await consumer.stop();
    const queue = groupQueueName(system.namespace, "temp");
    const producer = await node(system, "producer");
    await producer.emit("temp.one", 1);
    expect(await count(`select 1 from pgmq.${pg.escapeIdentifier(`q_${queue}`)}`)).toBe(1);
    expect(await producer.unsubscribe("temp.*", "temp")).toBe(true);
    await producer.emit("temp.two", 2);
    expect(await count(`select 1 from pgmq.${pg.escapeIdentifier(`q_${queue}`)}`)).toBe(1);
    expect(await system.dropGroup("temp")).toBe(0);
    expect(await count("select 1 from pgmq.list_queues() where queue_name in ($1, $2)", [queue, deadLetterQueueName(queue)])).toBe(0);
  });
});
