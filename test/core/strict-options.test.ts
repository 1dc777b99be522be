/**
 * Strict options (issue 15): every public entry point of the core rejects an unknown
 * option with a ValidationError naming it (and the closest allowed key for a near miss),
 * numbers out of range name their unit, and a display name that is not a valid group
 * name is refused when onEvent/onRequest would default the group to it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, ValidationError, type CoreNode } from "../../core/index.js";
import { assertKnownKeys, assertWholeNumber, closestKey } from "../../core/model/options.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";

/** Asserts `action` throws (or rejects with) a ValidationError whose argument and message name `key`. */
async function expectUnknown(action: () => unknown, key: string, hint?: string): Promise<ValidationError> {
  let caught: unknown;
  try {
    await action();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ValidationError);
  const error = caught as ValidationError;
  expect(error.argument.endsWith(key)).toBe(true);
  expect(error.message).toContain(`Unknown option ${JSON.stringify(key)}`);
  if (hint !== undefined) expect(error.message).toContain(`did you mean ${JSON.stringify(hint)}?`);
  return error;
}

describe("the options module", () => {
  it("names the key, where it was given, the allowed keys and the closest one", () => {
    expect(() => assertKnownKeys("somewhere", { poool: 1 }, ["pool", "namespace"])).toThrow(
      'Unknown option "poool" in somewhere (did you mean "pool"?); allowed: pool, namespace.',
    );
    expect(closestKey("concurency", ["concurrency", "prefetch"])).toBe("concurrency");
    expect(closestKey("zzz", ["concurrency", "prefetch"])).toBeUndefined();
    expect(() => assertKnownKeys("somewhere", "text", ["a"])).toThrow(ValidationError);
  });

  it("names the unit of a number out of range", () => {
    expect(() => assertWholeNumber("size", 1.5, { min: 1, unit: "bytes" })).toThrow("size must be a whole number of bytes, at least 1; got 1.5.");
    expect(() => assertWholeNumber("wait", 0, { min: 1, max: 10, unit: "milliseconds" })).toThrow("wait must be a whole number of milliseconds from 1 to 10; got 0.");
  });
});

