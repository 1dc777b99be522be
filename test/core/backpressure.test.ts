/**
 * Backpressure: a producer far faster than its consumer. The backlog grows in the
 * database, not in the consumer: at any moment the consumer holds at most
 * concurrency × prefetch messages (read, invisible to others, not yet settled), and once
 * it speeds up every event is applied exactly once.
 */
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { uniqueNamespace } from "../support/database.js";
import { createEffectTable, effectStatement, formatReconciliation, isExact, reconcileWhenDrained } from "../support/reconcile.js";
import { testSystems } from "../support/systems.js";
import { sleep } from "../support/wait.js";

const TOTAL = 2_000;
const CONCURRENCY = 2;
const PREFETCH = 5;
const GROUP = "slow";

describe("backpressure", () => {
  const systems = testSystems();
  const table = `bp_effects_${randomBytes(4).toString("hex")}`;
  afterAll(async () => {
    const [system] = systems.open;
    if (system) {
      await system.dropGroup(GROUP).catch(() => 0);
      await system.pool.query(`drop table if exists ${table}`);
    }
    await systems.close();
  });

  it("keeps the backlog in the database, holds at most concurrency × prefetch messages and drops nothing", async () => {
    const namespace = uniqueNamespace("backpressure");
    const producerSystem = await systems.connect({ namespace });
    const consumerSystem = await systems.connect({ namespace });
    await createEffectTable(producerSystem.pool, table);
    const insert = effectStatement(table);

    let slow = true;
    let active = 0;
    let maxActive = 0;
    const consumer = await consumerSystem.registerNode({ displayName: "slow-consumer" });
    await consumer.onEvent(
      "bp.**",
      async (event, context) => {
        active += 1;
        maxActive = Math.max(maxActive, active);
        try {
          await context.client.query(insert, [event.id, GROUP, context.attempt, process.pid]);
          if (slow) await sleep(25);
        } finally {
          active -= 1;
        }
      },
      { group: GROUP, concurrency: CONCURRENCY, prefetch: PREFETCH, pollInterval: 200 },
    );
    await consumer.start();

    // Sample what the consumer holds (messages read and not yet settled) while the producer floods the queue.
    let maxHeld = 0;
    let maxQueue = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const group = (await consumerSystem.metrics()).groups.find((each) => each.group === GROUP);
        const held = (group?.queueLength ?? 0) - (group?.visibleLength ?? 0);
        maxHeld = Math.max(maxHeld, held);
        maxQueue = Math.max(maxQueue, group?.queueLength ?? 0);
        await sleep(50);
      }
    })();
    const producer = await producerSystem.registerNode({ displayName: "fast-producer" });
    const startedAt = Date.now();
    for (let start = 0; start < TOTAL; start += 500) {
      await producer.emitBatch(Array.from({ length: 500 }, (_, offset) => ({ type: "bp.item", payload: { index: start + offset } })));
    }
    const emitMs = Date.now() - startedAt;
    await sleep(2_000); // the consumer keeps working slowly: the backlog stays in the queue
    sampling = false;
    await sampler;
    const { rows } = await producerSystem.pool.query<{ n: number }>(`select count(*)::int as n from ${table}`);
    console.log(`[backpressure] emitted ${TOTAL} in ${emitMs} ms; after ${Date.now() - startedAt} ms the consumer had applied ${rows[0]!.n}; largest backlog ${maxQueue}, most messages held by the consumer ${maxHeld}, most handlers at once ${maxActive}`);

    expect(maxQueue).toBeGreaterThan(TOTAL / 2);
    expect(rows[0]!.n).toBeLessThan(TOTAL / 2);
    expect(maxHeld).toBeGreaterThan(0);
    expect(maxHeld).toBeLessThanOrEqual(CONCURRENCY * PREFETCH);
    expect(maxActive).toBeLessThanOrEqual(CONCURRENCY);

    slow = false;
    const result = await reconcileWhenDrained(producerSystem, table, [GROUP], 30_000);
    console.log(formatReconciliation("backpressure", result));
    expect(result.events).toBe(TOTAL);
    expect(isExact(result), formatReconciliation("backpressure", result)).toBe(true);
    await consumer.stop();
  }, 60_000);
});
