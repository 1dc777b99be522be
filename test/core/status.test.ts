/**
 * The system's lifecycle as adapters see it: `status` events when its LISTEN connection
 * is lost and comes back, an `error` event for listeners that want the cause, and
 * `disconnected` on close; and the scheduler's leader connection, the same reconnecting
 * primitive without automatic reconnects.
 */
import { describe, expect, it } from "vitest";
import type { CoreSystem, SystemStatus } from "../../core/index.js";
import { isCoreSystem, openSystem } from "../../core/internal.js";
import { testDatabaseUrl, uniqueNamespace, withClient } from "../support/database.js";
import { useSystems } from "../support/systems.js";
import { waitUntil } from "../support/wait.js";

const systems = useSystems({ label: "status" });

function connect(applicationName: string): Promise<CoreSystem> {
  return systems.connect({ applicationName });
}

/** Ends the server side of every connection named `applicationName`; returns how many. */
function terminate(applicationName: string): Promise<number> {
  return withClient(testDatabaseUrl(), async (client) => {
    const { rows } = await client.query<{ n: number }>(
      "select count(pg_terminate_backend(pid))::int as n from pg_stat_activity where application_name = $1",
      [applicationName],
    );
    return rows[0]!.n;
  });
}

describe("system status", () => {
  it("reports reconnecting while its LISTEN connection is lost, connected once it is back, disconnected on close", async () => {
    const name = `status-${Date.now()}`;
    const system = await connect(name);
    expect(system.status).toBe("connected");
    const seen: SystemStatus[] = [];
    const errors: Error[] = [];
    system.on("status", (status) => seen.push(status));
    system.on("error", (error) => errors.push(error));

    expect(await terminate(`${name}-listen`)).toBe(1);
    await waitUntil("reconnecting, then connected", () => [...seen], (statuses) => statuses.join(",") === "reconnecting,connected");
    expect(system.status).toBe("connected");
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/LISTEN connection/);

    // Delivery works again after the reconnect: a request is answered through the new connection.
    const node = await system.registerNode({ displayName: "status" });
    await node.onRequest("status.ping", () => "pong");
    await node.start();
    expect(await node.request("status.ping", {}, { timeout: 10_000 })).toBe("pong");

    await system.close();
    expect(seen.at(-1)).toBe("disconnected");
    expect(system.status).toBe("disconnected");
  });

  it("emits no error event when nobody listens: a lost connection is logged, never an unhandled 'error'", async () => {
    const name = `status-quiet-${Date.now()}`;
    const system = await connect(name);
    const seen: SystemStatus[] = [];
    system.on("status", (status) => seen.push(status));
    expect(await terminate(`${name}-listen`)).toBe(1);
    await waitUntil("the reconnect", () => [...seen], (statuses) => statuses.includes("connected"));
    expect(system.listenerCount("error")).toBe(0);
  });
});

describe("options or an existing system", () => {
  it("openSystem connects and owns a system made from options, and leaves a given one to its owner", async () => {
    const given = await connect(`open-${Date.now()}`);
    expect(isCoreSystem(given)).toBe(true);
    expect(isCoreSystem({ connectionString: testDatabaseUrl(), namespace: "x" })).toBe(false);
    const reused = await openSystem(given);
    expect(reused).toEqual({ system: given, owned: false });

    const opened = await openSystem({ connectionString: testDatabaseUrl(), namespace: uniqueNamespace("open") });
    try {
      expect(opened.owned).toBe(true);
      expect(opened.system).not.toBe(given);
    } finally {
      await opened.system.close();
    }
  });
});
