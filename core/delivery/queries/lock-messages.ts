import type { Queryable } from "../../db/queryable.js";

/**
 * Locks, for the current transaction, the messages this consumer read (identified by id
 * and read count); returns the ids it locked. See `core.lock_messages`.
 */
export async function lockMessages(db: Queryable, queue: string, messages: { msgId: string; readCount: number }[]): Promise<Set<string>> {
  const { rows } = await db.query<{ msg_id: string }>({
    name: "nexus_lock_messages",
    text: "select msg_id from core.lock_messages($1, $2::bigint[], $3::integer[]) as msg_id",
    values: [queue, messages.map((message) => message.msgId), messages.map((message) => message.readCount)],
  });
  return new Set(rows.map((row) => row.msg_id));
}
