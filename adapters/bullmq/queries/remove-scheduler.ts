import type { Queryable } from "../../../core/internal.js";

/** Deletes a job scheduler and its waiting fire. See `core.bull_remove_scheduler`. */
export async function removeScheduler(db: Queryable, namespace: string, queue: string, key: string): Promise<boolean> {
  const { rows } = await db.query<{ removed: boolean }>({
    name: "nexus_bull_remove_scheduler",
    text: "select core.bull_remove_scheduler($1, $2, $3) as removed",
    values: [namespace, queue, key],
  });
  return rows[0]?.removed === true;
}
