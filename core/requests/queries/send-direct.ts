import type { Queryable } from "../../db/queryable.js";

/** NOTIFYs messages (JSON texts) on their nodes' channels, in order, in one statement. See `core.send_direct`. */
export async function sendDirect(db: Queryable, namespace: string, nodeIds: string[], messages: string[]): Promise<void> {
  await db.query({
    name: "nexus_send_direct",
    text: "select core.send_direct($1, $2::uuid[], $3::text[])",
    values: [namespace, nodeIds, messages],
  });
}
