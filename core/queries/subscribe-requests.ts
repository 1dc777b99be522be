import type { Queryable } from "./queryable.js";

/** Records that a group answers requests matching a pattern, on its request queue. See `core.subscribe_requests`. */
export async function subscribeRequests(db: Queryable, namespace: string, group: string, pattern: string, queue: string): Promise<void> {
  await db.query({
    name: "nexus_subscribe_requests",
    text: "select core.subscribe_requests($1, $2, $3, $4)",
    values: [namespace, group, pattern, queue],
  });
}
