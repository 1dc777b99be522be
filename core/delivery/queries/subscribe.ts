import type { Queryable } from "../../db/queryable.js";

/**
 * Records a durable subscription of a group to events (`kind` 'event') or requests
 * ('request') and creates the group's queue(s). See `core.subscribe`.
 */
export async function subscribe(
  db: Queryable,
  namespace: string,
  group: string,
  pattern: string,
  queue: string,
  kind: "event" | "request" = "event",
): Promise<void> {
  await db.query({
    name: "nexus_subscribe",
    text: "select core.subscribe($1, $2, $3, $4, $5)",
    values: [namespace, group, pattern, queue, kind],
  });
}
