/**
 * The HTTP ingest server (apps/server) on an ephemeral port against the test
 * database: emits, every client error, operations routes, dead letters and the OpenAPI
 * document. Admin tokens and rate limits: server-admin.test.ts; the database going away:
 * server-unavailable.test.ts.
 */
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, type CoreNode, type DeadLetterPage } from "../../core/index.js";
import { buildServer, type EventSink } from "../../apps/server/app.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { sleep, waitUntil } from "../support/wait.js";

const MAX_PAYLOAD = 4_096;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let admin: pg.Pool;
let system: CoreSystem;
let producer: CoreNode;
let failing: CoreNode;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 2 });
  system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: uniqueNamespace("srv"), maxPayloadBytes: MAX_PAYLOAD });
  producer = await system.registerNode({ displayName: "server" });
  // A group whose handler always fails at once: its events become dead letters.
  failing = await system.registerNode({ displayName: "billing" });
  await failing.onEvent(
    "bill.*",
    () => {
      throw new Error("payment provider down");
    },
    { maxAttempts: 1, pollInterval: 100, backoff: { type: "fixed", delay: 0 } },
  );
  await failing.start();
  app = await buildServer({ system, node: producer, adminToken: "s3cret", maxBatch: 5, batchBodyLimit: 64 * 1024 });
  base = await app.listen({ port: 0, host: "127.0.0.1" });
});

afterAll(async () => {
  await app?.close();
  await system?.close();
  await admin?.end();
});

