/**
 * PgEventEmitter across real processes: child processes running
 * fixtures/peer.ts, and an emitter in this one. Exact counts in both modes.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { PgEventEmitter } from "../../../adapters/events/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../../support/database.js";
import { sleep, waitUntil } from "../../support/wait.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const peerScript = path.join(repoRoot, "test/adapters/events/fixtures/peer.ts");

type Report = { ready?: boolean; heard?: string; args?: unknown[]; emitted?: string; name: string; nodeId?: string };

/** A child process running the peer fixture, and what it reported. */
class Peer {
  readonly child: ChildProcessWithoutNullStreams;
  readonly reports: Report[] = [];
  readonly exited: Promise<number | null>;
  #stderr = "";

  constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, ["--import", "tsx", peerScript], {
      cwd: repoRoot,
      env: { ...process.env, CORE_LOG_LEVEL: "warn", ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let buffer = "";
    this.child.stdout.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 1);
        if (line.startsWith("PEER ")) this.reports.push(JSON.parse(line.slice(5)) as Report);
      }
    });
    this.child.stderr.on("data", (chunk: Buffer) => void (this.#stderr += chunk.toString()));
    this.exited = new Promise((resolve) => this.child.once("exit", (code) => resolve(code)));
  }

  heard(event: string): unknown[][] {
    return this.reports.filter((report) => report.heard === event).map((report) => report.args!);
  }

  async ready(): Promise<void> {
    await waitUntil(`a peer to start (stderr: ${this.#stderr.slice(0, 500)})`, () => this.reports.some((report) => report.ready), Boolean, 30_000);
  }

  emit(event: string, ...args: unknown[]): void {
    this.child.stdin.write(`${JSON.stringify({ emit: event, args })}\n`);
  }

  async stop(): Promise<void> {
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

const peers: Peer[] = [];
const emitters: PgEventEmitter[] = [];
afterEach(async () => {
  await Promise.all([...peers.splice(0).map((peer) => peer.stop()), ...emitters.splice(0).map((emitter) => emitter.close())]);
});

function startPeers(count: number, env: Record<string, string>): Peer[] {
  const started = Array.from({ length: count }, (_, index) => new Peer({ PEER_DATABASE_URL: testDatabaseUrl(), PEER_NAME: `peer${index}`, ...env }));
  peers.push(...started);
  return started;
}

async function localEmitter(namespace: string): Promise<PgEventEmitter> {
  const emitter = await PgEventEmitter.create({ connectionString: testDatabaseUrl(), namespace });
  emitters.push(emitter);
  return emitter;
}

describe("PgEventEmitter between processes", () => {
  it("broadcast: each process hears each event once, the emitting process included", async () => {
    const namespace = uniqueNamespace("ee-procs");
    const [first, second] = startPeers(2, { PEER_NAMESPACE: namespace, PEER_EVENTS: "chat.message" });
    const here = await localEmitter(namespace);
    const heardHere: unknown[][] = [];
    here.on("chat.message", (...args: unknown[]) => void heardHere.push(args));
    await Promise.all([here.ready(), first!.ready(), second!.ready()]);

    for (let n = 0; n < 5; n += 1) here.emit("chat.message", "here", n);
    for (let n = 0; n < 3; n += 1) first!.emit("chat.message", "peer0", n);

    const expected = [...Array.from({ length: 5 }, (_, n) => ["here", n]), ...Array.from({ length: 3 }, (_, n) => ["peer0", n])];
    const sorted = (list: unknown[][]): string[] => list.map((args) => JSON.stringify(args)).sort();
    await waitUntil(
      "8 events in every process",
      () => [heardHere.length, first!.heard("chat.message").length, second!.heard("chat.message").length],
      (lengths) => lengths.every((n) => n >= 8),
      20_000,
    );
    await sleep(500);
    for (const list of [heardHere, first!.heard("chat.message"), second!.heard("chat.message")]) expect(sorted(list)).toEqual(sorted(expected));
  });

  it("group: three processes of one group handle each event once between them", async () => {
    const namespace = uniqueNamespace("ee-procs-group");
    const workers = startPeers(3, { PEER_NAMESPACE: namespace, PEER_EVENTS: "job.run", PEER_MODE: "group", PEER_GROUP: "workers" });
    await Promise.all(workers.map((worker) => worker.ready()));
    const here = await localEmitter(namespace);
    for (let n = 0; n < 24; n += 1) here.emit("job.run", n);

    const handled = (): number[] => workers.flatMap((worker) => worker.heard("job.run").map((args) => args[0] as number));
    await waitUntil("24 jobs handled", () => handled().length, (n) => n >= 24, 20_000);
    await sleep(500);
    expect(handled().sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, n) => n));
  });
});
