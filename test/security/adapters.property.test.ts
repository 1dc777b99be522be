/**
 * Hostile input at the adapters' entry points (issue 11, part 4), through the shared
 * property of entry-point.ts. The events adapter (PgEventEmitter.emitAsync: event names
 * and listener arguments); adapters written later add one `it` each here.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, NexusError } from "../../core/index.js";
import { NodeStyleTypeError, PgEventEmitter, PublishError } from "../../adapters/events/index.js";
import { dropNamespaceLeftovers, testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { assertHostileEmits } from "./entry-point.js";
import { PROPERTY_RUNS } from "./arbitraries.js";

const MAX_PAYLOAD_BYTES = 16 * 1024;
let admin: pg.Pool;

beforeAll(() => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 2 });
});
afterAll(() => admin?.end());

describe("adapters under hostile input", () => {
  it(`events adapter: ${PROPERTY_RUNS} generated event names and arguments are logged as mapped or refused with a typed error`, async () => {
    const namespace = uniqueNamespace("prop-events");
    const system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace, maxPayloadBytes: MAX_PAYLOAD_BYTES });
    const emitter = await PgEventEmitter.create(system);
    try {
      const { accepted, refused } = await assertHostileEmits(
        {
          namespace,
          maxPayloadBytes: MAX_PAYLOAD_BYTES,
          publish: (name, args) => emitter.emitAsync(name, ...args),
          // The adapter publishes the argument list as the payload, under the event's name.
          expected: (name, args) => ({ type: name, payload: args }),
          isTypedError: (error) => error instanceof NodeStyleTypeError || error instanceof PublishError || error instanceof NexusError,
        },
        admin,
      );
      expect(accepted).toBeGreaterThan(PROPERTY_RUNS / 20);
      expect(refused).toBeGreaterThan(PROPERTY_RUNS / 20);
    } finally {
      await emitter.close();
      await system.close();
      await dropNamespaceLeftovers(admin, namespace);
    }
  });
});
