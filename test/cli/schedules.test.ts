/**
 * `nexus schedules add|list|pause|resume|remove`, through the CLI's short-lived node.
 */
import { afterAll, describe, expect, it } from "vitest";
import type { ScheduledTask, ScheduledTaskStatus } from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace, withClient } from "../support/database.js";
import { nexus, parseJson } from "../support/cli.js";

const namespace = uniqueNamespace("cli-sched");
/** The node test's own namespace: the tests run concurrently. */
const quiet = uniqueNamespace("cli-sched-node");

afterAll(() => withClient(testDatabaseUrl(), (client) => client.query("delete from core.scheduled_tasks where namespace = $1", [namespace])));

describe.concurrent("schedules", () => {
  it("adds, lists, pauses, resumes and removes a task", async () => {
    const empty = await nexus(namespace, ["schedules", "list"]);
    expect(empty.code).toBe(0);
    expect(empty.stdout).toContain(`(no scheduled tasks in namespace ${namespace})`);

    const added = await nexus(namespace, ["schedules", "add", "cleanup", "--cron", "*/5 * * * *", "--event", "maintenance.cleanup", "--payload", '{"limit":100}', "--json"]);
    expect(added.code).toBe(0);
    const task = parseJson<ScheduledTask>(added);
    expect(task).toMatchObject({ name: "cleanup", expression: "*/5 * * * *", eventType: "maintenance.cleanup", payload: { limit: 100 }, paused: false });
    expect(task.nextRunAt).not.toBeNull();

    const listed = await nexus(namespace, ["schedules", "list"]);
    expect(listed.stdout).toMatch(/│ cleanup │ \*\/5 \* \* \* \* │ maintenance\.cleanup │ (pg_cron|scheduler)\s+│ active │ \S+Z │/);

    const paused = await nexus(namespace, ["schedules", "pause", "cleanup"]);
    expect([paused.code, paused.stdout]).toEqual([0, "paused cleanup\n"]);
    const whilePaused = parseJson<ScheduledTaskStatus[]>(await nexus(namespace, ["schedules", "list", "--json"]));
    expect(whilePaused).toEqual([expect.objectContaining({ name: "cleanup", paused: true, nextRunAt: null, lastFire: null })]);

    const resumed = await nexus(namespace, ["schedules", "resume", "cleanup", "--json"]);
    expect(parseJson(resumed)).toEqual({ name: "cleanup", resumed: true });
    expect(parseJson<ScheduledTaskStatus[]>(await nexus(namespace, ["schedules", "list", "--json"]))[0]?.paused).toBe(false);

    const removed = await nexus(namespace, ["schedules", "remove", "cleanup"]);
    expect([removed.code, removed.stdout]).toEqual([0, "removed cleanup\n"]);
    const again = await nexus(namespace, ["schedules", "remove", "cleanup"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`error: namespace ${namespace} has no scheduled task named cleanup.\n`);
    expect(parseJson(await nexus(namespace, ["schedules", "list", "--json"]))).toEqual([]);
  });

  it("refuses bad input: a bad payload is a usage error (2), a bad cron expression the library's error (1)", async () => {
    const [payload, missing, cron] = await Promise.all([
      nexus(namespace, ["schedules", "add", "bad", "--cron", "* * * * *", "--event", "x.y", "--payload", "{nope"]),
      nexus(namespace, ["schedules", "add", "bad", "--event", "x.y"]),
      nexus(namespace, ["schedules", "add", "bad", "--cron", "every minute", "--event", "x.y"]),
    ]);
    expect(payload.code).toBe(2);
    expect(payload.stderr).toContain("expected JSON");
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("required option '--cron <expression>' not specified");
    expect(cron.code).toBe(1);
    expect(cron.stderr).toMatch(/^error: Invalid cron expression "every minute"/);
  });

  it("registers its node as nexus-cli and stops it afterwards", async () => {
    expect((await nexus(quiet, ["schedules", "list"])).code).toBe(0);
    const nodes = await withClient(testDatabaseUrl(), (client) =>
      client.query<{ display_name: string; status: string }>("select display_name, status from core.nodes where namespace = $1", [quiet]),
    );
    expect(nodes.rows.length).toBeGreaterThan(0);
    expect(nodes.rows.every((node) => node.display_name === "nexus-cli" && node.status === "stopped")).toBe(true);
  });
});
