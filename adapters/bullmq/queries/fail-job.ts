import type { Queryable } from "../../../core/internal.js";

/** Ends a failed attempt: retried after `retryDelayMs`, or failed for good when null. Returns the new state. See `core.bull_fail`. */
export async function failJob(
  db: Queryable,
  namespace: string,
  queue: string,
  token: string,
  id: string,
  error: { reason: string; stack: string },
  retryDelayMs: number | null,
): Promise<"waiting" | "failed" | null> {
  const { rows } = await db.query<{ state: "waiting" | "failed" | null }>({
    name: "nexus_bull_fail",
    text: "select core.bull_fail($1, $2, $3, $4, $5, $6, $7) as state",
    values: [namespace, queue, token, id, error.reason, error.stack, retryDelayMs],
  });
  return rows[0]?.state ?? null;
}
