import type { Queryable } from "../../db/queryable.js";

/** A task the fallback scheduler runs, as `core.scheduler_tasks` returns it. */
export interface SchedulerTaskRow {
  task_id: string;
  name: string;
  cron_expression: string;
  timezone: string;
  fire_from: Date;
  last_scheduled_for: Date | null;
  /** The database's clock when the row was read. */
  db_now: Date;
}

/** The enabled tasks the namespace's fallback scheduler runs. See `core.scheduler_tasks`. */
export async function schedulerTasks(db: Queryable, namespace: string): Promise<SchedulerTaskRow[]> {
  const { rows } = await db.query<SchedulerTaskRow>({
    name: "nexus_scheduler_tasks",
    text: "select * from core.scheduler_tasks($1)",
    values: [namespace],
  });
  return rows;
}
