import type { Queryable } from "../../../core/internal.js";

/** Renews the locks of a worker's active jobs; returns the ids still held. See `core.bull_extend_locks`. */
export async function extendLocks(db: Queryable, namespace: string, queue: string, token: string, ids: string[], lockMs: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>({
    name: "nexus_bull_extend_locks",
    text: "select id from core.bull_extend_locks($1, $2, $3, $4::text[], $5) as id",
    values: [namespace, queue, token, ids, lockMs],
  });
  return rows.map((row) => row.id);
}
