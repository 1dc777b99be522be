import type { Queryable } from "../../../core/internal.js";

/** Deletes the queue's jobs in `states` (null: all, and the queue's flags). See `core.bull_remove`. */
export async function removeJobs(db: Queryable, namespace: string, queue: string, states: string[] | null): Promise<number> {
  const { rows } = await db.query<{ count: string }>({
    name: "nexus_bull_remove",
    text: "select core.bull_remove($1, $2, $3::text[]) as count",
    values: [namespace, queue, states],
  });
  return Number(rows[0]?.count ?? 0);
}
