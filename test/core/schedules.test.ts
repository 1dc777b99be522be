/**
 * Scheduled tasks, in whichever database mode this run has: with pg_cron usable (the
 * `core` database as superuser) a standard 5-field task is a cron.job; without it (a bare
 * database, a non-superuser) every task runs on the fallback scheduler. The mode is read
 * from core.pg_cron_status() at run time, so this one file passes in both.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CoreSystem, InvalidNameError, ValidationError, type CoreEvent, type CoreNode, type ConnectOptions } from "../../core/index.js";
import { testDatabaseUrl } from "../support/database.js";
import { useSystems } from "../support/systems.js";
import { sleep, waitUntil } from "../support/wait.js";
import { cronJob, cronJobsOfNamespace, firesOf, loggedEventsPerTime, pgCronStatus, type PgCronStatus } from "../support/schedule-helpers.js";

const FAST = { pollInterval: 100 };

let admin: pg.Pool;
let cron: PgCronStatus;
const systems = useSystems({ label: "sched" });

function connect(extra: Partial<ConnectOptions> = {}): Promise<CoreSystem> {
  return systems.connect({ scheduler: { takeoverIntervalMs: 300 }, ...extra });
}

beforeAll(async () => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
  await connect(); // applies the migrations
  cron = await pgCronStatus(admin);
  console.log(`[schedules] pg_cron ${cron.usable ? `usable (${cron.version}, alter_job ${cron.can_alter ? "allowed" : "not allowed"})` : `not usable: ${cron.reason}`}`);
});
afterAll(() => admin.end());

async function startedNode(system: CoreSystem, displayName: string, pattern: string, received: CoreEvent[]): Promise<CoreNode> {
  const node = await system.registerNode({ displayName });
  await node.onEvent(pattern, (event) => void received.push(event), FAST);
  await node.start();
  return node;
}

async function taskRows(namespace: string): Promise<number> {
  const { rows } = await admin.query("select 1 from core.scheduled_tasks where namespace = $1", [namespace]);
  return rows.length;
}

describe("the fallback scheduler", () => {
  it("fires a 6-field task every second; a consumer receives each fire, recorded with its event", async () => {
    const system = await connect();
    const received: CoreEvent[] = [];
    const node = await startedNode(system, "ticker", "tick.second", received);
    const before = Date.now();
    const task = await node.scheduleTask({
      name: "every-second",
      cronExpression: "* * * * * *",
      eventType: "tick.second",
      payload: { hello: "world" },
      headers: { source: "test" },
    });
    expect(task).toMatchObject({ name: "every-second", expression: "* * * * * *", timezone: "UTC", runner: "scheduler", paused: false, cronJobId: null });
    expect(task.nextRunAt!.getTime()).toBeGreaterThan(before);
    expect(task.nextRunAt!.getTime()).toBeLessThanOrEqual(Date.now() + 1000);

    await waitUntil("two fires received", () => received.length, (n) => n >= 2, 8_000);
    const fires = await firesOf(admin, task.id);
    for (const event of received) {
      expect(event.type).toBe("tick.second");
      expect(event.payload).toEqual({ hello: "world" });
      expect(event.headers).toMatchObject({ source: "test", "nexus-task": "every-second", "nexus-task-id": task.id });
      expect(event.sourceNode).toBe(node.nodeId);
      const fire = fires.find((row) => row.event_id === event.id);
      expect(fire, `a fire row for event ${event.id}`).toBeDefined();
      expect(fire!.scheduled_for.toISOString()).toBe(event.headers["nexus-scheduled-for"]);
      expect(fire!.scheduled_for.getMilliseconds()).toBe(0);
      expect(fire).toMatchObject({ outcome: "fired", error: null, source_node: node.nodeId });
    }

    const [listed] = await node.listTasks();
    expect(listed).toMatchObject({ id: task.id, name: "every-second", runner: "scheduler", lastFire: { outcome: "fired" } });
    expect(listed!.lastFire!.scheduledFor.getTime()).toBeGreaterThan(before - 1000);
  });

  it("pauses and resumes: nothing fires while paused, and the paused times are not caught up", async () => {
    const system = await connect();
    const received: CoreEvent[] = [];
    const node = await startedNode(system, "pausing", "tick.paused", received);
    const task = await node.scheduleTask({ name: "pausable", cronExpression: "* * * * * *", eventType: "tick.paused" });
    await waitUntil("a first fire", () => received.length, (n) => n >= 1, 8_000);

    expect(await node.pauseTask("pausable")).toBe(true);
    const pausedAt = new Date();
    const [paused] = await node.listTasks();
    expect(paused).toMatchObject({ paused: true, nextRunAt: null });
    await sleep(2_500);
    const resumedAt = new Date();
    expect(await node.resumeTask("pausable")).toBe(true);
    await waitUntil("a fire after the resume", async () => (await firesOf(admin, task.id)).filter((f) => f.scheduled_for > resumedAt).length, (n) => n >= 1, 8_000);

    const fires = await firesOf(admin, task.id);
    // A fire already under way at the pause may land just after it; none later in the pause.
    const duringPause = fires.filter((f) => f.scheduled_for.getTime() > pausedAt.getTime() + 1_000 && f.scheduled_for < resumedAt);
    expect(duringPause).toEqual([]);
    expect(await node.pauseTask("no-such-task")).toBe(false);
    expect(await node.resumeTask("no-such-task")).toBe(false);
  });

  it("stops firing a task once it is unscheduled", async () => {
    const system = await connect();
    const received: CoreEvent[] = [];
    const node = await startedNode(system, "stopper", "tick.removed", received);
    await node.scheduleTask({ name: "short-lived", cronExpression: "* * * * * *", eventType: "tick.removed" });
    await waitUntil("a first fire", () => received.length, (n) => n >= 1, 8_000);

    expect(await node.unscheduleTask("short-lived")).toBe(true);
    const logged = (await loggedEventsPerTime(admin, system.namespace, "short-lived")).length;
    await sleep(2_200);
    expect((await loggedEventsPerTime(admin, system.namespace, "short-lived")).length).toBe(logged);
    expect(await taskRows(system.namespace)).toBe(0);
    expect(await node.listTasks()).toEqual([]);
    expect(await node.unscheduleTask("short-lived")).toBe(false);
  });
});

describe("validation", () => {
  it("rejects an invalid expression before anything is written: no task row, no cron job", async () => {
    const system = await connect();
    const node = await system.registerNode({ displayName: "validator" });
    const invalid = ["61 * * * *", "bogus", "* * * *", "0 0 * * * * 2030", "0 0 30 2 *", "", "*/0 * * * *", "@reboot"];
    for (const expression of invalid) {
      const attempt = node.scheduleTask({ name: "bad", cronExpression: expression, eventType: "never.fired" });
      await expect(attempt, expression).rejects.toBeInstanceOf(ValidationError);
      await expect(attempt).rejects.toMatchObject({ argument: "cronExpression", code: "ERR_NEXUS_INVALID_ARGUMENT" });
      await expect(attempt).rejects.toThrow(expression === "" ? /Invalid cron expression ""/ : expression);
      await expect(attempt).rejects.toThrow(/5 fields/);
    }
    await expect(node.scheduleTask({ name: "bad", cronExpression: "61 * * * *", eventType: "x" })).rejects.toThrow(/Invalid value for minute: 61/);
    await expect(node.scheduleTask({ name: "bad", cronExpression: 5 as unknown as string, eventType: "x" })).rejects.toBeInstanceOf(ValidationError);

    await expect(node.scheduleTask({ name: "has space", cronExpression: "* * * * *", eventType: "x" })).rejects.toBeInstanceOf(InvalidNameError);
    await expect(node.scheduleTask({ name: "x".repeat(201), cronExpression: "* * * * *", eventType: "x" })).rejects.toThrow(/1-200 characters/);
    await expect(node.scheduleTask({ name: "ok", cronExpression: "* * * * *", eventType: "bad type" })).rejects.toBeInstanceOf(InvalidNameError);
    await expect(node.scheduleTask({ name: "ok", cronExpression: "* * * * *", eventType: "x", timezone: "Mars/Olympus" })).rejects.toMatchObject({ argument: "timezone" });
    await expect(node.scheduleTask({ name: "ok", cronExpression: "* * * * *", eventType: "x", payload: () => 1 })).rejects.toMatchObject({ argument: "payload" });
    await expect(node.scheduleTask({ name: "ok", cronExpression: "* * * * *", eventType: "x", headers: { n: 1 as unknown as string } })).rejects.toMatchObject({ argument: "headers" });
    await expect(node.pauseTask("bad name!")).rejects.toBeInstanceOf(InvalidNameError);

    expect(await taskRows(system.namespace)).toBe(0);
    expect(await cronJobsOfNamespace(admin, system.namespace)).toEqual([]);
  });

  it("rejects invalid scheduler options at connect", async () => {
    await expect(connect({ scheduler: { catchUpWindowMs: -1 } })).rejects.toMatchObject({ argument: "scheduler.catchUpWindowMs" });
    await expect(connect({ scheduler: { enabled: "yes" as unknown as boolean } })).rejects.toMatchObject({ argument: "scheduler.enabled" });
  });
});

