/**
 * The example worker (apps/worker) with the server: an event posted over HTTP is
 * consumed, logged and recorded in `acknowledgements` in the handler's transaction, and
 * the heartbeat task (every second, so the fallback scheduler runs it) fires into the
 * worker's pattern.
 */
import { Writable } from "node:stream";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem } from "../../core/index.js";
import { buildServer } from "../../apps/server/app.js";
import { startWorker, type Worker } from "../../apps/worker/worker.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { waitUntil } from "../support/wait.js";

interface LogLine {
  msg: string;
  eventId?: string;
  type?: string;
  messageId?: string;
  task?: string;
}

const lines: LogLine[] = [];
const logger = pino(
  { level: "info" },
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  }),
);

let admin: pg.Pool;
let system: CoreSystem;
let worker: Worker;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 2 });
  system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: uniqueNamespace("wrk") });
  worker = await startWorker({ system, logger, pattern: "demo.*", group: "worker", schedule: "* * * * * *", heartbeatType: "demo.heartbeat" });
  const producer = await system.registerNode({ displayName: "server" });
  app = await buildServer({ system, node: producer });
  base = await app.listen({ port: 0, host: "127.0.0.1" });
});

afterAll(async () => {
  await app?.close();
  await system?.close();
  await admin?.end();
});

describe("worker", () => {
  it("logs and records the acknowledgement of an event posted to the server", async () => {
    const response = await fetch(`${base}/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "demo.hello", payload: { hello: "world" } }),
    });
    expect(response.status).toBe(202);
    const { id } = (await response.json()) as { id: string };

    const row = await waitUntil(
      "the acknowledgement row",
      async () => (await admin.query("select event_id, node_id, msg_id::text as msg_id, type, acknowledged_at from acknowledgements where event_id = $1", [id])).rows[0],
      (value) => value !== undefined,
      15_000,
    );
    expect(row).toMatchObject({ event_id: id, node_id: worker.node.nodeId, type: "demo.hello" });
    expect(row.acknowledged_at).toBeInstanceOf(Date);
    const logged = lines.find((line) => line.msg === "event acknowledged" && line.eventId === id);
    expect(logged).toMatchObject({ type: "demo.hello", messageId: row.msg_id });
    // Acknowledged: the group's queue no longer holds it.
    await waitUntil("an empty queue", () => system.metrics(), (m) => m.groups.find((g) => g.group === "worker")?.queueLength === 0, 10_000);
  });

  it("ignores events outside its pattern", async () => {
    const other = await fetch(`${base}/events`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"type":"other.thing","payload":1}' });
    const { id } = (await other.json()) as { id: string };
    const posted = await fetch(`${base}/events`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"type":"demo.after","payload":1}' });
    const after = ((await posted.json()) as { id: string }).id;
    await waitUntil("the later event", async () => (await admin.query("select 1 from acknowledgements where event_id = $1", [after])).rowCount, (n) => n === 1, 15_000);
    expect((await admin.query("select 1 from acknowledgements where event_id = $1", [id])).rowCount).toBe(0);
  });

  it("schedules the heartbeat task, whose events it consumes", async () => {
    expect(lines.find((line) => line.msg === "heartbeat task scheduled")).toMatchObject({ task: "worker-heartbeat" });
    const row = await waitUntil(
      "a heartbeat acknowledgement",
      async () => (await admin.query("select type from acknowledgements where node_id = $1 and type = 'demo.heartbeat' limit 1", [worker.node.nodeId])).rows[0],
      (value) => value !== undefined,
      15_000,
    );
    expect(row).toEqual({ type: "demo.heartbeat" });
  });
});
