import type { Queryable } from "./queryable.js";

/** Makes read-but-unhandled messages visible again without counting the read. See `core.release_messages`. */
export async function releaseMessages(db: Queryable, queue: string, msgIds: string[]): Promise<void> {
  if (msgIds.length === 0) return;
  await db.query({
    name: "nexus_release_messages",
    text: "select core.release_messages($1, $2::bigint[])",
    values: [queue, msgIds],
  });
}
