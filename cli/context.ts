/**
 * What every command needs: the global options resolved (database URL, namespace, output
 * mode), the logger, and short-lived database resources that are always released: a
 * plain pool for catalog queries, a CoreSystem for the library's operations, and a node
 * named `nexus-cli` for the operations that need one (schedules).
 */
import { randomUUID } from "node:crypto";
import type { Command } from "commander";
import pg from "pg";
import type { Logger } from "pino";
import { asError, assertNamespace, ConnectionError, CoreSystem, loadMigrations, redactConnectionString, type CoreNode } from "../core/index.js";
import { inspectSchema, toNexusError } from "../core/internal.js";
import { CliFailure, UsageError } from "./errors.js";
import { createCliLogger, LogSink, Progress } from "./logging.js";
import { colorWanted, Output } from "./output.js";

/** The options every command accepts (declared on the program). */
export interface GlobalOptions {
  databaseUrl?: string;
  namespace?: string;
  json?: boolean;
  color?: boolean;
  verbose?: boolean;
}

/** `application_name` of the CLI's connections. */
export const APPLICATION_NAME = "nexus-cli";
/** Display name of the node the CLI registers for operations that need one. */
export const CLI_NODE_NAME = "nexus-cli";
const DEFAULT_NAMESPACE = "demo";

/** Where the schema of the database stands against the migrations this release ships. */
export interface SchemaState {
  /** Highest applied version (0: no schema). */
  applied: number;
  shipped: number;
  state: "current" | "behind" | "ahead" | "missing";
  /** Function files (`sql/functions/`) this database does not have as shipped: `nexus migrate` applies them. */
  outdatedFunctionFiles: string[];
}

export class CliContext {
  readonly output: Output;
  readonly verbose: boolean;
  readonly logSink: LogSink;
  readonly #options: GlobalOptions;
  readonly #env: NodeJS.ProcessEnv;
  #logger: Logger | undefined;

  constructor(options: GlobalOptions, env: NodeJS.ProcessEnv = process.env) {
    this.#options = options;
    this.#env = env;
    this.verbose = options.verbose === true;
    this.output = new Output({ json: options.json === true, color: colorWanted(options.color !== false, env) });
    this.logSink = new LogSink((text) => this.output.rawErr(text), this.verbose);
  }

  /** The context of the command being run, from its options and its parents'. */
  static of(command: Command): CliContext {
    return new CliContext(command.optsWithGlobals<GlobalOptions>());
  }

  get json(): boolean {
    return this.output.json;
  }

  /** `--database-url`, else `CORE_DATABASE_URL`; a usage error when neither is set. */
  get databaseUrl(): string {
    const url = this.#options.databaseUrl ?? this.#env.CORE_DATABASE_URL;
    if (!url) {
      throw new UsageError(
        "no database given: pass --database-url postgres://user@host:5432/core or set CORE_DATABASE_URL " +
          "(the nexus CLI works on an existing PostgreSQL; it does not start an embedded one).",
      );
    }
    return url;
  }

  /** The URL with its password hidden, for messages. */
  get displayUrl(): string {
    return redactConnectionString(this.databaseUrl);
  }

  /** `--namespace`, else `CORE_NAMESPACE`, else `demo`; checked against the library's grammar. */
  get namespace(): string {
    const namespace = this.#options.namespace ?? this.#env.CORE_NAMESPACE ?? DEFAULT_NAMESPACE;
    try {
      assertNamespace(namespace);
    } catch (error) {
      throw new UsageError(asError(error).message);
    }
    return namespace;
  }

