/**
 * Two processes chatting through one EventEmitter on PostgreSQL.
 *
 *   npx tsx examples/emitter/main.ts              # both sides, as two child processes
 *   npx tsx examples/emitter/main.ts --role a     # one side (b in another terminal); needs CORE_DATABASE_URL
 *
 * Without --role, the script finds its PostgreSQL (CORE_DATABASE_URL, or an embedded
 * server in .nexus/pgdata), starts side b, waits until it listens, then starts side a,
 * and relays their output. Each side is a PgEventEmitter in broadcast mode: its own
 * listener runs synchronously inside emit, as with node:events, and the other process's
 * listener hears the same event from the bus. They answer each other until the sixth
 * message, then say goodbye.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { pino } from "pino";
import { PgEventEmitter } from "../../adapters/events/index.js";
import { resolveDatabaseServer } from "../../apps/shared/database.js";

/** The chat's events; `error` (local, never published) carries failed publishes. */
interface Chat {
  "chat.message": [from: string, text: string, n: number];
  "chat.bye": [from: string];
  error: [error: Error];
}

const LAST_MESSAGE = 6;
const namespace = process.env.CORE_NAMESPACE ?? "demo";
const logger = pino({ name: "emitter", level: process.env.CORE_LOG_LEVEL ?? "warn" });

/** One side of the chat: listens, answers the other side, and leaves after goodbye. */
async function runRole(role: "a" | "b", connectionString: string): Promise<void> {
  const other = role === "a" ? "b" : "a";
  const chat = new PgEventEmitter<Chat>({ connectionString, namespace, logger });
  chat.on("error", (error) => console.error(`[${role}] ${error.message}`));
  const goodbye = once(chat, "chat.bye");

  chat.on("chat.message", (from, text, n) => {
    if (from === role) {
      console.log(`[${role}] (my own listener, inside emit) ${from}#${n}: ${text}`);
      return;
    }
    console.log(`[${role}] heard ${from}#${n}: ${text}`);
    if (n < LAST_MESSAGE) chat.emit("chat.message", role, `thanks ${other}, message ${n + 1} from ${role}`, n + 1);
    else void chat.emitAsync("chat.bye", role);
  });
  await chat.ready(); // connected, and the listeners above are subscribed on the bus
  console.log(`[${role}] listening in namespace ${namespace} as node ${chat.node.nodeId}`);

  if (role === "a") chat.emit("chat.message", "a", "hello b, this is a", 1);
  const timeout = setTimeout(() => chat.emit("chat.bye", role), 30_000);
  const [from] = await goodbye;
  clearTimeout(timeout);
  console.log(`[${role}] ${from === role ? "said" : `${from} said`} goodbye`);
  await chat.close();
}

/** Both sides as child processes of this one, b first so that it hears a's first message. */
async function runBoth(): Promise<void> {
  const server = await resolveDatabaseServer({ dataDir: ".nexus/pgdata", log: (message) => console.log(`[main] ${message}`) });
  try {
    const b = startRole("b", server.url);
    await waitForLine(b, "listening");
    const a = startRole("a", server.url);
    const codes = await Promise.all([exitCode(a), exitCode(b)]);
    if (codes.some((code) => code !== 0)) process.exitCode = 1;
  } finally {
    await server.stop();
  }
}

function startRole(role: "a" | "b", url: string): ReturnType<typeof spawn> {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ["--import", "tsx", script, "--role", role], {
    cwd: path.resolve(path.dirname(script), "../.."),
    env: { ...process.env, CORE_DATABASE_URL: url },
    stdio: ["ignore", "pipe", "inherit"],
  });
  child.stdout!.on("data", (chunk: Buffer) => process.stdout.write(chunk));
  return child;
}

function waitForLine(child: ReturnType<typeof spawn>, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      if (!chunk.toString().includes(text)) return;
      child.stdout!.off("data", onData);
      resolve();
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`side exited with code ${code} before it listened`)));
  });
}

async function exitCode(child: ReturnType<typeof spawn>): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const [code] = (await once(child, "exit")) as [number | null];
  return code;
}

async function main(): Promise<void> {
  const roleIndex = process.argv.indexOf("--role");
  if (roleIndex < 0) return runBoth();
  const role = process.argv[roleIndex + 1];
  if (role !== "a" && role !== "b") throw new Error("--role takes a or b");
  const url = process.env.CORE_DATABASE_URL;
  if (!url) throw new Error("--role needs CORE_DATABASE_URL (without --role, the script starts a database and both sides)");
  await runRole(role, url);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
