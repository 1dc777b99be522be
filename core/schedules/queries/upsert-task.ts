import type { Queryable } from "../../db/queryable.js";

/** A row of `core.scheduled_tasks` as the driver returns it. */
export interface ScheduledTaskRow {
  task_id: string;
  namespace: string;
  name: string;
  cron_expression: string;
  timezone: string;
  event_type: string;
  payload: unknown;
  headers: Record<string, string>;
  enabled: boolean;
  runner: "pg_cron" | "scheduler";
  /** bigint, as text. */
  cron_job_id: string | null;
  fire_from: Date;
  created_at: Date;
  updated_at: Date;
}

/** Arguments of {@link scheduleTask}, already validated. */
export interface ScheduleTaskArgs {
  namespace: string;
  name: string;
  expression: string;
  timezone: string;
  /** A standard 5-field expression in UTC that pg_cron parses. */
  pgCronCompatible: boolean;
  eventType: string;
  payload: unknown;
  headers: Record<string, string>;
}

/** Creates or replaces a task and its pg_cron job; returns the task row. See `core.schedule_task`. */
export async function upsertTask(db: Queryable, args: ScheduleTaskArgs): Promise<ScheduledTaskRow> {
  const { rows } = await db.query<ScheduledTaskRow>({
    name: "nexus_schedule_task",
    text: "select * from core.schedule_task($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)",
    values: [
      args.namespace,
      args.name,
      args.expression,
      args.timezone,
      args.pgCronCompatible,
      args.eventType,
      JSON.stringify(args.payload),
      JSON.stringify(args.headers),
    ],
  });
  return rows[0]!;
}
