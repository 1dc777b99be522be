/**
 * `nexus sql "<query>"`: one statement, in a READ ONLY transaction unless `--write`;
 * rows as a table, or with `--json` as `{ command, rowCount, fields, rows }` (rows as
 * objects).
 */
import type { Command } from "commander";
import { CliContext } from "../context.js";
import type { Output } from "../output.js";
import { rowObjects, runStatement, type QueryResult } from "../query.js";

export function registerSql(program: Command): void {
  program
    .command("sql")
    .description("run one SQL statement (in a READ ONLY transaction unless --write)")
    .argument("<query>", "the statement, quoted as one argument")
    .option("--write", "run in a read-write transaction and commit it")
    .action(async (query: string, options: { write?: boolean }, command: Command) => {
      const context = CliContext.of(command);
      const result = await context.withPool((pool) => runStatement(pool, query, { write: options.write === true }));
      if (context.json) context.output.printJson({ command: result.command, rowCount: result.rowCount, fields: result.fields, rows: rowObjects(result) });
      else printResult(context.output, result);
    });
}

/** A statement's rows as a table and their count, or its command tag when it returns no rows. */
export function printResult(output: Output, result: QueryResult): void {
  if (result.fields.length === 0) {
    output.line(`${result.command}${result.rowCount === null ? "" : ` ${result.rowCount}`}`);
    return;
  }
  const columns = result.fields.map((head, index) => ({ head, value: (row: unknown[]) => row[index] }));
  if (result.rows.length > 0) output.printTable(columns, result.rows);
  output.line(output.style.dim(`(${result.rows.length} row${result.rows.length === 1 ? "" : "s"})`));
}
