import type { Queryable } from "../../db/queryable.js";

/** Deletes every dead letter of a group; returns how many. See `core.purge_dead_letters`. */
export async function purgeDeadLetters(db: Queryable, queue: string): Promise<number> {
  const { rows } = await db.query<{ purged: string }>({
    name: "nexus_purge_dead_letters",
    text: "select core.purge_dead_letters($1) as purged",
    values: [queue],
  });
  return Number(rows[0]?.purged ?? 0);
}
