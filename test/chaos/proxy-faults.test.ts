/**
 * Connections between the consumer nodes and PostgreSQL cut, stalled and slowed by a TCP
 * proxy of the test's own (test/chaos/support/proxy.ts): the consumers reconnect and
 * carry on, and every effect lands exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chaosDatabaseUrl } from "./support/cluster.js";
import { runScenario } from "./support/harness.js";
import { startProxy, type ChaosProxy } from "./support/proxy.js";
import { isExact } from "../support/reconcile.js";
import { sleep } from "../support/wait.js";

describe("chaos: connections dropped, stalled and slowed by a proxy", () => {
  let proxy: ChaosProxy;
  beforeAll(async () => {
    proxy = await startProxy(chaosDatabaseUrl());
  });
  afterAll(async () => {
    await proxy?.close();
  });

  it("reconciles exactly through drops, a stall and a slow link", async () => {
    const outcome = await runScenario({
      label: "proxy",
      databaseUrl: chaosDatabaseUrl(),
      consumerUrl: proxy.rewrite(chaosDatabaseUrl()),
      groups: ["proxy-a", "proxy-b", "proxy-c"],
      consumers: 2,
      consumer: { concurrency: 2, prefetch: 10, visibilityMs: 10_000, maxAttempts: 20 },
      production: { total: 2_000, batchSize: 20, intervalMs: 50 },
      drainMs: 120_000,
      fault: async () => {
        await sleep(1_000);
        const cut = proxy.drop();
        await sleep(2_000);
        proxy.stall(3_000);
        await sleep(4_000);
        proxy.slow(25);
        await sleep(3_000);
        proxy.slow(0);
        const cutAgain = proxy.drop();
        console.log(`  proxy: ${cut} + ${cutAgain} connections dropped, one 3 s stall, 3 s at +25 ms per chunk; ${proxy.accepted} connections accepted`);
        expect(cut + cutAgain).toBeGreaterThan(0);
      },
    });
    expect(isExact(outcome.result), outcome.summary).toBe(true);
    expect(outcome.result.events).toBe(2_000);
  }, 240_000);
});
