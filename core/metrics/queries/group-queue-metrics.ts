import type { Queryable } from "../../db/queryable.js";

/** The queue figures of one group, as `core.group_queue_metrics` returns them. */
export interface GroupQueueRow {
  group: string;
  kind: "event" | "request";
  queue: string;
  queueLength: number;
  visibleLength: number;
  oldestMessageAgeSeconds: number | null;
  deadLetterLength: number | null;
}

/** pgmq.metrics of every subscribed group's queue (and dead-letter queue) in a namespace. See `core.group_queue_metrics`. */
export async function groupQueueMetrics(db: Queryable, namespace: string): Promise<GroupQueueRow[]> {
  const { rows } = await db.query<{
    group_name: string;
    kind: "event" | "request";
    queue_name: string;
    queue_length: string;
    visible_length: string;
    oldest_msg_age_sec: number | null;
    dead_letter_length: string | null;
  }>({
    name: "nexus_group_queue_metrics",
    text: "select group_name, kind, queue_name, queue_length, visible_length, oldest_msg_age_sec, dead_letter_length from core.group_queue_metrics($1)",
    values: [namespace],
  });
  return rows.map((row) => ({
    group: row.group_name,
    kind: row.kind,
    queue: row.queue_name,
    queueLength: Number(row.queue_length),
    visibleLength: Number(row.visible_length),
    oldestMessageAgeSeconds: row.oldest_msg_age_sec,
    deadLetterLength: row.dead_letter_length === null ? null : Number(row.dead_letter_length),
  }));
}
