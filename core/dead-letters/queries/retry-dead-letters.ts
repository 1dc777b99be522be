import type { Queryable } from "../../db/queryable.js";

/** Which dead letters {@link retryDeadLetters} moves: by ids, or by type pattern and dead-letter time. */
export type RetrySelection = { ids: string[] } | { pattern: string | null; before: Date | null };

/** Moves dead letters back to the group's queue as fresh messages; returns how many. See `core.retry_dead_letters`. */
export async function retryDeadLetters(db: Queryable, namespace: string, queue: string, selection: RetrySelection): Promise<number> {
  const byIds = "ids" in selection;
  const { rows } = await db.query<{ retried: number }>({
    name: "nexus_retry_dead_letters",
    text: "select core.retry_dead_letters($1, $2, $3::bigint[], $4, $5::timestamptz) as retried",
    values: [namespace, queue, byIds ? selection.ids : null, byIds ? null : selection.pattern, byIds ? null : selection.before],
  });
  return rows[0]?.retried ?? 0;
}
