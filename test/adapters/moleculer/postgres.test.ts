/**
 * What only PgTransporter promises: with disableBalancer, balanced requests and events
 * sit in durable group queues acknowledged after the handler, so a node SIGKILLed
 * mid-handler has its work done by another instance, and a rejecting event handler is
 * redelivered and then dead-lettered. Also: registration and resolve(), the same-nodeID
 * check, and the removal of a departed node's queue after the grace period.
 */
import Moleculer from "moleculer";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem } from "../../../core/index.js";
import { PgTransporter, PgTransporterConfigError, PG_TRANSPORTER_NAME } from "../../../adapters/moleculer/index.js";
import { balancedEventSubscription } from "../../../adapters/moleculer/mapping.js";
import { FixtureProcess } from "../../support/fixture-process.js";
import { testDatabaseUrl, uniqueNamespace } from "../../support/database.js";
import { waitUntil } from "../../support/wait.js";
import { startChild, stopChildren, supervisor, type BrokerReport, type ScenarioSetting } from "./harness.js";

const children: FixtureProcess<BrokerReport>[] = [];
const brokers: Moleculer.ServiceBroker[] = [];
let admin: pg.Pool;

function setting(label: string): ScenarioSetting {
  return { namespace: uniqueNamespace(label), transporter: "pg", serializer: "JSON", disableBalancer: true, databaseUrl: testDatabaseUrl() };
}

async function startSupervisor(scenario: ScenarioSetting): Promise<Moleculer.ServiceBroker> {
  const broker = supervisor(scenario);
  brokers.push(broker);
  await broker.start();
  return broker;
}

async function child(scenario: ScenarioSetting, nodeID: string, env: Record<string, string> = {}): Promise<FixtureProcess<BrokerReport>> {
  const started = await startChild(scenario, nodeID, env);
  children.push(started);
  return started;
}

beforeAll(() => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 2 });
});

afterEach(async () => {
  await Promise.all(brokers.splice(0).map((broker) => broker.stop()));
  await stopChildren(children.splice(0));
}, 60_000);

afterAll(async () => {
  await admin.end();
});

/**
 * Starts node1 (whose handlers take ten minutes), has `begin` send it work, waits until
 * node1 has started it, starts node2, SIGKILLs node1, and returns node2.
 */
async function killMidWork(label: string, begin: (broker: Moleculer.ServiceBroker) => void, started: (report: BrokerReport) => boolean): Promise<FixtureProcess<BrokerReport>> {
  const scenario = setting(label);
  const node1 = await child(scenario, "node1", { MOL_WORK_MS: "600000" });
  const broker = await startSupervisor(scenario);
  await broker.waitForServices(["test"], 20_000);
  begin(broker);
  await node1.waitForReport("node1 to start the work", started, 20_000);
  const node2 = await child(scenario, "node2");
  await node1.kill();
  return node2;
}

describe("with disableBalancer, work survives a SIGKILLed node", () => {
  it("a balanced request taken by a node killed mid-action is answered by another instance", async () => {
    let reply: Promise<{ nodeID: string; id: number }> | undefined;
    const node2 = await killMidWork(
      "mol-kill-req",
      (broker) => void (reply = broker.call<{ nodeID: string; id: number }, { id: number }>("test.work", { id: 41 }, { timeout: 40_000 })),
      (report) => report.kind === "called" && report.id === 41,
    );
    await expect(reply).resolves.toEqual({ nodeID: "node2", id: 41 });
    expect(node2.reports.filter((report) => report.kind === "done" && report.id === 41)).toHaveLength(1);
  }, 90_000);

  it("a balanced event taken by a node killed mid-handler is handled by another instance", async () => {
    const node2 = await killMidWork(
      "mol-kill-evt",
      (broker) => void broker.emit("test.event", { id: 42 }),
      (report) => report.kind === "event" && report.id === 42,
    );
    await node2.waitForReport("node2 to handle the event", (report) => report.kind === "event-done" && report.id === 42, 40_000);
  }, 90_000);
});

it("an event handler that rejects is redelivered, then dead-lettered", async () => {
  const scenario = setting("mol-reject");
  // The fixture's transporter allows 3 attempts, 200 ms apart.
  const node1 = await child(scenario, "node1", { MOL_REJECT_EVENTS: "1" });
  const broker = await startSupervisor(scenario);
  await broker.waitForServices(["test"], 20_000);
  await broker.emit("test.event", { id: 43 });
  const system = await CoreSystem.connect({ connectionString: scenario.databaseUrl, namespace: scenario.namespace });
  try {
    const page = await waitUntil("the dead letter", () => system.deadLetters.list(balancedEventSubscription("test").group), (found) => found.items.length > 0, 20_000);
    expect(page.items).toHaveLength(1);
    expect(node1.reports.filter((report) => report.kind === "event" && report.id === 43)).toHaveLength(3);
  } finally {
    await system.close();
  }
}, 60_000);

