/**
 * Moleculer's own end-to-end scenarios (its test/e2e/scenarios: basic call / emit /
 * stream, and balancing with the balancer on and disabled), run with brokers in child
 * processes on PgTransporter, and with NEXUS_MOLECULER_PEERS=1 on the NATS and Redis
 * transporters too, with a text and a binary serializer. The same file runs against
 * Moleculer 0.15 from test/matrix/moleculer15 (peers included).
 */
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import type Moleculer from "moleculer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDatabaseUrl, uniqueNamespace } from "../../support/database.js";
import { waitUntil } from "../../support/wait.js";
import type { FixtureProcess } from "../../support/fixture-process.js";
import { reportsOf, startChild, stopChildren, supervisor, type BrokerReport, type ScenarioSetting } from "./harness.js";
import { callWithStream, transportersUnderTest, usesTransporterBalancer, type SerializerKind } from "./support.js";

const serializers: SerializerKind[] = ["JSON", "MsgPack"];
const nodes = ["node1", "node2", "node3"];

function sha(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe.each(transportersUnderTest())("Moleculer scenarios on %s", (transporter) => {
  describe.each(serializers)("with the %s serializer", (serializer) => {
    describe.each([false, true])("disableBalancer: %s", (disableBalancer) => {
      const setting: ScenarioSetting = { namespace: uniqueNamespace(`mol-${transporter}`), transporter, serializer, disableBalancer, databaseUrl: "" };
      let children: FixtureProcess<BrokerReport>[] = [];
      let broker: Moleculer.ServiceBroker;
      const clear = (): void => children.forEach((child) => child.reports.splice(0));
      // With the transporter balancing (disableBalancer on a transporter that can), any
      // instance may take each balanced packet. A broadcast still reaches every node: 0.15
      // and 0.14.36 send it to each endpoint (0.14.6 and older sent it to the group queues).
      const transporterBalances = usesTransporterBalancer(transporter, disableBalancer);

      beforeAll(async () => {
        setting.databaseUrl = testDatabaseUrl();
        children = await Promise.all(nodes.map((nodeID) => startChild(setting, nodeID)));
        broker = supervisor(setting);
        await broker.start();
        await broker.waitForServices(["echo", "aes", "test"], 30_000);
        // Every node's services are known before the balancing counts start.
        const registry = broker.registry as unknown as { nodes: { list(options: { onlyAvailable: boolean }): unknown[] } };
        await waitUntil("all three nodes to be available", () => registry.nodes.list({ onlyAvailable: true }).length, (count) => count === 4, 30_000);
        // Moleculer announces services before it subscribes their balanced topics: on NATS a
        // balanced packet sent in between is lost (Moleculer's e2e runner waits 10 s here).
        await waitUntil("a first call to go through", () => broker.call("echo.reply", {}, { timeout: 2_000 }).catch(() => undefined), (reply) => reply !== undefined, 30_000, 200);
      }, 120_000);

      afterAll(async () => {
        await broker?.stop();
        await stopChildren(children);
      }, 60_000);

      it("call action: params and meta go there, the response comes back", async () => {
        const params = { a: "Hello", b: 1000, c: true, d: { e: 123.45, f: [1, 2, 3], g: null } };
        const meta = { a: "Hi", b: 2222, c: false, d: { e: 56.78, f: [1, 2, 3], g: null } };
        const response = await broker.call("echo.reply", params, { meta });
        expect(response).toEqual({ params, meta, response: { a: "Hey", b: 3333, c: true, d: { e: 122.34, f: [1, 2, 3], g: null } } });
      });

      it("emit event: one instance of the echo group gets it with params and meta", async () => {
        clear();
        const params = { a: "Hello", b: 1000, c: true, d: { e: 123.45, f: [1, 2, 3], g: null } };
        const meta = { a: "Hi", b: 2222 };
        await broker.emit("sample.event", params, { meta });
        const [event] = await waitUntil("the event", () => reportsOf(children, "event"), (events) => events.length >= 1, 10_000);
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(reportsOf(children, "event")).toHaveLength(1);
        expect(event).toMatchObject({ service: "echo", event: "sample.event", params, meta, from: broker.nodeID });
      });

      // With the transporter balancing, Moleculer publishes every chunk of a request stream
      // as a balanced packet (its target is null), so instances share the chunks: streams
      // need Moleculer's balancer, on NATS as on Postgres.
      it.skipIf(transporterBalances)("send & receive stream: encrypt then decrypt returns the same bytes in order", async () => {
        const original = randomBytes(300_000);
        const source = Readable.from([original.subarray(0, 100_000), original.subarray(100_000, 200_000), original.subarray(200_000)]);
        const encrypted = await callWithStream<Readable>(broker, "aes.encrypt", source);
        const decrypted = await callWithStream<Readable>(broker, "aes.decrypt", encrypted);
        expect(sha(await collect(decrypted))).toBe(sha(original));
      });

      it("balance action calls: 9 calls, each handled once" + (transporterBalances ? "" : ", 3 per node"), async () => {
        clear();
        const results = await Promise.all(Array.from({ length: 9 }, (_, id) => broker.call<{ nodeID: string; id: number }, { id: number }>("test.work", { id })));
        expect(results.map((result) => result.id).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
        // A reply may arrive before the child's report line does.
        const calls = await waitUntil("9 reports of calls", () => reportsOf(children, "called"), (found) => found.length >= 9, 10_000);
        expect(calls.map((call) => call.id).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
        if (!transporterBalances) expect(calls.map((call) => call.nodeID).sort()).toEqual(nodes.flatMap((node) => [node, node, node]));
      });

      it("balance emitted events: 9 events, each handled once" + (transporterBalances ? "" : ", 3 per node"), async () => {
        clear();
        await Promise.all(Array.from({ length: 9 }, (_, id) => broker.emit("test.event", { id })));
        const events = await waitUntil("9 events", () => reportsOf(children, "event"), (found) => found.length >= 9, 15_000);
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(reportsOf(children, "event")).toHaveLength(9);
        expect(events.map((event) => event.id).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
        if (!transporterBalances) expect(events.map((event) => event.nodeID).sort()).toEqual(nodes.flatMap((node) => [node, node, node]));
      });

      it("broadcast events: every node gets each of 5", async () => {
        clear();
        await Promise.all(Array.from({ length: 5 }, (_, id) => broker.broadcast("test.event", { id })));
        await waitUntil("15 events", () => reportsOf(children, "event"), (found) => found.length >= 15, 15_000);
        await new Promise((resolve) => setTimeout(resolve, 500));
        const events = reportsOf(children, "event");
        expect(events).toHaveLength(15);
        expect(events.map((event) => event.nodeID).sort()).toEqual(nodes.flatMap((node) => [node, node, node, node, node]));
      });
    });
  });
});
