/**
 * Namespace isolation (issue 11, part 3): a role made by createNamespaceRole for
 * namespace A does everything in A (emit, consume, request/reply, direct sends,
 * broadcasts, dead letters, dropping its own groups) and nothing in namespace B: every
 * read, delete, emit and admin call on B fails with a PermissionError (SQLSTATE 42501 for
 * raw statements), and B's queues, dead letters and log are unchanged afterwards. Connected
 * with `replies: "queue"`, it refuses the direct path (`delivery: "direct"`), whose NOTIFY
 * payloads any role of the database can read.
 *
 * Creating roles needs CREATEROLE: in the non-superuser CI mode (role nexus_app) the
 * isolation tests are skipped, and the typed refusal is tested instead.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, ErrorCode, groupQueueName, PermissionError, requestQueueName, ValidationError, type CoreNode, type CoreEvent } from "../../core/index.js";
import { dropNamespaceLeftovers, testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { testSystems } from "../support/systems.js";
import { waitUntil } from "../support/wait.js";
import { canCreateRoles, dropRoles, expectNexusError, uniqueRoleName, urlAs } from "./support.js";

const privileged = await canCreateRoles();
const SKIP_REASON = "skipped: the test database's role lacks CREATEROLE (the non-superuser CI mode), so no namespace role can be made";

/** A role with no CREATEROLE: the test role itself in the non-superuser mode, else a role the session switches to. */
async function systemWithoutCreateRole(namespace: string, roles: string[]): Promise<CoreSystem> {
  // Connecting with the test role first applies the migrations.
  const owner = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace });
  if (!privileged) return owner;
  await owner.close();
  const role = uniqueRoleName("norole");
  roles.push(role);
  const admin = new pg.Client({ connectionString: testDatabaseUrl() });
  await admin.connect();
  try {
    await admin.query(`create role ${role} nologin`);
    await admin.query(`grant usage on schema core, pgmq to ${role}`);
    await admin.query(`grant select on core.schema_migrations to ${role}`);
  } finally {
    await admin.end();
  }
  const url = new URL(testDatabaseUrl());
  url.searchParams.set("options", `-c role=${role}`);
  return CoreSystem.connect({ connectionString: url.toString(), namespace });
}

describe("createNamespaceRole without CREATEROLE", () => {
  const roles: string[] = [];
  afterAll(() => dropRoles(roles));

  it("fails with a PermissionError that names the missing privilege", async () => {
    const namespace = uniqueNamespace("norole");
    const system = await systemWithoutCreateRole(namespace, roles);
    try {
      const error = await expectNexusError(() => system.createNamespaceRole(namespace, { roleName: uniqueRoleName("never") }), ErrorCode.permissionDenied);
      expect(error).toBeInstanceOf(PermissionError);
      expect((error as PermissionError).privilege).toBe("CREATEROLE");
      expect(error.message).toMatch(/lacks the CREATEROLE privilege/);
    } finally {
      await system.close();
    }
  });

  it("refuses invalid namespaces, role names and passwords before the database", async () => {
    const system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: uniqueNamespace("args") });
    try {
      await expectNexusError(() => system.createNamespaceRole("Bad Name"), ErrorCode.invalidName);
      await expectNexusError(() => system.createNamespaceRole("ok", { roleName: "pg_signal_backend" }), ErrorCode.invalidArgument);
      await expectNexusError(() => system.createNamespaceRole("ok", { roleName: 'x"; drop role postgres; --' }), ErrorCode.invalidArgument);
      await expectNexusError(() => system.createNamespaceRole("ok", { password: "" }), ErrorCode.invalidArgument);
      await expectNexusError(() => system.createNamespaceRole("ok", { password: "a\0b" }), ErrorCode.invalidArgument);
    } finally {
      await system.close();
    }
  });
});

