/**
 * Behind PgBouncer in transaction mode: pooled statements go through the bouncer
 * (unnamed, since Debian's PgBouncer 1.18 cannot route named prepared statements), LISTEN
 * and the scheduler's session lock use the direct `listenConnectionString`.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem } from "../../core/index.js";
import { createScratchDatabase, testDatabaseUrl, uniqueNamespace, withClient } from "../support/database.js";
import { pgbouncerVersion, startPgBouncer, type Bouncer } from "../support/pgbouncer.js";
import { waitUntil } from "../support/wait.js";

const version = pgbouncerVersion();

describe.skipIf(!version)(`behind PgBouncer in transaction mode (${version ?? "pgbouncer not installed"})`, () => {
  let bouncer: Bouncer;
  beforeAll(async () => {
    bouncer = await startPgBouncer(testDatabaseUrl());
  });
  afterAll(() => bouncer?.stop());

  function connectThroughBouncer(url: string, namespace: string): Promise<CoreSystem> {
    return CoreSystem.connect({
      connectionString: bouncer.through(url),
      listenConnectionString: url,
      preparedStatements: false,
      namespace,
      pool: { max: 8 },
    });
  }

  it("migrates an empty database from five nodes at once through the bouncer", async () => {
    const scratch = await createScratchDatabase("pooler");
    try {
      const systems = await Promise.all(Array.from({ length: 5 }, () => connectThroughBouncer(scratch.url, "pooled")));
      await Promise.all(systems.map((system) => system.close()));
      const versions = await withClient(scratch.url, async (client) => (await client.query("select count(*)::int as n from core.schema_migrations")).rows[0].n);
      expect(versions).toBeGreaterThan(5);
    } finally {
      await scratch.drop();
    }
  });

  it("delivers events with handler-in-transaction acks, retries and requests through the bouncer", async () => {
    const url = testDatabaseUrl();
    const system = await connectThroughBouncer(url, uniqueNamespace("pooler"));
    const table = `pooled_${randomBytes(4).toString("hex")}`;
    await withClient(url, (client) => client.query(`create table ${table} (event_id uuid primary key)`));
    try {
      const worker = await system.registerNode({ displayName: "worker" });
      const attempts = new Map<string, number>();
      await worker.onEvent(
        "pooled.*",
        async (event, ctx) => {
          attempts.set(event.id, ctx.attempt);
          await ctx.client.query(`insert into ${table} (event_id) values ($1)`, [event.id]);
          if (ctx.attempt === 1 && (event.payload as { n: number }).n % 5 === 0) throw new Error("first attempt of every fifth fails");
        },
        { prefetch: 5, concurrency: 2, pollInterval: 100, backoff: { type: "fixed", delay: 0 } },
      );
      await worker.onRequest("pooled.sum", ({ payload }) => (payload as number[]).reduce((a, b) => a + b, 0));
      await worker.start();
      const ids = await worker.emitBatch(Array.from({ length: 50 }, (_, n) => ({ type: "pooled.work", payload: { n } })));
      const rows = await waitUntil(
        "50 committed effects",
        () => withClient(url, async (client) => (await client.query(`select count(*)::int as n from ${table}`)).rows[0].n as number),
        (n) => n >= 50,
      );
      expect(rows).toBe(50);
      expect(ids.filter((id) => attempts.get(id) === 2)).toHaveLength(10);
      expect(await worker.request("pooled.sum", [1, 2, 3], { timeout: 5_000 })).toBe(6);
    } finally {
      await system.close();
      await withClient(url, (client) => client.query(`drop table ${table}`));
    }
  });
});
