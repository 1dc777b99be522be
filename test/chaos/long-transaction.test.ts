/**
 * A long-running transaction elsewhere holds back vacuum (its snapshot keeps every dead
 * queue row): throughput may degrade, but nothing is lost or applied twice.
 */
import { describe, expect, it } from "vitest";
import { chaosDatabaseUrl, probePool } from "./support/cluster.js";
import { runScenario, type ScenarioOptions } from "./support/harness.js";
import { isExact } from "../support/reconcile.js";

const scenario = (label: string): ScenarioOptions => ({
  label,
  databaseUrl: chaosDatabaseUrl(),
  groups: ["xmin-a", "xmin-b", "xmin-c"],
  consumers: 2,
  consumer: { concurrency: 2, prefetch: 10 },
  production: { total: 1_500, batchSize: 100, intervalMs: 10 },
  drainMs: 120_000,
});

describe("chaos: a long transaction holding back vacuum", () => {
  it("reconciles exactly with and without an old snapshot held open", async () => {
    const baseline = await runScenario(scenario("xmin-free"));
    const holder = probePool(chaosDatabaseUrl());
    const client = await holder.connect();
    try {
      // A repeatable-read snapshot with an xid: vacuum cannot remove any row deleted after it.
      await client.query("begin isolation level repeatable read");
      await client.query("select txid_current(), count(*) from pg_class");
      const held = await runScenario(scenario("xmin-held"));
      const { rows } = await holder.query<{ age: number }>("select max(age(backend_xmin))::int as age from pg_stat_activity where backend_xmin is not null");
      console.log(`  effects/s without the old snapshot: ${Math.round((3 * 1_500 * 1000) / baseline.durationMs)}, with it: ${Math.round((3 * 1_500 * 1000) / held.durationMs)}; oldest snapshot age ${rows[0]?.age ?? 0} transactions`);
      expect(rows[0]!.age, "the snapshot was held through the run").toBeGreaterThan(100);
      expect(isExact(baseline.result), baseline.summary).toBe(true);
      expect(isExact(held.result), held.summary).toBe(true);
    } finally {
      await client.query("rollback").catch(() => {});
      client.release();
      await holder.end();
    }
  }, 300_000);
});
