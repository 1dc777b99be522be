import type { Queryable } from "../../db/queryable.js";
import type { ScheduledTaskRow } from "./upsert-task.js";

/** Pauses (false) or resumes (true) a task; undefined for an unknown task. See `core.set_task_enabled`. */
export async function setTaskEnabled(db: Queryable, namespace: string, name: string, enabled: boolean): Promise<ScheduledTaskRow | undefined> {
  const { rows } = await db.query<ScheduledTaskRow>({
    name: "nexus_set_task_enabled",
    text: "select * from core.set_task_enabled($1, $2, $3)",
    values: [namespace, name, enabled],
  });
  return rows[0];
}
