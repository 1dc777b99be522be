import type { Queryable } from "../../db/queryable.js";

/** Claims a non-durable request before running it; false when it was claimed before. See `core.claim_request`. */
export async function claimRequest(db: Queryable, requestId: string): Promise<boolean> {
  const { rows } = await db.query<{ claimed: boolean }>({
    name: "nexus_claim_request",
    text: "select core.claim_request($1::uuid) as claimed",
    values: [requestId],
  });
  return rows[0]?.claimed === true;
}
