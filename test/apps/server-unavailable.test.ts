/**
 * The server while its database is unreachable: the system connects through a TCP proxy
 * on this machine, the proxy then stops (its port refuses connections and every open
 * connection is cut), and the routes that need the database answer 503 with the error
 * body and Retry-After, never a 500 or a stack; liveness stays 200. After the cut, the
 * pool points at a dead port: new connections are refused, and the connections it had are
 * gone, so both ways of losing the database are exercised.
 */
import net from "node:net";
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, type CoreNode } from "../../core/index.js";
import { buildServer } from "../../apps/server/app.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";

/** A TCP proxy to the test database that can be cut. */
interface Proxy {
  url: string;
  cut(): Promise<void>;
}

async function startProxy(target: string): Promise<Proxy> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: hostname, port: Number(port || 5432) });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as net.AddressInfo;
  const url = new URL(target);
  url.hostname = "127.0.0.1";
  url.port = String(address.port);
  return {
    url: url.toString(),
    cut: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

let proxy: Proxy;
let system: CoreSystem;
let node: CoreNode;
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  proxy = await startProxy(testDatabaseUrl());
  system = await CoreSystem.connect({
    connectionString: proxy.url,
    namespace: uniqueNamespace("down"),
    pool: { max: 4, connectionTimeoutMs: 2_000 },
    heartbeatIntervalMs: 60_000,
    nodeTtlMs: 180_000,
  });
  node = await system.registerNode({ displayName: "server" });
  const billing = await system.registerNode({ displayName: "billing" });
  await billing.onEvent("bill.*", () => {});
  await billing.start();
  app = await buildServer({ system, node, adminToken: "s3cret", readinessTimeoutMs: 3_000 });
  base = await app.listen({ port: 0, host: "127.0.0.1" });
});

afterAll(async () => {
  await app?.close();
  // Marking the nodes stopped fails without a database; close still ends the pool.
  await system?.close().catch(() => {});
});

async function expectUnavailable(response: Response, code = "database_unavailable"): Promise<void> {
  expect(response.status).toBe(503);
  expect(response.headers.get("retry-after")).toBe("5");
  const text = await response.text();
  expect(JSON.parse(text)).toEqual({ error: { code, message: expect.any(String) } });
  expect(text).not.toMatch(/\bat .*\.(ts|js):\d+/);
}

describe("with the database unreachable", () => {
  it("works through the proxy first", async () => {
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const emitted = await fetch(`${base}/events`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"type":"demo.a","payload":1}' });
    expect(emitted.status).toBe(202);
  });

  it("answers 503 on every route that needs the database, 200 on /healthz", async () => {
    await proxy.cut();
    const json = { "content-type": "application/json" };
    const auth = { authorization: "Bearer s3cret" };
    await expectUnavailable(await fetch(`${base}/events`, { method: "POST", headers: json, body: '{"type":"demo.a","payload":1}' }));
    await expectUnavailable(await fetch(`${base}/events/batch`, { method: "POST", headers: json, body: '{"events":[{"type":"demo.a","payload":1}]}' }));
    await expectUnavailable(await fetch(`${base}/readyz`));
    await expectUnavailable(await fetch(`${base}/nodes`));
    await expectUnavailable(await fetch(`${base}/queues`));
    await expectUnavailable(await fetch(`${base}/dead-letters/billing`));
    await expectUnavailable(await fetch(`${base}/dead-letters/billing/1`));
    await expectUnavailable(await fetch(`${base}/dead-letters/billing/retry`, { method: "POST", headers: { ...json, ...auth }, body: "{}" }));
    await expectUnavailable(await fetch(`${base}/dead-letters/billing`, { method: "DELETE", headers: auth }));
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    // Metrics still answer, saying the database is down.
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain(`nexus_database_up{namespace="${system.namespace}"} 0`);
    // Client errors are still client errors.
    const bad = await fetch(`${base}/events`, { method: "POST", headers: json, body: '{"type":"bad..type","payload":1}' });
    expect(bad.status).toBe(400);
  });
});