  get logger(): Logger {
    return (this.#logger ??= createCliLogger(this.logSink, this.verbose));
  }

  /** A progress line on stderr. */
  progress(): Progress {
    return new Progress((text) => this.output.rawErr(text), this.output.stderrIsTty);
  }

  /** Runs `work` with a small pool of plain connections, ended afterwards. */
  async withPool<T>(work: (pool: pg.Pool) => Promise<T>): Promise<T> {
    const url = this.databaseUrl;
    const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 1_000, application_name: APPLICATION_NAME });
    pool.on("error", (error) => this.logger.warn({ err: new ConnectionError(toNexusError(error, "keep a connection", url).message) }, "database connection lost"));
    try {
      return await work(pool);
    } catch (error) {
      if (error instanceof CliFailure || error instanceof UsageError) throw error;
      throw toNexusError(error, "query the database", url);
    } finally {
      await pool.end().catch(() => {});
    }
  }

  /**
   * Runs `work` with a CoreSystem on the namespace. The CLI never migrates implicitly:
   * a database whose schema is not the shipped one is a failure that says to run
   * `nexus migrate` (or to upgrade, for a newer schema).
   */
  async withSystem<T>(work: (system: CoreSystem) => Promise<T>): Promise<T> {
    const schema = await this.withPool((pool) => readSchemaState(pool));
    assertSchemaCurrent(schema, this.displayUrl);
    const system = await CoreSystem.connect({
      connectionString: this.databaseUrl,
      namespace: this.namespace,
      logger: this.logger,
      migrate: false,
      applicationName: APPLICATION_NAME,
      pool: { max: 3, connectionTimeoutMs: 10_000 },
    });
    try {
      return await work(system);
    } finally {
      await system.close();
    }
  }

  /**
   * Runs `work` with a node named `nexus-cli`, registered for the call and stopped
   * afterwards. Its id is always a new one: `CORE_NODE_ID` names a service's node, which
   * the CLI must not take over or mark stopped.
   */
  async withNode<T>(work: (node: CoreNode) => Promise<T>): Promise<T> {
    return this.withSystem(async (system) => {
      const node = await system.registerNode({ displayName: CLI_NODE_NAME, nodeId: randomUUID(), metadata: { tool: "nexus-cli" } });
      try {
        return await work(node);
      } finally {
        await node.stop({ graceMs: 0 });
      }
    });
  }
}

/** Reads the highest applied migration and compares it with the shipped files. */
export async function readSchemaState(pool: pg.Pool | pg.ClientBase): Promise<SchemaState> {
  const shipped = (await loadMigrations()).length;
  const exists = await pool.query<{ exists: boolean }>("select to_regclass('core.schema_migrations') is not null as exists");
  if (!exists.rows[0]?.exists) return { applied: 0, shipped, state: "missing", outdatedFunctionFiles: [] };
  const { rows } = await pool.query<{ applied: number }>("select coalesce(max(version), 0)::int as applied from core.schema_migrations");
  const applied = rows[0]?.applied ?? 0;
  if (applied === 0) return { applied: 0, shipped, state: "missing", outdatedFunctionFiles: [] };
  if (applied !== shipped) return { applied, shipped, state: applied < shipped ? "behind" : "ahead", outdatedFunctionFiles: [] };
  const { outdatedFunctionFiles } = await inspectSchema(pool);
  return { applied, shipped, state: outdatedFunctionFiles.length === 0 ? "current" : "behind", outdatedFunctionFiles };
}

/** Fails with what to do unless the schema is the shipped one. */
export function assertSchemaCurrent(schema: SchemaState, displayUrl: string): void {
  if (schema.state === "current") return;
  if (schema.state === "missing") {
    throw new CliFailure(`the database at ${displayUrl} has no Nexus Core schema: run nexus migrate first.`);
  }
  if (schema.state === "behind" && schema.applied === schema.shipped) {
    throw new CliFailure(`the database at ${displayUrl} has outdated function files (${schema.outdatedFunctionFiles.join(", ")}): run nexus migrate.`);
  }
  if (schema.state === "behind") {
    throw new CliFailure(`the database at ${displayUrl} is at schema version ${schema.applied}; this release ships ${schema.shipped}: run nexus migrate.`);
  }
  throw new CliFailure(
    `the database at ${displayUrl} was migrated to version ${schema.applied} by a newer release (this one knows up to ${schema.shipped}): upgrade @nexus-core/core.`,
  );
}
