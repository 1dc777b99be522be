import type { Queryable } from "../../db/queryable.js";

/** A dead letter as `core.list_dead_letters` and `core.get_dead_letter` return it. */
export interface DeadLetterRow {
  /** Its message id in the dead-letter queue (a bigint, as a string). */
  msg_id: string;
  dead_lettered_at: Date;
  /** The original envelope plus its `deadLetter` field (a listed row has no payload and no stack). */
  message: unknown;
}

/** One page of a group's dead letters, by ascending id. See `core.list_dead_letters`. */
export async function listDeadLetters(db: Queryable, queue: string, after: string | null, limit: number, pattern: string | null): Promise<DeadLetterRow[]> {
  const { rows } = await db.query<DeadLetterRow>({
    name: "nexus_list_dead_letters",
    text: "select msg_id, dead_lettered_at, message from core.list_dead_letters($1, $2::bigint, $3, $4)",
    values: [queue, after, limit, pattern],
  });
  return rows;
}
