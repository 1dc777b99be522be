/**
 * Hostile input at the HTTP server's routes (issue 11, part 4), through fastify.inject:
 * generated bodies for POST /events and POST /events/batch (well-formed and not, hostile
 * strings, deep and huge JSON, malformed JSON text) and generated group names in the dead
 * letter routes. Every request gets a client error (4xx with `{ error: { code, message } }`)
 * or succeeds, never a 500; an accepted event is in the log exactly as sent; a refused
 * request writes nothing.
 */
import fc from "fast-check";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, type CoreNode } from "../../core/index.js";
import { buildServer } from "../../apps/server/app.js";
import { dropNamespaceLeftovers, testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { canonicalJson, hostileHeaders, hostilePayload, hostileString, jsonForm, PROPERTY_RUNS, validType } from "./arbitraries.js";

const MAX_PAYLOAD_BYTES = 16 * 1024;
const namespace = uniqueNamespace("prop-http");
let system: CoreSystem;
let node: CoreNode;
let app: FastifyInstance;
let admin: pg.Pool;

beforeAll(async () => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 2 });
  system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace, maxPayloadBytes: MAX_PAYLOAD_BYTES });
  node = await system.registerNode({ displayName: "server" });
  app = await buildServer({ system, node, adminToken: "t0ken", adminRateLimit: false, maxBatch: 5 });
});

afterAll(async () => {
  await app?.close();
  await node?.stop({ graceMs: 0 });
  await system?.close();
  await dropNamespaceLeftovers(admin, namespace);
  await admin?.end();
});

/** A client error in the server's shape; never a server fault. */
function expectClientError(status: number, body: string): void {
  expect(status, body).toBeGreaterThanOrEqual(400);
  expect(status, body).toBeLessThan(500);
  const parsed = JSON.parse(body) as { error?: { code?: unknown; message?: unknown } };
  expect(typeof parsed.error?.code).toBe("string");
  expect(typeof parsed.error?.message).toBe("string");
}

/** An event body: the right shape with hostile contents, or the wrong shape. */
const eventBody = fc.oneof(
  { weight: 5, arbitrary: fc.record({ type: fc.oneof(validType, hostileString), payload: hostilePayload(MAX_PAYLOAD_BYTES), headers: hostileHeaders }, { requiredKeys: ["type"] }) },
  { weight: 1, arbitrary: fc.record({ type: validType, payload: fc.jsonValue(), delay: fc.oneof(fc.integer(), fc.double(), hostileString), idempotencyKey: hostileString, extra: fc.jsonValue() }, { requiredKeys: ["type", "payload"] }) },
  { weight: 1, arbitrary: fc.jsonValue() },
);

/** Percent-encodes every UTF-8 byte (encodeURIComponent throws on lone surrogates). */
function pathEncode(value: string): string {
  return [...Buffer.from(value, "utf8")].map((byte) => `%${byte.toString(16).padStart(2, "0")}`).join("");
}

/** JSON text of a value; a value too deep for JSON.stringify becomes an empty body (a 400 too). */
function jsonText(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "";
  } catch {
    return "";
  }
}

/** A request body as text: JSON of a generated body, or text that is not JSON at all. */
const bodyText = (body: fc.Arbitrary<unknown>): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 8, arbitrary: body.map(jsonText) },
    { weight: 1, arbitrary: hostileString },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '{"type":"a","payload":"\\u0000"}',
        '{"type":"a","payload":"\\ud800"}',
        '{"type":"a","payload":"\\\\u0000"}',
        '{"type":"a","payload":1e999}',
        '{"type":"a","payload":{"__proto__":{"x":1}}}',
        `{"type":"a","payload":${"[".repeat(3000)}${"]".repeat(3000)}}`,
        `{"type":"a","payload":${"[".repeat(100_000)}${"]".repeat(100_000)}}`,
        '{"type":"a"',
        "[]",
        "null",
        "",
      ),
    },
  );

