/**
 * Process-level acceptance tests of delivery under faults: a consumer killed mid-handler,
 * its backends terminated mid-stream, the LISTEN connection lost, a graceful stop with
 * work in flight, and a handler slower than its visibility timeout.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { CoreSystem, groupQueueName, type ConnectOptions, type SubscribeOptions } from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { testSystems } from "../support/systems.js";
import { FixtureProcess } from "../support/fixture-process.js";
import { deferred, sleep, waitUntil, within, type Deferred } from "../support/wait.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const hangingConsumer = path.join(repoRoot, "test/fixtures/hanging-consumer.ts");

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const hex = (bytes = 4): string => randomBytes(bytes).toString("hex");

// ---------------------------------------------------------------------------------------
// Per-test resources: systems, child processes, effects tables. Always cleaned up.
// ---------------------------------------------------------------------------------------

let admin: pg.Pool;
const systems = testSystems();
const children: FixtureProcess[] = [];
const tables: string[] = [];
const groups: { namespace: string; group: string }[] = [];

beforeAll(() => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4, application_name: "nexus-test-admin" });
  admin.on("error", () => {});
});

afterEach(async () => {
  await Promise.allSettled(children.splice(0).map((child) => child.kill()));
  await systems.close().catch(() => {});
  for (const table of tables.splice(0)) await admin.query(`drop table if exists ${table}`);
  // Leave no queues behind in the shared database (once every consumer is gone).
  for (const { namespace, group } of groups.splice(0)) {
    const cleaner = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace });
    try {
      await cleaner.dropGroup(group);
    } finally {
      await cleaner.close();
    }
  }
});

afterAll(async () => {
  await admin?.end();
});

function connect(namespace: string, options: Partial<ConnectOptions> = {}): Promise<CoreSystem> {
  return systems.connect({ namespace, ...options });
}

function startFixture(env: Record<string, string>): FixtureProcess {
  const child = new FixtureProcess(hangingConsumer, env);
  children.push(child);
  return child;
}

/** Schedules the removal of `group`'s subscriptions and queues after the test. */
function dropAfterTest(namespace: string, group: string): void {
  groups.push({ namespace, group });
}

/** Creates `effects_<random>` (event_id unique) and schedules its drop. */
async function createEffectsTable(): Promise<string> {
  const table = `effects_${hex(6)}`;
  await admin.query(`
    create table ${table} (
      event_id   uuid primary key,
      attempt    integer not null,
      handled_by text not null,
      handled_at timestamptz not null default clock_timestamp()
    )`);
  tables.push(table);
  return table;
}

const queueTable = (queue: string): string => `pgmq.${pg.Client.prototype.escapeIdentifier("q_" + queue)}`;

async function count(sql: string, values: unknown[] = []): Promise<number> {
  const { rows } = await admin.query<{ n: string }>(sql, values);
  return Number(rows[0]!.n);
}

/** Terminates the backends whose application_name is one of `applicationNames`; returns them. */
async function terminateBackends(applicationNames: string[]): Promise<{ pid: number; application_name: string }[]> {
  const { rows } = await admin.query<{ pid: number; application_name: string }>(
    `select pid, application_name, pg_terminate_backend(pid, 3000) as terminated
       from pg_stat_activity
      where application_name = any($1::text[])
        and pid <> pg_backend_pid()
        and datname = current_database()`,
    [applicationNames],
  );
  return rows.map(({ pid, application_name }) => ({ pid, application_name }));
}

const fastRetry: SubscribeOptions = { maxAttempts: 20, backoff: { type: "fixed", delay: 0 } };

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

