/**
 * Strict options (issue 15) in the adapters: PgServer and PgClient (NestJS), PgTransporter
 * (Moleculer), PgEventEmitter and the BullMQ facade's Queue, Worker and QueueEvents reject
 * an unknown option of theirs, or of the core's connection options they pass on, with a
 * ValidationError naming it; the display names and groups they use are valid.
 */
import "reflect-metadata";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, ValidationError } from "../../core/index.js";
import { PgClient, PgServer } from "../../adapters/nestjs/index.js";
import { PgTransporter } from "../../adapters/moleculer/index.js";
import { PgEventEmitter } from "../../adapters/events/index.js";
import { Queue, QueueEvents, UnsupportedOptionError, Worker } from "../../adapters/bullmq/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";

/** Asserts `action` throws a ValidationError whose argument ends with `key` and whose message names it (and `hint`, when given). */
function expectUnknown(action: () => unknown, key: string, hint?: string): void {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ValidationError);
  const error = caught as ValidationError;
  expect(error.argument.endsWith(key)).toBe(true);
  expect(error.message).toContain(key);
  if (hint !== undefined) expect(error.message).toMatch(new RegExp(`did you mean "?[\\w.]*${hint}"?\\?`));
}

describe("strict options of the adapters", () => {
  const url = testDatabaseUrl();
  const namespace = uniqueNamespace("strict-adapters");
  let system: CoreSystem;

  beforeAll(async () => {
    system = await CoreSystem.connect({ connectionString: url, namespace });
  });

  afterAll(async () => {
    await system?.close();
  });

  it("NestJS PgServer: its own options, the core's connection options, events and requests", () => {
    expectUnknown(() => new PgServer({ system, group: "billing", nodeNmae: "x" } as never), "nodeNmae", "nodeName");
    expectUnknown(() => new PgServer({ connectionString: url, namespace, group: "billing", poool: {} } as never), "poool", "pool");
    expectUnknown(() => new PgServer({ system, group: "billing", events: { concurency: 2 } } as never), "concurency", "concurrency");
    expectUnknown(() => new PgServer({ system, group: "billing", requests: { group: "other" } } as never), "group");
    expect(() => new PgServer({ system, group: "billing", events: { concurrency: 2 }, requests: { prefetch: 1 } })).not.toThrow();
  });

  it("NestJS PgClient", () => {
    expectUnknown(() => new PgClient({ system, timeuot: 5 } as never), "timeuot", "timeout");
    expectUnknown(() => new PgClient({ connectionString: url, namespace, queue: "x" } as never), "queue");
  });

  it("Moleculer PgTransporter: its options, core and balanced", () => {
    expectUnknown(() => new PgTransporter({ connectionString: url, balanceed: {} } as never), "balanceed", "balanced");
    expectUnknown(() => new PgTransporter({ connectionString: url, core: { namespace: "x" } } as never), "namespace");
    expectUnknown(() => new PgTransporter({ connectionString: url, core: { nodeTtl: 5 } } as never), "nodeTtl", "nodeTtlMs");
    expectUnknown(() => new PgTransporter({ connectionString: url, balanced: { prefech: 1 } } as never), "prefech", "prefetch");
    expect(() => new PgTransporter({ connectionString: url, balanced: { prefetch: 0 } })).toThrow(/prefetch must be a whole number of messages/);
  });

  it("EventEmitter facade: its options, its connection options and with()", () => {
    expectUnknown(() => new PgEventEmitter(system, { mdoe: "group" } as never), "mdoe", "mode");
    expectUnknown(() => new PgEventEmitter({ connectionString: url, namespace, poool: {} } as never), "poool", "pool");
    expectUnknown(() => new PgEventEmitter(system).with({ delya: 5 } as never), "delya", "delay");
  });

  it("BullMQ Queue, Worker, QueueEvents (UnsupportedOptionError, a ValidationError) and their connection", async () => {
    const prefix = namespace;
    expectUnknown(() => new Queue("strict", { connection: system, prefix, defaultJobOption: {} } as never), "defaultJobOption", "defaultJobOptions");
    expect(() => new Queue("strict", { connection: system, prefix, defaultJobOption: {} } as never)).toThrow(UnsupportedOptionError);
    expectUnknown(() => new Worker("strict", async () => {}, { connection: system, prefix, concurency: 2 } as never), "concurency", "concurrency");
    expectUnknown(() => new QueueEvents("strict", { connection: system, prefix, autoRun: false } as never), "autoRun", "autorun");
    expectUnknown(() => new Queue("strict", { connection: { connectionString: url, host: "localhost" } } as never), "host");
    const queue = new Queue("strict", { connection: system, prefix });
    await expect(queue.add("job", {}, { attemps: 3 } as never)).rejects.toThrow(/did you mean opts\.attempts\?/);
    await queue.close();
  });

  it("the adapters' display names and default groups are valid group names where a group defaults to them", async () => {
    const emitter = new PgEventEmitter(system, { mode: "group", group: "billing" });
    try {
      emitter.on("strict.group", () => {});
      await emitter.ready();
    } finally {
      await emitter.close();
    }
  });
});
