/**
 * Secrets (issue 11, part 5) on the paths this issue adds: namespace roles (the password
 * of a role, and of the connection refused for want of a privilege), the HTTP server (the
 * admin token never logged or echoed, a URL never echoed back) and the rate limits of the
 * server's routes per client: admin routes always, ingest routes only when configured.
 */
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, ErrorCode, type CoreNode } from "../../core/index.js";
import { buildServer, type ServerOptions } from "../../apps/server/app.js";
import { runCli } from "../support/cli.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { capturingLogger, everythingIn } from "../support/capture.js";
import { canCreateRoles, dropRoles, expectNexusError, uniqueRoleName, urlAs } from "./support.js";

const PASSWORD = "Sw0rdfish-and-7-oceans";
const TOKEN = "admin-T0ken-that-must-not-leak";
const privileged = await canCreateRoles();

describe("secrets of namespace roles", () => {
  const roles: string[] = [];
  let admin: pg.Pool;
  beforeAll(() => {
    admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 1 });
  });
  afterAll(async () => {
    await dropRoles(roles);
    await admin?.end();
  });

  it("keeps the role's password out of logs, errors and the catalogue (a SCRAM verifier is stored)", async () => {
    const { logger, lines } = capturingLogger();
    const namespace = uniqueNamespace("sec-role");
    const system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace, logger });
    const role = uniqueRoleName("sec");
    roles.push(role);
    try {
      const outcome = await system.createNamespaceRole(namespace, { roleName: role, password: PASSWORD }).catch((error: unknown) => error);
      if (privileged) {
        expect(outcome).toEqual({ roleName: role, namespace });
        const { rows } = await admin.query<{ verifier: string }>("select rolpassword as verifier from pg_authid where rolname = $1", [role]);
        expect(rows[0]!.verifier).toMatch(/^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
        expect(rows[0]!.verifier).not.toContain(PASSWORD);
        // Creating it again fails with a typed error, still without the password.
        const again = await expectNexusError(() => system.createNamespaceRole(namespace, { roleName: role, password: PASSWORD }), ErrorCode.database);
        expect(everythingIn(again)).not.toContain(PASSWORD);
      } else {
        expect(everythingIn(outcome)).not.toContain(PASSWORD);
        expect((outcome as { privilege?: string }).privilege).toBe("CREATEROLE");
      }
    } finally {
      await system.close();
    }
    expect(lines.join("")).not.toContain(PASSWORD);
  });

  it.skipIf(!privileged)("a permission error of a role's connection does not show its password (skipped without CREATEROLE)", async () => {
    const namespace = uniqueNamespace("sec-perm");
    const owner = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace });
    const role = uniqueRoleName("perm");
    roles.push(role);
    await owner.createNamespaceRole(namespace, { roleName: role, password: PASSWORD });
    await owner.close();
    const { logger, lines } = capturingLogger();
    const elsewhere = await CoreSystem.connect({ connectionString: urlAs(role, PASSWORD), namespace: uniqueNamespace("sec-other"), logger });
    try {
      const error = await expectNexusError(() => elsewhere.registerNode({ displayName: "x" }), ErrorCode.permissionDenied);
      expect(everythingIn(error)).not.toContain(PASSWORD);
      expect(error.message).toMatch(/namespace role works only in its own namespace/);
    } finally {
      await elsewhere.close();
    }
    expect(lines.join("")).not.toContain(PASSWORD);
  });

  it("nexus roles create reads the password from the environment and never prints it", async () => {
    const namespace = uniqueNamespace("sec-cli");
    const role = uniqueRoleName("cli");
    roles.push(role);
    const run = await runCli(["--database-url", testDatabaseUrl(), "--namespace", namespace, "--json", "roles", "create", "--role", role, "--password-env", "NEXUS_TEST_ROLE_PASSWORD"], {
      env: { NEXUS_TEST_ROLE_PASSWORD: PASSWORD },
    });
    expect(`${run.stdout}${run.stderr}`).not.toContain(PASSWORD);
    if (privileged) {
      expect(run.code, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toEqual({ roleName: role, namespace });
    } else {
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/lacks the CREATEROLE privilege/);
    }
    // A missing variable is a usage error, before any connection.
    const missing = await runCli(["--database-url", testDatabaseUrl(), "roles", "create", "--password-env", "NEXUS_TEST_UNSET_VARIABLE"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/NEXUS_TEST_UNSET_VARIABLE: that environment variable is not set/);
  });
});