describe("delivery under faults", () => {
  it("redelivers a message whose consumer was SIGKILLed mid-handler, as attempt 2, after the visibility timeout; only one effect commits", async () => {
    const namespace = uniqueNamespace("kill");
    const group = "workers";
    dropAfterTest(namespace, group);
    const table = await createEffectsTable();
    const queue = groupQueueName(namespace, group);

    const child = startFixture({
      FIXTURE_DATABASE_URL: testDatabaseUrl(),
      FIXTURE_NAMESPACE: namespace,
      FIXTURE_GROUP: group,
      FIXTURE_TABLE: table,
      FIXTURE_PATTERN: "order.*",
      FIXTURE_VISIBILITY_TIMEOUT_MS: "1000",
    });
    await child.waitForReport("the child consumer to start", (report) => report.ready === true, 20_000);

    const producer = await connect(namespace);
    const eventId = await (await producer.registerNode({ displayName: "producer" })).emit("order.created", { n: 1 });

    const inserted = await child.waitForReport("the child's handler to insert its effect", (report) => report.inserted === eventId, 10_000);
    expect(inserted.attempt).toBe(1);
    const {
      rows: [read],
    } = await admin.query<{ vt: Date; read_ct: number }>(`select vt, read_ct from ${queueTable(queue)} where msg_id = $1`, [inserted.messageId]);
    expect(read, "the message is still in the queue while the child's handler hangs").toBeDefined();
    expect(read!.read_ct).toBe(1);

    await child.kill();
    expect((await child.exited).signal).toBe("SIGKILL");
    expect(await count(`select count(*) as n from ${table}`), "the killed child's insert never committed").toBe(0);

    // A second consumer of the same group picks the message up once its visibility timeout passes.
    const deliveries: { attempt: number; at: Date; messageId: string }[] = [];
    const redelivered = deferred();
    const second = await connect(namespace);
    const secondNode = await second.registerNode({ displayName: "second" });
    await secondNode.onEvent(
      "order.*",
      async (event, ctx) => {
        const {
          rows: [now],
        } = await ctx.client.query<{ at: Date }>("select clock_timestamp() as at");
        await ctx.client.query(`insert into ${table} (event_id, attempt, handled_by) values ($1, $2, 'second')`, [event.id, ctx.attempt]);
        deliveries.push({ attempt: ctx.attempt, at: now!.at, messageId: ctx.messageId });
        redelivered.resolve();
      },
      { group, ...fastRetry, visibilityTimeout: 1000, pollInterval: 100 },
    );
    await secondNode.start();

    await within(8_000, "the second consumer to receive the killed child's message", redelivered.promise);
    await waitUntil("the second delivery's ack to commit", () => count(`select count(*) as n from ${queueTable(queue)}`), (n) => n === 0, 5_000);

    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]!.attempt).toBe(2);
    expect(deliveries[0]!.messageId).toBe(inserted.messageId);
    expect(deliveries[0]!.at.getTime(), "redelivered only after the child's visibility timeout").toBeGreaterThanOrEqual(read!.vt.getTime());
    const { rows: effects } = await admin.query(`select event_id, attempt, handled_by from ${table}`);
    expect(effects).toEqual([{ event_id: eventId, attempt: 2, handled_by: "second" }]);
  }, 30_000);

  it("handles every event of a stream exactly once while the consumer's backends are terminated mid-stream", async () => {
    const namespace = uniqueNamespace("terminate");
    const group = "stream";
    dropAfterTest(namespace, group);
    const table = await createEffectsTable();
    const queue = groupQueueName(namespace, group);
    const applicationName = `nexus-test-${hex()}`;
    const TOTAL = 300;
    const BURST = 20;
    // A lost connection must surface as a failed query or a pool 'error' event, never as an
    // unhandled 'error' event of a client (which would crash a service's process).
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => void uncaught.push(error);
    process.on("uncaughtException", onUncaught);
    onTestFinished(() => void process.off("uncaughtException", onUncaught));

    const consumerSystem = await connect(namespace, { applicationName });
    const producerSystem = await connect(namespace, { applicationName: `${applicationName}-producer` });
    const consumer = await consumerSystem.registerNode({ displayName: "consumer" });
    const producer = await producerSystem.registerNode({ displayName: "producer" });

    let handlerCalls = 0;
    let insertsDone = 0;
    const duplicates: string[] = [];
    await consumer.onEvent(
      "tick",
      async (event, ctx) => {
        handlerCalls += 1;
        try {
          await ctx.client.query(`insert into ${table} (event_id, attempt, handled_by) values ($1, $2, 'consumer')`, [event.id, ctx.attempt]);
        } catch (error) {
          if ((error as { code?: string }).code === "23505") duplicates.push(event.id);
          throw error;
        }
        insertsDone += 1;
        await sleep(1); // keep the stream going for a while
      },
      { group, concurrency: 4, prefetch: 10, ...fastRetry, visibilityTimeout: 1000, pollInterval: 200 },
    );
    await consumer.start();

    const emitted: string[] = [];
    const production = (async () => {
      for (let sent = 0; sent < TOTAL; sent += BURST) {
        const batch = Array.from({ length: BURST }, (_, i) => ({ type: "tick", payload: { n: sent + i } }));
        emitted.push(...(await producer.emitBatch(batch)));
        await sleep(80);
      }
    })();

    const terminations: { backends: { application_name: string }[]; emittedBefore: number; insertsBefore: number }[] = [];
    for (const threshold of [60, 180]) {
      await waitUntil(`${threshold} handler inserts before terminating`, () => insertsDone, (n) => n >= threshold, 10_000, 5);
      const emittedBefore = emitted.length;
      const insertsBefore = insertsDone;
      const backends = await terminateBackends([applicationName, `${applicationName}-listen`]);
      terminations.push({ backends, emittedBefore, insertsBefore });
    }
    await within(15_000, "the producer to emit the whole stream", production);

    await waitUntil(
      `${TOTAL} committed effects`,
      () => count(`select count(*) as n from ${table}`),
      (n) => n >= TOTAL,
      15_000,
      50,
    );
    await waitUntil("the queue to drain", () => count(`select count(*) as n from ${queueTable(queue)}`), (n) => n === 0, 5_000);

    // The terminations really happened mid-stream, and hit the pool and the LISTEN connection.
    expect(terminations[0]!.emittedBefore, "first termination while events were still being emitted").toBeLessThan(TOTAL);
    for (const termination of terminations) {
      const names = termination.backends.map((backend) => backend.application_name);
      expect(names, "the LISTEN connection was terminated").toContain(`${applicationName}-listen`);
      expect(names.filter((name) => name === applicationName).length, "pool connections terminated").toBeGreaterThanOrEqual(1);
      expect(termination.insertsBefore).toBeLessThan(TOTAL);
    }

    expect(emitted).toHaveLength(TOTAL);
    expect(await count(`select count(*) as n from ${table}`)).toBe(TOTAL);
    expect(await count(`select count(distinct event_id) as n from ${table}`)).toBe(TOTAL);
    expect(await count(`select count(*) as n from ${table} where event_id = any($1::uuid[])`, [emitted])).toBe(TOTAL);
    expect(duplicates, "an event was handled again after its effect had committed").toEqual([]);
    expect(
      uncaught.map((error) => (error instanceof Error ? error.message : String(error))),
      "uncaught exceptions while backends were terminated (a checked-out pg client without an 'error' listener?)",
    ).toEqual([]);
    expect(await count(`select count(*) as n from ${queueTable(queue + "_dlq")}`), "dead-lettered messages").toBe(0);
    expect(handlerCalls).toBeGreaterThanOrEqual(TOTAL);
  }, 40_000);

  it("wakes an idle consumer by NOTIFY, and again after its LISTEN connection is terminated and re-established", async () => {
    const namespace = uniqueNamespace("notify");
    const group = "sleepy";
    dropAfterTest(namespace, group);
    const applicationName = `nexus-test-${hex()}`;
    const listenName = `${applicationName}-listen`;
    const system = await connect(namespace, { applicationName });
    const node = await system.registerNode({ displayName: "sleepy" });
    const handled = new Map<string, Deferred<number>>();
    const expectEvent = (name: string): Deferred<number> => {
      const waiter = deferred<number>();
      handled.set(name, waiter);
      return waiter;
    };
    await node.onEvent(
      "ping",
      (event) => {
        handled.get((event.payload as { name: string }).name)?.resolve(performance.now());
      },
      { group, pollInterval: 10_000, visibilityTimeout: 5_000 },
    );
    await node.start();
    const producer = await connect(namespace);
    const producerNode = await producer.registerNode({ displayName: "pinger" });
    await sleep(500); // the consumer has read nothing and sleeps on its 10 s poll

    // 1. An idle consumer is woken by the emit's NOTIFY.
    const first = expectEvent("first");
    let emittedAt = performance.now();
    await producerNode.emit("ping", { name: "first" });
    const firstLatency = (await within(1_000, "the NOTIFY to wake the idle consumer (poll is 10 s)", first.promise)) - emittedAt;
    expect(firstLatency).toBeLessThan(1_000);

    // 2. The LISTEN connection is terminated, and an event is committed before any new
    //    LISTEN backend exists: the emit runs first in a transaction, then the termination
    //    signal (the old backend acts on it at once), then the commit, one round trip later;
    //    the listener's first retry waits at least 50 ms. So the NOTIFY reaches no one, and
    //    only the reconnect's wake-up gets the event handled before the 10 s poll. Should the
    //    new LISTEN backend nevertheless start before the commit (a loaded server), the NOTIFY
    //    may have reached it, which proves nothing: the round is then repeated (at most 3).
    const rounds: { latencyMs: number; listenerStartedAfterCommitMs: number }[] = [];
    while (rounds.length < 3 && !rounds.some((round) => round.listenerStartedAfterCommitMs > 0)) {
      const {
        rows: [listen],
      } = await admin.query<{ pid: number }>("select pid from pg_stat_activity where application_name = $1", [listenName]);
      expect(listen, `a LISTEN backend named ${listenName}`).toBeDefined();
      const name = `during-outage-${rounds.length + 1}`;
      const lost = expectEvent(name);
      const emit = producer.emitStatement("ping", { name });
      const outage = await admin.connect();
      let committedAt: Date;
      try {
        await outage.query("begin");
        await outage.query(emit.text, emit.values); // the slow part, before the clock starts
        const { rows: terminated } = await outage.query<{ ok: boolean }>("select pg_terminate_backend($1) as ok", [listen!.pid]);
        expect(terminated[0]?.ok, "the LISTEN backend was terminated").toBe(true);
        await outage.query("commit"); // notifies: no one listens any more
        committedAt = (await outage.query<{ at: Date }>("select clock_timestamp() as at")).rows[0]!.at;
      } finally {
        outage.release();
      }
      emittedAt = performance.now();
      const latencyMs = (await within(2_000, "the reconnected listener to wake the consumer (poll is 10 s)", lost.promise)) - emittedAt;
      expect(latencyMs).toBeLessThan(2_000);
      const reconnected = await waitUntil(
        "the LISTEN connection to come back",
        async () =>
          (await admin.query<{ pid: number; backend_start: Date }>("select pid, backend_start from pg_stat_activity where application_name = $1", [listenName]))
            .rows,
        (rows) => rows.length === 1 && rows[0]!.pid !== listen!.pid,
        5_000,
      );
      rounds.push({ latencyMs, listenerStartedAfterCommitMs: reconnected[0]!.backend_start.getTime() - committedAt.getTime() });
    }
    expect(
      rounds.some((round) => round.listenerStartedAfterCommitMs > 0),
      `in some round the new LISTEN backend started after the event committed, so its NOTIFY was lost: ${JSON.stringify(rounds)}`,
    ).toBe(true);

    // 3. After the reconnect, NOTIFY wakes the consumer as before.
    await sleep(300); // idle again
    const third = expectEvent("after-reconnect");
    emittedAt = performance.now();
    await producerNode.emit("ping", { name: "after-reconnect" });
    const thirdLatency = (await within(1_000, "the NOTIFY after the reconnect to wake the consumer", third.promise)) - emittedAt;
    expect(thirdLatency).toBeLessThan(1_000);
  }, 20_000);

  it("stops gracefully with work in flight: the running handler commits, prefetched messages go back untouched", async () => {
    const namespace = uniqueNamespace("stop");
    const group = "slow";
    dropAfterTest(namespace, group);
    const table = await createEffectsTable();
    const queue = groupQueueName(namespace, group);
    const system = await connect(namespace);
    const node = await system.registerNode({ displayName: "slow" });
    const starts: string[] = [];
    let finishedAt = 0;
    let abortedSignal = false;
    const firstStarted = deferred();
    await node.onEvent(
      "job",
      async (event, ctx) => {
        starts.push(event.id);
        firstStarted.resolve();
        await sleep(500);
        abortedSignal ||= ctx.signal.aborted;
        await ctx.client.query(`insert into ${table} (event_id, attempt, handled_by) values ($1, $2, 'slow')`, [event.id, ctx.attempt]);
        finishedAt = performance.now();
      },
      { group, concurrency: 1, prefetch: 10, ...fastRetry, visibilityTimeout: 30_000, pollInterval: 200 },
    );
    await node.start();
    const producer = await connect(namespace);
    const producerNode = await producer.registerNode({ displayName: "jobs" });
    const ids = await producerNode.emitBatch(Array.from({ length: 10 }, (_, n) => ({ type: "job", payload: { n } })));

    await within(5_000, "the first handler to start", firstStarted.promise);
    const stopCalledAt = performance.now();
    await within(5_000, "node.stop() to resolve", node.stop());
    const stopResolvedAt = performance.now();

    // The in-flight handler ran to its end, undisturbed, before stop() resolved, and committed.
    expect(starts).toEqual([ids[0]]);
    expect(finishedAt, "the handler finished").toBeGreaterThan(0);
    expect(finishedAt).toBeLessThanOrEqual(stopResolvedAt);
    expect(stopResolvedAt - stopCalledAt, "stop() waited for the running handler").toBeGreaterThanOrEqual(300);
    expect(abortedSignal).toBe(false);
    const { rows: effects } = await admin.query(`select event_id, attempt from ${table}`);
    expect(effects).toEqual([{ event_id: ids[0], attempt: 1 }]);

    // Nothing stays invisible; the nine unstarted messages are back with read_ct unchanged.
    expect(await count(`select count(*) as n from ${queueTable(queue)} where vt > now()`), "invisible messages after stop").toBe(0);
    const { rows: left } = await admin.query<{ id: string; read_ct: number }>(
      `select message ->> 'id' as id, read_ct from ${queueTable(queue)} order by msg_id`,
    );
    expect(left.map((row) => row.id)).toEqual(ids.slice(1));
    expect(left.map((row) => row.read_ct)).toEqual(Array(9).fill(0));

    const { rows: nodeRows } = await admin.query<{ status: string }>("select status from core.nodes where node_id = $1", [node.nodeId]);
    expect(nodeRows[0]?.status).toBe("stopped");
  }, 20_000);

  it("never runs a handler slower than its visibility timeout twice at once across two consumers of a group", async () => {
    const namespace = uniqueNamespace("slowvt");
    const group = "pair";
    dropAfterTest(namespace, group);
    const table = await createEffectsTable();
    const queue = groupQueueName(namespace, group);
    const starts: { node: string; attempt: number }[] = [];
    let running = 0;
    let maxRunning = 0;
    const done = deferred();

    for (const name of ["left", "right"]) {
      const system = await connect(namespace);
      const node = await system.registerNode({ displayName: name });
      await node.onEvent(
        "long.task",
        async (event, ctx) => {
          starts.push({ node: name, attempt: ctx.attempt });
          running += 1;
          maxRunning = Math.max(maxRunning, running);
          try {
            await sleep(2_500);
            await ctx.client.query(`insert into ${table} (event_id, attempt, handled_by) values ($1, $2, $3)`, [event.id, ctx.attempt, name]);
          } finally {
            running -= 1;
          }
          done.resolve();
        },
        { group, concurrency: 2, prefetch: 1, ...fastRetry, visibilityTimeout: 1_000, pollInterval: 100 },
      );
      await node.start();
    }
    const producer = await connect(namespace);
    const eventId = await (await producer.registerNode({ displayName: "producer" })).emit("long.task", {});

    await within(8_000, "the slow handler to finish", done.promise);
    await waitUntil("the ack to commit", () => count(`select count(*) as n from ${queueTable(queue)}`), (n) => n === 0, 5_000);
    await sleep(500); // room for a (wrong) second delivery to show up

    expect(starts, "handler starts across both consumers").toHaveLength(1);
    expect(starts[0]!.attempt).toBe(1);
    expect(maxRunning).toBe(1);
    const { rows: effects } = await admin.query(`select event_id, handled_by from ${table}`);
    expect(effects).toEqual([{ event_id: eventId, handled_by: starts[0]!.node }]);
    expect(await count(`select count(*) as n from ${queueTable(queue)}`), "messages left in the queue").toBe(0);
    expect(await count(`select count(*) as n from ${queueTable(queue + "_dlq")}`), "dead-lettered messages").toBe(0);
  }, 20_000);
});
