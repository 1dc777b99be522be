/**
 * Deaf nodes: a system NOTIFYs itself at connect. Behind PgBouncer in transaction mode
 * without `listenConnectionString` it does not hear that NOTIFY: it says so once, records
 * it in `core.nodes.hears_notify`, and still works through queues: senders put what they
 * would NOTIFY it into its queue, which it polls, and its requests take the queue path.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CoreNode, CoreSystem } from "../../core/index.js";
import { capturingLogger } from "../support/capture.js";
import { testDatabaseUrl, uniqueNamespace, withClient } from "../support/database.js";
import { pgbouncerVersion, startPgBouncer, type Bouncer } from "../support/pgbouncer.js";
import { useSystems } from "../support/systems.js";
import { deferred, waitUntil, within } from "../support/wait.js";

const systems = useSystems({ label: "deaf" });
const version = pgbouncerVersion();
const PROBE_WARNING = /did not hear its own NOTIFY/;

/** The log lines of `lines` at warn level (pino: 40) or above. */
function warnings(lines: string[]): { level: number; msg: string }[] {
  return lines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((line) => line.level >= 40);
}

async function hearsNotify(nodeId: string): Promise<boolean> {
  const { rows } = await withClient(testDatabaseUrl(), (client) => client.query<{ hears_notify: boolean }>("select hears_notify from core.nodes where node_id = $1", [nodeId]));
  return rows[0]!.hears_notify;
}

describe("a system on a direct connection", () => {
  it("hears its own NOTIFY at connect, in a few milliseconds, and registers its nodes as hearing", async () => {
    const { logger, lines } = capturingLogger();
    const system = await systems.connect({ logger });
    expect(system.hearsNotifications).toBe(true);
    const probe = lines.map((line) => JSON.parse(line) as { msg: string; elapsedMs?: number }).find((line) => line.msg === "heard its own notification");
    expect(probe?.elapsedMs, "the probe's wait on a direct connection").toBeLessThan(100);
    expect(warnings(lines)).toEqual([]);
    const node = await system.registerNode({ displayName: "hearing" });
    expect(await hearsNotify(node.nodeId)).toBe(true);
    expect(system.deliveryFor("direct", "test")).toBe("direct");
  });
});

