import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CoreSystem,
  ErrorCode,
  InvalidNameError,
  assertEventType,
  assertGroup,
  assertNamespace,
  assertPattern,
  deadLetterQueueName,
  groupQueueName,
} from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace, withClient } from "../support/database.js";

const INJECTION = "x'); drop table core.nodes; --";

describe("name grammar", () => {
  it.each(["a", "orders", "billing-v2", "9lives", "a_b", "a".repeat(40)])("accepts the namespace and group %s", (name) => {
    expect(() => assertNamespace(name)).not.toThrow();
    expect(() => assertGroup(name)).not.toThrow();
  });

  it.each(["", "A", "-lead", "_lead", "a".repeat(41), "with space", "dot.ted", INJECTION, "é"])(
    "rejects the namespace and group %j with a typed error naming the value and the rule",
    (name) => {
      const asserts: ((value: unknown) => void)[] = [assertNamespace, assertGroup];
      for (const assert of asserts) {
        let caught: unknown;
        try {
          assert(name);
        } catch (error) {
          caught = error;
        }
        expect(caught).toBeInstanceOf(InvalidNameError);
        expect((caught as InvalidNameError).code).toBe(ErrorCode.invalidName);
        expect((caught as InvalidNameError).message).toContain(JSON.stringify(name));
        expect((caught as InvalidNameError).message).toContain("1-40 characters of lowercase letters");
      }
    },
  );

  it.each([undefined, null, 42, {}])("rejects a namespace that is not a string (%j)", (value) => {
    expect(() => assertNamespace(value)).toThrow(InvalidNameError);
  });

  it.each(["order.created", "Order.Created", "a", "urn:x$y.v-1_2", `${"a.".repeat(127)}b`])("accepts the event type %s", (type) => {
    expect(() => assertEventType(type)).not.toThrow();
  });

  it.each(["", ".", "a..b", "a.", ".a", "a b", "a/b", "a*", "**", "a".repeat(256), INJECTION, "a\u0000b"])(
    "rejects the event type %j",
    (type) => {
      expect(() => assertEventType(type)).toThrow(/Invalid event type .*dot-separated segments/);
    },
  );

  it.each(["order.*", "**", "order.**", "*.created", "order.created"])("accepts the pattern %s", (pattern) => {
    expect(() => assertPattern(pattern)).not.toThrow();
  });

  it.each(["order.*x", "order..*", "***", INJECTION])("rejects the pattern %j", (pattern) => {
    expect(() => assertPattern(pattern)).toThrow(InvalidNameError);
  });
});

describe("group queue names", () => {
  it("uses the readable form when it is unambiguous and short", () => {
    expect(groupQueueName("shop", "billing")).toBe("shop__billing");
    expect(deadLetterQueueName(groupQueueName("shop", "billing"))).toBe("shop__billing_dlq");
  });

  it("hashes names that would be ambiguous or too long, deterministically and within pgmq's limit", () => {
    const hashed: [string, string][] = [
      ["a-b", "c"],
      ["a", "b-c"],
      ["a".repeat(40), "b".repeat(40)],
      ["x-y", "z-w"],
      ["x_y", "z-w"],
      ["shop", "billing_dlq"],
      ["shop", "billing_rq"],
    ];
    const readable: [string, string][] = [
      ["a_b", "c"],
      ["a", "b_c"],
    ];
    const pairs = [...hashed, ...readable];
    expect(groupQueueName("shop", "billing_dlq")).not.toBe(deadLetterQueueName(groupQueueName("shop", "billing")));
    const names = pairs.map(([namespace, group]) => groupQueueName(namespace, group));
    expect(new Set(names).size).toBe(pairs.length);
    for (const [index, name] of names.entries()) {
      expect(name).toMatch(/^[a-z0-9][a-z0-9_]*$/);
      expect(deadLetterQueueName(name).length).toBeLessThanOrEqual(47);
      expect(groupQueueName(...pairs[index]!)).toBe(name);
      // Readable names always hold "__" and hashed ones never do, so the two forms cannot collide.
      expect(name.includes("__")).toBe(index >= hashed.length);
    }
  });
});

describe("invalid names at the public entry points", () => {
  const namespace = uniqueNamespace("names");
  let system: CoreSystem;
  beforeAll(async () => {
    system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace });
  });
  afterAll(() => system.close());

  it("connect rejects an injected namespace with a typed error and writes nothing", async () => {
    const before = await countRows();
    await expect(CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: INJECTION })).rejects.toBeInstanceOf(InvalidNameError);
    expect(await countRows()).toEqual(before);
  });

  it("registerNode rejects a bad display name or node id and writes nothing", async () => {
    const before = await countRows();
    await expect(system.registerNode({ displayName: "" })).rejects.toThrow(/displayName must be a string of 1-200 characters/);
    await expect(system.registerNode({ displayName: "api", nodeId: INJECTION })).rejects.toThrow(/is not a UUID/);
    expect(await countRows()).toEqual(before);
  });

  /** What a leaked call could have written: rows of this namespace or of the injected one, and the nodes table itself. */
  function countRows(): Promise<Record<string, unknown>> {
    return withClient(testDatabaseUrl(), async (client) => {
      const { rows } = await client.query(
        `select (select count(*) from core.nodes where namespace = $1) as nodes,
                (select count(*) from core.namespaces where name in ($1, $2)) as namespaces,
                to_regclass('core.nodes') is not null as nodes_table`,
        [namespace, INJECTION],
      );
      return rows[0];
    });
  }
});
