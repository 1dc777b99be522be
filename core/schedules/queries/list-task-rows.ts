import type { Queryable } from "../../db/queryable.js";
import type { ScheduledTaskRow } from "./upsert-task.js";

/** A row of `core.list_tasks`: the task and its last fire. */
export interface TaskListRow extends Omit<ScheduledTaskRow, "namespace" | "fire_from"> {
  last_scheduled_for: Date | null;
  last_fired_at: Date | null;
  last_outcome: "fired" | "failed" | "skipped" | null;
  last_error: string | null;
  last_event_id: string | null;
}

/** The namespace's tasks by name, each with its newest fire. See `core.list_tasks`. */
export async function listTaskRows(db: Queryable, namespace: string): Promise<TaskListRow[]> {
  const { rows } = await db.query<TaskListRow>({
    name: "nexus_list_tasks",
    text: "select * from core.list_tasks($1)",
    values: [namespace],
  });
  return rows;
}
