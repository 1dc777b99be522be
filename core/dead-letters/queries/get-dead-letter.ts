import type { DeadLetterRow } from "./list-dead-letters.js";
import type { Queryable } from "../../db/queryable.js";

/** The whole dead letter with id `msgId`, or undefined. See `core.get_dead_letter`. */
export async function getDeadLetter(db: Queryable, queue: string, msgId: string): Promise<DeadLetterRow | undefined> {
  const { rows } = await db.query<DeadLetterRow>({
    name: "nexus_get_dead_letter",
    text: "select msg_id, dead_lettered_at, message from core.get_dead_letter($1, $2::bigint)",
    values: [queue, msgId],
  });
  return rows[0];
}