it("two brokers with one nodeID get Moleculer's own conflict check, not crossed messages", async () => {
  const scenario = setting("mol-dup");
  await child(scenario, "twin");
  const second = new FixtureProcess<BrokerReport>((children[0]!.child.spawnargs.at(-1))!, {
    MOL_NODE_ID: "twin",
    MOL_NAMESPACE: scenario.namespace,
    MOL_TRANSPORTER: "pg",
    MOL_SERIALIZER: "JSON",
    MOL_DISABLE_BALANCER: "1",
    MOL_DATABASE_URL: scenario.databaseUrl,
  });
  children.push(second);
  // One of the two detects the other's INFO and stops the process (broker.fatal).
  const outcome = await Promise.any(children.map((twin) => twin.waitForReport("a conflict", () => false, 30_000).catch((error: Error) => {
    if (/nodeID conflict/.test(error.message)) return error.message;
    throw error;
  })));
  expect(outcome).toMatch(/nodeID conflict/);
}, 60_000);

it("a departed node's queue is removed after the grace period, like AMQP's autoDeleteQueues", async () => {
  const namespace = uniqueNamespace("mol-grace");
  const core = { heartbeatIntervalMs: 200, nodeTtlMs: 600, nodeQueueGraceMs: 500 };
  const make = (nodeID: string): Moleculer.ServiceBroker =>
    new Moleculer.ServiceBroker({ nodeID, namespace, logLevel: "warn", transporter: new PgTransporter({ connectionString: testDatabaseUrl(), core }) });
  const stays = make("stays");
  const leaves = make("leaves");
  brokers.push(stays);
  await stays.start();
  await leaves.start();
  const { rows } = await admin.query<{ node_id: string }>("select node_id from core.nodes where namespace = $1 and display_name = 'moleculer:leaves'", [namespace]);
  const queue = `n_${rows[0]!.node_id.replace(/-/g, "")}`;
  const exists = async (): Promise<boolean> => (await admin.query("select 1 from pgmq.list_queues() where queue_name = $1", [queue])).rowCount === 1;
  expect(await exists()).toBe(true);
  await leaves.stop();
  await waitUntil("the departed node's queue to be dropped", exists, (present) => !present, 15_000, 100);
}, 40_000);

describe("registration", () => {
  it("resolves by registered name, by { type, options } and as an instance (BaseTransporter in its prototype chain)", () => {
    const previous = process.env.CORE_DATABASE_URL;
    process.env.CORE_DATABASE_URL = testDatabaseUrl();
    try {
      const resolve = (Moleculer.Transporters as unknown as { resolve(option: unknown): unknown }).resolve;
      expect(resolve(PG_TRANSPORTER_NAME)).toBeInstanceOf(PgTransporter);
      expect(resolve({ type: PG_TRANSPORTER_NAME, options: { connectionString: testDatabaseUrl() } })).toBeInstanceOf(PgTransporter);
      const instance = new PgTransporter(testDatabaseUrl());
      expect(resolve(instance)).toBe(instance);
      expect(instance).toBeInstanceOf(Moleculer.Transporters.Base);
      const broker = new Moleculer.ServiceBroker({ logLevel: "warn", transporter: PG_TRANSPORTER_NAME });
      expect((broker.transit as unknown as { tx: unknown }).tx).toBeInstanceOf(PgTransporter);
    } finally {
      if (previous === undefined) delete process.env.CORE_DATABASE_URL;
      else process.env.CORE_DATABASE_URL = previous;
    }
  });

  it("says how to fix a missing connection string or an unusable namespace", () => {
    const previous = process.env.CORE_DATABASE_URL;
    delete process.env.CORE_DATABASE_URL;
    try {
      expect(() => new PgTransporter()).toThrow(PgTransporterConfigError);
      expect(() => new PgTransporter()).toThrow(/CORE_DATABASE_URL/);
    } finally {
      if (previous !== undefined) process.env.CORE_DATABASE_URL = previous;
    }
    // The broker calls init() from its constructor (and exits the process on a throw there).
    const transporter = new PgTransporter(testDatabaseUrl());
    const broker = new Moleculer.ServiceBroker({ logLevel: "warn", namespace: "Has Spaces" });
    const transit = { broker, nodeID: "n1" } as unknown as Parameters<PgTransporter["init"]>[0];
    expect(() => transporter.init(transit, () => {}, () => {})).toThrow(PgTransporterConfigError);
    expect(() => transporter.init(transit, () => {}, () => {})).toThrow(/PgTransporter's \{ namespace \} option/);
  });
});
