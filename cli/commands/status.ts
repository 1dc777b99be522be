/**
 * `nexus status`: is the database reachable, is its schema the shipped one, which
 * optional extensions it has, and how many nodes, queues and dead letters the namespace
 * holds. Exits 1 when the database is unreachable or its schema is not current, so it
 * can serve as a health check.
 */
import type { Command } from "commander";
import type pg from "pg";
import { asError } from "../../core/index.js";
import { CliContext, readSchemaState, type SchemaState } from "../context.js";
import { CliFailure } from "../errors.js";

/** The optional extensions the library uses, and what replaces each where it is missing. */
const EXTENSIONS: [name: string, without: string][] = [
  ["pgmq", "pgmq-compatible SQL"],
  ["pg_cron", "fallback scheduler on started nodes"],
  ["pg_partman", "partitions managed by the project"],
  ["pg_stat_statements", "no top queries"],
];

interface ExtensionStatus {
  name: string;
  installed: string | null;
  available: boolean;
}

interface Counts {
  nodes: { alive: number; stopped: number; dead: number };
  queues: number;
  deadLetters: number;
}

/** What `status --json` prints. */
export interface StatusReport {
  ok: boolean;
  database: { url: string; reachable: boolean; serverVersion: string | null; error?: string };
  schema: SchemaState | null;
  extensions: ExtensionStatus[];
  namespace: string;
  counts: Counts | null;
}

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description("database reachability, schema version, extensions, and counts of nodes, queues and dead letters")
    .action(async (_options: unknown, command: Command) => {
      const context = CliContext.of(command);
      const report = await readStatus(context);
      if (context.json) context.output.printJson(report);
      else printStatus(context, report);
      if (!report.ok) throw new CliFailure(report.database.reachable ? statusProblem(report) : `the database at ${report.database.url} is unreachable.`);
    });
}

/** Why a reachable database is not ok. */
function statusProblem(report: StatusReport): string {
  if (report.database.error) return "the status could not be read (see above).";
  if (report.schema?.state === "ahead") return "the database's schema is newer than this release: upgrade @nexus-core/core.";
  return "the database's schema is not current: run nexus migrate.";
}

async function readStatus(context: CliContext): Promise<StatusReport> {
  const report: StatusReport = {
    ok: false,
    database: { url: context.displayUrl, reachable: false, serverVersion: null },
    schema: null,
    extensions: [],
    namespace: context.namespace,
    counts: null,
  };
  try {
    await context.withPool(async (pool) => {
      report.database.serverVersion = await serverVersion(pool);
      report.database.reachable = true;
      report.schema = await readSchemaState(pool);
      report.extensions = await readExtensions(pool);
    });
  } catch (error) {
    report.database.error = asError(error).message;
    return report;
  }
  if (report.schema?.state === "current") {
    report.counts = await readCounts(context);
    report.ok = true;
  }
  return report;
}

async function serverVersion(pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query<{ version: string }>("select current_setting('server_version') as version");
  return rows[0]?.version ?? "unknown";
}

async function readExtensions(pool: pg.Pool): Promise<ExtensionStatus[]> {
  const names = EXTENSIONS.map(([name]) => name);
  const { rows } = await pool.query<{ name: string; installed: string | null; available: boolean }>(
    `select n.name, e.extversion as installed, a.name is not null as available
       from unnest($1::text[]) with ordinality as n(name, ord)
       left join pg_extension e on e.extname = n.name
       left join pg_available_extensions a on a.name = n.name
      order by n.ord`,
    [names],
  );
  return rows;
}

async function readCounts(context: CliContext): Promise<Counts> {
  const snapshot = await context.withSystem((system) => system.metrics());
  const nodes = { alive: 0, stopped: 0, dead: 0 };
  for (const node of snapshot.nodes) nodes[node.alive ? "alive" : node.status === "alive" ? "dead" : node.status] += 1;
  return {
    nodes,
    queues: snapshot.groups.length,
    deadLetters: snapshot.groups.reduce((sum, group) => sum + (group.deadLetterLength ?? 0), 0),
  };
}

function printStatus(context: CliContext, report: StatusReport): void {
  const { style } = context.output;
  const database = report.database.reachable
    ? `${report.database.url} ${style.green("reachable")} (PostgreSQL ${report.database.serverVersion})`
    : `${report.database.url} ${style.red("unreachable")}`;
  const fields: [string, unknown][] = [["database", database]];
  if (report.schema) fields.push(["schema", describeSchema(report.schema, context)]);
  if (report.database.reachable) {
    fields.push(["extensions", report.extensions.map((extension) => describeExtension(extension, context)).join("\n")]);
  }
  fields.push(["namespace", report.namespace]);
  if (report.counts) {
    const { nodes, queues, deadLetters } = report.counts;
    fields.push(["nodes", `${nodes.alive} alive, ${nodes.stopped} stopped, ${nodes.dead} dead (seen in the last hour)`]);
    fields.push(["queues", `${queues}`]);
    fields.push(["dead letters", deadLetters > 0 ? style.yellow(String(deadLetters)) : "0"]);
  }
  context.output.printFields(fields);
  if (report.database.error) context.output.note(report.database.error);
}

function describeSchema(schema: SchemaState, context: CliContext): string {
  const { style } = context.output;
  switch (schema.state) {
    case "current":
      return `version ${schema.applied} of ${schema.shipped} ${style.green("(current)")}`;
    case "behind":
      if (schema.outdatedFunctionFiles.length > 0) {
        return `version ${schema.applied} of ${schema.shipped}, function files ${schema.outdatedFunctionFiles.join(", ")} outdated ${style.yellow("(behind: run nexus migrate)")}`;
      }
      return `version ${schema.applied} of ${schema.shipped} ${style.yellow("(behind: run nexus migrate)")}`;
    case "ahead":
      return `version ${schema.applied}, newer than this release's ${schema.shipped} ${style.red("(upgrade @nexus-core/core)")}`;
    default:
      return `${style.yellow("none")} (run nexus migrate)`;
  }
}

function describeExtension(extension: ExtensionStatus, context: CliContext): string {
  if (extension.installed) return `${extension.name} ${extension.installed}`;
  const without = EXTENSIONS.find(([name]) => name === extension.name)?.[1] ?? "";
  return context.output.style.dim(`${extension.name}: ${extension.available ? "available, not installed" : "not available"} (${without})`);
}
