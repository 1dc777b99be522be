import type { Queryable } from "../../db/queryable.js";

/** What `core.run_scheduled_task` did with one scheduled time. */
export type FireResult = "fired" | "failed" | "duplicate" | "paused" | "missing";

/**
 * Fires one scheduled time of a task, once: records it and emits the task's event in one
 * transaction, or does nothing when that time is already recorded. See `core.run_scheduled_task`.
 */
export async function runScheduledTask(db: Queryable, taskId: string, scheduledFor: Date, sourceNode: string | null): Promise<FireResult> {
  const { rows } = await db.query<{ result: FireResult }>({
    name: "nexus_run_scheduled_task",
    text: "select core.run_scheduled_task($1::uuid, $2::timestamptz, $3::uuid) as result",
    values: [taskId, scheduledFor, sourceNode],
  });
  return rows[0]!.result;
}