describe.skipIf(!version)(`behind PgBouncer in transaction mode without listenConnectionString (${version ?? "pgbouncer not installed"})`, () => {
  let bouncer: Bouncer;
  beforeAll(async () => {
    bouncer = await startPgBouncer(testDatabaseUrl());
  });
  afterAll(() => bouncer?.stop());

  function connectDeaf(namespace: string, logger = capturingLogger().logger): Promise<CoreSystem> {
    return systems.connect({ connectionString: bouncer.through(testDatabaseUrl()), preparedStatements: false, namespace, logger, pool: { max: 8 } });
  }

  it("finds it cannot hear, warns once, records it, and still answers, requests, receives events and direct messages", async () => {
    const namespace = uniqueNamespace("deaf");
    const { logger, lines } = capturingLogger();
    const deafSystem = await connectDeaf(namespace, logger);
    expect(deafSystem.hearsNotifications).toBe(false);
    const probeWarnings = warnings(lines);
    expect(probeWarnings).toHaveLength(1);
    expect(probeWarnings[0]!.msg).toMatch(PROBE_WARNING);
    expect(probeWarnings[0]!.msg).toMatch(/set listenConnectionString to a direct/);
    expect(deafSystem.deliveryFor("direct", "test")).toBe("queue");

    const deaf = await deafSystem.registerNode({ displayName: "deaf" });
    const hearingSystem = await systems.connect({ namespace });
    const hearing = await hearingSystem.registerNode({ displayName: "hearing" });
    expect(await hearsNotify(deaf.nodeId)).toBe(false);
    expect(await hearsNotify(hearing.nodeId)).toBe(true);

    const events: unknown[] = [];
    const pings: { payload: unknown; messageId: string }[] = [];
    const pongs: { payload: unknown; messageId: string }[] = [];
    await deaf.onRequest("deaf.echo", ({ payload }) => ({ echoed: payload }), { group: "deafsvc" });
    await deaf.onEvent("deaf.evt.*", (event) => void events.push(event.payload), { group: "deafevents" });
    deaf.onDirect("ping.*", (message, ctx) => void pings.push({ payload: message.payload, messageId: ctx.messageId }));
    await hearing.onRequest("hear.sum", ({ payload }) => (payload as number[]).reduce((a, b) => a + b, 0), { group: "hearsvc" });
    await hearing.onRequest("hear.count", async function* ({ payload }) {
      for (let i = 0; i < (payload as number); i += 1) yield i;
    }, { group: "hearsvc" });
    hearing.onDirect("pong.*", (message, ctx) => void pongs.push({ payload: message.payload, messageId: ctx.messageId }));
    await deaf.start();
    await hearing.start();

    // The deaf node answers from its request queue, which it polls.
    expect(await hearing.request("deaf.echo", { a: 1 }, { timeout: 5_000 })).toEqual({ echoed: { a: 1 } });
    // Its own requests get their replies (single and streamed) through its queue.
    expect(await deaf.request("hear.sum", [1, 2, 3], { timeout: 5_000 })).toBe(6);
    expect(await deaf.request("hear.count", 4, { timeout: 5_000 })).toEqual([0, 1, 2, 3]);
    // `direct` from a system that cannot hear takes the queue path.
    expect(await deaf.request("hear.sum", [4, 5], { delivery: "direct", timeout: 5_000 })).toBe(9);

    await hearing.emit("deaf.evt.created", { n: 1 });
    await waitUntil("the deaf node's event", () => events.length, (n) => n >= 1);
    expect(events).toEqual([{ n: 1 }]);

    // A direct sendTo to the deaf node goes into its queue: the handler sees a queue message id, not the envelope's UUID.
    await hearing.sendTo(deaf.nodeId, "ping.one", { i: 1 }, { delivery: "direct" });
    await hearing.sendTo(deaf.nodeId, "ping.two", { i: 2 }, { delivery: "direct" });
    await waitUntil("two direct messages at the deaf node", () => pings.length, (n) => n >= 2);
    expect(pings.map((ping) => ping.payload)).toEqual([{ i: 1 }, { i: 2 }]);
    expect(pings.every((ping) => /^\d+$/.test(ping.messageId))).toBe(true);
    // Sending needs no hearing: the deaf node's direct sendTo stays a NOTIFY.
    await deaf.sendTo(hearing.nodeId, "pong.one", { i: 3 }, { delivery: "direct" });
    await waitUntil("the hearing node's direct message", () => pongs.length, (n) => n >= 1);
    expect(pongs[0]!.payload).toEqual({ i: 3 });
    expect(pongs[0]!.messageId).toMatch(/^[0-9a-f-]{36}$/);

    expect(warnings(lines), "one warning in all: the probe's").toHaveLength(1);
  });

  it("never sends a direct request to a deaf responder; with no hearing one, the request takes the deaf responders' queue", async () => {
    const namespace = uniqueNamespace("deaf-pick");
    // The caller is up first, so it would hear any announcement the deaf responder made.
    const callerSystem = await systems.connect({ namespace });
    const caller = await callerSystem.registerNode({ displayName: "caller" });
    await caller.start();
    const answerer = (node: CoreNode) => () => node.nodeId;
    const deafSystem = await connectDeaf(namespace);
    const deaf = await deafSystem.registerNode({ displayName: "calc" });
    await deaf.onRequest("calc.who", answerer(deaf));
    await deaf.start();
    const hearingResponderSystem = await systems.connect({ namespace });
    const responder = await hearingResponderSystem.registerNode({ displayName: "calc" });
    await responder.onRequest("calc.who", answerer(responder));
    await responder.start();

    const answers = await Promise.all(Array.from({ length: 20 }, () => caller.request<string>("calc.who", {}, { delivery: "direct", timeout: 5_000 })));
    expect(new Set(answers)).toEqual(new Set([responder.nodeId]));

    await responder.stop();
    const fallback = await caller.request<string>("calc.who", {}, { delivery: "direct", timeout: 5_000 });
    expect(fallback).toBe(deaf.nodeId);
  });

  it("stops a deaf responder's stream when a hearing requester breaks off (the cancellation goes through its queue)", async () => {
    const namespace = uniqueNamespace("deaf-cancel");
    const deafSystem = await connectDeaf(namespace);
    const deaf = await deafSystem.registerNode({ displayName: "ticker" });
    const aborted = deferred<void>();
    await deaf.onRequest("tick.forever", async function* (_request, ctx) {
      ctx.signal.addEventListener("abort", () => aborted.resolve(), { once: true });
      for (let i = 0; !ctx.signal.aborted; i += 1) {
        yield i;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    });
    await deaf.start();
    const callerSystem = await systems.connect({ namespace });
    const caller = await callerSystem.registerNode({ displayName: "caller" });
    const seen: number[] = [];
    for await (const value of caller.requestStream<number>("tick.forever", {}, { timeout: 5_000 })) {
      seen.push(value);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual([0, 1, 2]);
    await within(5_000, "the deaf responder's stream to be aborted", aborted.promise);
  });
});
