import type { Queryable } from "../../../core/internal.js";
import type { AddRow } from "./job-row.js";

/** Creates or replaces a job scheduler and adds its first fire. See `core.bull_upsert_scheduler`. */
export async function upsertScheduler(db: Queryable, namespace: string, queue: string, key: string, repeat: unknown, template: unknown, first: AddRow): Promise<string> {
  const { rows } = await db.query<{ id: string }>({
    name: "nexus_bull_upsert_scheduler",
    text: "select id from core.bull_upsert_scheduler($1, $2, $3, $4::jsonb, $5::jsonb, $6::jsonb)",
    values: [namespace, queue, key, JSON.stringify(repeat), JSON.stringify(template ?? {}), JSON.stringify(first)],
  });
  return rows[0]?.id ?? first.id ?? "";
}
