import type { Queryable } from "../../db/queryable.js";

/** Deletes up to `limit` of a namespace's log rows older than the retention; returns how many. See `core.delete_expired_events`. */
export async function deleteExpiredEvents(db: Queryable, namespace: string, retentionMs: number, limit: number): Promise<number> {
  const { rows } = await db.query<{ deleted: number }>({
    name: "nexus_delete_expired_events",
    text: "select core.delete_expired_events($1, make_interval(secs => $2::float8 / 1000), $3::integer) as deleted",
    values: [namespace, retentionMs, limit],
  });
  return rows[0]?.deleted ?? 0;
}
