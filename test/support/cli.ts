/**
 * Runs the `nexus` CLI as a child process (`node --import tsx cli/main.ts ...`), the way
 * a user or a script does, against the test database.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { fileURLToPath } from "node:url";
import { CoreSystem } from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace } from "./database.js";

/** The repository's root: the CLI runs from there. */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** What a run printed and how it ended. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Environment added to the child's (CORE_DATABASE_URL and CORE_NAMESPACE are removed first). */
  env?: Record<string, string>;
  /** Kill the run after this many milliseconds (default 20,000). */
  timeoutMs?: number;
}

/** The child's environment: no database or namespace from the test runner, no colours. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", ...extra };
  if (!("CORE_DATABASE_URL" in extra)) delete env.CORE_DATABASE_URL;
  if (!("CORE_NAMESPACE" in extra)) delete env.CORE_NAMESPACE;
  delete env.FORCE_COLOR;
  return env;
}

/** Starts `nexus args...`; stdin is a pipe (not a terminal). */
export function spawnCli(args: string[], options: RunOptions = {}): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, ["--import", "tsx", "cli/main.ts", ...args], { cwd: REPO_ROOT, env: childEnv(options.env) });
}

/** Runs `nexus args...` to its end. */
export function runCli(args: string[], options: RunOptions = {}): Promise<CliRun> {
  const child = spawnCli(args, options);
  return collect(child, options.timeoutMs ?? 20_000);
}

/** Collects a started run's output until it exits (killing it after `timeoutMs`). */
export function collect(child: ChildProcessWithoutNullStreams, timeoutMs: number): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`nexus ${child.spawnargs.slice(4).join(" ")} did not end within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs `nexus --database-url <test database> --namespace <namespace> args...`. */
export function nexus(namespace: string, args: string[], options: RunOptions = {}): Promise<CliRun> {
  return runCli(["--database-url", testDatabaseUrl(), "--namespace", namespace, ...args], options);
}

/** Parses a run's stdout as one JSON document, failing with the run's output when it is not. */
export function parseJson<T>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(`stdout is not one JSON document (exit ${run.code})\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  }
}

/**
 * Brings the test database to the shipped schema (connecting migrates it): the CLI itself
 * never migrates implicitly, and a file may run first on a fresh database.
 */
export async function ensureSchema(): Promise<void> {
  const system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: uniqueNamespace("cli-schema") });
  await system.close();
}
