/**
 * Catch-up of the fallback scheduler: times missed while no node ran it are fired when
 * one starts, if they fall within `scheduler.catchUpWindowMs`; older ones are recorded as
 * skipped and not fired. Runs in both database modes (6-field tasks).
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CoreEvent, CoreNode, CoreSystem, SchedulerOptions } from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { useSystems } from "../support/systems.js";
import { sleep, waitUntil } from "../support/wait.js";
import { firesOf, loggedEventsPerTime } from "../support/schedule-helpers.js";

let admin: pg.Pool;
const systems = useSystems();
beforeAll(() => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
});
afterAll(() => admin.end());

function connect(namespace: string, scheduler: SchedulerOptions = {}): Promise<CoreSystem> {
  return systems.connect({ namespace, scheduler: { takeoverIntervalMs: 300, ...scheduler } });
}

async function consumer(system: CoreSystem, pattern: string, received: CoreEvent[]): Promise<CoreNode> {
  const node = await system.registerNode({ displayName: "catcher" });
  await node.onEvent(pattern, (event) => void received.push(event), { pollInterval: 100 });
  return node;
}

/** A daily 6-field expression firing at the UTC time of `at` (whole seconds). */
function dailyAt(at: Date): string {
  return `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} * * *`;
}

describe("catch-up", () => {
  it("fires a time missed within the window when a node starts, and records an older one as skipped", async () => {
    const namespace = uniqueNamespace("catchup");
    const system = await connect(namespace); // default window: 60 s
    const received: CoreEvent[] = [];
    const node = await consumer(system, "missed.*", received);
    const now = Math.floor(Date.now() / 1000) * 1000;
    const recent = new Date(now - 20_000);
    const old = new Date(now - 5 * 60_000);
    const within = await node.scheduleTask({ name: "within", cronExpression: dailyAt(recent), eventType: "missed.within" });
    const outside = await node.scheduleTask({ name: "outside", cronExpression: dailyAt(old), eventType: "missed.outside" });
    // As if both had been scheduled ten minutes ago while no node ran the scheduler.
    await admin.query("update core.scheduled_tasks set fire_from = now() - interval '10 minutes' where namespace = $1", [namespace]);

    await node.start();
    const [fired] = await waitUntil("the missed fire within the window", () => firesOf(admin, within.id), (rows) => rows.length >= 1);
    expect(fired).toMatchObject({ outcome: "fired", source_node: node.nodeId });
    expect(fired!.scheduled_for.toISOString()).toBe(recent.toISOString());
    await waitUntil("its event consumed", () => received.length, (n) => n >= 1);
    expect(received[0]!.headers["nexus-scheduled-for"]).toBe(recent.toISOString());

    const [skipped] = await waitUntil("the old miss recorded", () => firesOf(admin, outside.id), (rows) => rows.length >= 1);
    expect(skipped).toMatchObject({ outcome: "skipped", event_id: null });
    expect(skipped!.scheduled_for.toISOString()).toBe(old.toISOString());
    expect(skipped!.error).toMatch(/catch-up window/);
    expect(await loggedEventsPerTime(admin, namespace, "outside")).toEqual([]);
    const listed = await node.listTasks();
    expect(listed.map((task) => [task.name, task.lastFire?.outcome])).toEqual([["outside", "skipped"], ["within", "fired"]]);
    await sleep(300);
    expect(received.map((event) => event.type)).toEqual(["missed.within"]);
  });

  it("after a restart, fires the seconds missed within the window, and skips those older than it", async () => {
    const namespace = uniqueNamespace("restart");
    const first = await connect(namespace);
    const received: CoreEvent[] = [];
    const node1 = await consumer(first, "beat.*", received);
    await node1.start();
    const task = await node1.scheduleTask({ name: "heartbeat", cronExpression: "* * * * * *", eventType: "beat.second" });
    await waitUntil("two fires", () => firesOf(admin, task.id), (rows) => rows.length >= 2, 8_000);
    await first.close();
    const lastBefore = (await firesOf(admin, task.id)).at(-1)!.scheduled_for;

    // Down for 2.5 s: within the 60 s window, so every missed second is fired on restart.
    await sleep(2_500);
    const second = await connect(namespace);
    const node2 = await consumer(second, "beat.*", received);
    await node2.start();
    const restartedAt = Date.now();
    await waitUntil("fires after the restart", () => firesOf(admin, task.id), (rows) => rows.at(-1)!.scheduled_for.getTime() > restartedAt, 8_000);
    const afterFirstRestart = await firesOf(admin, task.id);
    const times = afterFirstRestart.map((fire) => fire.scheduled_for.getTime());
    times.slice(1).forEach((time, index) => expect(time - times[index]!).toBe(1000)); // no gap across the outage
    expect(afterFirstRestart.filter((fire) => fire.scheduled_for > lastBefore).every((fire) => fire.outcome === "fired")).toBe(true);
    await second.close();
    const lastBeforeSecondOutage = (await firesOf(admin, task.id)).at(-1)!.scheduled_for;

    // Down for 3.5 s, restarted with a 1 s window: the older misses are not fired.
    await sleep(3_500);
    const third = await connect(namespace, { catchUpWindowMs: 1_000 });
    const node3 = await consumer(third, "beat.*", received);
    await node3.start();
    const [skipped] = await waitUntil(
      "the skipped record",
      async () => (await firesOf(admin, task.id)).filter((fire) => fire.outcome === "skipped"),
      (rows) => rows.length === 1,
      8_000,
    );
    expect(skipped!.error).toMatch(/catchUpWindowMs = 1000/);
    await waitUntil("a fire after the skip", () => firesOf(admin, task.id), (rows) => rows.at(-1)!.scheduled_for > skipped!.scheduled_for, 8_000);
    // Stop the scheduler first, so that no fire lands between reading the fires and the log.
    await third.close();
    const fires = await firesOf(admin, task.id);
    const missed = fires.filter((fire) => fire.scheduled_for > lastBeforeSecondOutage && fire.scheduled_for <= skipped!.scheduled_for);
    expect(missed.map((fire) => fire.outcome)).toEqual(["skipped"]); // nothing older than the window was fired
    expect(skipped!.scheduled_for.getTime() - lastBeforeSecondOutage.getTime()).toBeGreaterThanOrEqual(2_000);
    const resumed = fires.filter((fire) => fire.scheduled_for > skipped!.scheduled_for);
    expect(resumed.every((fire) => fire.outcome === "fired")).toBe(true);
    resumed.forEach((fire, index) => expect(fire.scheduled_for.getTime() - (index === 0 ? skipped! : resumed[index - 1]!).scheduled_for.getTime()).toBe(1000));

    // Each fired second was emitted once.
    const logged = await loggedEventsPerTime(admin, namespace, "heartbeat");
    expect(logged.every((row) => row.events === 1)).toBe(true);
    expect(logged.map((row) => row.scheduledFor)).toEqual(fires.filter((fire) => fire.outcome === "fired").map((fire) => fire.scheduled_for.toISOString()));
  });
});
