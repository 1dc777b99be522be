import type { Queryable } from "../../../core/internal.js";

/** Pauses or resumes a queue for every worker. See `core.bull_set_paused`. */
export async function setPaused(db: Queryable, namespace: string, queue: string, paused: boolean): Promise<void> {
  await db.query({ name: "nexus_bull_set_paused", text: "select core.bull_set_paused($1, $2, $3)", values: [namespace, queue, paused] });
}
