import type { Queryable } from "./queryable.js";

/** Sends a request envelope to the group answering `type`; returns its queue, or null when none does. See `core.request`. */
export async function sendRequest(db: Queryable, namespace: string, type: string, envelope: unknown): Promise<string | null> {
  const { rows } = await db.query<{ queue: string | null }>({
    name: "nexus_request",
    text: "select core.request($1, $2, $3::jsonb) as queue",
    values: [namespace, type, JSON.stringify(envelope)],
  });
  return rows[0]?.queue ?? null;
}
