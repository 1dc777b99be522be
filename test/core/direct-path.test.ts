/**
 * The direct path of `sendTo` (`delivery: "direct"`): NOTIFY on the target's channel,
 * coalesced per turn, at most once, handlers outside a transaction unless they use
 * `ctx.client`. What both paths share (10,000 messages in order, 100 KiB ones among them)
 * runs on each in rpc.test.ts.
 */
import { describe, expect, it } from "vitest";
import { ValidationError, type CoreNode, type CoreSystem } from "../../core/index.js";
import { capturingLogger } from "../support/capture.js";
import { uniqueNamespace, withClient, testDatabaseUrl } from "../support/database.js";
import { useSystems } from "../support/systems.js";
import { sleep, waitUntil } from "../support/wait.js";

const systems = useSystems({ label: "direct" });

async function pair(namespace = uniqueNamespace("direct"), targetSystem?: CoreSystem): Promise<{ sender: CoreNode; target: CoreNode; targetSystem: CoreSystem }> {
  targetSystem ??= await systems.connect({ namespace });
  const target = await targetSystem.registerNode({ displayName: "target" });
  const senderSystem = await systems.connect({ namespace });
  const sender = await senderSystem.registerNode({ displayName: "sender" });
  return { sender, target, targetSystem };
}

describe("direct path of sendTo", () => {
  it("commits what a handler writes through ctx.client, rolls back a throwing handler's writes, and never retries", async () => {
    const table = `direct_effects_${Date.now()}`;
    await withClient(testDatabaseUrl(), (client) => client.query(`create table ${table} (i int primary key)`));
    try {
      const { logger, lines } = capturingLogger();
      const namespace = uniqueNamespace("direct-tx");
      const targetSystem = await systems.connect({ namespace, logger });
      const { sender, target } = await pair(namespace, targetSystem);
      const calls: number[] = [];
      target.onDirect<{ i: number; fail?: boolean }>("fx.*", async (message, { client }) => {
        calls.push(message.payload.i);
        await client.query(`insert into ${table} (i) values ($1)`, [message.payload.i]);
        if (message.payload.fail) throw new Error("handler failed after its insert");
      });
      target.onDirect("untouched.*", () => {
        calls.push(-1);
      });
      await target.start();
      await sender.sendTo(target.nodeId, "fx.ok", { i: 1 }, { delivery: "direct" });
      await sender.sendTo(target.nodeId, "fx.fail", { i: 2, fail: true }, { delivery: "direct" });
      await sender.sendTo(target.nodeId, "fx.ok", { i: 3 }, { delivery: "direct" });
      await sender.sendTo(target.nodeId, "nobody.listens", {}, { delivery: "direct" });
      await waitUntil("three handler calls", () => calls.length, (n) => n >= 3);
      await waitUntil("the failure logged", () => lines.filter((line) => line.includes("direct message handler failed")).length, (n) => n === 1);
      await waitUntil("the unhandled type logged", () => lines.filter((line) => line.includes("had no handler")).length, (n) => n === 1);
      await sleep(300);
      expect(calls).toEqual([1, 2, 3]);
      const { rows } = await withClient(testDatabaseUrl(), (client) => client.query<{ i: number }>(`select i from ${table} order by i`));
      expect(rows.map((row) => row.i)).toEqual([1, 3]);
    } finally {
      await withClient(testDatabaseUrl(), (client) => client.query(`drop table if exists ${table}`));
    }
  });

  it("loses a message to a node that is not listening (at most once), where the queue path keeps it", async () => {
    const namespace = uniqueNamespace("direct-down");
    const { sender, target } = await pair(namespace);
    const received: string[] = [];
    target.onDirect<{ path: string }>("kept.*", (message) => {
      received.push(message.payload.path);
    });
    // The target is registered but not started: it does not listen yet.
    await sender.sendTo(target.nodeId, "kept.one", { path: "direct" }, { delivery: "direct" });
    await sender.sendTo(target.nodeId, "kept.one", { path: "queue" });
    await target.start();
    await waitUntil("the queued message", () => received.length, (n) => n >= 1);
    await sleep(300);
    expect(received).toEqual(["queue"]);
  });

  it("refuses an unknown delivery, and 'direct' in a namespace that sends replies through queues", async () => {
    const { sender, target } = await pair();
    await expect(sender.sendTo(target.nodeId, "x.y", {}, { delivery: "notify" as never })).rejects.toThrow(/delivery must be 'queue' or 'direct'/);
    const isolated = await systems.connect({ replies: "queue" });
    const node = await isolated.registerNode({ displayName: "isolated" });
    const refusal = await node.sendTo(target.nodeId, "x.y", {}, { delivery: "direct" }).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(ValidationError);
    expect((refusal as ValidationError).message).toMatch(/replies: 'queue'.*Use delivery: 'queue'/);
  });
});
