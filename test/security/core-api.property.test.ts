/**
 * Hostile input at the core API (issue 11, part 4): generated event types, payloads,
 * headers, namespaces, group names and patterns. Every input is either accepted and comes
 * back equal under JSON semantics (from core.event_log and through a consumer), or is
 * refused with a typed NexusError that is not a database error, and a refused call
 * writes nothing. Names are checked against the database's own functions
 * (core.group_queue_name, core.pattern_regex) in batches.
 */
import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, ErrorCode, groupQueueName, NexusError, type CoreEvent, type CoreNode } from "../../core/index.js";
import { patternMatcher } from "../../core/delivery/dispatch.js";
import { dropNamespaceLeftovers, testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { waitUntil } from "../support/wait.js";
import { anyName, canonicalJson, hostileHeaders, hostilePayload, hostileString, jsonForm, PROPERTY_RUNS, validPattern, validServiceName, validType } from "./arbitraries.js";

const MAX_PAYLOAD_BYTES = 16 * 1024;

/** Refused before the database: a NexusError, never a database or connection error. */
function expectTypedRefusal(error: unknown): void {
  expect(error).toBeInstanceOf(NexusError);
  expect([ErrorCode.database, ErrorCode.connection]).not.toContain((error as NexusError).code);
}

const namespace = uniqueNamespace("prop-core");
let system: CoreSystem;
let producer: CoreNode;
let consumer: CoreNode;
let admin: pg.Pool;
const delivered = new Map<string, CoreEvent>();

beforeAll(async () => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 2 });
  system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace, maxPayloadBytes: MAX_PAYLOAD_BYTES });
  producer = await system.registerNode({ displayName: "producer" });
  consumer = await system.registerNode({ displayName: "consumer" });
  await consumer.onEvent("**", (event) => void delivered.set(event.id, event), { group: "all", prefetch: 100, concurrency: 2 });
  await consumer.start();
});

afterAll(async () => {
  await consumer?.stop({ graceMs: 0 });
  await producer?.stop({ graceMs: 0 });
  await system?.close();
  await dropNamespaceLeftovers(admin, namespace);
  await admin?.end();
});

interface Accepted {
  id: string;
  type: string;
  /** Canonical JSON (see canonicalJson). */
  payload: string;
  headers: string;
}

