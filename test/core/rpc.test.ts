/**
 * Acceptance tests of request/response, streams, direct sends, broadcasts and handler
 * timeouts, in one process. Where it matters, a responder and its caller are two
 * systems (two connection pools and LISTEN connections), standing for two services.
 * The behaviour both request paths share runs on each of them: `delivery: "queue"` with
 * replies by NOTIFY (the default) and with `replies: "queue"` (every reply through the
 * requester's queue), and `delivery: "direct"` (a NOTIFY to one live responder). Tests of
 * one path's own semantics (a queued request outliving its responders, batch deadlines)
 * stay single; the direct path's own are in direct-requests.test.ts.
 */
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  CancelledError,
  ClosedError,
  type CoreSystem,
  HandlerTimeoutError,
  NoResponderError,
  RemoteError,
  RequestTimeoutError,
  ResponderGoneError,
  groupQueueName,
  requestQueueName,
  type ConnectOptions,
  type CoreNode,
  type Delivery,
} from "../../core/index.js";
import { dropNamespaceLeftovers, testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { testSystems } from "../support/systems.js";
import { deferred, sleep, waitUntil, within } from "../support/wait.js";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/** The rejection of `promise` (fails the test if it resolves), and how long it took. */
async function rejectionOf(promise: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const startedAt = performance.now();
  try {
    const value = await promise;
    throw new Error(`expected a rejection, got ${JSON.stringify(value)?.slice(0, 200)}`);
  } catch (error) {
    return { error, ms: performance.now() - startedAt };
  }
}

/** A string of `length` characters with a position-dependent pattern, so truncation or reordering shows. */
function patterned(length: number, seed = 0): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  let text = "";
  for (let i = 0; i < length; i += 1) text += alphabet[(i * 7 + seed) % alphabet.length];
  return text;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

// ---------------------------------------------------------------------------------------
// Per-test resources: systems, LISTEN clients, tables, namespaces. Always cleaned up.
// ---------------------------------------------------------------------------------------

let admin: pg.Pool;
const systems = testSystems();
const watchers: pg.Client[] = [];
const tables: string[] = [];
const namespaces: string[] = [];

beforeAll(() => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4, application_name: "nexus-test-admin" });
  admin.on("error", () => {});
});

afterEach(async () => {
  await Promise.allSettled(watchers.splice(0).map((client) => client.end()));
  await systems.close().catch(() => {});
  for (const table of tables.splice(0)) await admin.query(`drop table if exists ${table}`);
  for (const namespace of namespaces.splice(0)) await dropNamespaceLeftovers(admin, namespace);
});

afterAll(async () => {
  await admin?.end();
});

function newNamespace(label: string): string {
  const namespace = uniqueNamespace(label);
  namespaces.push(namespace);
  return namespace;
}

function connect(namespace: string, options: Partial<ConnectOptions> = {}): Promise<CoreSystem> {
  return systems.connect({ namespace, ...options });
}

/** A path of requests: how they travel, and how replies travel. */
interface RequestPath {
  name: string;
  delivery: Delivery;
  replies: "notify" | "queue";
}

/** Every path of requests (`replies: "queue"` refuses the direct path). */
const PATHS: readonly RequestPath[] = [
  { name: "delivery 'queue', replies by NOTIFY", delivery: "queue", replies: "notify" },
  { name: "delivery 'queue', replies through queues", delivery: "queue", replies: "queue" },
  { name: "delivery 'direct'", delivery: "direct", replies: "notify" },
];
const eachPath = PATHS.map((path) => [path.name, path] as [string, RequestPath]);
const eachDelivery = (["queue", "direct"] as const).map((delivery) => PATHS.find((path) => path.delivery === delivery && path.replies === "notify")!);

/** Two services in a new namespace: a responder (not started yet, so handlers can be added) and a started caller `api`. */
async function services(label: string, replies: "notify" | "queue", responderOptions: Partial<ConnectOptions> = {}) {
  const namespace = newNamespace(label);
  const responderSystem = await connect(namespace, { replies, ...responderOptions });
  const responder = await responderSystem.registerNode({ displayName: "math" });
  const apiSystem = await connect(namespace, { replies });
  const api = await apiSystem.registerNode({ displayName: "api" });
  await api.start();
  return { namespace, responderSystem, responder, apiSystem, api };
}

/** LISTENs on a node's channel: counts reply envelopes carried by NOTIFY and empty wake-ups of its queue. */
async function watchNodeChannel(node: CoreNode): Promise<{ dataReplies: () => number; wakeUps: () => number }> {
  const client = new pg.Client({ connectionString: testDatabaseUrl(), application_name: "nexus-test-watch" });
  client.on("error", () => {});
  await client.connect();
  watchers.push(client);
  let dataReplies = 0;
  let wakeUps = 0;
  client.on("notification", (message) => {
    if (!message.payload) wakeUps += 1;
    else if ((JSON.parse(message.payload) as { kind?: string }).kind === "reply") dataReplies += 1;
  });
  await client.query(`listen ${client.escapeIdentifier(`nexus:n:${node.nodeId}`)}`);
  return { dataReplies: () => dataReplies, wakeUps: () => wakeUps };
}

