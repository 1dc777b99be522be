import type { Queryable } from "../../db/queryable.js";

/** Records a scheduled time that will not be fired; false when it was already recorded. See `core.skip_scheduled_fire`. */
export async function skipScheduledFire(db: Queryable, taskId: string, scheduledFor: Date, reason: string): Promise<boolean> {
  const { rows } = await db.query<{ recorded: boolean }>({
    name: "nexus_skip_scheduled_fire",
    text: "select core.skip_scheduled_fire($1::uuid, $2::timestamptz, $3) as recorded",
    values: [taskId, scheduledFor, reason],
  });
  return rows[0]?.recorded === true;
}
