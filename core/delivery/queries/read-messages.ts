import type { Queryable } from "../../db/queryable.js";

/** A queue message as the consumer reads it. */
export interface QueueMessage {
  /** pgmq's message id (a bigint, as a string). */
  msgId: string;
  /** How many times the message has been read, this read included: the attempt number. */
  readCount: number;
  enqueuedAt: Date;
  /** The database's clock when the message was read. */
  readAt: Date;
  /** This process's clock (performance.now()) when the read returned: with readAt, the database's time later on. */
  receivedAt: number;
  /** The event envelope `{ id, type, payload, headers, emittedAt, sourceNode }`. */
  message: unknown;
}

/** Reads up to `quantity` messages, invisible to others for `visibilitySeconds`. See `core.read_messages`. */
export async function readMessages(db: Queryable, queue: string, visibilitySeconds: number, quantity: number): Promise<QueueMessage[]> {
  const { rows } = await db.query<{ msg_id: string; read_ct: number; enqueued_at: Date; read_at: Date; message: unknown }>({
    name: "nexus_read_messages",
    text: "select msg_id, read_ct, enqueued_at, read_at, message from core.read_messages($1, $2, $3)",
    values: [queue, visibilitySeconds, quantity],
  });
  const receivedAt = performance.now();
  return rows.map((row) => ({
    msgId: row.msg_id,
    readCount: row.read_ct,
    enqueuedAt: row.enqueued_at,
    readAt: row.read_at,
    receivedAt,
    message: row.message,
  }));
}