function post(path: string, body: string, contentType = "application/json", headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}${path}`, { method: "POST", body, headers: { "content-type": contentType, ...headers } });
}

async function errorOf(response: Response): Promise<{ code: string; message: string }> {
  const body = (await response.json()) as { error: { code: string; message: string } };
  expect(Object.keys(body)).toEqual(["error"]);
  return body.error;
}

describe("POST /events", () => {
  it("answers 202 with the id of the committed event", async () => {
    const response = await post("/events", JSON.stringify({ type: "demo.hello", payload: { n: 1 }, headers: { "x-trace": "abc" } }));
    expect(response.status).toBe(202);
    const { id } = (await response.json()) as { id: string };
    expect(id).toMatch(UUID);
    const { rows } = await admin.query("select type, payload, headers from core.event_log where id = $1 and namespace = $2", [id, system.namespace]);
    expect(rows).toEqual([{ type: "demo.hello", payload: { n: 1 }, headers: { "x-trace": "abc" } }]);
  });

  it("answers 400 for malformed JSON, missing fields, unknown fields and a bad type name", async () => {
    const malformed = await post("/events", '{"type": "demo.hello", "payload": ');
    expect(malformed.status).toBe(400);
    expect((await errorOf(malformed)).code).toBe("malformed_json");

    const empty = await post("/events", "");
    expect(empty.status).toBe(400);
    expect((await errorOf(empty)).code).toBe("malformed_json");

    const noPayload = await post("/events", JSON.stringify({ type: "demo.hello" }));
    expect(noPayload.status).toBe(400);
    expect(await errorOf(noPayload)).toEqual({ code: "invalid_request", message: "body must have required property 'payload'" });

    const noType = await post("/events", JSON.stringify({ payload: 1 }));
    expect(noType.status).toBe(400);
    expect((await errorOf(noType)).message).toContain("'type'");

    const extra = await post("/events", JSON.stringify({ type: "demo.hello", payload: 1, header: {} }));
    expect(extra.status).toBe(400);
    expect((await errorOf(extra)).message).toContain("additional properties");

    const badType = await post("/events", JSON.stringify({ type: "demo..hello", payload: 1 }));
    expect(badType.status).toBe(400);
    const error = await errorOf(badType);
    expect(error.code).toBe("invalid_name");
    expect(error.message).toContain("demo..hello");
    expect(error.message).toContain("dot-separated segments");

    const notObject = await post("/events", "[1, 2]");
    expect(notObject.status).toBe(400);
  });

  it("answers 413 for a payload over maxPayloadBytes and for a body over the body limit", async () => {
    const overPayload = await post("/events", JSON.stringify({ type: "demo.big", payload: "x".repeat(MAX_PAYLOAD + 10) }));
    expect(overPayload.status).toBe(413);
    const error = await errorOf(overPayload);
    expect(error.code).toBe("payload_too_large");
    expect(error.message).toContain(`the limit is ${MAX_PAYLOAD} bytes`);

    const overBody = await post("/events", JSON.stringify({ type: "demo.big", payload: "x".repeat(MAX_PAYLOAD + 70_000) }));
    expect(overBody.status).toBe(413);
    expect((await errorOf(overBody)).code).toBe("payload_too_large");
  });

  it("answers 415 for a body that is not JSON", async () => {
    for (const contentType of ["text/plain", "application/x-www-form-urlencoded", "application/xml"]) {
      const response = await post("/events", "type=demo.hello", contentType);
      expect(response.status, contentType).toBe(415);
      expect((await errorOf(response)).code).toBe("unsupported_media_type");
    }
  });
});

describe("POST /events/batch", () => {
  it("answers 202 with the ids in order, all committed", async () => {
    const events = [1, 2, 3].map((n) => ({ type: `demo.n${n}`, payload: { n } }));
    const response = await post("/events/batch", JSON.stringify({ events }));
    expect(response.status).toBe(202);
    const { ids } = (await response.json()) as { ids: string[] };
    expect(ids).toHaveLength(3);
    const { rows } = await admin.query<{ id: string; type: string }>("select id, type from core.event_log where id = any($1::uuid[])", [ids]);
    expect(new Map(rows.map((row) => [row.id, row.type]))).toEqual(new Map(ids.map((id, index) => [id, `demo.n${index + 1}`])));
  });

  it("refuses the whole batch when one event is bad, too many events, or an empty list", async () => {
    const before = await admin.query("select count(*)::int as n from core.event_log where namespace = $1", [system.namespace]);
    const oneBad = await post("/events/batch", JSON.stringify({ events: [{ type: "demo.ok", payload: 1 }, { type: "Bad Type", payload: 2 }] }));
    expect(oneBad.status).toBe(400);
    expect((await errorOf(oneBad)).code).toBe("invalid_name");
    const after = await admin.query("select count(*)::int as n from core.event_log where namespace = $1", [system.namespace]);
    expect(after.rows[0].n).toBe(before.rows[0].n);

    const tooMany = await post("/events/batch", JSON.stringify({ events: Array.from({ length: 6 }, () => ({ type: "demo.x", payload: 1 })) }));
    expect(tooMany.status).toBe(400);
    expect((await errorOf(tooMany)).message).toContain("must NOT have more than 5 items");

    expect((await post("/events/batch", JSON.stringify({ events: [] }))).status).toBe(400);
  });

  it("answers 413 over the payload limit or the batch body limit, 415 for non-JSON", async () => {
    const bigPayload = await post("/events/batch", JSON.stringify({ events: [{ type: "demo.big", payload: "x".repeat(MAX_PAYLOAD + 1) }] }));
    expect(bigPayload.status).toBe(413);
    const bigBody = await post("/events/batch", JSON.stringify({ events: [{ type: "demo.big", payload: "x".repeat(70_000) }] }));
    expect(bigBody.status).toBe(413);
    expect((await post("/events/batch", "events", "text/plain")).status).toBe(415);
  });
});

describe("operations", () => {
  it("GET /healthz answers 200 and GET /readyz 200 with the schema version", async () => {
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { status: string; schemaVersion: number };
    expect(body.status).toBe("ready");
    expect(body.schemaVersion).toBeGreaterThanOrEqual(10);
  });

  it("GET /metrics is Prometheus text with its content type, every line well formed", async () => {
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe(system.metricsRegistry.contentType);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const name = "[a-zA-Z_:][a-zA-Z0-9_:]*";
    const label = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*"';
    const sample = new RegExp(`^${name}(\\{${label}(,${label})*,?\\})? (-?[0-9.]+(e[+-]?[0-9]+)?|NaN|[+-]Inf)( -?[0-9]+)?$`);
    const help = new RegExp(`^# HELP ${name} .*$`);
    const type = new RegExp(`^# TYPE ${name} (counter|gauge|histogram|summary|untyped)$`);
    const bad = text.split("\n").filter((line) => line !== "" && !sample.test(line) && !help.test(line) && !type.test(line));
    expect(bad).toEqual([]);
    expect(text).toContain(`nexus_database_up{namespace="${system.namespace}"} 1`);
    expect(text).toMatch(new RegExp(`nexus_events_emitted_total\\{namespace="${system.namespace}"\\} [1-9]`));
  });

  it("GET /nodes and GET /queues answer the namespace's nodes and groups as JSON", async () => {
    const nodes = (await (await fetch(`${base}/nodes`)).json()) as { namespace: string; nodes: { nodeId: string; displayName: string; alive: boolean }[] };
    expect(nodes.namespace).toBe(system.namespace);
    expect(nodes.nodes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ nodeId: producer.nodeId, displayName: "server", alive: true }),
        expect.objectContaining({ nodeId: failing.nodeId, displayName: "billing", alive: true }),
      ]),
    );
    const queues = (await (await fetch(`${base}/queues`)).json()) as { groups: { group: string; kind: string; deadLetterLength: number | null }[] };
    expect(queues.groups).toEqual(expect.arrayContaining([expect.objectContaining({ group: "billing", kind: "event" })]));
  });

  it("unknown routes answer 404 with the error body", async () => {
    const response = await fetch(`${base}/nope`);
    expect(response.status).toBe(404);
    expect((await errorOf(response)).code).toBe("not_found");
  });

  it("GET /openapi.json describes every route", async () => {
    const response = await fetch(`${base}/openapi.json`);
    expect(response.status).toBe(200);
    const document = (await response.json()) as { openapi: string; paths: Record<string, Record<string, { security?: unknown }>> };
    expect(document.openapi).toMatch(/^3\./);
    expect(Object.keys(document.paths).sort()).toEqual(
      [
        "/dead-letters/{group}",
        "/dead-letters/{group}/retry",
        "/dead-letters/{group}/{id}",
        "/events",
        "/events/batch",
        "/healthz",
        "/metrics",
        "/nodes",
        "/queues",
        "/readyz",
        "/replay",
      ].sort(),
    );
    expect(document.paths["/dead-letters/{group}"]!.delete!.security).toEqual([{ adminToken: [] }]);
    expect(document.paths["/events"]!.post).toBeDefined();
  });
});

