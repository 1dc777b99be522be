/**
 * Event log partitions and retention, in both modes CI runs: with pg_partman (superuser,
 * the extension created by migration 2) and bare (a non-superuser, no extension). The
 * mode is detected per database and the mode-specific expectations follow it.
 *
 * Every test reconfigures core.event_log, so each takes a scratch database of its own and
 * never touches the shared one. Partitions are hourly; rows are written with chosen
 * emitted_at times (the emit path only writes now()).
 */
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { CoreSystem, ValidationError, type ConnectOptions, type EventLogMaintenanceReport } from "../../core/index.js";
import { createScratchDatabase, testDatabaseUrl, type ScratchDatabase } from "../support/database.js";
import { testSystems } from "../support/systems.js";

const HOUR_MS = 3_600_000;
const HOURLY = { partitionInterval: "hourly", premake: 2, retentionMs: 7 * 24 * HOUR_MS } as const;

interface Scratch {
  database: ScratchDatabase;
  admin: pg.Pool;
  partman: boolean;
  connect(namespace: string, eventLog?: ConnectOptions["eventLog"]): Promise<CoreSystem>;
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A migrated scratch database, an admin pool on it in UTC, and the mode it runs in. */
async function scratch(label: string): Promise<Scratch> {
  const database = await createScratchDatabase(label);
  cleanups.push(() => database.drop());
  const systems = testSystems();
  cleanups.push(() => systems.close());
  const connect = (namespace: string, eventLog: ConnectOptions["eventLog"] = HOURLY): Promise<CoreSystem> =>
    systems.connect({ connectionString: database.url, namespace, eventLog });
  await (await connect("setup")).close();
  const admin = new pg.Pool({ connectionString: database.url, max: 2, options: "-c TimeZone=UTC" });
  cleanups.push(() => admin.end());
  const { rows } = await admin.query("select 1 from pg_extension where extname = 'pg_partman'");
  return { database, admin, partman: rows.length > 0, connect };
}

/** Writes log rows of `namespace` at `now() + offset` for each SQL interval offset; returns their ids in order. */
async function insertAt(admin: pg.Pool, namespace: string, offsets: string[], at = "now()"): Promise<string[]> {
  const { rows } = await admin.query<{ id: string }>(
    `insert into core.event_log (id, namespace, type, payload, emitted_at)
     select gen_random_uuid(), $1, 'probe.logged', jsonb_build_object('offset', o), ${at} + o::interval
       from unnest($2::text[]) with ordinality as t(o, n)
     order by n
     returning id`,
    [namespace, offsets],
  );
  return rows.map((row) => row.id);
}

interface Placement {
  id: string;
  partition: string;
  expected: string;
  inRange: boolean;
  emittedAt: string;
}

/**
 * Where each row of the namespace sits, and where it should: with pg_partman the name
 * partman gives the partition of its time (show_partition_name), without it the project's
 * 'event_log_pYYYYMMDD_HH24MI' (UTC); and whether the partition's range holds the row.
 */
async function placements(context: Scratch, namespace: string, partman = context.partman): Promise<Placement[]> {
  const expected = partman
    ? "'core.' || (select s.partition_table from partman.show_partition_name('core.event_log', e.emitted_at::text) s)"
    : "'core.event_log_p' || to_char(e.emitted_at at time zone 'UTC', 'YYYYMMDD_HH24\"00\"')";
  const { rows } = await context.admin.query<Placement>(
    `select e.id, e.tableoid::regclass::text as partition, ${expected} as expected, e.emitted_at::text as "emittedAt",
            coalesce(p.range_from <= e.emitted_at and e.emitted_at < p.range_to, false) as "inRange"
       from core.event_log e
       left join core.event_log_partitions() p on p.partition = e.tableoid::regclass
      where e.namespace = $1
      order by e.emitted_at, e.id`,
    [namespace],
  );
  return rows;
}

async function partitions(admin: pg.Pool): Promise<Array<{ name: string; isDefault: boolean }>> {
  const { rows } = await admin.query<{ name: string; isDefault: boolean }>(
    `select partition::text as name, is_default as "isDefault" from core.event_log_partitions()`,
  );
  return rows;
}

async function defaultRows(admin: pg.Pool): Promise<number> {
  const { rows } = await admin.query<{ n: string }>(
    "select count(*) as n from core.event_log e join core.event_log_partitions() p on p.partition = e.tableoid::regclass and p.is_default",
  );
  return Number(rows[0]!.n);
}

function expectMode(context: Scratch, report: EventLogMaintenanceReport): void {
  expect(report.ran).toBe(true);
  expect(report.mode).toBe(context.partman ? "partman" : "builtin");
  if (context.partman) expect(report.partmanVersion).toMatch(/^[45]\./);
  else expect(report.partmanVersion).toBeNull();
}

describe("event log partitions", () => {
  it("keeps the rows logged before the first pass, moving them out of the default partition into their own", async () => {
    const context = await scratch("evlog_first");
    const system = await context.connect("first");
    const node = await system.registerNode({ displayName: "producer" });
    const emitted = await node.emit("probe.emitted", { live: true });
    const written = await insertAt(context.admin, "first", ["-5 hours", "-3 hours 30 minutes", "-1 minute", "0"]);
    expect(await defaultRows(context.admin)).toBe(5);

    const report = await system.maintainEventLog();

    expectMode(context, report);
    expect(report.registered).toBe(context.partman);
    expect(report.partitionInterval).toBe("hourly");
    expect(report.movedFromDefault).toBe(5);
    expect(await defaultRows(context.admin)).toBe(0);
    const placed = await placements(context, "first");
    expect(placed.map((row) => row.id).sort()).toEqual([emitted, ...written].sort());
    for (const row of placed) {
      expect(row.partition, `row at ${row.emittedAt}`).toBe(row.expected);
      expect(row.inRange, `row at ${row.emittedAt} in ${row.partition}`).toBe(true);
    }
    if (context.partman) {
      const { rows } = await context.admin.query(
        "select partition_interval::interval = interval '1 hour' as hourly, premake, retention::interval = interval '7 days' as week, retention_keep_table, infinite_time_partitions from partman.part_config where parent_table = 'core.event_log'",
      );
      expect(rows).toEqual([{ hourly: true, premake: 2, week: true, retention_keep_table: false, infinite_time_partitions: true }]);
    }
  });

  it("routes events emitted across a partition boundary into the partitions of their hours", async () => {
    const context = await scratch("evlog_boundary");
    const system = await context.connect("boundary");
    const first = await system.maintainEventLog();
    expectMode(context, first);
    // Partitions exist for the current hour and two ahead: rows around the next hour's
    // start route there directly, never through the default partition.
    const next = "date_trunc('hour', now() at time zone 'UTC') at time zone 'UTC' + interval '1 hour'";
    const around = await insertAt(context.admin, "boundary", ["-1 microsecond", "0", "1 second"], next);
    const node = await system.registerNode({ displayName: "producer" });
    const live = [await node.emit("probe.emitted", { n: 1 }), await node.emit("probe.emitted", { n: 2 })];
    expect(await defaultRows(context.admin)).toBe(0);
    // The current hour's start, and the instant before it (the previous hour: premade
    // behind by pg_partman, created from the default partition by the next pass otherwise).
    const current = "date_trunc('hour', now() at time zone 'UTC') at time zone 'UTC'";
    const before = await insertAt(context.admin, "boundary", ["-1 microsecond", "0"], current);
    await system.maintainEventLog();

    const placed = new Map((await placements(context, "boundary")).map((row) => [row.id, row]));
    expect(placed.size).toBe(7);
    for (const row of placed.values()) {
      expect(row.partition, `row at ${row.emittedAt}`).toBe(row.expected);
      expect(row.inRange, `row at ${row.emittedAt} in ${row.partition}`).toBe(true);
    }
    const partitionOf = (id: string): string => placed.get(id)!.partition;
    expect(partitionOf(around[0]!)).not.toBe(partitionOf(around[1]!));
    expect(partitionOf(around[1]!)).toBe(partitionOf(around[2]!));
    expect(partitionOf(before[0]!)).not.toBe(partitionOf(before[1]!));
    expect(live.map(partitionOf)).toEqual(live.map((id) => placed.get(id)!.expected));
    if (context.partman) {
      expect(partitionOf(around[1]!)).toMatch(/^core\.event_log_p\d{4}_?\d{2}_?\d{2}_\d{4}/);
    } else {
      expect(partitionOf(around[1]!)).toMatch(/^core\.event_log_p\d{8}_\d{4}$/);
    }
  });

  it("drops only the partitions whose end is older than the retention, with their rows", async () => {
    const context = await scratch("evlog_retention");
    const keepWeek = await context.connect("retention");
    const offsets = ["-72 hours", "-50 hours", "-20 hours", "-2 hours", "0"];
    const ids = await insertAt(context.admin, "retention", offsets);
    const firstPass = await keepWeek.maintainEventLog();
    expect(firstPass.dropped).toEqual([]);
    const before = await placements(context, "retention");
    expect(before).toHaveLength(5);
    const partitionOf = new Map(before.map((row) => [row.id, row.partition]));
    const expired = [partitionOf.get(ids[0]!)!, partitionOf.get(ids[1]!)!];
    const names = (await partitions(context.admin)).map((partition) => partition.name);
    expect(names).toEqual(expect.arrayContaining(expired));

    const keepDay = await context.connect("retention", { ...HOURLY, retentionMs: 24 * HOUR_MS });
    const report = await keepDay.maintainEventLog();

    expectMode(context, report);
    expect([...report.dropped].sort()).toEqual([...expired].sort());
    const after = (await partitions(context.admin)).map((partition) => partition.name);
    expect(after).not.toEqual(expect.arrayContaining([expired[0]]));
    expect(after).not.toEqual(expect.arrayContaining([expired[1]]));
    // Every partition that was not expired is still there, the one holding now() included.
    expect(after).toEqual(expect.arrayContaining(names.filter((name) => !expired.includes(name))));
    const remaining = await placements(context, "retention");
    expect(remaining.map((row) => row.id).sort()).toEqual(ids.slice(2).sort());
    expect(remaining.at(-1)!.partition).toBe(partitionOf.get(ids[4]!));
    if (context.partman) {
      const { rows } = await context.admin.query(
        "select retention::interval = interval '24 hours' as day from partman.part_config where parent_table = 'core.event_log'",
      );
      expect(rows).toEqual([{ day: true }]);
    }
  });

  it("deletes a namespace's rows older than its own shorter retention, and no other namespace's", async () => {
    const context = await scratch("evlog_namespace");
    await insertAt(context.admin, "short", ["-3 hours", "-90 minutes"]);
    const keptShort = await insertAt(context.admin, "short", ["-30 minutes", "0"]);
    const other = await insertAt(context.admin, "other", ["-3 hours", "-90 minutes", "-30 minutes"]);
    const system = await context.connect("short", { ...HOURLY, namespaceRetentionMs: HOUR_MS });

    const report = await system.maintainEventLog();

    expectMode(context, report);
    expect(report.namespaceRowsDeleted).toBe(2);
    expect((await placements(context, "short")).map((row) => row.id).sort()).toEqual(keptShort.sort());
    expect((await placements(context, "other")).map((row) => row.id).sort()).toEqual(other.sort());
  });

  it("lets concurrent passes run: one at a time, the others return at once, and the partitions stay consistent", async () => {
    const context = await scratch("evlog_concurrent");
    await insertAt(context.admin, "race", ["-30 hours", "-6 hours", "0"]);
    const systems = await Promise.all([1, 2, 3].map(() => context.connect("race")));
    const reports = await Promise.all(systems.map((system) => system.maintainEventLog()));

    expect(reports.some((report) => report.ran)).toBe(true);
    for (const report of reports.filter((entry) => !entry.ran)) expect(report.created).toEqual([]);
    const placed = await placements(context, "race");
    expect(placed).toHaveLength(3);
    for (const row of placed) expect(row.partition).toBe(row.expected);
    expect(await defaultRows(context.admin)).toBe(0);
    const again = await systems[0]!.maintainEventLog();
    expect(again.ran).toBe(true);
    expect(again.dropped).toEqual([]);
    expect(again.movedFromDefault).toBe(0);
  });

  it("keeps pg_partman's registered interval and warns when another one is configured (pg_partman only)", async (test) => {
    const context = await scratch("evlog_interval");
    if (!context.partman) test.skip();
    await (await context.connect("interval")).maintainEventLog();
    const daily = await context.connect("interval", { ...HOURLY, partitionInterval: "daily" });

    const report = await daily.maintainEventLog();

    expect(report.partitionInterval).toBe("hourly");
    expect(report.warnings).toEqual([expect.stringContaining("registered with pg_partman at an interval of 01:00:00")]);
  });

  it("hands the project's own partitions and their rows to pg_partman when it appears (pg_partman only)", async (test) => {
    const context = await scratch("evlog_adopt");
    if (!context.partman) test.skip();
    await context.admin.query("drop extension pg_partman");
    const system = await context.connect("adopt");
    const ids = await insertAt(context.admin, "adopt", ["-26 hours", "-3 hours", "0"]);
    const builtin = await system.maintainEventLog();
    expect(builtin.mode).toBe("builtin");
    for (const row of await placements(context, "adopt", false)) expect(row.partition).toBe(row.expected);

    await context.admin.query("create extension pg_partman schema partman");
    const report = await system.maintainEventLog();

    expect(report.mode).toBe("partman");
    expect(report.registered).toBe(true);
    expect(report.movedFromDefault).toBe(3);
    const placed = await placements(context, "adopt");
    expect(placed.map((row) => row.id).sort()).toEqual(ids.sort());
    for (const row of placed) expect(row.partition).toBe(row.expected);
    await expect(context.admin.query("select core.ensure_event_log_partitions('1 hour', 2)")).rejects.toMatchObject({ code: "55000" });
  });

  it("changes the interval of its own partitions without overlapping the existing ones (without pg_partman only)", async (test) => {
    const context = await scratch("evlog_reinterval");
    if (context.partman) test.skip();
    await (await context.connect("reinterval")).maintainEventLog();
    const daily = await context.connect("reinterval", { ...HOURLY, partitionInterval: "daily" });

    const report = await daily.maintainEventLog();

    expect(report.warnings).toEqual([]);
    expect(report.created).toEqual(expect.arrayContaining([expect.stringMatching(/^core\.event_log_p\d{8}$/)]));
    const ids = await insertAt(context.admin, "reinterval", ["0", "30 hours", "50 hours"]);
    expect(ids).toHaveLength(3);
    for (const row of await placements(context, "reinterval")) expect(row.inRange || row.partition.endsWith("_default")).toBe(true);
  });
});

describe("event log options", () => {
  it.each([
    [{ partitionInterval: "weekly" }, "eventLog.partitionInterval"],
    [{ premake: 0 }, "eventLog.premake"],
    [{ premake: 2.5 }, "eventLog.premake"],
    [{ retentionMs: -1 }, "eventLog.retentionMs"],
    [{ retentionMs: 10 }, "eventLog.retentionMs"],
    [{ namespaceRetentionMs: 8 * 24 * HOUR_MS }, "eventLog.namespaceRetentionMs"],
    [{ retention: 1000 }, "eventLog.retention"],
  ])("rejects %j before connecting", async (eventLog, argument) => {
    const error = await CoreSystem.connect({
      connectionString: testDatabaseUrl(),
      namespace: "evlog-options",
      eventLog: eventLog as ConnectOptions["eventLog"],
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).argument).toBe(argument);
  });
});