describe("HTTP server: the admin token and the rate limits", () => {
  let system: CoreSystem;
  let node: CoreNode;
  const apps: FastifyInstance[] = [];
  const lines: string[] = [];

  beforeAll(async () => {
    const captured = capturingLogger();
    lines.push(...captured.lines);
    system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: uniqueNamespace("sec-http"), logger: captured.logger });
    // The shared array fills as the logger writes.
    captured.lines.push = (...items: string[]) => lines.push(...items);
    node = await system.registerNode({ displayName: "server" });
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await node?.stop({ graceMs: 0 });
    await system?.close();
  });

  async function server(options: Partial<ServerOptions>): Promise<FastifyInstance> {
    const app = await buildServer({ system, node, adminToken: TOKEN, logRequests: true, ...options });
    apps.push(app);
    return app;
  }

  it("never logs or echoes the admin token, right or wrong, nor a URL the router refuses", async () => {
    const app = await server({ adminRateLimit: false });
    for (const token of [TOKEN, `${TOKEN}x`, TOKEN.slice(0, -1)]) {
      const response = await app.inject({ method: "DELETE", url: "/dead-letters/nogroup", headers: { authorization: `Bearer ${token}` } });
      expect([401, 404]).toContain(response.statusCode);
      expect(response.body).not.toContain(TOKEN.slice(0, -1));
    }
    const longGroup = "g".repeat(150);
    const long = await app.inject({ method: "GET", url: `/dead-letters/${longGroup}` });
    expect(long.statusCode).toBe(414);
    expect(JSON.parse(long.body)).toEqual({ error: { code: "uri_too_long", message: expect.any(String) } });
    expect(long.body).not.toContain(longGroup);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join("")).not.toContain(TOKEN.slice(0, -1));
  });

  it("limits admin requests per client: another client keeps its own budget", async () => {
    const app = await server({ adminRateLimit: { max: 2, timeWindowMs: 60_000 } });
    const purge = (remoteAddress: string) => app.inject({ method: "DELETE", url: "/dead-letters/nogroup", headers: { authorization: "Bearer wrong" }, remoteAddress });
    expect((await purge("10.0.0.1")).statusCode).toBe(401);
    expect((await purge("10.0.0.1")).statusCode).toBe(401);
    const limited = await purge("10.0.0.1");
    expect(limited.statusCode).toBe(429);
    expect(JSON.parse(limited.body).error.code).toBe("rate_limited");
    expect((await purge("10.0.0.2")).statusCode).toBe(401);
  });

  it("does not limit ingest unless configured, and limits it per client when configured", async () => {
    const post = (app: FastifyInstance, remoteAddress: string) =>
      app.inject({ method: "POST", url: "/events", headers: { "content-type": "application/json" }, payload: { type: "sec.tick", payload: {} }, remoteAddress });
    const open = await server({});
    for (let i = 0; i < 40; i += 1) expect((await post(open, "10.0.0.3")).statusCode).toBe(202);
    const limited = await server({ ingestRateLimit: { max: 3, timeWindowMs: 60_000 } });
    for (let i = 0; i < 3; i += 1) expect((await post(limited, "10.0.0.4")).statusCode).toBe(202);
    const refused = await post(limited, "10.0.0.4");
    expect(refused.statusCode).toBe(429);
    expect(refused.headers["retry-after"]).toBeTruthy();
    expect(JSON.parse(refused.body).error.code).toBe("rate_limited");
    expect((await post(limited, "10.0.0.5")).statusCode).toBe(202);
    // The batch route has a budget of its own per client, of the same size.
    const batch = () => limited.inject({ method: "POST", url: "/events/batch", headers: { "content-type": "application/json" }, payload: { events: [{ type: "sec.tick", payload: {} }] }, remoteAddress: "10.0.0.4" });
    for (let i = 0; i < 3; i += 1) expect((await batch()).statusCode).toBe(202);
    expect((await batch()).statusCode).toBe(429);
    await expect(server({ ingestRateLimit: { max: 0, timeWindowMs: 1 } })).rejects.toThrow(/ingestRateLimit must be false or/);
  });
});
