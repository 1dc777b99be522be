import type { Queryable } from "../../../core/internal.js";
import type { JobRow } from "./job-row.js";

/** Jobs by ids, or by BullMQ states in the range start..end (inclusive). See `core.bull_get_jobs`. */
export async function getJobs(
  db: Queryable,
  namespace: string,
  queue: string,
  filter: { ids?: string[]; states?: string[]; start?: number; end?: number; asc?: boolean },
): Promise<JobRow[]> {
  const { rows } = await db.query<JobRow>({
    name: "nexus_bull_get_jobs",
    text: "select * from core.bull_get_jobs($1, $2, $3::text[], $4::text[], $5, $6, $7)",
    values: [namespace, queue, filter.ids ?? null, filter.states ?? null, filter.start ?? 0, filter.end ?? -1, filter.asc === true],
  });
  return rows;
}
