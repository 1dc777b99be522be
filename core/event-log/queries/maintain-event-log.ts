import type { Queryable } from "../../db/queryable.js";

/** What one `core.maintain_event_log` pass did, as the function returns it. */
export interface EventLogMaintenanceRow {
  ran: boolean;
  mode?: "partman" | "builtin";
  partmanVersion?: string | null;
  registered?: boolean;
  partitionInterval?: string;
  created?: string[];
  dropped?: string[];
  movedFromDefault?: number;
  warnings?: string[];
}

/** Runs one partition maintenance pass over `core.event_log`. See `core.maintain_event_log`. */
export async function maintainEventLogPartitions(
  db: Queryable,
  interval: "1 hour" | "1 day",
  premake: number,
  retentionMs: number,
): Promise<EventLogMaintenanceRow> {
  const { rows } = await db.query<{ report: EventLogMaintenanceRow }>({
    name: "nexus_maintain_event_log",
    text: "select core.maintain_event_log($1::interval, $2::integer, make_interval(secs => $3::float8 / 1000)) as report",
    values: [interval, premake, retentionMs],
  });
  return rows[0]!.report;
}
