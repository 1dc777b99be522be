/**
 * Replay: logged events of a window re-enqueued to one group's queue. These tests share
 * the run's database (each in its own namespace) and never reconfigure the event log; log
 * rows with chosen emitted_at times are written directly, as the emit path would.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CoreSystem,
  InvalidNameError,
  REPLAY_HEADER,
  UnknownGroupError,
  ValidationError,
  groupQueueName,
  type CoreEvent,
  type CoreNode,
  type ReplayOptions,
} from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { useSystems } from "../support/systems.js";
import { sleep, waitUntil } from "../support/wait.js";

const FAST = { pollInterval: 100, concurrency: 1, prefetch: 10, backoff: { type: "fixed" as const, delay: 0 } };
const MINUTE_MS = 60_000;

let admin: pg.Pool;
beforeAll(() => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
});
afterAll(() => admin.end());

const { connect } = useSystems({ label: "replay" });

interface Received {
  id: string;
  type: string;
  headers: Record<string, string>;
  payload: unknown;
  emittedAt: Date;
}

/** A started node of `group` that records every event it handles. */
async function consumer(system: CoreSystem, group: string, pattern = "order.*"): Promise<{ node: CoreNode; received: Received[] }> {
  const node = await system.registerNode({ displayName: group });
  const received: Received[] = [];
  await node.onEvent(
    pattern,
    (event: CoreEvent) => void received.push({ id: event.id, type: event.type, headers: event.headers, payload: event.payload, emittedAt: event.emittedAt }),
    FAST,
  );
  await node.start();
  return { node, received };
}

/** Subscribes `group` durably (a node starts and stops): its queue keeps what is sent to it. */
async function subscribeOnly(system: CoreSystem, group: string, pattern: string): Promise<void> {
  const node = await system.registerNode({ displayName: group });
  await node.onEvent(pattern, () => {}, FAST);
  await node.start();
  await node.stop();
}

interface LogRow {
  id: string;
  type: string;
  at: Date;
}

/** Writes log rows of `namespace` at the given times (as emit would, with a header of its own). */
async function log(namespace: string, rows: Array<{ type: string; at: Date }>): Promise<LogRow[]> {
  const written: LogRow[] = [];
  for (const row of rows) {
    const { rows: inserted } = await admin.query<{ id: string }>(
      `insert into core.event_log (id, namespace, type, payload, headers, emitted_at)
       values (gen_random_uuid(), $1, $2, $3::jsonb, '{"origin":"test"}', $4) returning id`,
      [namespace, row.type, JSON.stringify({ type: row.type, at: row.at.toISOString() }), row.at],
    );
    written.push({ id: inserted[0]!.id, type: row.type, at: row.at });
  }
  return written;
}

async function queueLength(queue: string): Promise<number> {
  const { rows } = await admin.query<{ n: string }>(`select count(*) as n from pgmq.${pg.escapeIdentifier(`q_${queue}`)}`);
  return Number(rows[0]!.n);
}

