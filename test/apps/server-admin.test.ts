/**
 * The admin token rule of the server's routes that change state (retry, purge, replay):
 * disabled (403) without a token configured, 401 for a missing or wrong one, 200 with the
 * right one, compared in constant time; and the per-client rate limit on those routes.
 */
import crypto from "node:crypto";
import type { FastifyInstance } from "fastify";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { CoreSystem, type CoreNode } from "../../core/index.js";
import { buildServer, type ServerOptions } from "../../apps/server/app.js";
import { AdminToken } from "../../apps/server/auth.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";

let system: CoreSystem;
let node: CoreNode;
const apps: FastifyInstance[] = [];

beforeAll(async () => {
  system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: uniqueNamespace("adm") });
  node = await system.registerNode({ displayName: "server" });
  // The group must exist for retry and purge to reach the database.
  const billing = await system.registerNode({ displayName: "billing" });
  await billing.onEvent("bill.*", () => {});
  await billing.start();
});

afterEach(() => vi.restoreAllMocks());
afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()));
  await system?.close();
});

async function serve(options: Partial<ServerOptions> = {}): Promise<string> {
  const app = await buildServer({ system, node, ...options });
  apps.push(app);
  return app.listen({ port: 0, host: "127.0.0.1" });
}

/** The three routes that change state, as fetch calls. */
function mutating(base: string, headers: Record<string, string>): Record<string, () => Promise<Response>> {
  const json = { "content-type": "application/json", ...headers };
  const from = new Date(Date.now() - 60_000).toISOString();
  const to = new Date().toISOString();
  return {
    retry: () => fetch(`${base}/dead-letters/billing/retry`, { method: "POST", headers: json, body: "{}" }),
    purge: () => fetch(`${base}/dead-letters/billing`, { method: "DELETE", headers }),
    replay: () => fetch(`${base}/replay`, { method: "POST", headers: json, body: JSON.stringify({ group: "billing", from, to, dryRun: true }) }),
  };
}

describe("admin token", () => {
  it("without CORE_ADMIN_TOKEN the routes that change state answer 403 and say they are disabled", async () => {
    const base = await serve();
    for (const [name, call] of Object.entries(mutating(base, { authorization: "Bearer anything" }))) {
      const response = await call();
      expect(response.status, name).toBe(403);
      const { error } = (await response.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe("admin_disabled");
      expect(error.message).toContain("CORE_ADMIN_TOKEN");
    }
    // Reading stays open.
    expect((await fetch(`${base}/dead-letters/billing`)).status).toBe(200);
  });

  it("with a token: 401 without it or with a wrong one, 200 with the right one", async () => {
    const base = await serve({ adminToken: "correct horse battery staple" });
    const wrongs: Record<string, string>[] = [{}, { authorization: "Bearer wrong" }, { authorization: "Basic Y29ycmVjdA==" }, { authorization: "Bearer correct horse" }];
    for (const headers of wrongs) {
      for (const [name, call] of Object.entries(mutating(base, headers))) {
        const response = await call();
        expect(response.status, `${name} ${JSON.stringify(headers)}`).toBe(401);
        expect(response.headers.get("www-authenticate")).toMatch(/^Bearer/);
        expect(((await response.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
      }
    }
    const right = mutating(base, { authorization: "Bearer correct horse battery staple" });
    const retry = await right.retry!();
    expect(retry.status).toBe(200);
    expect(await retry.json()).toEqual({ retried: 0 });
    const purge = await right.purge!();
    expect(purge.status).toBe(200);
    expect(await purge.json()).toEqual({ purged: 0 });
    const replay = await right.replay!();
    expect(replay.status).toBe(200);
    expect(await replay.json()).toEqual({ replayId: expect.any(String), count: 0 });
    // The scheme is case-insensitive.
    expect((await mutating(base, { authorization: "bearer correct horse battery staple" }).purge!()).status).toBe(200);
  });

  it("compares in constant time: equal-length SHA-256 digests through crypto.timingSafeEqual", async () => {
    const spy = vi.spyOn(crypto, "timingSafeEqual");
    const token = new AdminToken("s3cret");
    expect(token.matches("s3cret")).toBe(true);
    expect(token.matches("s3cre")).toBe(false);
    expect(token.matches("a much longer token than the real one")).toBe(false);
    expect(spy).toHaveBeenCalledTimes(3);
    for (const [a, b] of spy.mock.calls) {
      expect((a as Buffer).length).toBe(32);
      expect((b as Buffer).length).toBe(32);
    }
    // And the HTTP path goes through it too.
    spy.mockClear();
    const base = await serve({ adminToken: "s3cret" });
    expect((await mutating(base, { authorization: "Bearer nope" }).purge!()).status).toBe(401);
    expect(spy).toHaveBeenCalledTimes(1);
    expect(new AdminToken(undefined).enabled).toBe(false);
    expect(new AdminToken("").enabled).toBe(false);
  });
});

describe("admin rate limit", () => {
  it("answers 429 past the limit per client, counting requests with a wrong token too", async () => {
    const base = await serve({ adminToken: "s3cret", adminRateLimit: { max: 3, timeWindowMs: 60_000 } });
    const wrong = mutating(base, { authorization: "Bearer guess" });
    expect((await wrong.purge!()).status).toBe(401);
    expect((await wrong.purge!()).status).toBe(401);
    const right = mutating(base, { authorization: "Bearer s3cret" });
    expect((await right.purge!()).status).toBe(200);
    const limited = await right.purge!();
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBeTruthy();
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
    // Routes that change nothing are not limited.
    for (let i = 0; i < 5; i += 1) expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/dead-letters/billing`)).status).toBe(200);
  });

  it("can be turned off", async () => {
    const base = await serve({ adminToken: "s3cret", adminRateLimit: false });
    const right = mutating(base, { authorization: "Bearer s3cret" });
    for (let i = 0; i < 40; i += 1) expect((await right.purge!()).status).toBe(200);
  });
});
