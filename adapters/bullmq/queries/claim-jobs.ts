import type { Queryable } from "../../../core/internal.js";
import type { JobRow } from "./job-row.js";

/** Makes up to `limit` due jobs active under `token`, highest priority first. See `core.bull_claim`. */
export async function claimJobs(db: Queryable, namespace: string, queue: string, limit: number, token: string, lockMs: number): Promise<JobRow[]> {
  const { rows } = await db.query<JobRow>({
    name: "nexus_bull_claim",
    text: "select * from core.bull_claim($1, $2, $3, $4, $5)",
    values: [namespace, queue, limit, token, lockMs],
  });
  return rows;
}