describe.skipIf(!privileged)(`namespace roles (${privileged ? "CREATEROLE available" : SKIP_REASON})`, () => {
  const nsA = uniqueNamespace("iso-a");
  const nsB = uniqueNamespace("iso-b");
  const roleA = uniqueRoleName("a");
  const password = randomBytes(12).toString("base64url");
  let admin: pg.Pool;
  let adminA: CoreSystem;
  let adminB: CoreSystem;
  let nodeB: CoreNode;
  let systemA: CoreSystem;
  const systems = testSystems();

  /** What namespace B holds: the figures that must not change. */
  async function stateOfB(): Promise<Record<string, number>> {
    const ledger = groupQueueName(nsB, "ledger");
    const orders = groupQueueName(nsB, "orders");
    const count = async (sql: string, values: unknown[] = []): Promise<number> => Number((await admin.query<{ n: string }>(sql, values)).rows[0]!.n);
    return {
      ledger: await count(`select count(*) as n from pgmq."q_${ledger}"`),
      ordersDead: await count(`select count(*) as n from pgmq."q_${orders}_dlq"`),
      log: await count("select count(*) as n from core.event_log where namespace = $1", [nsB]),
      subscriptions: await count("select count(*) as n from core.subscriptions where namespace = $1", [nsB]),
      nodes: await count("select count(*) as n from core.nodes where namespace = $1", [nsB]),
      tasks: await count("select count(*) as n from core.scheduled_tasks where namespace = $1", [nsB]),
    };
  }

  beforeAll(async () => {
    admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 2 });
    adminA = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: nsA });
    adminB = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: nsB });
    // Namespace B, run by the application's own role: a consumed group with a dead
    // letter, a group that holds three messages, a responder and a scheduled task.
    nodeB = await adminB.registerNode({ displayName: "b" });
    await nodeB.onEvent("order.*", () => Promise.reject(new Error("always fails")), { group: "orders", maxAttempts: 1 });
    await nodeB.onRequest("calc.*", () => 42, { group: "calc" });
    await nodeB.start();
    const ledgerNode = await adminB.registerNode({ displayName: "ledger" });
    await ledgerNode.onEvent("pay.*", () => {}, { group: "ledger" });
    await ledgerNode.start();
    await ledgerNode.stop({ graceMs: 0 });
    await nodeB.emitBatch([1, 2, 3].map((n) => ({ type: "pay.done", payload: { n } })));
    await nodeB.emit("order.bad", { n: 0 });
    await waitUntil("B's dead letter", () => adminB.deadLetters.list("orders"), (page) => page.items.length === 1);
    await nodeB.scheduleTask({ name: "b-task", cronExpression: "0 0 1 1 *", eventType: "tick" });

    // A group of A made by the application before A's role exists: the role gets it too.
    const early = await adminA.registerNode({ displayName: "early" });
    await early.onEvent("early.*", () => {}, { group: "early" });
    await early.start();
    await early.stop({ graceMs: 0 });
    await early.emit("early.one", { n: 1 });

    const role = await adminA.createNamespaceRole(nsA, { roleName: roleA, password });
    expect(role).toEqual({ roleName: roleA, namespace: nsA });
    systemA = await systems.connect({ connectionString: urlAs(roleA, password), namespace: nsA, replies: "queue", eventLog: { maintenanceIntervalMs: 0 } });
  });

  afterAll(async () => {
    await systems.close().catch(() => {});
    await dropNamespaceLeftovers(admin, nsA).catch(() => {});
    await dropNamespaceLeftovers(admin, nsB).catch(() => {});
    await adminA?.close();
    await adminB?.close();
    await dropRoles([roleA]);
    await admin?.end();
  });

  it("the role logs in with its password and nothing else (the verifier is SCRAM)", async () => {
    const { rows } = await admin.query<{ rolpassword: string | null }>("select rolpassword from pg_authid where rolname = $1", [roleA]).catch(() => ({ rows: [] as { rolpassword: string | null }[] }));
    if (rows[0]) expect(rows[0].rolpassword).toMatch(/^SCRAM-SHA-256\$4096:/);
    const { rows: attributes } = await admin.query("select rolsuper, rolcreaterole, rolcreatedb, rolbypassrls from pg_roles where rolname = $1", [roleA]);
    expect(attributes[0]).toEqual({ rolsuper: false, rolcreaterole: false, rolcreatedb: false, rolbypassrls: false });
  });

  it("does everything in its own namespace: emit, consume, request/reply, direct sends, broadcasts, dead letters, drop", async () => {
    const worker = await systemA.registerNode({ displayName: "worker" });
    const caller = await systemA.registerNode({ displayName: "caller" });
    const seen: CoreEvent[] = [];
    await worker.onEvent("job.*", (event) => {
      if ((event.payload as { fail?: boolean }).fail) throw new Error("job failed");
      seen.push(event);
    }, { group: "workers", maxAttempts: 1 });
    await worker.onRequest("sum", (request) => (request.payload as number[]).reduce((a, b) => a + b, 0), { group: "adder" });
    const direct: unknown[] = [];
    worker.onDirect("ping", (message) => void direct.push(message.payload));
    await worker.start();
    await caller.start();

    await caller.emit("job.ok", { n: 1, text: "é ✓" }, { headers: { trace: "t1" } });
    await caller.emit("job.bad", { fail: true });
    await waitUntil("the event", () => seen.length, (n) => n === 1);
    expect(seen[0]).toMatchObject({ type: "job.ok", payload: { n: 1, text: "é ✓" }, headers: { trace: "t1" } });
    expect(await caller.request("sum", [1, 2, 3], { timeout: 10_000 })).toBe(6);
    await caller.sendTo(worker.nodeId, "ping", { hello: "A" });
    await waitUntil("the direct message", () => direct.length, (n) => n === 1);

    const heard: unknown[] = [];
    const stop = systemA.onBroadcast("news", (payload) => void heard.push(payload));
    await systemA.broadcast("news", { big: "x".repeat(10_000) });
    await waitUntil("the large broadcast", () => heard.length, (n) => n === 1);
    stop();

    const page = await waitUntil("A's dead letter", () => systemA.deadLetters.list("workers"), (p) => p.items.length === 1);
    expect(page.items[0]).toMatchObject({ type: "job.bad" });
    expect(await systemA.deadLetters.retry("workers", [page.items[0]!.id])).toBe(1);
    await waitUntil("the retried event dead again", () => systemA.deadLetters.list("workers"), (p) => p.items.length === 1);
    expect(await systemA.deadLetters.purge("workers")).toBe(1);
    const replayed = await systemA.replay({ group: "workers", from: new Date(Date.now() - 60_000), to: new Date(), dryRun: true });
    expect(replayed.count).toBe(2);
    const metrics = await systemA.metrics();
    expect(metrics.groups.map((group) => group.group).sort()).toEqual(["adder", "early", "workers"]);
    await caller.scheduleTask({ name: "a-task", cronExpression: "0 0 1 1 *", eventType: "tick" });
    expect((await caller.listTasks()).map((task) => task.name)).toEqual(["a-task"]);

    const temp = await systemA.registerNode({ displayName: "temp" });
    await temp.onEvent("temp.*", () => {}, { group: "temp" });
    await temp.start();
    await temp.stop({ graceMs: 0 });
    expect(await systemA.dropGroup("temp")).toBe(1);
    // Housekeeping too: heartbeat, marking silent nodes dead, dropping gone nodes' queues.
    await caller.heartbeat();
    await worker.stop({ graceMs: 0 });
    await caller.stop({ graceMs: 0 });
  });

  it("refuses the direct path (requests and sendTo), whose NOTIFY payloads any role could read; adapters fall back to queues", async () => {
    const worker = await systemA.registerNode({ displayName: "direct-worker" });
    const caller = await systemA.registerNode({ displayName: "direct-caller" });
    await worker.onRequest("secret.get", () => "through the queue", { group: "secrets" });
    const received: unknown[] = [];
    worker.onDirect("secret.*", (message) => void received.push(message.payload));
    await worker.start();
    await caller.start();
    // Another role LISTENs on the worker's channel: nothing of the refused calls may show up there.
    const eavesdropper = new pg.Client({ connectionString: testDatabaseUrl() });
    await eavesdropper.connect();
    const overheard: string[] = [];
    eavesdropper.on("notification", (message) => void (message.payload && overheard.push(message.payload)));
    try {
      await eavesdropper.query(`listen ${eavesdropper.escapeIdentifier(`nexus:n:${worker.nodeId}`)}`);
      const refusals = [
        await caller.request("secret.get", { pin: "1234" }, { delivery: "direct" }).catch((error: unknown) => error),
        await caller.sendTo(worker.nodeId, "secret.note", { pin: "1234" }, { delivery: "direct" }).catch((error: unknown) => error),
      ];
      for (const refusal of refusals) {
        expect(refusal).toBeInstanceOf(ValidationError);
        expect((refusal as ValidationError).message).toMatch(/replies: 'queue'.*Use delivery: 'queue'/);
      }
      // What an adapter defaulting to the direct path (Nest's PgClient, Moleculer's PgTransporter) takes here.
      expect(systemA.deliveryFor("direct", "test")).toBe("queue");
      expect(await caller.request("secret.get", { pin: "1234" }, { delivery: "queue", timeout: 10_000 })).toBe("through the queue");
      await caller.sendTo(worker.nodeId, "secret.note", { pin: "5678" }, { delivery: "queue" });
      await waitUntil("the queued direct message", () => received.length, (n) => n === 1);
      expect(received).toEqual([{ pin: "5678" }]);
      expect(overheard.filter((payload) => payload.includes("pin")), "payloads another role read on the worker's channel").toEqual([]);
    } finally {
      await eavesdropper.end();
      await worker.stop({ graceMs: 0 });
      await caller.stop({ graceMs: 0 });
    }
  });

  it("refuses every call of the API on namespace B with a PermissionError, and B is unchanged", async () => {
    const before = await stateOfB();
    const intoB = await systems.connect({ connectionString: urlAs(roleA, password), namespace: nsB, replies: "queue", eventLog: { maintenanceIntervalMs: 0 } });
    const denied = ErrorCode.permissionDenied;
    await expectNexusError(() => intoB.registerNode({ displayName: "intruder" }), denied);
    await expectNexusError(() => intoB.deadLetters.list("orders"), denied);
    await expectNexusError(() => intoB.deadLetters.get("orders", "1"), denied);
    await expectNexusError(() => intoB.deadLetters.retry("orders", {}), denied);
    await expectNexusError(() => intoB.deadLetters.purge("orders"), denied);
    await expectNexusError(() => intoB.dropGroup("ledger"), denied);
    await expectNexusError(() => intoB.dropGroup("orders"), denied);
    await expectNexusError(() => intoB.broadcast("news", { forged: true }), denied);
    await expectNexusError(() => intoB.replay({ group: "ledger", from: new Date(Date.now() - 60_000), to: new Date() }), denied);
    // Metrics of B show none of B's groups (row-level security hides them).
    expect((await intoB.metrics()).groups).toEqual([]);

    // A node of A cannot reach B's nodes either.
    const nodeA = await systemA.registerNode({ displayName: "prober" });
    await expectNexusError(() => nodeA.sendTo(nodeB.nodeId, "ping", {}), denied);
    await nodeA.stop({ graceMs: 0 });
    expect(await stateOfB()).toEqual(before);
  });

  it("refuses raw statements on B's queues and rows (SQLSTATE 42501) or shows none of B's rows", async () => {
    const before = await stateOfB();
    const ledger = groupQueueName(nsB, "ledger");
    const orders = groupQueueName(nsB, "orders");
    const client = new pg.Client({ connectionString: urlAs(roleA, password) });
    await client.connect();
    try {
      const refused = async (sql: string, values: unknown[] = []): Promise<void> => {
        const error = await client.query(sql, values).then(() => undefined, (caught: { code?: string }) => caught);
        expect(error?.code, sql).toBe("42501");
      };
      await refused("select * from core.read_messages($1, 30, 10)", [ledger]);
      await refused("select * from pgmq.read($1, 30, 10)", [ledger]);
      await refused("select pgmq.delete($1, 1::bigint)", [ledger]);
      await refused("select pgmq.send($1, '{}'::jsonb)", [ledger]);
      await refused("select pgmq.purge_queue($1)", [ledger]);
      await refused(`select * from pgmq."q_${ledger}"`);
      await refused(`select * from pgmq."q_${orders}_dlq"`);
      await refused("select * from core.emit($1, $2::jsonb)", [nsB, JSON.stringify([{ type: "pay.done", payload: { forged: true } }])]);
      await refused("select core.drop_group($1, 'ledger', $2)", [nsB, ledger]);
      await refused("select core.purge_dead_letters($1)", [orders]);
      await refused("select core.retry_dead_letters($1, $2, null, null, null)", [nsB, orders]);
      // Claiming B's queue names for a group of A, in advance or now, is refused.
      await refused("select core.subscribe($1, 'squat', 'pay.*', $2)", [systemA.namespace, ledger]);
      await refused("select core.subscribe($1, 'squat', 'pay.*', $2, 'request')", [systemA.namespace, requestQueueName(nsB, "future")]);
      await refused("select core.subscribe($1, 'future', 'pay.*', $2)", [nsB, groupQueueName(nsB, "future")]);
      await refused("select core.ensure_namespace_node_queue($1)", [nodeB.nodeId]);
      await refused("select core.grant_namespace_role($1, $2)", [roleA, nsB]);
      await refused("insert into core.namespace_roles (role_name, namespace) values (current_user, $1)", [nsB]);
      for (const table of ["event_log", "subscriptions", "nodes", "scheduled_tasks", "idempotency_keys", "broadcast_payloads"]) {
        const { rows } = await client.query(`select count(*)::int as n from core.${table} where namespace = $1`, [nsB]);
        expect(rows[0].n, table).toBe(0);
      }
      const updated = await client.query("update core.nodes set status = 'dead' where namespace = $1", [nsB]);
      expect(updated.rowCount).toBe(0);
      const deleted = await client.query("delete from core.event_log where namespace = $1", [nsB]);
      expect(deleted.rowCount).toBe(0);
    } finally {
      await client.end();
    }
    expect(await stateOfB()).toEqual(before);
  });

  it("queues the application created for A before the role, and creates later, are granted to A's role", async () => {
    const later = await adminA.registerNode({ displayName: "later" });
    await later.onEvent("late.*", () => {}, { group: "late" });
    await later.start();
    await later.stop({ graceMs: 0 });
    const client = new pg.Client({ connectionString: urlAs(roleA, password) });
    await client.connect();
    try {
      const { rows } = await client.query("select count(*)::int as n from pgmq.read($1, 30, 10)", [groupQueueName(nsA, "late")]);
      expect(rows[0].n).toBe(0);
      const { rows: early } = await client.query("select message ->> 'type' as type from pgmq.read($1, 30, 10)", [groupQueueName(nsA, "early")]);
      expect(early).toEqual([{ type: "early.one" }]);
    } finally {
      await client.end();
    }
  });
});
