import type { Queryable } from "../../db/queryable.js";

/** One event as `core.emit` takes it (already validated). */
export interface EmitRow {
  type: string;
  payload: unknown;
  headers?: Record<string, string>;
  delaySeconds?: number;
  idempotencyKey?: string;
}

/** What `core.emit` returns per event. */
export interface EmitOutcome {
  /** The event's id (for a repeated idempotency key, the first event's id). */
  eventId: string;
  /** False when an idempotency key made this a repeat that published nothing. */
  published: boolean;
}

/** The statement that emits `events`; usable on any driver (see `CoreSystem.emitStatement`). */
export function emitStatement(
  namespace: string,
  events: EmitRow[],
  sourceNode: string | null,
  idempotencyWindowMs: number,
): { text: string; values: unknown[] } {
  return {
    text: "select event_id, published from core.emit($1, $2::jsonb, $3::uuid, make_interval(secs => $4::float8 / 1000))",
    values: [namespace, JSON.stringify(events), sourceNode, idempotencyWindowMs],
  };
}

/** Emits `events` in one round trip: log rows, one copy per matching group, NOTIFY. See `core.emit`. */
export async function emitEvents(
  db: Queryable,
  namespace: string,
  events: EmitRow[],
  sourceNode: string | null,
  idempotencyWindowMs: number,
): Promise<EmitOutcome[]> {
  const { rows } = await db.query<{ event_id: string; published: boolean }>({
    name: "nexus_emit",
    ...emitStatement(namespace, events, sourceNode, idempotencyWindowMs),
  });
  return rows.map((row) => ({ eventId: row.event_id, published: row.published }));
}