describe("replay", () => {
  it("re-delivers exactly the window's logged events to the named group, in order, marked as a replay, and nothing to another group", async () => {
    const system = await connect();
    const audit = await consumer(system, "audit");
    const billing = await consumer(system, "billing");
    const base = Date.now() - 60 * MINUTE_MS;
    const at = (minutes: number, ms = 0): Date => new Date(base + minutes * MINUTE_MS + ms);
    const from = at(0);
    const to = at(30);
    const [beforeWindow, ...rest] = await log(system.namespace, [
      { type: "order.created", at: at(0, -1) },
      { type: "order.created", at: from },
      { type: "order.paid", at: at(5) },
      { type: "payment.settled", at: at(6) },
      { type: "order.created", at: at(7) },
      { type: "order.shipped", at: at(29, 59_999) },
      { type: "order.created", at: to },
    ]);
    const inWindow = rest.slice(0, 5);
    const afterWindow = rest[5]!;
    // The same times in another namespace: never replayed here.
    const foreign = uniqueNamespace("replay-other");
    await log(foreign, [{ type: "order.created", at: at(1) }]);

    const result = await system.replay({ group: "audit", from, to });

    // The group subscribes to order.*: payment.settled never reached it, so it is not replayed.
    const expected = inWindow.filter((row) => row.type.startsWith("order."));
    expect(result.count).toBe(expected.length);
    await waitUntil("the replayed copies", () => audit.received.length, (n) => n >= expected.length);
    await sleep(300);
    expect(audit.received.map((event) => event.id)).toEqual(expected.map((row) => row.id));
    expect(audit.received.map((event) => event.id)).not.toContain(beforeWindow!.id);
    expect(audit.received.map((event) => event.id)).not.toContain(afterWindow.id);
    for (const [index, event] of audit.received.entries()) {
      expect(event.headers).toEqual({ origin: "test", [REPLAY_HEADER]: result.replayId });
      expect(event.type).toBe(expected[index]!.type);
      expect(event.emittedAt.getTime()).toBe(expected[index]!.at.getTime());
      expect(event.payload).toEqual({ type: expected[index]!.type, at: expected[index]!.at.toISOString() });
    }
    expect(billing.received).toEqual([]);
    expect(await queueLength(groupQueueName(system.namespace, "billing"))).toBe(0);
  });

  it("replays emitted events in batches with their original ids, after each group handled them once", async () => {
    const system = await connect();
    const audit = await consumer(system, "audit");
    const billing = await consumer(system, "billing");
    const producer = await system.registerNode({ displayName: "producer" });
    const from = new Date(Date.now() - 1_000);
    const ids: string[] = [];
    for (let n = 0; n < 7; n += 1) ids.push(await producer.emit(n % 2 ? "order.paid" : "order.created", { n }));
    await producer.emit("payment.settled", { ignored: true });
    await waitUntil("the live deliveries", () => audit.received.length + billing.received.length, (n) => n >= 14);
    expect(audit.received.map((event) => event.id)).toEqual(ids);

    const result = await system.replay({ group: "audit", types: ["order.*"], from, to: new Date(Date.now() + 60_000), batchSize: 2 });

    expect(result.count).toBe(7);
    await waitUntil("the replayed copies", () => audit.received.length, (n) => n >= 14);
    await sleep(300);
    const replayed = audit.received.slice(7);
    expect(replayed.map((event) => event.id)).toEqual(ids);
    expect(replayed.every((event) => event.headers[REPLAY_HEADER] === result.replayId)).toBe(true);
    expect(audit.received.slice(0, 7).every((event) => event.headers[REPLAY_HEADER] === undefined)).toBe(true);
    expect(billing.received.map((event) => event.id)).toEqual(ids);
  });

  it("replays the events of one transaction in the order they were emitted, across pages", async () => {
    const system = await connect();
    const producer = await system.registerNode({ displayName: "producer" });
    const from = new Date(Date.now() - 1_000);
    const ids = await producer.emitBatch(Array.from({ length: 7 }, (_, n) => ({ type: "order.created", payload: { n } })));
    await subscribeOnly(system, "audit", "order.*");
    const queue = groupQueueName(system.namespace, "audit");

    const result = await system.replay({ group: "audit", from, to: new Date(Date.now() + 1_000), batchSize: 3 });

    expect(result.count).toBe(7);
    const { rows } = await admin.query<{ id: string; replay: string }>(
      `select message->>'id' as id, message->'headers'->>'${REPLAY_HEADER}' as replay from pgmq.${pg.escapeIdentifier(`q_${queue}`)} order by msg_id`,
    );
    // core.emit stamps each event with clock_timestamp(), so the log keeps the batch's order.
    expect(rows.map((row) => row.id)).toEqual(ids);
    expect(new Set(rows.map((row) => row.replay))).toEqual(new Set([result.replayId]));
  });

  it("pages through events that share one emitted_at by id, none repeated or skipped", async () => {
    const system = await connect();
    await subscribeOnly(system, "audit", "order.*");
    const queue = groupQueueName(system.namespace, "audit");
    const at = new Date(Date.now() - 10 * MINUTE_MS);
    const written = await log(system.namespace, Array.from({ length: 7 }, () => ({ type: "order.created", at })));

    const result = await system.replay({ group: "audit", from: at, to: new Date(), batchSize: 3 });

    expect(result.count).toBe(7);
    const { rows } = await admin.query<{ id: string }>(
      `select message->>'id' as id from pgmq.${pg.escapeIdentifier(`q_${queue}`)} order by msg_id`,
    );
    expect(rows.map((row) => row.id)).toEqual(written.map((row) => row.id).sort());
  });

  it("replays only the types asked for, exact or by pattern", async () => {
    const system = await connect();
    await subscribeOnly(system, "audit", "**");
    const base = Date.now() - 10 * MINUTE_MS;
    await log(system.namespace, [
      { type: "order.created", at: new Date(base) },
      { type: "order.paid", at: new Date(base + 1) },
      { type: "payment.settled", at: new Date(base + 2) },
      { type: "payment.refund.issued", at: new Date(base + 3) },
    ]);
    const window = { group: "audit", from: new Date(base), to: new Date() };

    expect((await system.replay({ ...window, types: ["order.paid"], dryRun: true })).count).toBe(1);
    expect((await system.replay({ ...window, types: ["payment.*"], dryRun: true })).count).toBe(1);
    expect((await system.replay({ ...window, types: ["payment.**", "order.created"], dryRun: true })).count).toBe(3);
    expect((await system.replay({ ...window, dryRun: true })).count).toBe(4);
  });

  it("counts without sending anything on a dry run", async () => {
    const system = await connect();
    await subscribeOnly(system, "audit", "order.*");
    const queue = groupQueueName(system.namespace, "audit");
    const base = Date.now() - 10 * MINUTE_MS;
    await log(system.namespace, [1, 2, 3].map((n) => ({ type: "order.created", at: new Date(base + n) })));

    const dry = await system.replay({ group: "audit", from: new Date(base), to: new Date(), dryRun: true });

    expect(dry.count).toBe(3);
    expect(dry.replayId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await queueLength(queue)).toBe(0);
    const real = await system.replay({ group: "audit", from: new Date(base), to: new Date() });
    expect(real.count).toBe(3);
    expect(real.replayId).not.toBe(dry.replayId);
    expect(await queueLength(queue)).toBe(3);
  });

  it("rejects invalid arguments with typed errors and sends nothing", async () => {
    const system = await connect();
    const node = await system.registerNode({ displayName: "audit" });
    await node.onEvent("order.*", () => {}, FAST);
    await node.onEvent("gone.*", () => {}, { ...FAST, group: "former" });
    await node.start();
    await node.unsubscribe("gone.*", "former");
    await node.stop();
    const queue = groupQueueName(system.namespace, "audit");
    const base = Date.now() - 10 * MINUTE_MS;
    await log(system.namespace, [{ type: "order.created", at: new Date(base + 1) }]);
    const valid: ReplayOptions = { group: "audit", from: new Date(base), to: new Date() };

    const cases: Array<[unknown, new (...args: never[]) => Error, string | undefined]> = [
      [undefined, ValidationError, "options"],
      [{ ...valid, group: "Not A Group" }, InvalidNameError, "group"],
      [{ ...valid, group: undefined }, InvalidNameError, "group"],
      [{ ...valid, from: "yesterday" }, ValidationError, "from"],
      [{ ...valid, from: new Date(Number.NaN) }, ValidationError, "from"],
      [{ ...valid, to: undefined }, ValidationError, "to"],
      [{ ...valid, to: valid.from }, ValidationError, "to"],
      [{ ...valid, from: valid.to, to: valid.from }, ValidationError, "to"],
      [{ ...valid, types: [] }, ValidationError, "types"],
      [{ ...valid, types: "order.created" }, ValidationError, "types"],
      [{ ...valid, types: ["order..created"] }, InvalidNameError, "pattern"],
      [{ ...valid, dryRun: "yes" }, ValidationError, "dryRun"],
      [{ ...valid, batchSize: 0 }, ValidationError, "batchSize"],
      [{ ...valid, batchSize: 1.5 }, ValidationError, "batchSize"],
      [{ ...valid, batchSize: 100_000 }, ValidationError, "batchSize"],
      [{ ...valid, type: "order.created" }, ValidationError, "type"],
      [{ ...valid, group: "nobody" }, UnknownGroupError, undefined],
      [{ ...valid, group: "former" }, ValidationError, "group"],
    ];
    for (const [options, kind, argument] of cases) {
      const error = await system.replay(options as ReplayOptions).catch((caught: unknown) => caught);
      expect(error, JSON.stringify(options)).toBeInstanceOf(kind);
      if (argument !== undefined) expect((error as ValidationError).argument, JSON.stringify(options)).toBe(argument);
    }
    expect(await queueLength(queue)).toBe(0);
    expect(await queueLength(groupQueueName(system.namespace, "former"))).toBe(0);
    expect((await system.replay(valid)).count).toBe(1);
  });
});
