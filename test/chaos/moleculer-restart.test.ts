/**
 * PgTransporter through a database restart: while PostgreSQL is down, requests fail with
 * Moleculer's BrokerDisconnectedError (not silently); once it is back, the brokers
 * reconnect, re-announce themselves, see each other again and carry on.
 *
 * Needs the chaos suite's own PostgreSQL cluster, which this test stops and starts
 * (test/chaos/setup-cluster.sh makes it and prints its URL): NEXUS_CHAOS_DATABASE_URL
 * must name it, and NEXUS_CHAOS_CLUSTER its `pg_ctlcluster` name (default `15 chaos`).
 * Run with `NEXUS_TEST_SUITE=chaos npx vitest run test/chaos/moleculer-restart.test.ts`.
 */
import { execFileSync } from "node:child_process";
import type Moleculer from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniqueNamespace } from "../support/database.js";
import { sleep, waitUntil } from "../support/wait.js";
import type { FixtureProcess } from "../support/fixture-process.js";
import { startChild, stopChildren, supervisor, type BrokerReport, type ScenarioSetting } from "../adapters/moleculer/harness.js";
import { ensureClusterStarted } from "./support/cluster.js";

const databaseUrl = process.env.NEXUS_CHAOS_DATABASE_URL;
if (!databaseUrl) {
  throw new Error(
    "NEXUS_CHAOS_DATABASE_URL is not set: the Moleculer restart test needs a PostgreSQL cluster of its own to restart, " +
      "made by `bash test/chaos/setup-cluster.sh`, which prints the URL to set (postgres://postgres@127.0.0.1:5440/nexus_chaos).",
  );
}

/** Stops the chaos cluster (fast: connections are cut, as in a crash of the server). */
function stopCluster(): void {
  execFileSync("pg_ctlcluster", [...(process.env.NEXUS_CHAOS_CLUSTER ?? "15 chaos").split(" "), "stop", "-m", "fast"], { stdio: "pipe" });
}

describe("PgTransporter through a database restart", () => {
  const setting: ScenarioSetting = { namespace: uniqueNamespace("mol-chaos"), transporter: "pg", serializer: "JSON", disableBalancer: false, databaseUrl };
  let children: FixtureProcess<BrokerReport>[] = [];
  let broker: Moleculer.ServiceBroker;
  const transporter = (): { connected: boolean } => (broker.transit as unknown as { tx: { connected: boolean } }).tx;

  beforeAll(async () => {
    children = [await startChild(setting, "node1")];
    broker = supervisor(setting);
    await broker.start();
    await broker.waitForServices(["echo"], 30_000);
  }, 90_000);

  afterAll(async () => {
    ensureClusterStarted();
    await broker?.stop();
    await stopChildren(children);
  }, 60_000);

  it("fails requests with BrokerDisconnectedError while down, then reconnects, rediscovers and carries on", async () => {
    // Traffic before the restart.
    await expect(broker.call("echo.reply", { n: 1 })).resolves.toMatchObject({ params: { n: 1 } });
    let stopped = false;
    try {
      stopCluster();
      stopped = true;
      await waitUntil("the transporter to notice the lost connection", () => transporter().connected, (connected) => !connected, 15_000);
      const failure = await broker.call("echo.reply", { n: 2 }).then(
        () => undefined,
        (error: Error) => error,
      );
      expect(failure?.name).toBe("BrokerDisconnectedError");
      // Longer than the brokers' heartbeat timeout (6 s): they lose sight of each other.
      await sleep(8_000);
    } finally {
      if (stopped) ensureClusterStarted();
    }
    await waitUntil("the transporter to reconnect", () => transporter().connected, (connected) => connected, 30_000);
    // Rediscovered: node1 is available again and answers.
    await waitUntil(
      "node1 to be rediscovered",
      () => broker.call<{ id: string; available: boolean }[], { onlyAvailable: boolean }>("$node.list", { onlyAvailable: true }),
      (nodes) => nodes.some((node) => node.id === "node1"),
      30_000,
      200,
    );
    const reply = await waitUntil(
      "a call to go through again",
      () => broker.call("echo.reply", { n: 3 }, { timeout: 2_000 }).catch(() => undefined),
      (value) => value !== undefined,
      30_000,
      200,
    );
    expect(reply).toMatchObject({ params: { n: 3 } });
    children[0]!.reports.splice(0);
    await broker.emit("sample.event", { n: 4 });
    await children[0]!.waitForReport("the event after the restart", (report) => report.kind === "event", 15_000);
  }, 120_000);
});
