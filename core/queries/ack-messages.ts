import type { Queryable } from "./queryable.js";

/** Deletes handled messages (in the handler transaction, so the ack commits with the effects). See `core.ack_messages`. */
export async function ackMessages(db: Queryable, queue: string, msgIds: string[]): Promise<void> {
  await db.query({
    name: "nexus_ack_messages",
    text: "select core.ack_messages($1, $2::bigint[])",
    values: [queue, msgIds],
  });
}