const queueTable = (queue: string): string => `pgmq.${pg.Client.prototype.escapeIdentifier("q_" + queue)}`;

async function count(sql: string, values: unknown[] = []): Promise<number> {
  const { rows } = await admin.query<{ n: string }>(sql, values);
  return Number(rows[0]!.n);
}

const queueLength = (queue: string): Promise<number> => count(`select count(*) as n from ${queueTable(queue)}`);

/** Creates `rpc_effects_<random>` and schedules its drop. */
async function createEffectsTable(): Promise<string> {
  const table = `rpc_effects_${Math.random().toString(16).slice(2, 10)}`;
  await admin.query(`create table ${table} (event_id uuid not null, attempt integer not null, primary key (event_id, attempt))`);
  tables.push(table);
  return table;
}

const fastRetry = { maxAttempts: 5, backoff: { type: "fixed" as const, delay: 0 }, pollInterval: 100 };

// ---------------------------------------------------------------------------------------
// Request/response, in both reply modes
// ---------------------------------------------------------------------------------------

describe.each(eachPath)("request/response on %s", (_name, { delivery, replies }) => {
  const via = { delivery };

  it("answers a request; a stream collected by request(); error replies carry message, code and data, a stack only when asked; an unknown type fails at once", async () => {
    const { namespace, responder, api } = await services("rpc-basic", replies);
    await responder.onRequest<{ a: number; b: number }>("math.sum", (request) => request.payload.a + request.payload.b, { group: "math" });
    await responder.onRequest("math.whoami", (request) => ({ id: request.id, type: request.type, headers: request.headers, sourceNode: request.sourceNode }), {
      group: "math",
    });
    await responder.onRequest<{ n: number }>(
      "math.count",
      async function* (request) {
        for (let i = 0; i < request.payload.n; i += 1) yield i;
      },
      { group: "math" },
    );
    await responder.onRequest<{ why: string }>(
      "math.fail",
      (request) => {
        throw Object.assign(new RangeError(`cannot: ${request.payload.why}`), { code: "E_RANGE", data: { why: request.payload.why, limits: [0, 10] } });
      },
      { group: "math" },
    );
    await responder.onRequest("math.throw-string", () => Promise.reject("plain string"), { group: "math" });
    await responder.onRequest(
      "math.broken-stream",
      async function* () {
        yield 1;
        yield 2;
        throw Object.assign(new Error("broke at 3"), { code: "E_BROKE", data: { at: 3 } });
      },
      { group: "math" },
    );
    await responder.start();
    // Another service of the namespace sends its stacks.
    const debugSystem = await connect(namespace, { replies, sendErrorStacks: true });
    const debug = await debugSystem.registerNode({ displayName: "debug" });
    await debug.onRequest("debug.fail", () => {
      throw Object.assign(new Error("debug failure"), { code: "E_DEBUG" });
    });
    await debug.start();
    const channel = await watchNodeChannel(api);

    expect(await api.request("math.sum", { a: 1, b: 2 }, { timeout: 5_000, ...via })).toBe(3);
    const whoami = await api.request<{ id: string; type: string; headers: Record<string, string>; sourceNode: string }>(
      "math.whoami",
      {},
      { timeout: 5_000, headers: { traceparent: "00-abc-def-01" }, ...via },
    );
    expect(whoami).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), type: "math.whoami", headers: { traceparent: "00-abc-def-01" }, sourceNode: api.nodeId });
    expect(await api.request("math.count", { n: 5 }, { timeout: 5_000, ...via }), "request() collects a streamed reply").toEqual([0, 1, 2, 3, 4]);
    expect(await api.request("math.count", { n: 0 }, { timeout: 5_000, ...via }), "an empty stream").toEqual([]);

    const { error: failure } = await rejectionOf(api.request("math.fail", { why: "too big" }, { timeout: 5_000, ...via }));
    expect(failure).toBeInstanceOf(RemoteError);
    const remote = failure as RemoteError;
    expect(remote.message).toBe("cannot: too big");
    expect(remote.remoteCode).toBe("E_RANGE");
    expect(remote.remoteName).toBe("RangeError");
    expect(remote.data).toEqual({ why: "too big", limits: [0, 10] });
    expect(remote.remoteStack, "a stack is sent only with sendErrorStacks: true").toBeUndefined();
    expect(remote.code).toBe("ERR_NEXUS_REMOTE");

    const { error: stringFailure } = await rejectionOf(api.request("math.throw-string", {}, { timeout: 5_000, ...via }));
    expect(stringFailure).toBeInstanceOf(RemoteError);
    expect((stringFailure as RemoteError).message).toBe("plain string");

    const streamed: unknown[] = [];
    const { error: streamFailure } = await rejectionOf((async () => {
      for await (const value of api.requestStream("math.broken-stream", {}, { timeout: 5_000, ...via })) streamed.push(value);
    })());
    expect(streamed, "the values sent before the stream failed").toEqual([1, 2]);
    expect(streamFailure).toBeInstanceOf(RemoteError);
    expect(streamFailure).toMatchObject({ message: "broke at 3", remoteCode: "E_BROKE", data: { at: 3 } });

    const { error: debugFailure } = await rejectionOf(api.request("debug.fail", {}, { timeout: 5_000, ...via }));
    expect(debugFailure).toBeInstanceOf(RemoteError);
    expect((debugFailure as RemoteError).remoteCode).toBe("E_DEBUG");
    expect((debugFailure as RemoteError).remoteStack).toMatch(/^Error: debug failure\n\s+at /);
    expect((debugFailure as RemoteError).remoteStack).toContain("rpc.test.ts");

    const { error: nobody, ms } = await rejectionOf(api.request("nobody.home", {}, { timeout: 10_000, ...via }));
    expect(nobody).toBeInstanceOf(NoResponderError);
    expect(ms, "NoResponderError comes at once, not after the timeout").toBeLessThan(1_000);
    const { error: nobodyStream } = await rejectionOf((async () => {
      for await (const value of api.requestStream("nobody.home", {}, { timeout: 10_000, ...via })) void value;
    })());
    expect(nobodyStream).toBeInstanceOf(NoResponderError);

    // Every request was acknowledged; replies travelled as the mode says.
    await waitUntil("the request queues to drain", () => queueLength(requestQueueName(namespace, "math")), (n) => n === 0, 5_000);
    if (replies === "queue") expect(channel.dataReplies(), "replies carried by NOTIFY with replies: 'queue'").toBe(0);
    else expect(channel.dataReplies(), "replies carried by NOTIFY").toBeGreaterThan(0);
  });

  it("streams 1,000 values, complete and in order", async () => {
    const { responder, api } = await services("rpc-stream", replies);
    await responder.onRequest<{ n: number }>("math.count", async function* (request) {
      for (let i = 0; i < request.payload.n; i += 1) yield { i };
    });
    await responder.start();

    const startedAt = performance.now();
    const received: number[] = [];
    for await (const value of api.requestStream<{ i: number }>("math.count", { n: 1_000 }, { timeout: 10_000, ...via })) received.push(value.i);
    const elapsedMs = performance.now() - startedAt;
    console.info(`[rpc] delivery=${delivery} replies=${replies}: 1,000 streamed values in ${Math.round(elapsedMs)} ms`);
    expect(received).toHaveLength(1_000);
    expect(received).toEqual(range(1_000));
  });

  it("streams values larger than 8,000 bytes (through the queue) mixed with small ones (by NOTIFY) in order", async () => {
    const { responder, api } = await services("rpc-mixed", replies);
    const TOTAL = 60;
    const isLarge = (i: number): boolean => i % 3 === 0;
    const valueOf = (i: number): { i: number; text: string } => ({ i, text: isLarge(i) ? patterned(9_000, i) : `small-${i}` });
    await responder.onRequest("mixed.stream", async function* () {
      for (let i = 0; i < TOTAL; i += 1) yield valueOf(i);
    });
    await responder.start();
    const channel = await watchNodeChannel(api);

    const received: { i: number; text: string }[] = [];
    for await (const value of api.requestStream<{ i: number; text: string }>("mixed.stream", {}, { timeout: 10_000, ...via })) received.push(value);
    expect(received.map((value) => value.i)).toEqual(range(TOTAL));
    expect(received).toEqual(range(TOTAL).map(valueOf));

    // Both paths were taken: large values (and, with replies: 'queue', all) through the queue, on either delivery.
    const large = range(TOTAL).filter(isLarge).length;
    const viaQueue = replies === "queue" ? TOTAL + 1 : large; // + the final message of the stream
    const viaNotify = replies === "queue" ? 0 : TOTAL - large + 1;
    await waitUntil("the channel's notifications", () => ({ data: channel.dataReplies(), wakeUps: channel.wakeUps() }), (seen) => seen.data >= viaNotify && seen.wakeUps >= viaQueue, 5_000);
    await sleep(200);
    expect({ data: channel.dataReplies(), wakeUps: channel.wakeUps() }).toEqual({ data: viaNotify, wakeUps: viaQueue });
  });

  it("stops the responder's stream when the caller breaks out of for await after 10 values", async () => {
    const { namespace, responder, api } = await services("rpc-break", replies);
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
    await responder.onRequest("math.ping", () => "pong");
    await responder.start();

    const received: number[] = [];
    for await (const value of api.requestStream<{ n: number }>("endless.stream", {}, { timeout: 10_000, ...via })) {
      received.push(value.n);
      if (received.length === 10) break;
    }
    expect(received).toEqual(range(10).map((i) => i + 1));

    const producedAtFinally = await within(5_000, "the responder's generator to run its finally", finallyRan.promise);
    expect(signalAborted, "the handler's ctx.signal aborted on cancellation").toBe(true);
    await sleep(500);
    console.info(`[rpc] delivery=${delivery} replies=${replies}: the endless stream produced ${produced} values (${producedAtFinally} when its finally ran) after the caller took 10`);
    expect(produced, "the responder kept producing after its finally ran").toBe(producedAtFinally);
    expect(produced, "values produced before the cancellation took effect").toBeLessThan(2_000);
    // The request is settled and acknowledged, and the responder answers again.
    await waitUntil("the request queue to drain", () => queueLength(requestQueueName(namespace, "math")), (n) => n === 0, 5_000);
    expect(await api.request("math.ping", {}, { timeout: 5_000, ...via })).toBe("pong");
  });

  it("rejects with CancelledError when options.signal aborts mid-stream, and stops the responder", async () => {
    const { responder, api } = await services("rpc-abort", replies);
    const finallyRan = deferred<void>();
    let produced = 0;
    await responder.onRequest("endless.stream", async function* () {
      try {
        for (;;) {
          produced += 1;
          yield produced;
          await sleep(2);
        }
      } finally {
        finallyRan.resolve();
      }
    });
    await responder.start();

    const controller = new AbortController();
    const received: number[] = [];
    const { error } = await rejectionOf(
      (async () => {
        for await (const value of api.requestStream<number>("endless.stream", {}, { timeout: 10_000, signal: controller.signal, ...via })) {
          received.push(value);
          if (received.length === 5) controller.abort(new Error("enough"));
        }
      })(),
    );
    expect(error).toBeInstanceOf(CancelledError);
    expect(received.slice(0, 5)).toEqual([1, 2, 3, 4, 5]);
    await within(5_000, "the responder's generator to run its finally", finallyRan.promise);
    const producedThen = produced;
    await sleep(300);
    expect(produced).toBe(producedThen);

    // An already aborted signal never sends the request.
    const { error: early } = await rejectionOf(api.request("endless.stream", {}, { signal: AbortSignal.abort(), ...via }));
    expect(early).toBeInstanceOf(CancelledError);
  });

  it("carries a 100 KiB request and a 100 KiB reply intact and in order with small ones", async () => {
    const { responder, api } = await services("rpc-large", replies);
    await responder.onRequest<{ i: number; text: string }>("echo.text", (request) => ({ i: request.payload.i, reversed: [...request.payload.text].reverse().join(""), tail: "ünïcødé €😀" }));
    await responder.onRequest<{ sizes: number[] }>("echo.stream", async function* (request) {
      for (const [i, size] of request.payload.sizes.entries()) yield { i, text: patterned(size, i) };
    });
    await responder.start();
    const KIB_100 = 100 * 1024;
    const sizes = range(12).map((i) => (i % 4 === 1 ? KIB_100 : 10 + i)); // small, 100 KiB, small, small, ...
    const texts = sizes.map((size, i) => patterned(size, i));

    // Sent without awaiting each: every reply matches its request.
    const answers = await Promise.all(
      texts.map((text, i) => api.request<{ i: number; reversed: string; tail: string }>("echo.text", { i, text }, { timeout: 10_000, ...via })),
    );
    expect(answers.map((reply) => reply.i)).toEqual(range(sizes.length));
    const intact = answers.map((reply, i) => reply.reversed === [...texts[i]!].reverse().join("") && reply.tail === "ünïcødé €😀");
    expect(intact, "replies that differ from what was sent").toEqual(sizes.map(() => true));

    // One reply streaming 100 KiB values between small ones: all arrive, intact, in order.
    const values: { i: number; text: string }[] = [];
    for await (const value of api.requestStream<{ i: number; text: string }>("echo.stream", { sizes }, { timeout: 10_000, ...via })) values.push(value);
    expect(values.map((value) => value.i)).toEqual(range(sizes.length));
    expect(values.map((value) => value.text.length)).toEqual(sizes);
    expect(values.every((value, i) => value.text === texts[i]), "streamed values that differ from what was sent").toBe(true);
  });

  it("answers 200 concurrent requests correctly, each handled exactly once, across two instances of the group", async () => {
    const { namespace, responder, api } = await services("rpc-concurrent", replies);
    const calls = new Map<number, number>();
    const byInstance = { first: 0, second: 0 };
    const handler = (instance: "first" | "second") => async (request: { payload: { i: number } }) => {
      const { i } = request.payload;
      calls.set(i, (calls.get(i) ?? 0) + 1);
      byInstance[instance] += 1;
      await sleep(i % 5);
      return { i, square: i * i };
    };
    await responder.onRequest("calc.square", handler("first"), { group: "calc" });
    await responder.start();
    const secondSystem = await connect(namespace, { replies });
    const second = await secondSystem.registerNode({ displayName: "math-2" });
    await second.onRequest("calc.square", handler("second"), { group: "calc" });
    await second.start();

    const startedAt = performance.now();
    const results = await within(
      20_000,
      "200 concurrent replies",
      Promise.all(range(200).map((i) => api.request<{ i: number; square: number }>("calc.square", { i }, { timeout: 15_000, ...via }))),
    );
    const elapsedMs = performance.now() - startedAt;
    console.info(`[rpc] delivery=${delivery} replies=${replies}: 200 concurrent requests in ${Math.round(elapsedMs)} ms, handled ${JSON.stringify(byInstance)}`);
    expect(results).toEqual(range(200).map((i) => ({ i, square: i * i })));
    await sleep(300); // room for a (wrong) second run to show up
    expect([...calls.keys()].sort((a, b) => a - b)).toEqual(range(200));
    expect([...calls.values()].filter((n) => n !== 1), "requests handled more than once").toEqual([]);
    await waitUntil("the request queue to drain", () => queueLength(requestQueueName(namespace, "calc")), (n) => n === 0, 5_000);
  });
});

