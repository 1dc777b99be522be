import type { Queryable } from "../../../core/internal.js";
import type { AddRow } from "./job-row.js";

/** Adds `jobs` in one statement; per job its id and whether it was added (false: de-duplicated). See `core.bull_add`. */
export async function addJobs(db: Queryable, namespace: string, queue: string, jobs: AddRow[]): Promise<{ id: string; added: boolean }[]> {
  const { rows } = await db.query<{ id: string; added: boolean }>({
    name: "nexus_bull_add",
    text: "select id, added from core.bull_add($1, $2, $3::jsonb)",
    values: [namespace, queue, JSON.stringify(jobs)],
  });
  return rows;
}
