import type { Queryable } from "../../../core/internal.js";

/** Jobs per BullMQ state (states without jobs absent). See `core.bull_counts`. */
export async function jobCounts(db: Queryable, namespace: string, queue: string): Promise<Map<string, number>> {
  const { rows } = await db.query<{ state: string; count: string }>({
    name: "nexus_bull_counts",
    text: "select state, count from core.bull_counts($1, $2)",
    values: [namespace, queue],
  });
  return new Map(rows.map((row) => [row.state, Number(row.count)]));
}
