import type { Queryable } from "../../db/queryable.js";

/** Deletes fire records older than `keepMs` (each task's newest stays); returns how many. See `core.prune_schedule_fires`. */
export async function pruneScheduleFires(db: Queryable, namespace: string, keepMs: number): Promise<number> {
  const { rows } = await db.query<{ deleted: number }>({
    name: "nexus_prune_schedule_fires",
    text: "select core.prune_schedule_fires($1, make_interval(secs => $2::float8 / 1000)) as deleted",
    values: [namespace, keepMs],
  });
  return rows[0]?.deleted ?? 0;
}
