import type { Queryable } from "../../../core/internal.js";
import type { JobRow } from "./job-row.js";

/** One job's small change (progress, log, retry, remove); the row after it, or null. See `core.bull_update`. */
export async function updateJob(
  db: Queryable,
  namespace: string,
  queue: string,
  id: string,
  change: "progress" | "log" | "retry" | "remove",
  value: unknown,
): Promise<JobRow | null> {
  const { rows } = await db.query<JobRow>({
    name: "nexus_bull_update",
    text: "select * from core.bull_update($1, $2, $3, $4, $5::jsonb)",
    values: [namespace, queue, id, change, JSON.stringify(value ?? null)],
  });
  return rows[0] ?? null;
}
