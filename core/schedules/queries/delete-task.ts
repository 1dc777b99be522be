import type { Queryable } from "../../db/queryable.js";

/** Removes a task, its pg_cron job and its fires; false when there was none. See `core.unschedule_task`. */
export async function deleteTask(db: Queryable, namespace: string, name: string): Promise<boolean> {
  const { rows } = await db.query<{ removed: boolean }>({
    name: "nexus_unschedule_task",
    text: "select core.unschedule_task($1, $2) as removed",
    values: [namespace, name],
  });
  return rows[0]?.removed === true;
}
