import type { Queryable } from "../../db/queryable.js";

/** Removes one subscription; false when there was none. See `core.unsubscribe`. */
export async function unsubscribe(db: Queryable, namespace: string, group: string, pattern: string): Promise<boolean> {
  const { rows } = await db.query<{ removed: boolean }>({
    name: "nexus_unsubscribe",
    text: "select core.unsubscribe($1, $2, $3) as removed",
    values: [namespace, group, pattern],
  });
  return rows[0]?.removed === true;
}
