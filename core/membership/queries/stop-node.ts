import type { Queryable } from "../../db/queryable.js";

/** Marks a node stopped; false when it is unknown. See `core.stop_node`. */
export async function stopNode(db: Queryable, nodeId: string): Promise<boolean> {
  const { rows } = await db.query<{ stopped: boolean }>({
    name: "nexus_stop_node",
    text: "select core.stop_node($1) as stopped",
    values: [nodeId],
  });
  return rows[0]?.stopped === true;
}
