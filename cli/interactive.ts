/**
 * The interactive menu `nexus` opens at a terminal when given no command (the seed's
 * database interrogation tool): browse the tables of schemas `core` and `pgmq`, run a
 * read-only query, view the namespace's queues and nodes. Ctrl-C in a prompt goes back
 * to the menu; in the menu, it quits.
 */
import { intro, isCancel, log, outro, select, spinner, text } from "@clack/prompts";
import pg from "pg";
import { asError } from "../core/index.js";
import { assertSchemaCurrent, type CliContext, readSchemaState } from "./context.js";
import { nodeColumns } from "./commands/nodes.js";
import { queueColumns, queueFigures } from "./commands/queues.js";
import { renderTable } from "./output.js";
import { runStatement, type QueryResult } from "./query.js";

/** Rows shown when browsing a table. */
const BROWSE_ROWS = 20;
/** Rows of a query's result shown on screen. */
const SHOWN_ROWS = 100;
/** Room the menu's guide line takes left of a table. */
const GUIDE_WIDTH = 3;

type Choice = "browse" | "query" | "metrics" | "quit";

export async function interactive(context: CliContext): Promise<void> {
  intro(`nexus: ${context.displayUrl}, namespace ${context.namespace}`);
  await context.withPool(async (pool) => {
    for (;;) {
      const choice = await select<Choice>({
        message: "What would you like to do?",
        options: [
          { value: "browse", label: "Browse tables", hint: "schemas core and pgmq" },
          { value: "query", label: "Run a query", hint: "read-only" },
          { value: "metrics", label: "View metrics", hint: "queues and nodes" },
          { value: "quit", label: "Quit" },
        ],
      });
      if (isCancel(choice) || choice === "quit") break;
      try {
        if (choice === "browse") await browse(context, pool);
        else if (choice === "query") await query(context, pool);
        else await metrics(context, pool);
      } catch (error) {
        log.error(asError(error).message);
      }
    }
  });
  outro("bye");
}

async function browse(context: CliContext, pool: pg.Pool): Promise<void> {
  const schema = await select({
    message: "Schema",
    options: [
      { value: "core", label: "core", hint: "namespaces, nodes, event log, subscriptions, schedules" },
      { value: "pgmq", label: "pgmq", hint: "queues" },
    ],
  });
  if (isCancel(schema)) return;
  const { rows } = await pool.query<{ name: string }>(
    `select c.relname as name
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind in ('r', 'p', 'v', 'm') and not c.relispartition
      order by c.relname`,
    [schema],
  );
  if (rows.length === 0) {
    log.warn(`schema ${schema} has no tables here (run nexus migrate)`);
    return;
  }
  const table = await select({ message: `Table of ${schema}`, options: rows.map((row) => ({ value: row.name, label: row.name })), maxItems: 15 });
  if (isCancel(table)) return;
  const name = `${pg.escapeIdentifier(schema)}.${pg.escapeIdentifier(table)}`;
  const result = await runStatement(pool, `select * from ${name} limit ${BROWSE_ROWS}`, { write: false });
  show(context, result, `${schema}.${table}: first ${BROWSE_ROWS} rows`);
}

async function query(context: CliContext, pool: pg.Pool): Promise<void> {
  const sql = await text({
    message: "Query (runs in a READ ONLY transaction)",
    placeholder: "select node_id, display_name, status from core.nodes",
    validate: (value) => (value?.trim() ? undefined : "type a query, or Ctrl-C to go back"),
  });
  if (isCancel(sql)) return;
  show(context, await runStatement(pool, sql, { write: false }), "result");
}

async function metrics(context: CliContext, pool: pg.Pool): Promise<void> {
  assertSchemaCurrent(await readSchemaState(pool), context.displayUrl);
  const loading = spinner();
  loading.start("reading metrics");
  let snapshot;
  try {
    snapshot = await context.withSystem((system) => system.metrics());
  } finally {
    loading.stop("metrics read");
  }
  const color = context.output.color;
  log.step(`Queues of namespace ${snapshot.namespace} (${snapshot.groups.length})`);
  log.message(snapshot.groups.length ? renderTable(queueColumns(context), snapshot.groups.map(queueFigures), color, screenWidth()) : "(no consumer groups)");
  log.step(`Nodes of namespace ${snapshot.namespace} (${snapshot.nodes.length})`);
  log.message(snapshot.nodes.length ? renderTable(nodeColumns(context), snapshot.nodes, color, screenWidth()) : "(no nodes)");
}

function show(context: CliContext, result: QueryResult, title: string): void {
  if (result.fields.length === 0) {
    log.success(`${result.command} ${result.rowCount ?? ""}`);
    return;
  }
  const shown = result.rows.slice(0, SHOWN_ROWS);
  const columns = result.fields.map((head, index) => ({ head, value: (row: unknown[]) => row[index] }));
  log.step(`${title} (${result.rows.length} row${result.rows.length === 1 ? "" : "s"}${shown.length < result.rows.length ? `, first ${shown.length} shown` : ""})`);
  if (shown.length > 0) log.message(renderTable(columns, shown, context.output.color, screenWidth()));
}

/** Width a table may take on screen. */
function screenWidth(): number {
  return (process.stdout.columns || 120) - GUIDE_WIDTH;
}
