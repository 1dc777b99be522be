import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ClosedError,
  type CoreSystem,
  InvalidNameError,
  UnknownGroupError,
  ValidationError,
  deadLetterQueueName,
  groupQueueName,
  type CoreNode,
  type DeadLetterSummary,
} from "../../core/index.js";
import { testDatabaseUrl } from "../support/database.js";
import { useSystems } from "../support/systems.js";
import { sleep, waitUntil } from "../support/wait.js";

/** Fails once and the message is dead: one attempt, no backoff. */
const DIE_AT_ONCE = { pollInterval: 100, maxAttempts: 1, backoff: { type: "fixed" as const, delay: 0 } };

let admin: pg.Pool;
beforeAll(() => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 2 });
});
afterAll(() => admin.end());

const { connect } = useSystems({ label: "dlq" });

interface Handled {
  eventId: string;
  type: string;
  attempt: number;
}

/** A started consumer of `group` for `pattern` that throws while `control.fail` is true. */
async function consumer(system: CoreSystem, group: string, pattern: string, control: { fail: boolean }, handled: Handled[] = []): Promise<CoreNode> {
  const node = await system.registerNode({ displayName: group });
  await node.onEvent(
    pattern,
    (event, ctx) => {
      if (control.fail) throw new TypeError(`boom: ${event.type}`);
      handled.push({ eventId: event.id, type: event.type, attempt: ctx.attempt });
    },
    { group, ...DIE_AT_ONCE },
  );
  await node.start();
  return node;
}

async function waitForDeadLetters(system: CoreSystem, group: string, count: number): Promise<DeadLetterSummary[]> {
  const page = await waitUntil(
    `${count} dead letters in ${group}`,
    () => system.deadLetters.list(group, { limit: 1000 }),
    (p) => p.items.length >= count,
    15_000,
  );
  return page.items;
}

async function queueRows(queue: string): Promise<{ read_ct: number; message: Record<string, unknown> }[]> {
  const { rows } = await admin.query(`select read_ct, message from pgmq.${pg.escapeIdentifier(`q_${queue}`)} order by msg_id`);
  return rows;
}

