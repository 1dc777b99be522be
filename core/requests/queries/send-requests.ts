import type { Queryable } from "../../db/queryable.js";

/**
 * Sends request envelopes (each with its `id` and `type`) to the groups answering their
 * types; returns each request's queue, or null where no group answers. See `core.send_requests`.
 */
export async function sendRequests(db: Queryable, namespace: string, envelopes: { id: string }[]): Promise<Map<string, string | null>> {
  const { rows } = await db.query<{ request_id: string; queue: string | null }>({
    name: "nexus_send_requests",
    text: "select request_id, queue from core.send_requests($1, $2::jsonb)",
    values: [namespace, JSON.stringify(envelopes)],
  });
  return new Map(rows.map((row) => [row.request_id, row.queue]));
}