describe("strict options of the core's entry points", () => {
  const url = testDatabaseUrl();
  const namespace = uniqueNamespace("strict");
  let system: CoreSystem;
  let node: CoreNode;

  beforeAll(async () => {
    system = await CoreSystem.connect({ connectionString: url, namespace });
    node = await system.registerNode({ displayName: "strict-options" });
  });

  afterAll(async () => {
    await system?.close();
  });

  it("CoreSystem.connect: top level and nested pool, eventLog, metrics, scheduler", async () => {
    const base = { connectionString: url, namespace };
    await expectUnknown(() => CoreSystem.connect({ ...base, poool: { max: 2 } } as never), "poool", "pool");
    await expectUnknown(() => CoreSystem.connect({ ...base, pool: { maxx: 2 } } as never), "maxx", "max");
    await expectUnknown(() => CoreSystem.connect({ ...base, eventLog: { premak: 2 } } as never), "premak", "premake");
    await expectUnknown(() => CoreSystem.connect({ ...base, metrics: { registy: undefined } } as never), "registy", "registry");
    await expectUnknown(() => CoreSystem.connect({ ...base, scheduler: { enable: false } } as never), "enable", "enabled");
  });

  it("CoreSystem.connect: pool.max at least 1, maxPayloadBytes in bytes, durations in milliseconds", async () => {
    const base = { connectionString: url, namespace };
    await expect(CoreSystem.connect({ ...base, pool: { max: 0 } })).rejects.toThrow(/pool\.max must be a whole number of connections from 1/);
    const payload = await CoreSystem.connect({ ...base, maxPayloadBytes: 1.5 }).catch((error: unknown) => error as Error);
    expect(payload).toBeInstanceOf(ValidationError);
    expect((payload as Error).message).toMatch(/maxPayloadBytes must be a whole number of bytes/);
    expect((payload as Error).message).not.toMatch(/milliseconds/);
    await expect(CoreSystem.connect({ ...base, heartbeatIntervalMs: 0 })).rejects.toThrow(/heartbeatIntervalMs must be a whole number of milliseconds/);
    await expect(CoreSystem.connect({ ...base, pool: { idleTimeoutMs: -1 } })).rejects.toThrow(/pool\.idleTimeoutMs must be a whole number of milliseconds/);
  });

  it("registerNode", async () => {
    await expectUnknown(() => system.registerNode({ displayName: "x", metdata: {} } as never), "metdata", "metadata");
  });

  it("node.emit, emitBatch (options and each event), emitStatement", async () => {
    await expectUnknown(() => node.emit("strict.a", {}, { dealy: 5 } as never), "dealy", "delay");
    await expectUnknown(() => node.emitBatch([{ type: "strict.a", payload: {} }], { clint: undefined } as never), "clint", "client");
    await expectUnknown(() => node.emitBatch([{ type: "strict.a", payload: {} }, { type: "strict.b", payload: {}, header: {} } as never]), "header", "headers");
    await expectUnknown(() => system.emitStatement("strict.a", {}, { idempotencykey: "k" } as never), "idempotencykey", "idempotencyKey");
  });

  it("onEvent (SubscribeOptions), its backoff, and onRequest (RespondOptions)", async () => {
    await expectUnknown(() => node.onEvent("strict.*", () => {}, { group: "g", concurency: 2 } as never), "concurency", "concurrency");
    await expectUnknown(() => node.onEvent("strict.*", () => {}, { group: "g", stream: true } as never), "stream");
    await expectUnknown(() => node.onEvent("strict.*", () => {}, { group: "g", backoff: { type: "fixed", delay: 1, jiter: 0.1 } } as never), "jiter", "jitter");
    await expectUnknown(() => node.onRequest("strict.*", () => 1, { group: "g", prefech: 1 } as never), "prefech", "prefetch");
    await expectUnknown(() => node.onRequest("strict.*", () => 1, { group: "g", maxAttempts: 3 } as never), "maxAttempts");
    await expect(node.onEvent("strict.*", () => {}, { group: "g", prefetch: 0 })).rejects.toThrow(/prefetch must be a whole number of messages/);
  });

  it("request and requestStream (RequestOptions)", async () => {
    await expectUnknown(() => node.request("strict.a", {}, { timout: 10 } as never), "timout", "timeout");
    await expectUnknown(async () => {
      for await (const _ of node.requestStream("strict.a", {}, { stream: true } as never)) break;
    }, "stream");
  });

  it("sendTo, stop, broadcast", async () => {
    await expectUnknown(() => node.sendTo(node.nodeId, "strict.a", {}, { headres: {} } as never), "headres", "headers");
    await expectUnknown(() => system.broadcast("strict.a", {}, { source: "x" } as never), "source");
    const other = await system.registerNode({ displayName: "strict-stop" });
    await expectUnknown(() => other.stop({ grace: 5 } as never), "grace");
    expect(other.stopped).toBe(false);
    await other.stop({ graceMs: 0 });
  });

  it("scheduleTask, replay, dead letters, createNamespaceRole, topQueries", async () => {
    await expectUnknown(
      () => node.scheduleTask({ name: "t", cronExpression: "* * * * *", eventType: "strict.a", timeZone: "UTC" } as never),
      "timeZone",
      "timezone",
    );
    await expectUnknown(() => system.replay({ group: "g", from: new Date(0), to: new Date(), dryrun: true } as never), "dryrun", "dryRun");
    await expectUnknown(() => system.deadLetters.list("g", { limt: 5 } as never), "limt", "limit");
    await expectUnknown(() => system.deadLetters.retry("g", { befor: new Date() } as never), "befor", "before");
    await expectUnknown(() => system.createNamespaceRole(namespace, { rolename: "x" } as never), "rolename", "roleName");
    await expect(system.topQueries(0)).rejects.toThrow(/limit must be a whole number of statements from 1 to 1000/);
  });

  it("a display name that is not a valid group name is refused only when the group defaults to it", async () => {
    const human = await system.registerNode({ displayName: "Billing Service (EU)" });
    try {
      const error = await human.onEvent("strict.*", () => {}).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).name).toBe("ValidationError");
      expect((error as ValidationError).argument).toBe("group");
      expect((error as Error).message).toContain('the group defaulted to the display name "Billing Service (EU)", which is not a valid group name');
      expect((error as Error).message).toContain("Pass { group } explicitly");
      await expect(human.onRequest("strict.*", () => 1)).rejects.toThrow(/defaulted to the display name "Billing Service \(EU\)"/);
      await expect(human.onEvent("strict.*", () => {}, { group: "billing" })).resolves.toBeUndefined();
    } finally {
      await human.stop({ graceMs: 0 });
    }
  });
});
