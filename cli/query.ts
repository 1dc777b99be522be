/**
 * Runs one SQL statement typed by a person (`nexus sql`, the interactive menu), in a
 * READ ONLY transaction unless writes are asked for. The statement goes through the
 * extended protocol, which takes exactly one statement: `commit; delete ...` cannot end
 * the read-only transaction and run a write after it.
 */
import type pg from "pg";
import { SqlState } from "../core/index.js";
import { CliFailure } from "./errors.js";

/** SQLSTATE read_only_sql_transaction. */
const READ_ONLY_SQL_TRANSACTION = "25006";

/** What a statement returned. */
export interface QueryResult {
  /** The command tag's verb: SELECT, INSERT, ... */
  command: string;
  rowCount: number | null;
  fields: string[];
  /** Rows as arrays, in `fields` order (duplicate column names are kept). */
  rows: unknown[][];
}

/** Runs `text` on a connection of `pool`: read-only (rolled back) or, with `write`, committed. */
export async function runStatement(pool: pg.Pool, text: string, options: { write: boolean }): Promise<QueryResult> {
  if (text.trim().length === 0) throw new CliFailure("the query is empty.");
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query(options.write ? "begin" : "begin transaction read only");
    const config: pg.QueryArrayConfig & { queryMode: "extended" } = { text, rowMode: "array", queryMode: "extended" };
    let result: pg.QueryArrayResult;
    try {
      result = await client.query(config);
    } catch (error) {
      await client.query("rollback").catch((rollbackError: Error) => (broken = rollbackError));
      throw explain(error, options.write);
    }
    await client.query(options.write ? "commit" : "rollback");
    return { command: result.command, rowCount: result.rowCount, fields: result.fields.map((field) => field.name), rows: result.rows };
  } finally {
    client.release(broken);
  }
}

/** A database error as a failure whose message says what to do. */
function explain(error: unknown, write: boolean): unknown {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== "string" || !(error instanceof Error)) return error;
  if (code === READ_ONLY_SQL_TRANSACTION && !write) {
    return new CliFailure(`${error.message}: nexus sql runs queries in a READ ONLY transaction; pass --write to allow writes.`);
  }
  if (code === "42601" && /multiple commands/.test(error.message)) {
    return new CliFailure("nexus sql runs one statement at a time; run each statement on its own.");
  }
  if (code === SqlState.queryCanceled) return new CliFailure(`the query was cancelled: ${error.message}`);
  if (code.startsWith("08") || code.startsWith("57P")) return error;
  const position = (error as { position?: string }).position;
  return new CliFailure(`${error.message} (SQLSTATE ${code}${position ? `, at character ${position}` : ""})`);
}

/** Rows as objects keyed by column name, for JSON output. */
export function rowObjects(result: QueryResult): Record<string, unknown>[] {
  return result.rows.map((row) => Object.fromEntries(result.fields.map((field, index) => [field, row[index]])));
}
