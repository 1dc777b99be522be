/**
 * Starts a PgBouncer in transaction mode in front of the test database, for tests of
 * running behind a pooler. Needs the `pgbouncer` binary (Debian package `pgbouncer`; CI
 * installs it).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";

/** A running PgBouncer. */
export interface Bouncer {
  /** `url` with host and port replaced by the bouncer's. */
  through(url: string): string;
  stop(): Promise<void>;
}

/** The installed PgBouncer's version line, or undefined when it is not installed. */
export function pgbouncerVersion(): string | undefined {
  const probe = spawnSync("pgbouncer", ["--version"], { encoding: "utf8" });
  return probe.status === 0 ? probe.stdout.split("\n")[0] : undefined;
}

/** Starts PgBouncer (transaction pooling) in front of the server of `url`. */
export async function startPgBouncer(url: string): Promise<Bouncer> {
  const target = new URL(url);
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), "nexus-pgbouncer-"));
  const backend = [
    `host=${target.hostname}`,
    `port=${target.port || "5432"}`,
    `user=${decodeURIComponent(target.username) || "postgres"}`,
    ...(target.password ? [`password=${decodeURIComponent(target.password)}`] : []),
  ].join(" ");
  const config = [
    "[databases]",
    `* = ${backend}`,
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    `listen_port = ${port}`,
    "unix_socket_dir =",
    "auth_type = any",
    "pool_mode = transaction",
    "max_client_conn = 500",
    "default_pool_size = 40",
    "ignore_startup_parameters = extra_float_digits,options",
    "",
  ].join("\n");
  const configFile = path.join(dir, "pgbouncer.ini");
  await writeFile(configFile, config);
  // PgBouncer refuses to run as root; -u drops to an unprivileged user, who must read the file.
  await chmod(dir, 0o755);
  await chmod(configFile, 0o644);
  const asRoot = process.getuid?.() === 0;
  const child: ChildProcess = spawn("pgbouncer", [...(asRoot ? ["-u", "nobody"] : []), configFile], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => (log += chunk.toString()));
  await waitForPort(port, () => log);
  return {
    through(original: string): string {
      const routed = new URL(original);
      routed.hostname = "127.0.0.1";
      routed.port = String(port);
      return routed.toString();
    },
    async stop(): Promise<void> {
      child.kill("SIGTERM");
      await new Promise((resolve) => (child.exitCode === null ? child.once("exit", resolve) : resolve(undefined)));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

async function waitForPort(port: number, log: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1", () => {
        socket.end();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`PgBouncer did not listen on ${port} within 10 s; its log:\n${log()}`);
}
