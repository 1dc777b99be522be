/**
 * The PostgreSQL server restarted twice mid-stream (`pg_ctlcluster ... restart -m fast`)
 * while the producer emits and the consumer children consume: everybody reconnects, and
 * every event of the log has exactly one effect per group. A batch whose commit answer
 * was lost is emitted again by the producer: more events, each reconciled on its own.
 */
import { afterAll, describe, expect, it } from "vitest";
import { chaosDatabaseUrl, ensureClusterStarted, restartCluster } from "./support/cluster.js";
import { runScenario } from "./support/harness.js";
import { isExact } from "../support/reconcile.js";
import { sleep } from "../support/wait.js";

describe("chaos: the server restarted mid-stream", () => {
  afterAll(() => ensureClusterStarted());

  it("reconciles exactly across two restarts with producer and consumers running", async () => {
    let restarts = 0;
    const outcome = await runScenario({
      label: "restart",
      databaseUrl: chaosDatabaseUrl(),
      groups: ["restart-a", "restart-b", "restart-c"],
      consumers: 2,
      consumer: { concurrency: 2, prefetch: 10, visibilityMs: 10_000, maxAttempts: 20 },
      production: { total: 3_000, batchSize: 30, intervalMs: 50, giveUpAfterMs: 60_000 },
      drainMs: 120_000,
      fault: async () => {
        for (const at of [1_500, 3_000]) {
          await sleep(at);
          await restartCluster();
          restarts += 1;
        }
      },
    });
    console.log(`  server restarts: ${restarts}`);
    expect(restarts).toBe(2);
    expect(outcome.production.retries).toBeGreaterThan(0);
    expect(outcome.result.events).toBeGreaterThanOrEqual(3_000);
    expect(isExact(outcome.result), outcome.summary).toBe(true);
  }, 240_000);
});
