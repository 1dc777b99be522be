/**
 * One real pg_cron fire (up to about a minute): a standard 5-field task every minute runs
 * as a cron.job, pg_cron runs core.run_scheduled_task, and a consumer receives the event.
 * Needs pg_cron usable in the test database (the `core` database, as superuser); skipped
 * with the reason otherwise.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, type CoreEvent } from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { waitUntil } from "../support/wait.js";
import { cronJob, firesOf, pgCronStatus, type PgCronStatus } from "../support/schedule-helpers.js";

let admin: pg.Pool;
let system: CoreSystem;
let cron: PgCronStatus;

beforeAll(async () => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 2 });
  system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: uniqueNamespace("pgcron") });
  cron = await pgCronStatus(admin);
  if (!cron.usable) console.log(`[schedules-pgcron] skipped: pg_cron is not usable in this database (${cron.reason})`);
});
afterAll(async () => {
  await system?.close();
  await admin?.end();
});

describe("pg_cron", () => {
  it("runs a task every minute as a cron.job: a real fire emits the event once", { timeout: 150_000 }, async (context) => {
    if (!cron.usable) context.skip(`pg_cron is not usable in this database: ${cron.reason}`);
    // pg_cron's launcher is a background worker of the server; it exits for good when its
    // database is dropped while it runs (only a server restart brings it back).
    // (A role without pg_read_all_stats sees no one's backend_type: then the wait tells.)
    const { rows: workers } = await admin.query<{ launchers: number; hidden: boolean }>(
      "select count(*) filter (where backend_type = 'pg_cron launcher')::int as launchers, bool_or(backend_type is null) as hidden from pg_stat_activity",
    );
    if (!workers[0]!.hidden) {
      expect(workers[0]!.launchers, "pg_cron's launcher is not running on this server (restart PostgreSQL): jobs would never run").toBe(1);
    }
    const received: CoreEvent[] = [];
    const node = await system.registerNode({ displayName: "minutely" });
    await node.onEvent("cron.minute", (event) => void received.push(event), { pollInterval: 500 });
    await node.start();

    const task = await node.scheduleTask({ name: "every-minute", cronExpression: "* * * * *", eventType: "cron.minute", payload: { via: "pg_cron" } });
    expect(task.runner).toBe("pg_cron");
    const job = await cronJob(admin, task.cronJobId);
    expect(job).toMatchObject({ schedule: "* * * * *", command: `select core.run_scheduled_task('${task.id}')`, active: true });

    await waitUntil("a fire by pg_cron", () => received.length, (n) => n >= 1, 130_000);
    const event = received[0]!;
    expect(event.payload).toEqual({ via: "pg_cron" });
    expect(event.sourceNode).toBeNull();
    const fires = await firesOf(admin, task.id);
    expect(fires[0]).toMatchObject({ outcome: "fired", event_id: event.id, source_node: null });
    expect(fires[0]!.scheduled_for.getUTCSeconds()).toBe(0);
    expect(event.headers["nexus-scheduled-for"]).toBe(fires[0]!.scheduled_for.toISOString());
    const { rows } = await admin.query<{ status: string }>("select status from cron.job_run_details where jobid = $1 order by runid", [task.cronJobId]);
    expect(rows[0]?.status).toBe("succeeded");

    expect(await node.unscheduleTask("every-minute")).toBe(true);
    expect(await cronJob(admin, task.cronJobId)).toBeUndefined();
  });
});
