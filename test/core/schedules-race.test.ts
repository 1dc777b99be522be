/**
 * Exactly one fire per scheduled time under contention: two systems with started nodes
 * race for the scheduler lock (and the leader's connection is killed half-way), two more
 * schedulers are forced to lead at the same time (a split brain), and two plain
 * connections call the SQL fire function concurrently for the same times. Runs in both
 * database modes (6-field tasks run on the fallback scheduler everywhere).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CoreEvent, CoreNode, CoreSystem } from "../../core/index.js";
import { Scheduler } from "../../core/schedules/scheduler.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { useSystems } from "../support/systems.js";
import { sleep, waitUntil } from "../support/wait.js";
import { firesOf, loggedEventsPerTime } from "../support/schedule-helpers.js";

const RACE_MS = 10_000;

let admin: pg.Pool;
const systems = useSystems();
beforeAll(() => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
});
afterAll(() => admin.end());

function connect(namespace: string, applicationName: string): Promise<CoreSystem> {
  return systems.connect({ namespace, applicationName, scheduler: { takeoverIntervalMs: 300 } });
}

async function worker(system: CoreSystem, received: CoreEvent[]): Promise<CoreNode> {
  const node = await system.registerNode({ displayName: "worker" });
  await node.onEvent("race.*", (event) => void received.push(event), { group: "workers", pollInterval: 100 });
  await node.start();
  return node;
}

/** Pids of this test's scheduler connections that hold an advisory lock (the real leader). */
async function leaderPids(applicationNames: string[]): Promise<number[]> {
  const { rows } = await admin.query<{ pid: number }>(
    `select distinct a.pid from pg_stat_activity a
       join pg_locks l on l.pid = a.pid and l.locktype = 'advisory' and l.granted
      where a.application_name = any($1) and a.datname = current_database()`,
    [applicationNames],
  );
  return rows.map((row) => row.pid);
}

describe("racing schedulers", () => {
  it("fire each scheduled time exactly once: two nodes, a killed leader, two forced leaders and concurrent SQL calls", { timeout: 40_000 }, async () => {
    const namespace = uniqueNamespace("race");
    const tag = randomBytes(3).toString("hex");
    const names = [`race-${tag}-a`, `race-${tag}-b`];
    const [a, b] = [await connect(namespace, names[0]!), await connect(namespace, names[1]!)];
    const received: CoreEvent[] = [];
    const nodeA = await worker(a, received);
    const nodeB = await worker(b, received);
    const second = await nodeA.scheduleTask({ name: "every-second", cronExpression: "* * * * * *", eventType: "race.second" });
    const even = await nodeB.scheduleTask({ name: "every-two", cronExpression: "*/2 * * * * *", eventType: "race.two" });

    // A split brain: two more schedulers that lead without the lock.
    const forced = [nodeA, nodeB].map(
      (node, index) =>
        new Scheduler({
          namespace,
          nodeId: node.nodeId,
          pool: (index === 0 ? a : b).pool,
          logger: node.logger,
          settings: { ...a.schedulerSettings, applicationName: `race-${tag}-forced` },
          forceLeader: true,
        }),
    );
    forced.forEach((scheduler) => scheduler.start());

    // Two connections calling the fire function at once for the same scheduled times.
    const clients = [new pg.Client({ connectionString: testDatabaseUrl() }), new pg.Client({ connectionString: testDatabaseUrl() })];
    await Promise.all(clients.map((client) => client.connect()));
    const pairs: string[][] = [];
    const deadline = Date.now() + RACE_MS;
    const sqlRace = (async () => {
      while (Date.now() < deadline) {
        const at = new Date(Math.floor(Date.now() / 1000) * 1000);
        const targets = [second.id, ...(at.getUTCSeconds() % 2 === 0 ? [even.id] : [])];
        for (const taskId of targets) {
          const results = await Promise.all(
            clients.map((client) => client.query<{ result: string }>("select core.run_scheduled_task($1, $2) as result", [taskId, at])),
          );
          pairs.push(results.map((result) => result.rows[0]!.result));
        }
        await sleep(150);
      }
    })();

    // Half-way, kill the real leader's connection: the lock passes to a node again.
    await sleep(RACE_MS / 2);
    const [leader] = await waitUntil("a real leader", () => leaderPids(names.map((name) => `${name}-scheduler`)), (pids) => pids.length === 1);
    await admin.query("select pg_terminate_backend($1)", [leader]);
    const [nextLeader] = await waitUntil("a leader again", () => leaderPids(names.map((name) => `${name}-scheduler`)), (pids) => pids.length === 1 && pids[0] !== leader, 8_000);
    expect(nextLeader).not.toBe(leader);

    await sqlRace;
    await Promise.all(forced.map((scheduler) => scheduler.stop()));
    await Promise.all(clients.map((client) => client.end()));
    await systems.close();

    // The SQL calls: for each time, never two fires.
    expect(pairs.length).toBeGreaterThan(20);
    for (const pair of pairs) expect(pair.filter((result) => result === "fired").length, JSON.stringify(pair)).toBeLessThanOrEqual(1);
    expect(pairs.flat().filter((result) => result === "duplicate").length).toBeGreaterThan(0);

    for (const [task, step] of [[second, 1], [even, 2]] as const) {
      const fires = await firesOf(admin, task.id);
      expect(fires.length).toBeGreaterThanOrEqual(RACE_MS / 1000 / step - 1);
      expect(fires.every((fire) => fire.outcome === "fired" && fire.event_id !== null)).toBe(true);
      expect(new Set(fires.map((fire) => fire.event_id)).size).toBe(fires.length);
      // The times were won by different contenders (nodes, forced leaders, the SQL callers).
      if (step === 1) expect(new Set(fires.map((fire) => fire.source_node)).size).toBeGreaterThanOrEqual(2);
      // Consecutive scheduled times, none missing, even across the killed leader.
      const times = fires.map((fire) => fire.scheduled_for.getTime());
      times.slice(1).forEach((time, index) => expect(time - times[index]!).toBe(step * 1000));
      // One logged event per scheduled time, and as many as fires.
      const logged = await loggedEventsPerTime(admin, namespace, task.name);
      expect(logged.map((row) => row.scheduledFor)).toEqual(fires.map((fire) => fire.scheduled_for.toISOString()));
      expect(logged.every((row) => row.events === 1)).toBe(true);
    }

    // The group got each fired event (ids as recorded), once.
    const { rows } = await admin.query<{ event_id: string }>(
      "select event_id from core.schedule_fires where task_id = any($1) and event_id is not null",
      [[second.id, even.id]],
    );
    await worker(await connect(namespace, `race-${tag}-drain`), received); // what the stopped workers left queued
    await waitUntil("every fired event consumed", () => new Set(received.map((event) => event.id)).size, (n) => n >= rows.length, 15_000);
    expect(new Set(received.map((event) => event.id))).toEqual(new Set(rows.map((row) => row.event_id)));
  });
});
