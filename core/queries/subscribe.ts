import type { Queryable } from "./queryable.js";

/** Records a durable subscription and creates the group's queues. See `core.subscribe`. */
export async function subscribe(db: Queryable, namespace: string, group: string, pattern: string, queue: string): Promise<void> {
  await db.query({
    name: "nexus_subscribe",
    text: "select core.subscribe($1, $2, $3, $4)",
    values: [namespace, group, pattern, queue],
  });
}
