/**
 * `nexus dlq`, `queues` and `nodes` on dead letters made for real: a handler that always
 * throws, one attempt, no backoff.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, type DeadLetter, type DeadLetterPage } from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { waitUntil } from "../support/wait.js";
import { nexus, parseJson } from "../support/cli.js";

const namespace = uniqueNamespace("cli-dlq");
const GROUP = "billing";
let system: CoreSystem;
let workerId: string;
let eventIds: string[];

beforeAll(async () => {
  system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace });
  const worker = await system.registerNode({ displayName: "worker" });
  workerId = worker.nodeId;
  await worker.onEvent(
    "order.*",
    () => {
      throw new TypeError("card declined");
    },
    { group: GROUP, maxAttempts: 1, backoff: { type: "fixed", delay: 0 }, pollInterval: 100 },
  );
  await worker.start();
  eventIds = [await worker.emit("order.created", { orderId: 1 }), await worker.emit("order.paid", { orderId: 2 })];
  await waitUntil("two dead letters", () => system.deadLetters.list(GROUP), (page) => page.items.length === 2);
  // Stopped, so that retried letters stay in the queue for the test to see.
  await worker.stop();
});
afterAll(() => system.close());

describe("dlq", () => {
  // Reading only: at once. The test after them changes the dead letters.
  describe.concurrent("reading", () => {
    it("lists the dead letters as a table and as JSON", async () => {
      const [text, first, typedRun] = await Promise.all([
        nexus(namespace, ["dlq", "list", GROUP]),
        nexus(namespace, ["dlq", "list", GROUP, "--json", "--limit", "1"]),
        nexus(namespace, ["dlq", "list", GROUP, "--json", "--type", "order.paid"]),
      ]);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/│ id │ type\s+│ attempts │ error\s+│ dead-lettered/);
      expect(text.stdout).toMatch(/order\.created\s+│\s+1 │ TypeError: card declined/);

      const page = parseJson<DeadLetterPage>(first);
      expect(page.items).toHaveLength(1);
      expect(page.items[0]).toMatchObject({ eventId: eventIds[0], type: "order.created", attempts: 1, error: { name: "TypeError", message: "card declined" } });
      expect(page.nextAfter).toBe(page.items[0]!.id);
      const next = parseJson<DeadLetterPage>(await nexus(namespace, ["dlq", "list", GROUP, "--json", "--after", page.nextAfter!]));
      expect(next.items.map((item) => item.eventId)).toEqual([eventIds[1]]);
      const typed = parseJson<DeadLetterPage>(typedRun);
      expect(typed.items.map((item) => item.type)).toEqual(["order.paid"]);
    });

    it("shows one dead letter in full, and exits 1 for an id it does not have", async () => {
      const { items } = await system.deadLetters.list(GROUP);
      const [jsonRun, text, missing] = await Promise.all([
        nexus(namespace, ["dlq", "show", GROUP, items[1]!.id, "--json"]),
        nexus(namespace, ["dlq", "show", GROUP, items[1]!.id]),
        nexus(namespace, ["dlq", "show", GROUP, "999999"]),
      ]);
      const json = parseJson<DeadLetter>(jsonRun);
      expect(json).toMatchObject({ eventId: eventIds[1], payload: { orderId: 2 }, sourceNode: workerId });
      expect(json.error.stack).toContain("TypeError: card declined");
      expect(text.stdout).toMatch(/type\s+order\.paid/);
      expect(text.stdout).toContain('"orderId": 2');

      expect(missing.code).toBe(1);
      expect(missing.stderr).toBe(`error: group ${GROUP} has no dead letter 999999 in namespace ${namespace}.\n`);
    });

    it("exits 1 with the library's message for a group without queues", async () => {
      const run = await nexus(namespace, ["dlq", "list", "no-such-group"]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/^error: Group no-such-group has no queue in namespace/);
      expect(run.stderr).not.toMatch(/\n\s+at /);
    });
  });

  it("retries by id; queues and nodes show the result; purge needs --yes off a terminal", async () => {
    const { items } = await system.deadLetters.list(GROUP);
    const retried = await nexus(namespace, ["dlq", "retry", GROUP, items[0]!.id]);
    expect(retried.code).toBe(0);
    expect(retried.stdout).toBe(`moved 1 dead letter back to group ${GROUP}'s queue\n`);

    const [queues, table, nodes, nodeTable, refused, mixed] = await Promise.all([
      nexus(namespace, ["queues", "--json"]),
      nexus(namespace, ["queues"]),
      nexus(namespace, ["nodes", "--json"]),
      nexus(namespace, ["nodes"]),
      nexus(namespace, ["dlq", "purge", GROUP]),
      nexus(namespace, ["dlq", "retry", GROUP, "1", "--type", "order.*"]),
    ]);
    expect(parseJson(queues)).toEqual([
      expect.objectContaining({ group: GROUP, kind: "event", queueLength: 1, visibleLength: 1, deadLetterLength: 1 }),
    ]);
    expect(table.stdout).toMatch(/│ billing │ event │\s+1 │\s+1 │\s+\d+s │\s+1 │/);
    expect(parseJson(nodes)).toEqual([expect.objectContaining({ nodeId: workerId, displayName: "worker", status: "stopped", alive: false })]);
    expect(nodeTable.stdout).toMatch(new RegExp(`│ ${workerId} │ worker │ stopped │ \\S+Z \\(\\d+s ago\\)`));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("pass --yes");
    expect(mixed.code).toBe(2);

    const purged = await nexus(namespace, ["dlq", "purge", GROUP, "--yes", "--json"]);
    expect(parseJson(purged)).toEqual({ group: GROUP, purged: 1 });
    const [afterJson, afterText] = await Promise.all([nexus(namespace, ["dlq", "list", GROUP, "--json"]), nexus(namespace, ["dlq", "list", GROUP])]);
    expect(parseJson<DeadLetterPage>(afterJson).items).toEqual([]);
    expect(afterText.stdout).toContain(`(no dead letters in group ${GROUP})`);
  });
});
