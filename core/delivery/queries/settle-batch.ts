import type { Queryable } from "../../db/queryable.js";
import type { NodeMessage } from "../../requests/queries/send-to-node.js";

/** What a consumer's batch transaction settles before it commits. */
export interface BatchSettlement {
  /** Handled messages to delete. */
  acked: string[];
  /** Messages read but not started (the consumer is stopping), to make visible again uncounted. */
  released: string[];
  /** Follow-up messages (requests' replies) that leave when the batch commits. */
  outbound: NodeMessage[];
}

/** Settles a batch in one round trip; a no-op without a statement when there is nothing to do. See `core.settle_batch`. */
export async function settleBatch(db: Queryable, queue: string, settlement: BatchSettlement): Promise<void> {
  const { acked, released, outbound } = settlement;
  if (acked.length === 0 && released.length === 0 && outbound.length === 0) return;
  await db.query({
    name: "nexus_settle_batch",
    text: "select core.settle_batch($1, $2::bigint[], $3::bigint[], $4::jsonb)",
    values: [queue, acked, released, JSON.stringify(outbound)],
  });
}
