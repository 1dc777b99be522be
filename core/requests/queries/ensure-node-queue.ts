import type { Queryable } from "../../db/queryable.js";

/** Creates a node's queue when missing; returns its name. See `core.ensure_node_queue`. */
export async function ensureNodeQueue(db: Queryable, nodeId: string): Promise<string> {
  const { rows } = await db.query<{ queue: string }>({
    name: "nexus_ensure_node_queue",
    text: "select core.ensure_node_queue($1::uuid) as queue",
    values: [nodeId],
  });
  return rows[0]!.queue;
}
