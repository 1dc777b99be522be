import type { Queryable } from "../../db/queryable.js";

/** Records a heartbeat; false when the node is unknown or stopped. See `core.touch_node_heartbeat`. */
export async function touchNodeHeartbeat(db: Queryable, nodeId: string): Promise<boolean> {
  const { rows } = await db.query<{ alive: boolean }>({
    name: "nexus_touch_node_heartbeat",
    text: "select core.touch_node_heartbeat($1) as alive",
    values: [nodeId],
  });
  return rows[0]?.alive === true;
}
