/**
 * The extension point of the hostile-input property tests for adapters: give
 * {@link assertHostileEmits} an adapter's way to publish (a name and arguments in, the
 * core event id out) and how the adapter names its typed errors; it throws 1,000
 * generated names and payloads at it and checks that each is either in `core.event_log`
 * exactly as the adapter maps it, or refused with one of the adapter's typed errors,
 * with nothing written. One call per adapter (NestJS, Moleculer, BullMQ, ...) in
 * `test/security/adapters.property.test.ts`.
 */
import fc from "fast-check";
import type pg from "pg";
import { expect } from "vitest";
import { canonicalJson, hostilePayload, hostileString, jsonForm, PROPERTY_RUNS, validType } from "./arbitraries.js";

/** How one adapter publishes, for {@link assertHostileEmits}. */
export interface HostileEmitTarget {
  /** The namespace the adapter publishes into (its events are counted there). */
  namespace: string;
  /** Publishes `name` with `args` the adapter's way; resolves with the core event id. */
  publish(name: string, args: unknown[]): Promise<string>;
  /** The core event type and payload the adapter should log for `name` and `args`. */
  expected(name: string, args: unknown[]): { type: string; payload: unknown };
  /** True for the adapter's typed refusals (its error classes, or the core's NexusError). */
  isTypedError(error: unknown): boolean;
  /** Largest payload the adapter's system accepts, in bytes (for sizes around the limit). */
  maxPayloadBytes: number;
}

/** Runs the property against `target` and checks the log; `admin` is a pool with rights to read core.event_log. */
export async function assertHostileEmits(target: HostileEmitTarget, admin: pg.Pool, runs = PROPERTY_RUNS): Promise<{ accepted: number; refused: number }> {
  const before = await countEvents(admin, target.namespace);
  const accepted = new Map<string, { type: string; payload: string }>();
  let refused = 0;
  const args = fc.array(hostilePayload(target.maxPayloadBytes), { maxLength: 3 });
  await fc.assert(
    fc.asyncProperty(fc.oneof(validType, hostileString), args, async (name, values) => {
      let id: string;
      try {
        id = await target.publish(name, values);
      } catch (error) {
        expect(target.isTypedError(error), `untyped error for ${JSON.stringify(name)}: ${String(error)}`).toBe(true);
        refused += 1;
        return;
      }
      const expected = target.expected(name, values);
      accepted.set(id, { type: expected.type, payload: jsonForm(expected.payload) });
    }),
    { numRuns: runs },
  );
  const { rows } = await admin.query<{ id: string; type: string; payload: unknown }>(
    "select id, type, payload from core.event_log where namespace = $1 and id = any($2::uuid[])",
    [target.namespace, [...accepted.keys()]],
  );
  for (const row of rows) expect({ type: row.type, payload: canonicalJson(row.payload) }, row.id).toEqual(accepted.get(row.id));
  expect(rows.length).toBe(accepted.size);
  // A refused call wrote nothing: the log grew by the accepted events only.
  expect((await countEvents(admin, target.namespace)) - before).toBe(accepted.size);
  return { accepted: accepted.size, refused };
}

async function countEvents(admin: pg.Pool, namespace: string): Promise<number> {
  const { rows } = await admin.query<{ n: number }>("select count(*)::int as n from core.event_log where namespace = $1", [namespace]);
  return rows[0]!.n;
}
