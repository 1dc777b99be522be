import type { Queryable } from "../../db/queryable.js";

/**
 * The keyset of a replay page: the (emitted_at, id) of the last event sent, emitted_at as
 * PostgreSQL text (microseconds; a JavaScript Date would drop them and repeat events).
 */
export interface ReplayCursor {
  emittedAt: string;
  id: string;
}

/** One replay page: how many events it sent and where the next page starts. */
export interface ReplayPage {
  sent: number;
  last: ReplayCursor | null;
}

/** What one replay page needs. */
export interface ReplayPageRequest {
  namespace: string;
  group: string;
  queue: string;
  replayId: string;
  patterns: string[] | null;
  from: Date;
  /** Exclusive upper bound (the plan's cutoff). */
  to: string;
  after: ReplayCursor | null;
  limit: number;
}

/** Sends the next page of a replay to the group's queue (one pgmq.send_batch). See `core.replay_batch`. */
export async function sendReplayBatch(db: Queryable, request: ReplayPageRequest): Promise<ReplayPage> {
  const { rows } = await db.query<{ sent: number; last_emitted_at: string | null; last_id: string | null }>({
    name: "nexus_replay_batch",
    text:
      "select sent, last_emitted_at::text as last_emitted_at, last_id from core.replay_batch($1, $2, $3, $4::uuid, $5::text[], " +
      "$6::timestamptz, $7::timestamptz, $8::timestamptz, $9::uuid, $10::integer)",
    values: [
      request.namespace,
      request.group,
      request.queue,
      request.replayId,
      request.patterns,
      request.from,
      request.to,
      request.after?.emittedAt ?? null,
      request.after?.id ?? null,
      request.limit,
    ],
  });
  const row = rows[0]!;
  return {
    sent: row.sent,
    last: row.last_emitted_at && row.last_id ? { emittedAt: row.last_emitted_at, id: row.last_id } : null,
  };
}
