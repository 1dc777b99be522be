/**
 * Handlers that hang forever, under load: the handler timeout aborts each one and rolls
 * its effect back; events that hang on every attempt end in the dead-letter queue, those
 * that hang once are retried and applied once, and every other event keeps flowing.
 */
import { describe, expect, it } from "vitest";
import { chaosDatabaseUrl } from "./support/cluster.js";
import { runScenario } from "./support/harness.js";
import { isExact } from "../support/reconcile.js";

describe("chaos: handlers hanging forever", () => {
  it("aborts hung handlers on their timeout, dead-letters the always-hanging events and applies the rest exactly once", async () => {
    const total = 2_000;
    const hang = (index: number): "always" | "once" | undefined => (index % 100 === 7 ? "always" : index % 100 === 57 ? "once" : undefined);
    const outcome = await runScenario({
      label: "hang",
      databaseUrl: chaosDatabaseUrl(),
      groups: ["hang-a", "hang-b", "hang-c"],
      consumers: 2,
      consumer: { concurrency: 4, prefetch: 5, timeoutMs: 1_000, maxAttempts: 3, visibilityMs: 10_000 },
      production: { total, batchSize: 100, intervalMs: 20, payload: (index) => ({ index, hang: hang(index) }) },
      drainMs: 120_000,
    });
    const alwaysHanging = total / 100;
    expect(isExact(outcome.result), outcome.summary).toBe(true);
    for (const group of outcome.result.groups) {
      expect(group.deadLetters, `${group.group}: only the always-hanging events are dead letters`).toBe(alwaysHanging);
      expect(group.effects).toBe(total - alwaysHanging);
    }
  }, 240_000);
});
