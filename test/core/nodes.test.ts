import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClosedError, CoreSystem } from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace, withClient } from "../support/database.js";

interface NodeRow {
  status: string;
  display_name: string;
  metadata: Record<string, unknown>;
  last_heartbeat_at: Date;
  stopped_at: Date | null;
}

function readNode(nodeId: string): Promise<NodeRow | undefined> {
  return withClient(testDatabaseUrl(), async (client) => {
    const { rows } = await client.query<NodeRow>(
      "select status, display_name, metadata, last_heartbeat_at, stopped_at from core.nodes where node_id = $1",
      [nodeId],
    );
    return rows[0];
  });
}

async function waitFor<T>(probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (accept(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("nodes", () => {
  let system: CoreSystem;
  beforeAll(async () => {
    system = await CoreSystem.connect({
      connectionString: testDatabaseUrl(),
      namespace: uniqueNamespace("nodes"),
      heartbeatIntervalMs: 100,
      nodeTtlMs: 400,
    });
  });
  afterAll(() => system.close());

  it("registers a node in core.nodes with its name and metadata", async () => {
    const node = await system.registerNode({ displayName: "api", metadata: { role: "producer" } });
    const row = await readNode(node.nodeId);
    expect(row).toMatchObject({ status: "alive", display_name: "api", metadata: { role: "producer" }, stopped_at: null });
    await node.stop();
  });

  it("advances the heartbeat on its timer", async () => {
    const node = await system.registerNode({ displayName: "beating" });
    const first = (await readNode(node.nodeId))!.last_heartbeat_at;
    const later = await waitFor(() => readNode(node.nodeId), (row) => row!.last_heartbeat_at > first);
    expect(later!.last_heartbeat_at.getTime()).toBeGreaterThan(first.getTime());
    await node.stop();
  });

  it("marks a node stopped on stop(), and stop() is idempotent", async () => {
    const node = await system.registerNode({ displayName: "stopper" });
    await node.stop();
    await node.stop();
    expect(await readNode(node.nodeId)).toMatchObject({ status: "stopped" });
    expect(node.stopped).toBe(true);
  });

  it("marks a node dead once its heartbeat has been silent past the TTL", async () => {
    const watcher = await system.registerNode({ displayName: "watcher" });
    const silentSystem = await CoreSystem.connect({
      connectionString: testDatabaseUrl(),
      namespace: system.namespace,
      heartbeatIntervalMs: 60_000,
      nodeTtlMs: 120_000,
    });
    const silent = await silentSystem.registerNode({ displayName: "silent" });
    // The silent node's timer will not fire within the test; the watcher's TTL (400 ms) judges it.
    const row = await waitFor(() => readNode(silent.nodeId), (r) => r?.status === "dead");
    expect(row?.status).toBe("dead");
    expect((await readNode(watcher.nodeId))?.status).toBe("alive");

    // A heartbeat from a node marked dead (it was only paused) brings it back.
    await silent.heartbeat();
    expect((await readNode(silent.nodeId))?.status).toBe("alive");
    await silentSystem.close();
    await watcher.stop();
  });

  it("close() marks every node of the system stopped and refuses new nodes", async () => {
    const other = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: system.namespace });
    const a = await other.registerNode({ displayName: "a" });
    const b = await other.registerNode({ displayName: "b" });
    await other.close();
    expect((await readNode(a.nodeId))?.status).toBe("stopped");
    expect((await readNode(b.nodeId))?.status).toBe("stopped");
    await expect(other.registerNode({ displayName: "late" })).rejects.toBeInstanceOf(ClosedError);
  });

  it("takes its node id from CORE_NODE_ID when none is given", async () => {
    const nodeId = randomUUID();
    process.env.CORE_NODE_ID = nodeId;
    try {
      const node = await system.registerNode({ displayName: "stable" });
      expect(node.nodeId).toBe(nodeId);
      await node.stop();
    } finally {
      delete process.env.CORE_NODE_ID;
    }
  });
});