describe("core API under hostile input", () => {
  it(`emit: ${PROPERTY_RUNS} generated (type, payload, headers) round-trip or are refused with a typed error`, async () => {
    const accepted: Accepted[] = [];
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(validType, hostileString), hostilePayload(MAX_PAYLOAD_BYTES), hostileHeaders, fc.option(hostileString, { nil: undefined }), async (type, payload, headers, key) => {
        try {
          // Keys are made unique per case so that each accepted emit publishes (a repeat would not).
          const idempotencyKey = key === undefined ? undefined : `${accepted.length}:${key}`;
          const id = await producer.emit(type, payload, { headers: headers as Record<string, string> | undefined, idempotencyKey });
          accepted.push({ id, type, payload: jsonForm(payload), headers: jsonForm(headers ?? {}) });
        } catch (error) {
          expectTypedRefusal(error);
          refused += 1;
        }
      }),
      { numRuns: PROPERTY_RUNS },
    );
    expect(accepted.length, "some inputs must be accepted").toBeGreaterThan(PROPERTY_RUNS / 10);
    expect(refused, "some inputs must be refused").toBeGreaterThan(PROPERTY_RUNS / 10);

    // The log holds exactly the accepted events (a refused call wrote nothing), as sent.
    const { rows } = await admin.query<{ id: string; type: string; payload: unknown; headers: unknown }>(
      "select id, type, payload, headers from core.event_log where namespace = $1",
      [namespace],
    );
    expect(rows.length).toBe(accepted.length);
    const logged = new Map(rows.map((row) => [row.id, row]));
    for (const event of accepted) {
      const row = logged.get(event.id);
      expect(row && { type: row.type, payload: canonicalJson(row.payload), headers: canonicalJson(row.headers) }, event.id).toEqual({ type: event.type, payload: event.payload, headers: event.headers });
    }

    // And a consumer receives each one as sent.
    await waitUntil("every accepted event delivered", () => delivered.size, (size) => size >= accepted.length, 30_000);
    for (const event of accepted) {
      const got = delivered.get(event.id);
      expect(got && { type: got.type, payload: canonicalJson(got.payload), headers: canonicalJson(got.headers) }, event.id).toEqual({ type: event.type, payload: event.payload, headers: event.headers });
    }
  });

  it(`emitBatch: ${PROPERTY_RUNS} generated events in batches: a batch is written whole or not at all`, async () => {
    const { rows: before } = await admin.query<{ n: number }>("select count(*)::int as n from core.event_log where namespace = $1", [namespace]);
    let written = 0;
    const event = fc.record({ type: fc.oneof({ weight: 4, arbitrary: validType }, hostileString), payload: hostilePayload(MAX_PAYLOAD_BYTES), headers: hostileHeaders });
    await fc.assert(
      fc.asyncProperty(fc.array(event, { minLength: 1, maxLength: 4 }), async (events) => {
        try {
          const ids = await producer.emitBatch(events as { type: string; payload: unknown; headers?: Record<string, string> }[]);
          expect(ids).toHaveLength(events.length);
          written += events.length;
        } catch (error) {
          expectTypedRefusal(error);
        }
      }),
      { numRuns: Math.ceil(PROPERTY_RUNS / 2.5) },
    );
    const { rows: after } = await admin.query<{ n: number }>("select count(*)::int as n from core.event_log where namespace = $1", [namespace]);
    expect(after[0]!.n - before[0]!.n).toBe(written);
  });

  it(`namespaces and groups: ${PROPERTY_RUNS} generated names are refused before the database or map to the database's queue name`, async () => {
    const pairs: [string, string][] = [];
    await fc.assert(
      fc.asyncProperty(anyName(validServiceName), anyName(validServiceName), async (ns, group) => {
        let queue: string;
        try {
          queue = groupQueueName(ns as string, group as string);
        } catch (error) {
          expectTypedRefusal(error);
          // An invalid namespace is refused by connect too, before any connection is made.
          if (typeof ns !== "string" || !/^[a-z0-9][a-z0-9_-]{0,39}$/.test(ns)) {
            const failure = await CoreSystem.connect({ connectionString: "postgres://nobody:secret@127.0.0.1:1/none", namespace: ns as string }).catch((e: unknown) => e);
            expect((failure as NexusError).code).toBe(ErrorCode.invalidName);
          }
          return;
        }
        expect(queue.length).toBeLessThanOrEqual(43);
        pairs.push([ns as string, group as string]);
      }),
      { numRuns: PROPERTY_RUNS },
    );
    // About an eighth of the generated pairs are valid; a twentieth keeps the check meaningful without flaking.
    expect(pairs.length).toBeGreaterThan(PROPERTY_RUNS / 20);
    const { rows } = await admin.query<{ ns: string; grp: string; queue: string }>(
      "select ns, grp, core.group_queue_name(ns, grp) as queue from unnest($1::text[], $2::text[]) as p(ns, grp)",
      [pairs.map((pair) => pair[0]), pairs.map((pair) => pair[1])],
    );
    for (const row of rows) expect(row.queue, `${row.ns} / ${row.grp}`).toBe(groupQueueName(row.ns, row.grp));
    // Distinct (namespace, group) pairs never share a queue.
    const byQueue = new Map<string, string>();
    for (const row of rows) {
      const key = `${row.ns}\u0000${row.grp}`;
      expect(byQueue.get(row.queue) ?? key, row.queue).toBe(key);
      byQueue.set(row.queue, key);
    }
  });

  it(`patterns: ${PROPERTY_RUNS} generated patterns are refused with a typed error or match exactly what the database matches`, async () => {
    const node = await system.registerNode({ displayName: "patterns" });
    const cases: [string, string][] = [];
    try {
      await fc.assert(
        fc.asyncProperty(anyName(validPattern), anyName(validServiceName), fc.array(validType, { minLength: 1, maxLength: 3 }), async (pattern, group, types) => {
          try {
            await node.onEvent(pattern as string, () => {}, { group: group as string });
          } catch (error) {
            expectTypedRefusal(error);
            return;
          }
          for (const type of types) cases.push([pattern as string, type]);
          // A type built from the pattern must match it.
          cases.push([pattern as string, (pattern as string).replace(/\*\*/g, "x.y").replace(/\*/g, "z")]);
        }),
        { numRuns: PROPERTY_RUNS },
      );
    } finally {
      // The node never started: nothing of it reached the database but its registration.
      await node.stop({ graceMs: 0 });
    }
    expect(cases.length).toBeGreaterThan(PROPERTY_RUNS / 10);
    const { rows } = await admin.query<{ pattern: string; type: string; matches: boolean }>(
      "select pattern, type, type ~ core.pattern_regex(pattern) as matches from unnest($1::text[], $2::text[]) as c(pattern, type)",
      [cases.map((c) => c[0]), cases.map((c) => c[1])],
    );
    for (const row of rows) expect(row.matches, `${row.pattern} ~ ${row.type}`).toBe(patternMatcher(row.pattern)(row.type));
    const { rows: subscriptions } = await admin.query("select 1 from core.subscriptions where namespace = $1 and group_name <> 'all'", [namespace]);
    expect(subscriptions).toEqual([]);
  });
});