describe("dead letters", () => {
  const auth = { authorization: "Bearer s3cret" };
  let ids: string[];

  beforeAll(async () => {
    const response = await post("/events/batch", JSON.stringify({ events: [1, 2, 3].map((n) => ({ type: "bill.due", payload: { n } })) }));
    ids = ((await response.json()) as { ids: string[] }).ids;
    await waitUntil("3 dead letters", () => system.deadLetters.list("billing"), (page) => page.items.length === 3, 15_000);
  });

  it("lists, pages and reads them; unknown ids and groups are 404, bad names 400", async () => {
    const page = (await (await fetch(`${base}/dead-letters/billing?limit=2`)).json()) as DeadLetterPage;
    expect(page.items).toHaveLength(2);
    expect(page.items.map((item) => item.eventId)).toEqual(ids.slice(0, 2));
    expect(page.items[0]!.error.message).toBe("payment provider down");
    const rest = (await (await fetch(`${base}/dead-letters/billing?after=${page.nextAfter}`)).json()) as DeadLetterPage;
    expect(rest.items.map((item) => item.eventId)).toEqual([ids[2]]);

    const one = await fetch(`${base}/dead-letters/billing/${page.items[0]!.id}`);
    expect(one.status).toBe(200);
    const letter = (await one.json()) as { payload: unknown; error: { stack?: string }; eventId: string };
    expect(letter.payload).toEqual({ n: 1 });
    expect(letter.error.stack).toContain("payment provider down");

    expect((await fetch(`${base}/dead-letters/billing/999999999`)).status).toBe(404);
    const unknown = await fetch(`${base}/dead-letters/nosuchgroup`);
    expect(unknown.status).toBe(404);
    expect((await errorOf(unknown)).code).toBe("unknown_group");
    const badName = await fetch(`${base}/dead-letters/Bad%20Group`);
    expect(badName.status).toBe(400);
    expect((await errorOf(badName)).code).toBe("invalid_name");
    expect((await fetch(`${base}/dead-letters/billing?limit=0`)).status).toBe(400);
    expect((await fetch(`${base}/dead-letters/billing/abc`)).status).toBe(400);
  });

  it("retries by id and purges the rest with the admin token", async () => {
    const page = await system.deadLetters.list("billing");
    const retried = await post(`/dead-letters/billing/retry`, JSON.stringify({ ids: [page.items[0]!.id] }), "application/json", auth);
    expect(retried.status).toBe(200);
    expect(await retried.json()).toEqual({ retried: 1 });
    const both = await post(`/dead-letters/billing/retry`, JSON.stringify({ ids: ["1"], type: "bill.*" }), "application/json", auth);
    expect(both.status).toBe(400);

    // The retried one fails again and comes back; then purge empties the queue.
    await waitUntil("the retried letter back", () => system.deadLetters.list("billing"), (p) => p.items.length === 3, 15_000);
    const purged = await fetch(`${base}/dead-letters/billing`, { method: "DELETE", headers: auth });
    expect(purged.status).toBe(200);
    expect(await purged.json()).toEqual({ purged: 3 });
    expect((await system.deadLetters.list("billing")).items).toEqual([]);
  });

  it("replays a window to a group with the admin token", async () => {
    const from = new Date(Date.now() - 60_000).toISOString();
    const to = new Date(Date.now() + 1_000).toISOString();
    const dry = await post("/replay", JSON.stringify({ group: "billing", from, to, dryRun: true }), "application/json", auth);
    expect(dry.status).toBe(200);
    const body = (await dry.json()) as { replayId: string; count: number };
    expect(body.replayId).toMatch(UUID);
    expect(body.count).toBeGreaterThanOrEqual(3);
    const unknown = await post("/replay", JSON.stringify({ group: "nosuchgroup", from, to }), "application/json", auth);
    expect(unknown.status).toBe(404);
  });
});

describe("graceful close", () => {
  it("finishes in-flight requests, then refuses new connections", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow: EventSink = {
      emit: async () => {
        await gate;
        return "00000000-0000-4000-8000-000000000000";
      },
      emitBatch: async (events) => events.map(() => "00000000-0000-4000-8000-000000000000"),
    };
    const closing = await buildServer({ system, node: slow });
    const url = await closing.listen({ port: 0, host: "127.0.0.1" });
    const inFlight = fetch(`${url}/events`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"type":"demo.slow","payload":1}' });
    await sleep(100);
    const closed = closing.close();
    await sleep(50);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    release();
    const response = await inFlight;
    expect(response.status).toBe(202);
    await closed;
  });
});