describe("a responder stopping gracefully mid-load", () => {
  it.each(eachDelivery.map(({ delivery }) => delivery))(
    "delivery '%s': calls in flight on the stopping responder are answered (queue) or fail at once with ResponderGoneError (direct), none runs twice, new calls go to the other",
    async (delivery) => {
      const namespace = newNamespace("rpc-drain");
      const HANDLER_MS = 1_000;
      const started: { name: string; i: number }[] = [];
      const finishedAt = new Map<number, number>();
      const responders = new Map<string, CoreNode>();
      for (const name of ["one", "two"]) {
        const system = await connect(namespace);
        const node = await system.registerNode({ displayName: name });
        await node.onRequest<{ i: number }>(
          "job.run",
          async (request) => {
            started.push({ name, i: request.payload.i });
            if (request.payload.i >= 0) await sleep(HANDLER_MS);
            finishedAt.set(request.payload.i, performance.now());
            return name;
          },
          { group: "jobs", concurrency: 20, prefetch: 1, pollInterval: 100 }, // every call in flight at once
        );
        await node.start();
        responders.set(name, node);
      }
      const apiSystem = await connect(namespace);
      const api = await apiSystem.registerNode({ displayName: "api" });
      await api.start();
      // Both responders known to the caller (warm-up calls have negative numbers and no wait).
      await waitUntil("both responders to answer", async () => new Set(await Promise.all(range(4).map((i) => api.request<string>("job.run", { i: -1 - i }, { delivery })))), (names) => names.size === 2);
      started.length = 0;

      const settledAt = new Map<number, number>();
      const calls = range(20).map((i) =>
        api.request<string>("job.run", { i }, { timeout: 15_000, delivery }).then(
          (value) => (settledAt.set(i, performance.now()), { value }),
          (error: unknown) => (settledAt.set(i, performance.now()), { error }),
        ),
      );
      await waitUntil("both responders to run calls", () => new Set(started.map((start) => start.name)).size, (n) => n === 2, 5_000);
      await responders.get("one")!.stop({ graceMs: 5_000 });
      const later = await Promise.all(range(10).map((i) => api.request<string>("job.run", { i: 100 + i }, { timeout: 10_000, delivery })));
      const outcomes = await within(15_000, "every call in flight to settle", Promise.all(calls));

      const onOne = started.filter((start) => start.name === "one" && start.i < 100).map((start) => start.i);
      expect(onOne.length, "calls the stopping responder had started").toBeGreaterThan(0);
      expect(later, "calls made after the stop").toEqual(range(10).map(() => "two"));
      const runs = new Map<number, number>();
      for (const start of started) runs.set(start.i, (runs.get(start.i) ?? 0) + 1);
      expect([...runs].filter(([, n]) => n > 1), "calls run more than once").toEqual([]);
      if (delivery === "queue") {
        expect(outcomes.filter((outcome) => "error" in outcome), "calls that failed").toEqual([]);
        expect(onOne.map((i) => outcomes[i]), "calls finished by the stopping responder within its grace").toEqual(onOne.map(() => ({ value: "one" })));
      } else {
        for (const [i, outcome] of outcomes.entries()) {
          if (onOne.includes(i)) {
            expect((outcome as { error?: unknown }).error, `call ${i}, in flight on the stopping responder`).toBeInstanceOf(ResponderGoneError);
            expect(settledAt.get(i)!, `call ${i} failed before its handler finished`).toBeLessThan(finishedAt.get(i)!);
          } else {
            expect(outcome, `call ${i}`).toEqual({ value: "two" });
          }
        }
      }
    },
    30_000,
  );
});

