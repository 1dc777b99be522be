import type { Queryable } from "../../../core/internal.js";

/** Completes a batch of jobs held under `token`; returns the ids completed. See `core.bull_complete`. */
export async function completeJobs(db: Queryable, namespace: string, queue: string, token: string, ids: string[], values: unknown[]): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>({
    name: "nexus_bull_complete",
    text: "select id from core.bull_complete($1, $2, $3, $4::text[], $5::jsonb[]) as id",
    values: [namespace, queue, token, ids, values.map((value) => JSON.stringify(value ?? null))],
  });
  return rows.map((row) => row.id);
}
