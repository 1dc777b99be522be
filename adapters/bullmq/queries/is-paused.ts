import type { Queryable } from "../../../core/internal.js";

/** Whether a queue is paused. Reads `core.bull_queues`. */
export async function isPaused(db: Queryable, namespace: string, queue: string): Promise<boolean> {
  const { rows } = await db.query<{ paused: boolean }>({
    name: "nexus_bull_is_paused",
    text: "select paused from core.bull_queues where namespace = $1 and queue = $2",
    values: [namespace, queue],
  });
  return rows[0]?.paused === true;
}
