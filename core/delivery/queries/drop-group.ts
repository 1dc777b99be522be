import type { Queryable } from "../../db/queryable.js";

/** Removes a group's subscriptions and drops its queues; returns the subscriptions removed. See `core.drop_group`. */
export async function dropGroup(db: Queryable, namespace: string, group: string, queue: string): Promise<number> {
  const { rows } = await db.query<{ removed: number }>({
    name: "nexus_drop_group",
    text: "select core.drop_group($1, $2, $3) as removed",
    values: [namespace, group, queue],
  });
  return rows[0]?.removed ?? 0;
}
