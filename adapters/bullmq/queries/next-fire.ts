import type { Queryable } from "../../../core/internal.js";
import type { AddRow } from "./job-row.js";

/** Adds a scheduler's next fire if the scheduler still exists. See `core.bull_next_fire`. */
export async function nextFire(db: Queryable, namespace: string, queue: string, key: string, job: AddRow): Promise<boolean> {
  const { rows } = await db.query<{ added: boolean }>({
    name: "nexus_bull_next_fire",
    text: "select core.bull_next_fire($1, $2, $3, $4::jsonb) as added",
    values: [namespace, queue, key, JSON.stringify(job)],
  });
  return rows[0]?.added === true;
}
