import type { Queryable } from "../../db/queryable.js";

/** Delivers one message to a node, by NOTIFY when small and allowed, else through its queue. See `core.send_to_node`. */
export async function sendToNode(db: Queryable, nodeId: string, message: unknown, viaQueue: boolean): Promise<"notify" | "queue"> {
  const { rows } = await db.query<{ route: "notify" | "queue" }>({
    name: "nexus_send_to_node",
    text: "select core.send_to_node($1::uuid, $2::jsonb, $3) as route",
    values: [nodeId, JSON.stringify(message), viaQueue],
  });
  return rows[0]!.route;
}

/** Puts messages into a node's queue, in order. See `core.send_batch_to_node`. */
export async function sendBatchToNode(db: Queryable, nodeId: string, messages: unknown[]): Promise<void> {
  await db.query({
    name: "nexus_send_batch_to_node",
    text: "select core.send_batch_to_node($1::uuid, $2::jsonb[])",
    values: [nodeId, messages.map((message) => JSON.stringify(message))],
  });
}

/** A message for one node, as {@link sendToNodes} takes it. */
export interface NodeMessage {
  node: string;
  message: unknown;
  viaQueue: boolean;
}

/** Sends several messages to nodes in one call, in order. See `core.send_to_nodes`. */
export async function sendToNodes(db: Queryable, messages: NodeMessage[]): Promise<void> {
  await db.query({
    name: "nexus_send_to_nodes",
    text: "select core.send_to_nodes($1::jsonb)",
    values: [JSON.stringify(messages)],
  });
}
