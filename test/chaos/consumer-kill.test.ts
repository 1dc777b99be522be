/**
 * Consumers SIGKILLed at random points while 10,000 events flow through three groups:
 * every event ends with exactly one effect per group (or a dead letter), none lost, none
 * applied twice. Run: NEXUS_TEST_SUITE=chaos npx vitest run test/chaos
 */
import { describe, expect, it } from "vitest";
import { chaosDatabaseUrl, queueDepth } from "./support/cluster.js";
import { runScenario } from "./support/harness.js";
import { isExact } from "../support/reconcile.js";
import { sleep } from "../support/wait.js";

describe("chaos: consumers killed with SIGKILL", () => {
  it("reconciles 10,000 events in three groups exactly while consumers die at random points", async () => {
    let kills = 0;
    const outcome = await runScenario({
      label: "kill",
      databaseUrl: chaosDatabaseUrl(),
      groups: ["kill-a", "kill-b", "kill-c"],
      consumers: 3,
      consumer: { concurrency: 2, prefetch: 10, visibilityMs: 10_000, maxAttempts: 20 },
      production: { total: 10_000, batchSize: 100, intervalMs: 20 },
      drainMs: 150_000,
      fault: async ({ consumers, startConsumer, scenario, produced }) => {
        // Kill a random consumer every 0.5-2 s, while producing and until the queues are empty (at most 90 s).
        const deadline = Date.now() + 90_000;
        while (Date.now() < deadline) {
          await sleep(500 + Math.random() * 1_500);
          if (produced.aborted && (await queueDepth(scenario.system)) === 0) break;
          const victim = consumers.splice(Math.floor(Math.random() * consumers.length), 1)[0]!;
          await victim.kill();
          kills += 1;
          await startConsumer();
        }
      },
    });
    console.log(`  consumer kills: ${kills}`);
    expect(kills).toBeGreaterThanOrEqual(3);
    expect(outcome.result.events).toBe(10_000);
    expect(isExact(outcome.result), outcome.summary).toBe(true);
  }, 300_000);
});
