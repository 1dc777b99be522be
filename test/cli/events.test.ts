/**
 * `nexus events tail` (live, through LISTEN and the event log) and `nexus events replay`.
 */
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, type CoreNode } from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { waitUntil } from "../support/wait.js";
import { collect, nexus, parseJson, spawnCli, type CliRun } from "../support/cli.js";

const namespace = uniqueNamespace("cli-events");
let system: CoreSystem;
let producer: CoreNode;

beforeAll(async () => {
  system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace });
  producer = await system.registerNode({ displayName: "producer" });
});
afterAll(() => system.close());

/** Starts `events tail` in `space` and resolves once it says it is following. */
async function startTail(space: string, args: string[]): Promise<{ child: ChildProcessWithoutNullStreams; done: Promise<CliRun> }> {
  const child = spawnCli(["--database-url", testDatabaseUrl(), "--namespace", space, "events", "tail", ...args]);
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const done = collect(child, 20_000);
  await waitUntil("the tail to start following", () => stderr, (text) => text.includes("following") || child.exitCode !== null);
  return { child, done };
}

// Every test works in a namespace or database of its own: they run at once.
describe.concurrent("nexus events", () => {
  describe("events tail", () => {
    it("prints the events emitted after it started that match its pattern, and exits after --limit", async () => {
      await producer.emit("order.created", { before: true });
      // A subscribed group: these emits NOTIFY the namespace channel.
      const consumer = await system.registerNode({ displayName: "audit" });
      await consumer.onEvent("**", () => {}, { group: "audit" });
      await consumer.start();

      const tail = await startTail(namespace, ["order.*", "--limit", "2", "--json"]);
      const first = await producer.emit("order.created", { n: 1 });
      await producer.emit("user.signed_up", { n: 2 });
      const second = await producer.emit("order.paid", { n: 3 });
      const run = await tail.done;

      expect(run.code).toBe(0);
      const lines = run.stdout.trim().split("\n").map((line) => JSON.parse(line) as { id: string; type: string; payload: unknown; sourceNode: string });
      expect(lines.map((event) => [event.id, event.type, event.payload])).toEqual([
        [first, "order.created", { n: 1 }],
        [second, "order.paid", { n: 3 }],
      ]);
      expect(lines[0]!.sourceNode).toBe(producer.nodeId);
      await consumer.stop();
    });

    it("wakes by polling too (no group subscribes, so no NOTIFY), printing one line per event", async () => {
      const quiet = uniqueNamespace("cli-quiet");
      const other = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: quiet });
      try {
        const node = await other.registerNode({ displayName: "producer" });
        const tail = await startTail(quiet, ["--limit", "2"]);
        const ids = [await node.emit("a.b", { x: 1 }), await node.emit("c.d", "text")];
        const run = await tail.done;
        expect(run.code).toBe(0);
        const lines = run.stdout.trim().split("\n");
        expect(lines).toHaveLength(2);
        expect(lines[0]).toMatch(new RegExp(`^\\S+Z  a\\.b  ${ids[0]}  \\{"x":1\\}$`));
        expect(lines[1]).toMatch(new RegExp(`^\\S+Z  c\\.d  ${ids[1]}  "text"$`));
      } finally {
        await other.close();
      }
    });

    it("stops on SIGINT with exit 0", async () => {
      const tail = await startTail(namespace, []);
      const started = Date.now();
      tail.child.kill("SIGINT");
      const run = await tail.done;
      expect(run.code).toBe(0);
      expect(Date.now() - started).toBeLessThan(5_000);
    });
  });

  describe("events replay", () => {
    const space = uniqueNamespace("cli-replay");
    let replaySystem: CoreSystem;
    beforeAll(async () => {
      replaySystem = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: space });
    });
    afterAll(() => replaySystem.close());

    it("counts with --dry-run, re-enqueues with progress, and exits 1 for an unknown group", async () => {
      const from = new Date(Date.now() - 60_000).toISOString();
      // Emitted before the group subscribes: its queue then holds only the replayed copies.
      const producer = await replaySystem.registerNode({ displayName: "producer" });
      for (const type of ["order.created", "order.paid", "user.signed_up", "order.created"]) await producer.emit(type, { type });
      const replayed = await replaySystem.registerNode({ displayName: "replayed" });
      await replayed.onEvent("order.*", () => {}, { group: "replayed" });
      // Started to record the durable subscription, stopped so that the copies stay queued.
      await replayed.start();
      await replayed.stop();
      const to = new Date(Date.now() + 60_000).toISOString();

      const [dry, unknown, badTime] = await Promise.all([
        nexus(space, ["events", "replay", "--group", "replayed", "--from", from, "--to", to, "--dry-run", "--json"]),
        nexus(space, ["events", "replay", "--group", "nobody", "--from", from, "--to", to]),
        nexus(space, ["events", "replay", "--group", "replayed", "--from", "yesterday", "--to", to]),
      ]);
      expect(dry.code).toBe(0);
      const counted = parseJson<{ count: number; dryRun: boolean }>(dry);
      expect(counted).toMatchObject({ dryRun: true, count: 3 });
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/^error: Group nobody has no queue/);
      expect(badTime.code).toBe(2);

      const run = await nexus(space, ["events", "replay", "--group", "replayed", "--from", from, "--to", to, "--type", "order.paid", "--type", "order.created", "--batch-size", "1"]);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^replayed ${counted.count} events to group replayed \\(replay [0-9a-f-]{36}\\)\\n$`));
      expect(run.stderr).toContain(`replaying ${counted.count} events to group replayed...`);
      expect(run.stderr).toContain(`replayed ${counted.count} of ${counted.count} events`);
      const metrics = await replaySystem.metrics();
      expect(metrics.groups.find((group) => group.group === "replayed")?.queueLength).toBe(3);
    });
  });
});
