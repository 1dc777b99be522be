/**
 * The direct path of `request` (`delivery: "direct"`): a NOTIFY to one live node that
 * answers the type, chosen round robin from the namespace's responders (kept current by
 * membership broadcasts); replies on the direct path; at most once. What both paths share
 * (replies, errors, streams, cancellation, timeouts, large payloads, a graceful stop
 * mid-load) runs on each in rpc.test.ts.
 */
import { describe, expect, it } from "vitest";
import {
  ErrorCode,
  NoResponderError,
  ResponderGoneError,
  ValidationError,
  type CoreNode,
  type CoreSystem,
} from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace, withClient } from "../support/database.js";
import { useSystems } from "../support/systems.js";
import { deferred, sleep, waitUntil } from "../support/wait.js";

const systems = useSystems({ label: "dreq" });

async function node(namespace: string, displayName: string, system?: CoreSystem): Promise<CoreNode> {
  const owner = system ?? (await systems.connect({ namespace }));
  return owner.registerNode({ displayName });
}

describe("direct requests", () => {
  it("balances across the live responders of a type, and fails over when one stops gracefully", async () => {
    const namespace = uniqueNamespace("dreq-rr");
    const handledBy: string[] = [];
    const responders: CoreNode[] = [];
    for (const name of ["one", "two"]) {
      const responder = await node(namespace, name);
      await responder.onRequest("job.run", () => {
        handledBy.push(name);
        return name;
      }, { group: "jobs" });
      await responder.start();
      responders.push(responder);
    }
    const caller = await node(namespace, "api");
    await caller.start();
    await waitUntil("both responders known", async () => new Set(await Promise.all(Array.from({ length: 4 }, () => caller.request<string>("job.run", {}, { delivery: "direct" })))).size, (n) => n === 2);
    handledBy.length = 0;
    await Promise.all(Array.from({ length: 100 }, () => caller.request("job.run", {}, { delivery: "direct" })));
    expect(handledBy.filter((name) => name === "one").length).toBeGreaterThanOrEqual(40);
    expect(handledBy.filter((name) => name === "two").length).toBeGreaterThanOrEqual(40);

    await responders[0]!.stop();
    await sleep(100);
    handledBy.length = 0;
    await Promise.all(Array.from({ length: 20 }, () => caller.request("job.run", {}, { delivery: "direct" })));
    expect(handledBy).toEqual(Array.from({ length: 20 }, () => "two"));
  });

  it("fails a request in flight at once with ResponderGoneError when its responder stops, and never answers it twice", async () => {
    const namespace = uniqueNamespace("dreq-gone");
    const responder = await node(namespace, "slow");
    const started = deferred<void>();
    let runs = 0;
    await responder.onRequest("slow.run", async (_request, { signal }) => {
      runs += 1;
      started.resolve();
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      return "late";
    });
    await responder.start();
    const caller = await node(namespace, "api");
    await caller.start();
    const sentAt = performance.now();
    const reply = caller.request("slow.run", {}, { delivery: "direct", timeout: 20_000 }).catch((error: unknown) => error);
    await started.promise;
    await responder.stop({ graceMs: 200 });
    const error = await reply;
    expect(error).toBeInstanceOf(ResponderGoneError);
    expect((error as ResponderGoneError).code).toBe(ErrorCode.responderGone);
    expect(performance.now() - sentAt).toBeLessThan(5_000);
    await sleep(300);
    expect(runs).toBe(1);
  });

  it("runs a handler outside a transaction until it uses ctx.client, and commits what it writes there when it returns", async () => {
    const namespace = uniqueNamespace("dreq-tx");
    const table = `dreq_effects_${Date.now()}`;
    await withClient(testDatabaseUrl(), (client) => client.query(`create table ${table} (i int primary key)`));
    try {
      const responder = await node(namespace, "svc");
      await responder.onRequest<{ i: number }>("svc.write", async (request, { client }) => {
        await client.query(`insert into ${table} (i) values ($1)`, [request.payload.i]);
        return "written";
      });
      await responder.start();
      const caller = await node(namespace, "api");
      await caller.start();
      expect(await caller.request("svc.write", { i: 7 }, { delivery: "direct" })).toBe("written");
      const { rows } = await withClient(testDatabaseUrl(), (client) => client.query<{ i: number }>(`select i from ${table}`));
      expect(rows).toEqual([{ i: 7 }]);
    } finally {
      await withClient(testDatabaseUrl(), (client) => client.query(`drop table if exists ${table}`));
    }
  });

  it("says when no live node answers a type directly, retires durable, and is refused where replies go through queues", async () => {
    const namespace = uniqueNamespace("dreq-none");
    const caller = await node(namespace, "api");
    await caller.start();
    const none = await caller.request("nobody.answers", {}, { delivery: "direct", timeout: 2_000 }).catch((error: unknown) => error);
    expect(none).toBeInstanceOf(NoResponderError);
    expect((none as Error).message).toMatch(/directly/);
    const retired = await caller.request("x.y", {}, { durable: false }).catch((error: unknown) => error);
    expect(retired).toBeInstanceOf(ValidationError);
    expect((retired as Error).message).toMatch(/durable is retired: use delivery/);
    const isolated = await systems.connect({ namespace, replies: "queue" });
    const isolatedNode = await isolated.registerNode({ displayName: "isolated" });
    await expect(isolatedNode.request("x.y", {}, { delivery: "direct" })).rejects.toThrow(/replies: 'queue'/);
  });
});