describe("HTTP routes under hostile input", () => {
  it(`POST /events and /events/batch: ${PROPERTY_RUNS} generated bodies are 202 and round-trip, or a 4xx that writes nothing`, async () => {
    const accepted = new Map<string, { type: string; payload: string; headers: string }>();
    const single = bodyText(eventBody).map((text) => ({ url: "/events", text }));
    const batch = bodyText(fc.oneof(fc.record({ events: fc.array(eventBody, { maxLength: 7 }) }), fc.jsonValue())).map((text) => ({ url: "/events/batch", text }));
    await fc.assert(
      fc.asyncProperty(fc.oneof({ weight: 3, arbitrary: single }, { weight: 1, arbitrary: batch }), async ({ url, text }) => {
        const response = await app.inject({ method: "POST", url, headers: { "content-type": "application/json" }, payload: text });
        if (response.statusCode !== 202) return expectClientError(response.statusCode, response.body);
        const sent = JSON.parse(text) as { type: string; payload: unknown; headers?: unknown } | { events: { type: string; payload: unknown; headers?: unknown }[] };
        const events = "events" in sent ? sent.events : [sent];
        const ids = "events" in sent ? (JSON.parse(response.body) as { ids: string[] }).ids : [(JSON.parse(response.body) as { id: string }).id];
        expect(ids).toHaveLength(events.length);
        // A repeated idempotency key answers the first event's id: the log keeps that one.
        events.forEach((event, index) => {
          if (!accepted.has(ids[index]!)) accepted.set(ids[index]!, { type: event.type, payload: jsonForm(event.payload), headers: jsonForm(event.headers ?? {}) });
        });
      }),
      { numRuns: PROPERTY_RUNS },
    );
    expect(accepted.size).toBeGreaterThan(PROPERTY_RUNS / 20);
    const { rows } = await admin.query<{ id: string; type: string; payload: unknown; headers: unknown }>(
      "select id, type, payload, headers from core.event_log where namespace = $1",
      [namespace],
    );
    expect(rows.length).toBe(accepted.size);
    for (const row of rows) {
      expect({ type: row.type, payload: canonicalJson(row.payload), headers: canonicalJson(row.headers) }, row.id).toEqual(accepted.get(row.id));
    }
  });

  it(`dead-letter routes: ${PROPERTY_RUNS} generated group names, ids and queries answer 200 or a 4xx, never a 500`, async () => {
    const routes = fc.oneof(
      fc.tuple(hostileString, hostileString).map(([group, type]) => ({ method: "GET" as const, url: `/dead-letters/${pathEncode(group)}?type=${pathEncode(type)}` })),
      fc.tuple(hostileString, hostileString).map(([group, id]) => ({ method: "GET" as const, url: `/dead-letters/${pathEncode(group)}/${pathEncode(id)}` })),
      hostileString.map((group) => ({ method: "DELETE" as const, url: `/dead-letters/${pathEncode(group)}` })),
      fc.tuple(hostileString, fc.jsonValue()).map(([group, body]) => ({ method: "POST" as const, url: `/dead-letters/${pathEncode(group)}/retry`, body })),
      fc.jsonValue().map((body) => ({ method: "POST" as const, url: "/replay", body })),
    );
    await fc.assert(
      fc.asyncProperty(routes, async (route) => {
        const response = await app.inject({
          method: route.method,
          url: route.url,
          headers: { authorization: "Bearer t0ken", ...("body" in route ? { "content-type": "application/json" } : {}) },
          ...("body" in route ? { payload: JSON.stringify(route.body) } : {}),
        });
        if (response.statusCode >= 300) expectClientError(response.statusCode, response.body);
      }),
      { numRuns: PROPERTY_RUNS },
    );
    // Nothing was replayed or created by any of them.
    const { rows } = await admin.query("select 1 from core.subscriptions where namespace = $1", [namespace]);
    expect(rows).toEqual([]);
  });
});