describe("callers that give up", () => {
  const giveUps = eachDelivery.flatMap(({ delivery }) => (["abort", "timeout"] as const).map((how) => ({ how, delivery })));
  it.each(giveUps)("stops the responder's stream when the caller gives up ($how) before the first value arrives, delivery '$delivery'", async ({ how, delivery }) => {
    const { responder, api } = await services(`rpc-giveup-${how}`, "notify");
    let produced = 0;
    const finallyRan = deferred<void>();
    await responder.onRequest("endless.stream", async function* () {
      try {
        await sleep(400); // the caller gives up meanwhile
        for (;;) {
          produced += 1;
          yield produced;
          await sleep(5);
        }
      } finally {
        finallyRan.resolve();
      }
    });
    await responder.start();
    try {
      const controller = new AbortController();
      if (how === "abort") setTimeout(() => controller.abort(new Error("changed my mind")), 150);
      const { error } = await rejectionOf(
        (async () => {
          for await (const value of api.requestStream("endless.stream", {}, { timeout: how === "timeout" ? 150 : 10_000, signal: controller.signal, delivery })) void value;
        })(),
      );
      expect(error).toBeInstanceOf(how === "abort" ? CancelledError : RequestTimeoutError);
      const stopped = await within(3_000, "the responder's stream to stop", finallyRan.promise).then(
        () => true,
        () => false,
      );
      const producedThen = produced;
      await sleep(300);
      expect(
        { stopped, stillProducing: produced > producedThen },
        `the responder's endless stream, whose caller gave up (${how}) before its first value, ran on (${produced} values so far)`,
      ).toEqual({ stopped: true, stillProducing: false });
    } finally {
      await responder.stop({ graceMs: 100 }); // a stream nobody cancelled would otherwise hold close() for its 10 s grace
    }
  });

  it("never starts a request whose caller's timeout passed while it waited behind slower requests read in the same batch", async () => {
    const namespace = newNamespace("rpc-deadline");
    const group = "slow";
    const queue = requestQueueName(namespace, group);
    const downSystem = await connect(namespace);
    const down = await downSystem.registerNode({ displayName: "slow-0" });
    await down.onRequest("slow.job", () => null, { group });
    await down.start();
    await down.stop(); // the group answers slow.job; no instance runs yet
    const apiSystem = await connect(namespace);
    const api = await apiSystem.registerNode({ displayName: "api" });
    await api.start();

    const TIMEOUT = 1_000;
    const results = Promise.allSettled(range(6).map((i) => api.request("slow.job", { i }, { timeout: TIMEOUT })));
    await waitUntil("the 6 requests to be queued", () => queueLength(queue), (n) => n === 6, 5_000);
    // Judged as the library judges deadlines: on the database's clock, from enqueued_at.
    const { rows: queued } = await admin.query<{ msg_id: string; enqueued_at: Date }>(`select msg_id, enqueued_at from ${queueTable(queue)}`);
    const enqueuedAt = new Map(queued.map((row) => [row.msg_id, row.enqueued_at.getTime()]));
    const started: { i: number; afterEnqueueMs: number }[] = [];
    const workerSystem = await connect(namespace);
    const worker = await workerSystem.registerNode({ displayName: "slow-1" });
    // One lane, default prefetch (10): the six requests are read in one or two batches and run one after another.
    await worker.onRequest<{ i: number }>(
      "slow.job",
      async (request, ctx) => {
        const { rows } = await ctx.client.query<{ now: Date }>("select clock_timestamp() as now");
        started.push({ i: request.payload.i, afterEnqueueMs: rows[0]!.now.getTime() - enqueuedAt.get(ctx.messageId)! });
        await sleep(400);
        return request.payload.i;
      },
      { group, concurrency: 1, pollInterval: 100 },
    );
    await worker.start();
    await results;
    await waitUntil("the request queue to drain", () => queueLength(queue), (n) => n === 0, 10_000);
    expect(started.length, "some requests were started in time").toBeGreaterThan(0);
    expect(
      started.filter((start) => start.afterEnqueueMs > TIMEOUT + 50),
      `requests started after their caller's ${TIMEOUT} ms timeout had passed (RequestOptions.timeout: "a request not started within this time after it was sent is never started")`,
    ).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------
// A group that is down
// ---------------------------------------------------------------------------------------

describe("requests to a group whose responders are down", () => {
  it("rejects with RequestTimeoutError within its timeout; a responder started later does not run the expired request", async () => {
    const namespace = newNamespace("rpc-down");
    const group = "worker";
    const queue = requestQueueName(namespace, group);
    const downSystem = await connect(namespace);
    const down = await downSystem.registerNode({ displayName: "worker-1" });
    await down.onRequest("work.do", () => "should not run", { group });
    await down.start();
    await down.stop(); // the subscription stays: the group answers work.do, but no instance runs

    const apiSystem = await connect(namespace);
    const api = await apiSystem.registerNode({ displayName: "api" });
    await api.start();
    const { error, ms } = await rejectionOf(api.request("work.do", { n: 1 }, { timeout: 1_000 }));
    expect(error).toBeInstanceOf(RequestTimeoutError);
    expect((error as RequestTimeoutError).timeoutMs).toBe(1_000);
    expect(ms).toBeGreaterThanOrEqual(950);
    expect(ms).toBeLessThan(2_000);
    expect(await queueLength(queue), "the request waits in the group's queue").toBe(1);

    const laterSystem = await connect(namespace);
    const later = await laterSystem.registerNode({ displayName: "worker-2" });
    const calls: unknown[] = [];
    await later.onRequest("work.do", (request) => {
      calls.push(request.payload);
      return "done";
    }, { group, pollInterval: 100 });
    await later.start();
    await waitUntil("the expired request to leave the queue", () => queueLength(queue), (n) => n === 0, 5_000);
    expect(calls, "the expired request was run").toEqual([]);

    // The new instance is alive: a fresh request is run, once.
    expect(await api.request("work.do", { n: 2 }, { timeout: 5_000 })).toBe("done");
    expect(calls).toEqual([{ n: 2 }]);
    expect(await queueLength(queue)).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------
// Handler timeouts
// ---------------------------------------------------------------------------------------

describe("handler timeouts", () => {
  it.each(eachDelivery.map(({ delivery }) => delivery))("answers a caller with a HandlerTimeoutError (a RemoteError) when the request handler hangs past its timeout, delivery '%s'", async (delivery) => {
    const { namespace, responder, api } = await services("rpc-htimeout", "notify");
    const table = await createEffectsTable();
    const signals: AbortSignal[] = [];
    await responder.onRequest(
      "slow.*",
      async (request, ctx) => {
        if (request.type === "slow.fine") return "fine";
        signals.push(ctx.signal);
        await ctx.client.query(`insert into ${table} (event_id, attempt) values ($1, $2)`, [request.id, ctx.attempt]);
        await new Promise(() => {}); // hangs, ignoring its signal
      },
      { group: "slow", timeout: 500 },
    );
    await responder.start();

    const { error, ms } = await rejectionOf(api.request("slow.hang", {}, { timeout: 10_000, delivery }));
    expect(error).not.toBeInstanceOf(RequestTimeoutError);
    expect(error).toBeInstanceOf(RemoteError);
    expect((error as RemoteError).remoteName).toBe("HandlerTimeoutError");
    expect((error as RemoteError).remoteCode).toBe("ERR_NEXUS_HANDLER_TIMEOUT");
    expect((error as RemoteError).message).toMatch(/timeout of 500 ms/);
    expect(ms).toBeGreaterThanOrEqual(450);
    expect(ms, "the handler timeout answers, long before the caller's 10 s").toBeLessThan(3_000);
    expect(signals).toHaveLength(1);
    expect(signals[0]!.aborted).toBe(true);
    expect(signals[0]!.reason).toBeInstanceOf(HandlerTimeoutError);
    expect(await count(`select count(*) as n from ${table}`), "the timed-out request handler's insert was rolled back").toBe(0);

    // The request was settled (not retried) and the group still answers.
    await waitUntil("the request queue to drain", () => queueLength(requestQueueName(namespace, "slow")), (n) => n === 0, 5_000);
    expect(await api.request("slow.fine", {}, { timeout: 5_000, delivery })).toBe("fine");
    await sleep(300);
    expect(signals, "the timed-out request was run again").toHaveLength(1);
    // A stop does not wait out its grace (10 s) for a handler already answered with its timeout.
    await within(5_000, "the responder to stop", responder.stop());
  });

  it("rolls back an event handler that hangs past its timeout, aborts its signal, refuses its later queries and retries the event", async () => {
    const namespace = newNamespace("rpc-etimeout");
    const group = "hangers";
    const table = await createEffectsTable();
    const system = await connect(namespace);
    const node = await system.registerNode({ displayName: "hanger" });
    const attempts: number[] = [];
    let firstSignal: AbortSignal | undefined;
    const firstInserted = deferred<number>();
    const release = deferred<void>();
    const lateQuery = deferred<unknown>();
    const secondDone = deferred<number>();
    await node.onEvent(
      "job.hang",
      async (event, ctx) => {
        attempts.push(ctx.attempt);
        await ctx.client.query(`insert into ${table} (event_id, attempt) values ($1, $2)`, [event.id, ctx.attempt]);
        if (ctx.attempt > 1) return secondDone.resolve(performance.now());
        firstSignal = ctx.signal;
        firstInserted.resolve(performance.now());
        await release.promise; // hangs past its timeout, ignoring its signal
        try {
          await ctx.client.query("select 1");
          lateQuery.resolve("the query ran");
        } catch (error) {
          lateQuery.resolve(error);
        }
      },
      { group, timeout: 500, visibilityTimeout: 10_000, ...fastRetry },
    );
    await node.start();
    const eventId = await node.emit("job.hang", {});

    const insertedAt = await within(5_000, "the first attempt to insert", firstInserted.promise);
    const secondAt = await within(5_000, "the retry (attempt 2)", secondDone.promise);
    expect(secondAt - insertedAt, "retried after the 500 ms timeout").toBeGreaterThanOrEqual(450);
    expect(firstSignal?.aborted, "the timed-out handler's signal").toBe(true);
    expect(firstSignal?.reason).toBeInstanceOf(HandlerTimeoutError);
    await waitUntil("the event's queue to drain", () => queueLength(groupQueueName(namespace, group)), (n) => n === 0, 5_000);
    const { rows } = await admin.query(`select event_id, attempt from ${table} order by attempt`);
    expect(rows, "only the retry's insert committed").toEqual([{ event_id: eventId, attempt: 2 }]);
    expect(attempts).toEqual([1, 2]);

    release.resolve();
    const late = await within(2_000, "the abandoned handler's late query", lateQuery.promise);
    expect(late).toBeInstanceOf(ClosedError);
    expect(await count(`select count(*) as n from ${table}`)).toBe(1);
  });

  it("cancels an event handler stuck in a long SQL statement at its timeout, and retries the event", async () => {
    const namespace = newNamespace("rpc-pgsleep");
    const group = "sleepers";
    const applicationName = `nexus-test-rpc-${Math.random().toString(16).slice(2, 10)}`;
    const system = await connect(namespace, { applicationName });
    const node = await system.registerNode({ displayName: "sleeper" });
    const outcomes: { attempt: number; error?: { code?: string; message: string } }[] = [];
    const retried = deferred<number>();
    await node.onEvent(
      "job.sleep",
      async (_event, ctx) => {
        if (ctx.attempt > 1) {
          outcomes.push({ attempt: ctx.attempt });
          return retried.resolve(performance.now());
        }
        try {
          await ctx.client.query("select pg_sleep(30)");
          outcomes.push({ attempt: ctx.attempt });
        } catch (error) {
          outcomes.push({ attempt: ctx.attempt, error: { code: (error as { code?: string }).code, message: (error as Error).message } });
          throw error;
        }
      },
      { group, timeout: 500, visibilityTimeout: 40_000, ...fastRetry },
    );
    await node.start();
    const emittedAt = performance.now();
    await node.emit("job.sleep", {});

    const retriedAt = await within(10_000, "the retry after the cancelled statement", retried.promise);
    expect(retriedAt - emittedAt, "the 30 s statement was cancelled near the 500 ms timeout").toBeLessThan(5_000);
    expect(outcomes[0]).toEqual({ attempt: 1, error: expect.objectContaining({ code: "57014" }) });
    expect(outcomes[1]).toEqual({ attempt: 2 });
    await waitUntil("the event's queue to drain", () => queueLength(groupQueueName(namespace, group)), (n) => n === 0, 5_000);
    expect(
      await count("select count(*) as n from pg_stat_activity where application_name = $1 and query like '%pg_sleep(30)%' and state = 'active'", [applicationName]),
      "a pg_sleep(30) still running",
    ).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------
// Direct messages and broadcasts
// ---------------------------------------------------------------------------------------

describe("direct messages", () => {
  it.each(eachDelivery.map(({ delivery }) => delivery))(
    "delivers 10,000 messages sent to one node without awaiting each, every 500th of 100 KiB, each once and in order, delivery '%s'",
    async (delivery) => {
      const namespace = newNamespace("rpc-direct");
      const targetSystem = await connect(namespace);
      const target = await targetSystem.registerNode({ displayName: "target" });
      const received: number[] = [];
      const sizes: number[] = [];
      const firstAttempts: boolean[] = [];
      target.onDirect<{ i: number; pad?: string }>("seq.*", (message, context) => {
        received.push(message.payload.i);
        if (message.payload.pad) sizes.push(message.payload.pad.length);
        firstAttempts.push(context.attempt === 1 && (delivery === "queue" || context.messageId === message.id));
      });
      await target.start();
      const senderSystem = await connect(namespace);
      const sender = await senderSystem.registerNode({ displayName: "sender" });

      const TOTAL = 10_000;
      const pad = patterned(100 * 1024, 1);
      const startedAt = performance.now();
      const sends = range(TOTAL).map((i) => sender.sendTo(target.nodeId, "seq.item", i % 500 === 499 ? { i, pad } : { i }, { delivery }));
      await within(20_000, "every send to commit", Promise.all(sends));
      const sentMs = performance.now() - startedAt;
      await waitUntil(`${TOTAL} direct messages handled`, () => received.length, (n) => n >= TOTAL, 20_000);
      const handledMs = performance.now() - startedAt;
      await sleep(300); // room for a (wrong) redelivery to show up
      console.info(`[rpc] 10,000 direct messages, delivery=${delivery}: sent in ${Math.round(sentMs)} ms, all handled after ${Math.round(handledMs)} ms`);
      expect(received).toHaveLength(TOTAL);
      const outOfOrder = received.findIndex((value, index) => value !== index);
      expect(outOfOrder, `first out-of-order position (value ${received[outOfOrder]})`).toBe(-1);
      expect(sizes, "the 100 KiB payloads, intact in length").toEqual(range(TOTAL / 500).map(() => pad.length));
      expect(firstAttempts.every(Boolean), "each handled once, on its first attempt").toBe(true);
    },
    40_000,
  );
});

describe("broadcasts", () => {
  it("reaches every live node of the namespace once, a 100 KiB payload intact", async () => {
    const namespace = newNamespace("rpc-broadcast");
    const received: { payload: unknown; meta: { channel: string; sourceNode: string | null } }[][] = [[], [], []];
    const members: { system: CoreSystem; node: CoreNode }[] = [];
    for (const index of [0, 1, 2]) {
      const system = await connect(namespace);
      const node = await system.registerNode({ displayName: `member-${index}` });
      await node.start();
      system.onBroadcast("cluster.hello", (payload, meta) => void received[index]!.push({ payload, meta }));
      members.push({ system, node });
    }
    // A system of another namespace hears nothing.
    const outsider = await connect(newNamespace("rpc-outsider"));
    const outsiderHeard: unknown[] = [];
    outsider.onBroadcast("cluster.hello", (payload) => void outsiderHeard.push(payload));

    const source = members[0]!;
    await source.system.broadcast("cluster.hello", { hello: 1 }, { sourceNode: source.node.nodeId });
    await waitUntil("every member to hear the broadcast", () => received.map((list) => list.length), (counts) => counts.every((n) => n >= 1), 5_000);
    const big = { blob: patterned(100 * 1024, 5), tail: "end" };
    await members[2]!.system.broadcast("cluster.hello", big);
    await waitUntil("every member to hear the 100 KiB broadcast", () => received.map((list) => list.length), (counts) => counts.every((n) => n >= 2), 5_000);
    await sleep(300); // room for a (wrong) duplicate to show up

    for (const list of received) {
      expect(list).toHaveLength(2);
      expect(list[0]).toEqual({ payload: { hello: 1 }, meta: { channel: "cluster.hello", sourceNode: source.node.nodeId } });
      expect(list[1]!.meta).toEqual({ channel: "cluster.hello", sourceNode: null });
      expect((list[1]!.payload as typeof big).blob === big.blob, "the 100 KiB broadcast arrived changed").toBe(true);
      expect(list[1]!.payload).toEqual(big);
    }
    expect(outsiderHeard).toEqual([]);
  });
});
