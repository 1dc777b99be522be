import type { Queryable } from "../../../core/internal.js";

/** Active jobs whose lock expired: back to waiting, or failed past `maxStalled`. See `core.bull_requeue_stalled`. */
export async function requeueStalled(db: Queryable, namespace: string, queue: string, maxStalled: number): Promise<{ id: string; state: string }[]> {
  const { rows } = await db.query<{ id: string; state: string }>({
    name: "nexus_bull_requeue_stalled",
    text: "select id, state from core.bull_requeue_stalled($1, $2, $3)",
    values: [namespace, queue, maxStalled],
  });
  return rows;
}