describe("list and get", () => {
  it("lists a dead-lettered event and gets it whole, with its error; JSON round-trips unchanged", async () => {
    const system = await connect();
    const control = { fail: true };
    const node = await consumer(system, "worker", "dl.*", control);
    const eventId = await node.emit("dl.created", { n: 1 }, { headers: { trace: "t-1" } });

    const [item] = await waitForDeadLetters(system, "worker", 1);
    expect(item).toMatchObject({
      eventId,
      type: "dl.created",
      attempts: 1,
      error: { name: "TypeError", message: "boom: dl.created" },
    });
    expect(item!.error).not.toHaveProperty("stack");
    expect(item).not.toHaveProperty("payload");
    expect(item!.id).toMatch(/^\d+$/);
    expect(Date.parse(item!.deadLetteredAt)).not.toBeNaN();

    const full = await system.deadLetters.get("worker", item!.id);
    expect(full).toMatchObject({
      id: item!.id,
      eventId,
      type: "dl.created",
      payload: { n: 1 },
      headers: { trace: "t-1" },
      sourceNode: node.nodeId,
      attempts: 1,
      error: { name: "TypeError", message: "boom: dl.created" },
    });
    expect(full!.error.stack).toContain("boom: dl.created");
    expect(full!.originalMessageId).toMatch(/^\d+$/);
    for (const time of [full!.firstFailedAt, full!.lastFailedAt, full!.originalEnqueuedAt, full!.emittedAt, full!.deadLetteredAt]) {
      expect(time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
    expect(Date.parse(full!.firstFailedAt!)).toBeLessThanOrEqual(Date.parse(full!.lastFailedAt!));
    expect(JSON.parse(JSON.stringify(full))).toEqual(full);
    expect(await system.deadLetters.get("worker", Number(item!.id))).toEqual(full);
    expect(await system.deadLetters.get("worker", "987654321")).toBeNull();
  });
});

describe("retry", () => {
  it("moves a dead letter back: handled once, at attempt 1, and gone from the dead-letter queue", async () => {
    const system = await connect();
    const control = { fail: true };
    const handled: Handled[] = [];
    const node = await consumer(system, "worker", "dl.*", control, handled);
    const eventId = await node.emit("dl.retried", { n: 2 });
    const [item] = await waitForDeadLetters(system, "worker", 1);

    control.fail = false;
    expect(await system.deadLetters.retry("worker", [item!.id])).toBe(1);
    await waitUntil("the retried event", () => handled.length, (n) => n >= 1);
    await sleep(500);
    expect(handled).toEqual([{ eventId, type: "dl.retried", attempt: 1 }]);
    expect((await system.deadLetters.list("worker")).items).toEqual([]);
    expect(await system.deadLetters.retry("worker", [item!.id])).toBe(0);
    expect(await queueRows(groupQueueName(system.namespace, "worker"))).toEqual([]);
  });

  it("retries by type pattern and by time, as fresh messages holding the original envelope; concurrent retries move each once", async () => {
    const system = await connect();
    const control = { fail: true };
    const node = await consumer(system, "sorter", "**", control);
    await node.emitBatch(["a.one", "b.two", "a.three", "b.four", "a.five"].map((type, n) => ({ type, payload: { n } })));
    const items = await waitForDeadLetters(system, "sorter", 5);
    await node.stop();
    const queue = groupQueueName(system.namespace, "sorter");

    expect(await system.deadLetters.retry("sorter", { type: "b.*" })).toBe(2);
    const requeued = await queueRows(queue);
    expect(requeued.map((row) => row.message.type)).toEqual(["b.two", "b.four"]);
    expect(requeued.every((row) => row.read_ct === 0 && !("deadLetter" in row.message))).toBe(true);
    expect(requeued[0]!.message).toMatchObject({ id: items[1]!.eventId, type: "b.two", payload: { n: 1 }, headers: {} });

    const oldest = items.reduce((min, item) => (item.deadLetteredAt < min ? item.deadLetteredAt : min), items[0]!.deadLetteredAt);
    expect(await system.deadLetters.retry("sorter", { before: oldest })).toBe(0);
    const left = (await system.deadLetters.list("sorter")).items.map((item) => item.id);
    expect(left).toHaveLength(3);
    const [first, second] = await Promise.all([system.deadLetters.retry("sorter", left), system.deadLetters.retry("sorter", left)]);
    expect(first! + second!).toBe(3);
    expect((await queueRows(queue)).map((row) => row.message.type)).toEqual(["b.two", "b.four", "a.one", "a.three", "a.five"]);
    expect(await system.deadLetters.retry("sorter", {})).toBe(0);
    expect(await system.deadLetters.retry("sorter", [])).toBe(0);
  });

  it("retries every dead letter dead-lettered before a time given as an ISO string", async () => {
    const system = await connect();
    const node = await consumer(system, "timed", "t.*", { fail: true });
    await node.emitBatch([1, 2, 3].map((n) => ({ type: "t.x", payload: n })));
    await waitForDeadLetters(system, "timed", 3);
    await node.stop();
    expect(await system.deadLetters.retry("timed", { before: new Date(Date.now() + 60_000).toISOString(), type: "t.x" })).toBe(3);
    expect((await system.deadLetters.list("timed")).items).toEqual([]);
  });
});

describe("purge", () => {
  it("removes only that group's dead letters; another group's remain", async () => {
    const system = await connect();
    const alpha = await consumer(system, "alpha", "pg.*", { fail: true });
    await consumer(system, "beta", "pg.*", { fail: true });
    await alpha.emitBatch([1, 2].map((n) => ({ type: "pg.doomed", payload: n })));
    await waitForDeadLetters(system, "alpha", 2);
    await waitForDeadLetters(system, "beta", 2);

    expect(await system.deadLetters.purge("alpha")).toBe(2);
    expect((await system.deadLetters.list("alpha")).items).toEqual([]);
    expect((await system.deadLetters.list("beta")).items).toHaveLength(2);
    expect(await queueRows(deadLetterQueueName(groupQueueName(system.namespace, "beta")))).toHaveLength(2);
    expect(await system.deadLetters.purge("alpha")).toBe(0);
  });
});

describe("paging and filters", () => {
  it("pages by id with nextAfter, alone and with a type filter", async () => {
    const system = await connect();
    const node = await consumer(system, "pager", "**", { fail: true });
    const types = ["a.one", "b.two", "a.three", "b.four", "a.five"];
    await node.emitBatch(types.map((type, n) => ({ type, payload: { n } })));
    await waitForDeadLetters(system, "pager", 5);

    const seen: DeadLetterSummary[] = [];
    let page = await system.deadLetters.list("pager", { limit: 2 });
    const sizes = [page.items.length];
    seen.push(...page.items);
    while (page.nextAfter !== null) {
      expect(page.nextAfter).toBe(page.items.at(-1)!.id);
      page = await system.deadLetters.list("pager", { limit: 2, after: page.nextAfter });
      sizes.push(page.items.length);
      seen.push(...page.items);
    }
    expect(sizes).toEqual([2, 2, 1]);
    expect(seen.map((item) => item.type)).toEqual(types);
    const ids = seen.map((item) => BigInt(item.id));
    expect(ids).toEqual([...ids].sort((a, b) => (a < b ? -1 : 1)));
    expect(new Set(ids).size).toBe(5);

    expect((await system.deadLetters.list("pager", { type: "a.*" })).items.map((item) => item.type)).toEqual(["a.one", "a.three", "a.five"]);
    expect((await system.deadLetters.list("pager", { type: "b.two" })).items.map((item) => item.type)).toEqual(["b.two"]);
    expect((await system.deadLetters.list("pager", { type: "c.**" })).items).toEqual([]);
    const filtered = await system.deadLetters.list("pager", { type: "a.*", limit: 2 });
    expect(filtered.items.map((item) => item.type)).toEqual(["a.one", "a.three"]);
    const rest = await system.deadLetters.list("pager", { type: "a.*", limit: 2, after: filtered.nextAfter! });
    expect(rest).toEqual({ items: [expect.objectContaining({ type: "a.five" })], nextAfter: null });
    expect((await system.deadLetters.list("pager", { after: seen[4]!.id })).items).toEqual([]);
  });
});

describe("input checks", () => {
  it("rejects bad groups, ids, limits, filters and unknown groups with typed errors", async () => {
    const system = await connect();
    await consumer(system, "known", "k.*", { fail: true });
    const dl = system.deadLetters;

    await expect(dl.list("Bad Group")).rejects.toBeInstanceOf(InvalidNameError);
    await expect(dl.purge("x'; drop table core.nodes; --")).rejects.toBeInstanceOf(InvalidNameError);
    for (const call of [() => dl.list("nobody"), () => dl.get("nobody", "1"), () => dl.retry("nobody", ["1"]), () => dl.purge("nobody")]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnknownGroupError);
      expect(error).toMatchObject({ code: "ERR_NEXUS_UNKNOWN_GROUP", group: "nobody" });
      expect((error as Error).message).toMatch(/Group nobody has no queue in namespace/);
    }
    for (const limit of [0, 1001, 1.5, "10" as unknown as number]) {
      await expect(dl.list("known", { limit })).rejects.toThrow(/limit must be a whole number from 1 to 1000/);
    }
    for (const after of ["abc", -1, "0", 1.5, "99999999999999999999"]) {
      await expect(dl.list("known", { after })).rejects.toThrow(/after must be a dead-letter id/);
    }
    await expect(dl.list("known", { type: "no spaces" })).rejects.toBeInstanceOf(InvalidNameError);
    await expect(dl.list("known", { types: "a.*" } as never)).rejects.toThrow(/Unknown option "types" in deadLetters.list options \(did you mean "type"\?\)/);
    await expect(dl.get("known", "0")).rejects.toBeInstanceOf(ValidationError);
    await expect(dl.get("known", "1; select 1")).rejects.toBeInstanceOf(ValidationError);
    await expect(dl.retry("known", { types: "a.*" } as never)).rejects.toThrow(/Unknown option "types" in deadLetters.retry filter \(did you mean "type"\?\)/);
    await expect(dl.retry("known", "17" as never)).rejects.toThrow(/array of dead-letter ids or a filter/);
    await expect(dl.retry("known", ["1", "x"])).rejects.toThrow(/ids must be a dead-letter id/);
    await expect(dl.retry("known", { before: "yesterday" })).rejects.toThrow(/before must be a Date or an ISO 8601 time/);
    await expect(dl.retry("known", { type: "a..b" })).rejects.toBeInstanceOf(InvalidNameError);

    await system.close();
    await expect(dl.list("known")).rejects.toBeInstanceOf(ClosedError);
  });
});
