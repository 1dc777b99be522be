import type { Queryable } from "../../db/queryable.js";

/** NOTIFYs every node of the namespace. See `core.broadcast`. */
export async function broadcast(db: Queryable, namespace: string, channel: string, payload: unknown, sourceNode: string | null): Promise<void> {
  await db.query({
    name: "nexus_broadcast",
    text: "select core.broadcast($1, $2, $3::jsonb, $4::uuid)",
    values: [namespace, channel, JSON.stringify(payload), sourceNode],
  });
}

/** Fetches a broadcast payload too large for NOTIFY. */
export async function fetchBroadcastPayload(db: Queryable, id: number): Promise<unknown> {
  const { rows } = await db.query<{ payload: unknown }>({
    name: "nexus_fetch_broadcast_payload",
    text: "select payload from core.broadcast_payloads where id = $1",
    values: [id],
  });
  return rows[0]?.payload;
}
