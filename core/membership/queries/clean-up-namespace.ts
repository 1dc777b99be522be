import type { Queryable } from "../../db/queryable.js";

/** Drops queues of long-gone nodes and expired large broadcasts; returns the queues dropped. See `core.clean_up_namespace`. */
export async function cleanUpNamespace(db: Queryable, namespace: string, nodeQueueGraceMs: number, broadcastTtlMs: number): Promise<number> {
  const { rows } = await db.query<{ dropped: number }>({
    name: "nexus_clean_up_namespace",
    text: "select core.clean_up_namespace($1, make_interval(secs => $2::float8 / 1000), make_interval(secs => $3::float8 / 1000)) as dropped",
    values: [namespace, nodeQueueGraceMs, broadcastTtlMs],
  });
  return rows[0]?.dropped ?? 0;
}
