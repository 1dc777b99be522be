import type { Queryable } from "../../db/queryable.js";

/** Marks dead the namespace's nodes silent for longer than `ttlMs`; returns their ids. See `core.mark_dead_nodes`. */
export async function markDeadNodes(db: Queryable, namespace: string, ttlMs: number): Promise<string[]> {
  const { rows } = await db.query<{ node_id: string }>({
    name: "nexus_mark_dead_nodes",
    text: "select core.mark_dead_nodes($1, make_interval(secs => $2::float8 / 1000)) as node_id",
    values: [namespace, ttlMs],
  });
  return rows.map((row) => row.node_id);
}
