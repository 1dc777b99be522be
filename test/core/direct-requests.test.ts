/**
 * The direct path of `request` (`delivery: "direct"`): a NOTIFY to one live node that
 * answers the type, chosen round robin from the namespace's responders (kept current by
 * membership broadcasts); replies on the direct path; at most once.
 */
import { describe, expect, it } from "vitest";
import {
  ErrorCode,
  NoResponderError,
  RemoteError,
  ResponderGoneError,
  ValidationError,
  type CoreNode,
  type CoreSystem,
} from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace, withClient } from "../support/database.js";
import { useSystems } from "../support/systems.js";
import { deferred, sleep, waitUntil, within } from "../support/wait.js";

const systems = useSystems({ label: "dreq" });

async function node(namespace: string, displayName: string, system?: CoreSystem): Promise<CoreNode> {
  const owner = system ?? (await systems.connect({ namespace }));
  return owner.registerNode({ displayName });
}

describe("direct requests", () => {
  it("answers replies, streams and 100 KiB payloads in order, each request once", async () => {
    const namespace = uniqueNamespace("dreq");
    const responder = await node(namespace, "math");
    let runs = 0;
    await responder.onRequest<{ a: number; b: number }>("math.sum", (request) => {
      runs += 1;
      return request.payload.a + request.payload.b;
    });
    await responder.onRequest<{ n: number }>("math.count", async function* (request) {
      for (let i = 0; i < request.payload.n; i += 1) yield i % 7 === 3 ? { i, pad: "x".repeat(100 * 1024) } : { i };
    });
    await responder.onRequest<{ text: string }>("text.echo", (request) => request.payload.text);
    await responder.start();
    const caller = await node(namespace, "api");
    await caller.start();

    const sums = await Promise.all(Array.from({ length: 200 }, (_, i) => caller.request<number>("math.sum", { a: i, b: 1 }, { delivery: "direct", timeout: 10_000 })));
    expect(sums).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    const values: { i: number; pad?: string }[] = [];
    for await (const value of caller.requestStream<{ i: number; pad?: string }>("math.count", { n: 20 }, { delivery: "direct", timeout: 10_000 })) values.push(value);
    expect(values.map((value) => value.i)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(values.filter((value) => value.pad?.length === 100 * 1024)).toHaveLength(3);
    const big = "y".repeat(100 * 1024);
    expect(await caller.request("text.echo", { text: big }, { delivery: "direct" })).toBe(big);
    await sleep(200);
    expect(runs).toBe(200);
  });

  it("stops the responder's stream when the caller breaks out after 10 values, and answers again", async () => {
    const namespace = uniqueNamespace("dreq-break");
    const responder = await node(namespace, "streams");
    let produced = 0;
    let signalAborted: boolean | undefined;
    const finallyRan = deferred<number>();
    await responder.onRequest("endless.stream", async function* (_request, ctx) {
      try {
        for (;;) {
          produced += 1;
          yield { n: produced };
        }
      } finally {
        signalAborted = ctx.signal.aborted;
        finallyRan.resolve(produced);
      }
    });
    await responder.onRequest("streams.ping", () => "pong");
    await responder.start();
    const caller = await node(namespace, "api");
    await caller.start();
    const received: number[] = [];
    for await (const value of caller.requestStream<{ n: number }>("endless.stream", {}, { delivery: "direct", timeout: 10_000 })) {
      received.push(value.n);
      if (received.length === 10) break;
    }
    expect(received).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    const producedAtFinally = await within(5_000, "the responder's generator to run its finally", finallyRan.promise);
    expect(signalAborted, "the handler's ctx.signal aborted on cancellation").toBe(true);
    await sleep(300);
    expect(produced).toBe(producedAtFinally);
    expect(await caller.request("streams.ping", {}, { delivery: "direct" })).toBe("pong");
  });

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

  it("carries a handler's error, commits what a handler writes through ctx.client, and bounds it by its timeout", async () => {
    const namespace = uniqueNamespace("dreq-err");
    const table = `dreq_effects_${Date.now()}`;
    await withClient(testDatabaseUrl(), (client) => client.query(`create table ${table} (i int primary key)`));
    try {
      const responder = await node(namespace, "svc");
      await responder.onRequest<{ i: number }>("svc.write", async (request, { client }) => {
        await client.query(`insert into ${table} (i) values ($1)`, [request.payload.i]);
        return "written";
      });
      await responder.onRequest("svc.fail", () => {
        throw Object.assign(new Error("cannot"), { code: "E_SVC", data: { why: "test" } });
      });
      await responder.onRequest("svc.hang", (_request, { signal }) => new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true })), { group: "hanging", timeout: 300 });
      await responder.start();
      const caller = await node(namespace, "api");
      await caller.start();
      expect(await caller.request("svc.write", { i: 7 }, { delivery: "direct" })).toBe("written");
      const { rows } = await withClient(testDatabaseUrl(), (client) => client.query<{ i: number }>(`select i from ${table}`));
      expect(rows).toEqual([{ i: 7 }]);
      const failure = await caller.request("svc.fail", {}, { delivery: "direct" }).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(RemoteError);
      expect((failure as RemoteError).remoteCode).toBe("E_SVC");
      expect((failure as RemoteError).data).toEqual({ why: "test" });
      const timedOut = await caller.request("svc.hang", {}, { delivery: "direct", timeout: 5_000 }).catch((error: unknown) => error);
      expect(timedOut).toBeInstanceOf(RemoteError);
      expect((timedOut as RemoteError).remoteCode).toBe(ErrorCode.handlerTimeout);
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