describe("standard 5-field tasks", () => {
  it("runs as a pg_cron job where pg_cron is usable, else on the fallback scheduler; core.run_scheduled_task fires it once", async () => {
    const system = await connect();
    const received: CoreEvent[] = [];
    const node = await startedNode(system, "yearly", "report.yearly", received);
    // Never due during the test: the fires below are the direct calls.
    const task = await node.scheduleTask({ name: "new-year", cronExpression: "0 0 1 1 *", eventType: "report.yearly", payload: { year: true } });
    expect(task.nextRunAt!.getUTCMonth()).toBe(0);
    expect(task.nextRunAt!.getUTCDate()).toBe(1);

    if (cron.usable) {
      expect(task.runner).toBe("pg_cron");
      const job = await cronJob(admin, task.cronJobId);
      expect(job).toMatchObject({
        jobname: `nexus:${system.namespace}:new-year`,
        schedule: "0 0 1 1 *",
        command: `select core.run_scheduled_task('${task.id}')`,
        active: true,
      });
    } else {
      expect(task).toMatchObject({ runner: "scheduler", cronJobId: null });
    }

    const { rows } = await admin.query<{ result: string }>("select core.run_scheduled_task($1) as result", [task.id]);
    expect(rows[0]!.result).toBe("fired");
    await waitUntil("the direct fire received", () => received.length, (n) => n >= 1);
    const fires = await firesOf(admin, task.id);
    expect(fires).toHaveLength(1);
    expect(fires[0]).toMatchObject({ outcome: "fired", event_id: received[0]!.id, source_node: null });
    expect(fires[0]!.scheduled_for.getUTCSeconds()).toBe(0); // the current minute, as pg_cron runs it
    expect(received[0]!.payload).toEqual({ year: true });

    // The same minute again (a second pg_cron run, a retried call): recorded, so not emitted twice.
    const again = await admin.query<{ result: string }>("select core.run_scheduled_task($1, $2) as result", [task.id, fires[0]!.scheduled_for]);
    expect(again.rows[0]!.result).toBe("duplicate");
    expect(await loggedEventsPerTime(admin, system.namespace, "new-year")).toEqual([{ scheduledFor: fires[0]!.scheduled_for.toISOString(), events: 1 }]);

    // Pause and resume follow into pg_cron.
    expect(await node.pauseTask("new-year")).toBe(true);
    const paused = await admin.query<{ result: string }>("select core.run_scheduled_task($1, now() + interval '1 hour') as result", [task.id]);
    expect(paused.rows[0]!.result).toBe("paused");
    const [pausedTask] = await node.listTasks();
    if (cron.usable && cron.can_alter) {
      expect(await cronJob(admin, pausedTask!.cronJobId)).toMatchObject({ active: false });
    } else {
      expect(pausedTask!.cronJobId).toBeNull();
    }
    expect(await node.resumeTask("new-year")).toBe(true);
    const [resumed] = await node.listTasks();
    if (cron.usable) expect(await cronJob(admin, resumed!.cronJobId)).toMatchObject({ active: true, command: `select core.run_scheduled_task('${task.id}')` });

    // Unscheduling removes the job and the task; a stale job call finds nothing.
    expect(await node.unscheduleTask("new-year")).toBe(true);
    if (cron.usable) expect(await cronJob(admin, resumed!.cronJobId)).toBeUndefined();
    expect(await cronJobsOfNamespace(admin, system.namespace)).toEqual([]);
    const missing = await admin.query<{ result: string }>("select core.run_scheduled_task($1) as result", [task.id]);
    expect(missing.rows[0]!.result).toBe("missing");
  });

  it("records a fire whose emit fails as failed, with the error, and emits nothing", async () => {
    const system = await connect();
    const node = await system.registerNode({ displayName: "broken" });
    const task = await node.scheduleTask({ name: "breaks", cronExpression: "0 0 1 1 *", eventType: "job.broken" });
    // A subscription whose queue does not exist: the emit's send fails.
    await admin.query("insert into core.subscriptions (namespace, group_name, pattern, queue_name) values ($1, 'ghost', 'job.broken', 'no_such_queue')", [
      system.namespace,
    ]);
    const { rows } = await admin.query<{ result: string }>("select core.run_scheduled_task($1, '2030-01-01T00:00:00Z') as result", [task.id]);
    expect(rows[0]!.result).toBe("failed");
    const [fire] = await firesOf(admin, task.id);
    expect(fire).toMatchObject({ outcome: "failed", event_id: null });
    expect(fire!.error).toMatch(/does not exist/);
    expect(await loggedEventsPerTime(admin, system.namespace, "breaks")).toEqual([]);
    const [listed] = await node.listTasks();
    expect(listed!.lastFire).toMatchObject({ outcome: "failed", error: fire!.error });
  });

  it("upserts by name: same id, catch-up kept unless the expression changes; a seconds expression or another time zone leaves pg_cron", async () => {
    const system = await connect();
    const node = await system.registerNode({ displayName: "upserter" });
    const first = await node.scheduleTask({ name: "daily:report", cronExpression: "@daily", eventType: "report.daily" });
    expect(first.expression).toBe("0 0 * * *");
    const fireFrom = async (): Promise<Date> =>
      (await admin.query<{ fire_from: Date }>("select fire_from from core.scheduled_tasks where task_id = $1", [first.id])).rows[0]!.fire_from;
    const initialFireFrom = await fireFrom();

    await sleep(20);
    const same = await node.scheduleTask({ name: "daily:report", cronExpression: "0  0 * * *", eventType: "report.daily", payload: { v: 2 } });
    expect(same).toMatchObject({ id: first.id, expression: "0 0 * * *", payload: { v: 2 }, runner: first.runner, cronJobId: first.cronJobId });
    expect(await fireFrom()).toEqual(initialFireFrom);

    const seconds = await node.scheduleTask({ name: "daily:report", cronExpression: "30 0 0 * * *", eventType: "report.daily" });
    expect(seconds).toMatchObject({ id: first.id, runner: "scheduler", cronJobId: null });
    expect((await fireFrom()).getTime()).toBeGreaterThan(initialFireFrom.getTime());
    expect(await cronJobsOfNamespace(admin, system.namespace)).toEqual([]);

    const paris = await node.scheduleTask({ name: "daily:report", cronExpression: "0 9 * * MON-FRI", eventType: "report.daily", timezone: "Europe/Paris" });
    expect(paris).toMatchObject({ runner: "scheduler", timezone: "Europe/Paris", cronJobId: null });
    const utc = await node.scheduleTask({ name: "daily:report", cronExpression: "0 9 * * MON-FRI", eventType: "report.daily", timezone: "Etc/UTC" });
    expect(utc).toMatchObject({ timezone: "UTC", runner: cron.usable ? "pg_cron" : "scheduler" });
    if (cron.usable) expect(await cronJob(admin, utc.cronJobId)).toMatchObject({ schedule: "0 9 * * MON-FRI", active: true });

    // croner-only syntax (L: the last day of the month) runs on the fallback scheduler.
    const last = await node.scheduleTask({ name: "daily:report", cronExpression: "0 12 L * *", eventType: "report.daily" });
    expect(last).toMatchObject({ runner: "scheduler", cronJobId: null });
    expect(await cronJobsOfNamespace(admin, system.namespace)).toEqual([]);

    // A paused task stays paused when scheduled again.
    await node.pauseTask("daily:report");
    expect(await node.scheduleTask({ name: "daily:report", cronExpression: "0 0 * * *", eventType: "report.daily" })).toMatchObject({ paused: true, nextRunAt: null });
    expect(await node.unscheduleTask("daily:report")).toBe(true);
  });

  it("names the pg_cron job within 63 bytes for long names, deterministically", async (context) => {
    if (!cron.usable) context.skip(`pg_cron is not usable here: ${cron.reason}`);
    const system = await connect();
    const node = await system.registerNode({ displayName: "long" });
    const name = `n.${"x".repeat(198)}`;
    const task = await node.scheduleTask({ name, cronExpression: "0 0 1 1 *", eventType: "x.long" });
    const job = await cronJob(admin, task.cronJobId);
    expect(Buffer.byteLength(job!.jobname)).toBeLessThanOrEqual(63);
    expect(job!.jobname.startsWith("nexus~")).toBe(true);
    const { rows } = await admin.query<{ name: string }>("select core.task_job_name($1, $2) as name", [system.namespace, name]);
    expect(rows[0]!.name).toBe(job!.jobname);
    await node.unscheduleTask(name);
    expect(await cronJob(admin, task.cronJobId)).toBeUndefined();
  });
});
