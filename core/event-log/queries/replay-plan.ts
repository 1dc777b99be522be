import type { Queryable } from "../../db/queryable.js";

/** A replay's target and size, from `core.replay_plan`. */
export interface ReplayPlan {
  /** Whether the group's event queue exists. */
  queueExists: boolean;
  /** Whether the group has an event subscription on that queue in the namespace. */
  subscribed: boolean;
  /**
   * The window's upper bound, clamped to the database's clock at planning, as PostgreSQL
   * text: microseconds matter to the keyset, and a JavaScript Date keeps milliseconds.
   */
  cutoff: string;
  /** Logged events of the window that the replay will send. */
  total: number;
}

/** Plans a replay into a group's queue. See `core.replay_plan`. */
export async function planReplay(
  db: Queryable,
  namespace: string,
  group: string,
  queue: string,
  patterns: string[] | null,
  from: Date,
  to: Date,
): Promise<ReplayPlan> {
  const { rows } = await db.query<{ queue_exists: boolean; subscribed: boolean; cutoff: string; total: string }>({
    name: "nexus_replay_plan",
    text:
      "select queue_exists, subscribed, cutoff::text as cutoff, total " +
      "from core.replay_plan($1, $2, $3, $4::text[], $5::timestamptz, $6::timestamptz)",
    values: [namespace, group, queue, patterns, from, to],
  });
  const row = rows[0]!;
  return { queueExists: row.queue_exists, subscribed: row.subscribed, cutoff: row.cutoff, total: Number(row.total) };
}
