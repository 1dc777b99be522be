/**
 * Exact reconciliation of a fault scenario: every event of the namespace's event log,
 * for every subscribed group, either committed its effect exactly once (a row the
 * handler wrote in its own transaction) or sits in that group's dead-letter queue, never
 * both, never neither. Shared by the chaos suite, the backpressure test and bench/soak.ts.
 */
import type pg from "pg";
import { assertGroup, type CoreSystem } from "../../core/index.js";

/** Per-group outcome counts. */
export interface GroupReconciliation {
  group: string;
  /** Events whose effect committed exactly once and that are not dead-lettered. */
  effects: number;
  /** Events in the group's dead-letter queue and without an effect. */
  deadLetters: number;
  /** Events with neither an effect nor a dead letter: lost (or still in flight). */
  missing: number;
  /** Events with more than one effect, or an effect and a dead letter, or two dead letters. */
  duplicated: number;
}

/** The outcome of {@link reconcile}. */
export interface Reconciliation {
  /** Events of the namespace in `core.event_log`. */
  events: number;
  groups: GroupReconciliation[];
  /** Effect rows whose event is not in the log (must be 0). */
  orphans: number;
  /** Sum of `missing` over the groups. */
  missing: number;
  /** Sum of `duplicated` over the groups. */
  duplicated: number;
  /** A few offending (event, group) pairs, for the failure message. */
  samples: string[];
}

const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Checks a table name before it is spliced into SQL (fixtures get it through the environment). */
export function assertTableName(table: string): string {
  if (!TABLE_NAME.test(table)) throw new Error(`Effect table name ${JSON.stringify(table)} must match ${TABLE_NAME.source}.`);
  return table;
}

/**
 * Creates the effect table: one row per committed handler run. No unique key on purpose,
 * so a double effect is counted rather than refused.
 */
export async function createEffectTable(pool: pg.Pool, table: string): Promise<void> {
  assertTableName(table);
  await pool.query(`drop table if exists ${table}`);
  await pool.query(`create table ${table} (event_id uuid not null, group_name text not null, attempt int not null, pid int not null, at timestamptz not null default clock_timestamp())`);
  await pool.query(`create index on ${table} (event_id, group_name)`);
}

/** The statement a handler runs in its transaction to record its effect. */
export function effectStatement(table: string): string {
  return `insert into ${assertTableName(table)} (event_id, group_name, attempt, pid) values ($1, $2, $3, $4)`;
}

/** Event ids in the group's dead-letter queue, with how often each appears. */
async function deadLetterIds(system: CoreSystem, group: string): Promise<Map<string, number>> {
  const ids = new Map<string, number>();
  let after: string | undefined;
  do {
    const page = await system.deadLetters.list(group, { limit: 1000, ...(after ? { after } : {}) });
    for (const item of page.items) if (item.eventId) ids.set(item.eventId, (ids.get(item.eventId) ?? 0) + 1);
    after = page.nextAfter ?? undefined;
  } while (after);
  return ids;
}

/** Reconciles the namespace's event log against the effect table and the groups' dead-letter queues. */
export async function reconcile(system: CoreSystem, table: string, groups: readonly string[]): Promise<Reconciliation> {
  assertTableName(table);
  groups.forEach((group) => assertGroup(group));
  const { rows: logged } = await system.pool.query<{ id: string }>("select id::text from core.event_log where namespace = $1", [system.namespace]);
  const { rows: effectRows } = await system.pool.query<{ event_id: string; group_name: string; n: number }>(
    `select event_id::text, group_name, count(*)::int as n from ${table} group by 1, 2`,
  );
  const effects = new Map<string, number>();
  for (const row of effectRows) effects.set(`${row.group_name}/${row.event_id}`, row.n);
  const eventIds = new Set(logged.map((row) => row.id));
  const result: Reconciliation = { events: eventIds.size, groups: [], orphans: 0, missing: 0, duplicated: 0, samples: [] };
  for (const row of effectRows) if (!eventIds.has(row.event_id) || !groups.includes(row.group_name)) result.orphans += row.n;
  for (const group of groups) {
    const dead = await deadLetterIds(system, group);
    const counts: GroupReconciliation = { group, effects: 0, deadLetters: 0, missing: 0, duplicated: 0 };
    for (const id of eventIds) {
      const effect = effects.get(`${group}/${id}`) ?? 0;
      const deadLetter = dead.get(id) ?? 0;
      if (effect + deadLetter === 0) counts.missing += 1;
      else if (effect + deadLetter > 1) counts.duplicated += 1;
      else if (effect === 1) counts.effects += 1;
      else counts.deadLetters += 1;
      if (effect + deadLetter !== 1 && result.samples.length < 5) result.samples.push(`${group}/${id}: ${effect} effect(s), ${deadLetter} dead letter(s)`);
    }
    result.groups.push(counts);
    result.missing += counts.missing;
    result.duplicated += counts.duplicated;
  }
  return result;
}

/**
 * Reconciles until nothing is missing (consumers may still be draining) or `timeoutMs`
 * passes, and returns the last result. Duplicates never heal, so they end the wait too.
 */
export async function reconcileWhenDrained(system: CoreSystem, table: string, groups: readonly string[], timeoutMs: number): Promise<Reconciliation> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await reconcile(system, table, groups);
    if ((result.missing === 0 && result.orphans === 0) || result.duplicated > 0 || Date.now() >= deadline) return result;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** One line per group plus totals, for the test log and the soak report. */
export function formatReconciliation(label: string, result: Reconciliation): string {
  const lines = [`[${label}] reconciliation: ${result.events} events in the log, ${result.missing} missing, ${result.duplicated} duplicated, ${result.orphans} orphan effects`];
  for (const group of result.groups) {
    lines.push(`  ${group.group}: ${group.effects} effects, ${group.deadLetters} dead letters, ${group.missing} missing, ${group.duplicated} duplicated`);
  }
  if (result.samples.length > 0) lines.push(`  e.g. ${result.samples.join("; ")}`);
  return lines.join("\n");
}

/** True when every event is accounted for exactly once in every group. */
export function isExact(result: Reconciliation): boolean {
  return result.missing === 0 && result.duplicated === 0 && result.orphans === 0;
}
