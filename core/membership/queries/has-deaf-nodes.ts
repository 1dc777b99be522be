import type { Queryable } from "../../db/queryable.js";

/** Whether an alive node of `namespace` cannot hear NOTIFYs. See `core.has_deaf_nodes`. */
export async function hasDeafNodes(db: Queryable, namespace: string): Promise<boolean> {
  const { rows } = await db.query<{ deaf: boolean }>({
    name: "nexus_has_deaf_nodes",
    text: "select core.has_deaf_nodes($1) as deaf",
    values: [namespace],
  });
  return rows[0]?.deaf === true;
}
