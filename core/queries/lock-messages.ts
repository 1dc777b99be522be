import type { Queryable } from "./queryable.js";

/** Locks the given messages for the current transaction; returns the ids it could lock. See `core.lock_messages`. */
export async function lockMessages(db: Queryable, queue: string, msgIds: string[]): Promise<Set<string>> {
  const { rows } = await db.query<{ msg_id: string }>({
    name: "nexus_lock_messages",
    text: "select msg_id from core.lock_messages($1, $2::bigint[]) as msg_id",
    values: [queue, msgIds],
  });
  return new Set(rows.map((row) => row.msg_id));
}
