/** Child processes for process-level tests (a consumer killed mid-handler, a responder in another process). */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { within } from "./wait.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * A fixture script in a child process (`node --import tsx`), reporting progress as
 * `FIXTURE {json}` lines on stdout; everything else it prints is kept for error messages.
 */
export class FixtureProcess<TReport = Record<string, unknown>> {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The reports received so far, in order. */
  readonly reports: TReport[] = [];
  readonly #listeners = new Set<() => void>();
  #output = "";
  #buffer = "";

  constructor(script: string, env: Record<string, string>) {
    this.child = spawn(process.execPath, ["--import", "tsx", script], {
      cwd: repoRoot,
      env: { ...process.env, CORE_LOG_LEVEL: "warn", ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.exited = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve({ code, signal })));
    this.child.stdout.setEncoding("utf8").on("data", (chunk: string) => this.#onStdout(chunk));
    this.child.stderr.setEncoding("utf8").on("data", (chunk: string) => (this.#output += chunk));
    this.child.once("exit", () => this.#listeners.forEach((listener) => listener()));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits for a report line accepted by `accept`; fails on timeout or if the child exits first. */
  waitForReport(what: string, accept: (report: TReport) => boolean, ms: number): Promise<TReport> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.reports.find(accept);
        if (found) return finish(() => resolve(found));
        if (!this.running) return finish(() => reject(new Error(`Child exited (${this.child.exitCode ?? this.child.signalCode}) before ${what}. Output:\n${this.#output}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}. Child output:\n${this.#output}`))), ms);
      const finish = (settle: () => void): void => {
        clearTimeout(timer);
        this.#listeners.delete(check);
        settle();
      };
      this.#listeners.add(check);
      check();
    });
  }

  /** SIGKILLs the child (if still running) and waits for it to exit. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill("SIGKILL");
    await within(5_000, `child ${this.child.pid} to exit after SIGKILL`, this.exited);
  }

  #onStdout(chunk: string): void {
    this.#buffer += chunk;
    let newline: number;
    while ((newline = this.#buffer.indexOf("\n")) >= 0) {
      const line = this.#buffer.slice(0, newline);
      this.#buffer = this.#buffer.slice(newline + 1);
      if (line.startsWith("FIXTURE ")) this.reports.push(JSON.parse(line.slice("FIXTURE ".length)) as TReport);
      else this.#output += `${line}\n`;
    }
    this.#listeners.forEach((listener) => listener());
  }
}
