import type { Queryable } from "../../db/queryable.js";

/** One statement of pg_stat_statements, as `core.top_queries` returns it. */
export interface TopQueryRow {
  queryId: string | null;
  query: string;
  calls: number;
  totalTimeMs: number;
  meanTimeMs: number;
  rows: number;
}

/**
 * The `limit` statements of this database with the most total execution time. Raises
 * 0A000 when pg_stat_statements is not installed. See `core.top_queries`.
 */
export async function readTopQueries(db: Queryable, limit: number): Promise<TopQueryRow[]> {
  const { rows } = await db.query<{ queryid: string | null; query: string | null; calls: string; total_time_ms: number; mean_time_ms: number; rows: string }>({
    name: "nexus_top_queries",
    text: "select queryid, query, calls, total_time_ms, mean_time_ms, rows from core.top_queries($1)",
    values: [limit],
  });
  return rows.map((row) => ({
    queryId: row.queryid,
    query: row.query ?? "",
    calls: Number(row.calls),
    totalTimeMs: row.total_time_ms,
    meanTimeMs: row.mean_time_ms,
    rows: Number(row.rows),
  }));
}
