import type { Queryable } from "../../../core/internal.js";

/** Milliseconds until the queue's earliest waiting job is due (null: none). See `core.bull_next_due`. */
export async function nextDue(db: Queryable, namespace: string, queue: string): Promise<number | null> {
  const { rows } = await db.query<{ ms: number | null }>({
    name: "nexus_bull_next_due",
    text: "select core.bull_next_due($1, $2) as ms",
    values: [namespace, queue],
  });
  return rows[0]?.ms ?? null;
}
