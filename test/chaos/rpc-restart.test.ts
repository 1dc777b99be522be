/**
 * The PostgreSQL server restarted (`pg_ctlcluster ... restart -m fast`) while callers keep
 * requests in flight, on both request paths: every call settles within its bound, with
 * the right reply or a typed NexusError (never an untyped error, never a wrong reply);
 * a direct request never runs twice; and once the server is back the same systems carry
 * calls on that path again without anybody restarting them.
 *
 * Needs the chaos suite's own cluster (test/chaos/setup-cluster.sh); run with
 * `NEXUS_TEST_SUITE=chaos npx vitest run test/chaos/rpc-restart.test.ts`.
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { NexusError, type CoreNode, type Delivery } from "../../core/index.js";
import { uniqueNamespace } from "../support/database.js";
import { testSystems } from "../support/systems.js";
import { sleep, waitUntil, within } from "../support/wait.js";
import { chaosDatabaseUrl, ensureClusterStarted, restartCluster } from "./support/cluster.js";

const CALL_TIMEOUT_MS = 3_000;
const CALLERS = 8;

interface Call {
  i: number;
  ms: number;
  value?: unknown;
  error?: unknown;
}

/** Keeps `CALLERS` requests in flight, one after another each, until `stop` aborts; returns every call's outcome. */
async function load(api: CoreNode, delivery: Delivery, stop: AbortSignal, next: () => number): Promise<Call[]> {
  const calls: Call[] = [];
  await Promise.all(
    Array.from({ length: CALLERS }, async () => {
      while (!stop.aborted) {
        const i = next();
        const startedAt = performance.now();
        try {
          const value = await api.request("job.run", { i }, { timeout: CALL_TIMEOUT_MS, delivery });
          calls.push({ i, ms: performance.now() - startedAt, value });
        } catch (error) {
          calls.push({ i, ms: performance.now() - startedAt, error });
          await sleep(50); // a failing caller does not spin
        }
      }
    }),
  );
  return calls;
}

describe("chaos: the server restarted under request load", () => {
  const systems = testSystems("chaos-rpc");
  afterEach(() => systems.close());
  afterAll(() => ensureClusterStarted());

  it.each(["queue", "direct"] as const)(
    "delivery '%s': every call settles within its bound with its reply or a typed error, none runs twice on the direct path, and calls go through again after the restart",
    async (delivery) => {
      const namespace = uniqueNamespace(`chaos-rpc-${delivery}`);
      const options = { connectionString: chaosDatabaseUrl(), namespace, pool: { max: 10, connectionTimeoutMs: 2_000 } };
      const responderSystem = await systems.connect(options);
      const responder = await responderSystem.registerNode({ displayName: "responder" });
      const runs = new Map<number, number>();
      await responder.onRequest<{ i: number }>(
        "job.run",
        async (request) => {
          runs.set(request.payload.i, (runs.get(request.payload.i) ?? 0) + 1);
          await sleep(10);
          return request.payload.i * 2;
        },
        { group: "jobs", concurrency: CALLERS, prefetch: 1, pollInterval: 100 },
      );
      await responder.start();
      const apiSystem = await systems.connect(options);
      const api = await apiSystem.registerNode({ displayName: "api" });
      await api.start();
      expect(await api.request("job.run", { i: -1 }, { timeout: 10_000, delivery })).toBe(-2);

      let counter = 0;
      const next = (): number => counter++;
      const stopLoad = new AbortController();
      const running = load(api, delivery, stopLoad.signal, next);
      await sleep(1_000);
      const before = counter;
      await restartCluster();
      // Load goes on through the restart until calls succeed again, then a little longer.
      const isBack = async (): Promise<boolean> => (await api.request("job.run", { i: next() }, { timeout: CALL_TIMEOUT_MS, delivery }).catch(() => undefined)) !== undefined;
      await waitUntil("a call to go through after the restart", isBack, (back) => back, 45_000, 200);
      await sleep(1_000);
      stopLoad.abort();
      const calls = await within(CALL_TIMEOUT_MS + 5_000, "the calls in flight to settle", running);

      const failures = calls.filter((call) => "error" in call);
      const codes = [...new Set(failures.map((call) => (call.error instanceof NexusError ? call.error.code : String(call.error))))];
      console.info(`[chaos-rpc] delivery=${delivery}: ${calls.length} calls, ${before} before the restart, ${failures.length} failed (${codes.join(", ")})`);
      expect(calls.length).toBeGreaterThan(before);
      expect(failures.filter((call) => !(call.error instanceof NexusError)).map((call) => String(call.error)), "failures without a typed NexusError").toEqual([]);
      expect(calls.filter((call) => "value" in call && call.value !== call.i * 2), "wrong replies").toEqual([]);
      expect(calls.filter((call) => call.ms > CALL_TIMEOUT_MS + 2_000).map((call) => Math.round(call.ms)), "calls that outlived their timeout").toEqual([]);
      if (delivery === "direct") expect([...runs].filter(([, n]) => n > 1), "direct requests run more than once").toEqual([]);

      // The same systems carry the path again: a burst of calls, every one answered.
      const burst = await Promise.all(Array.from({ length: 50 }, (_, k) => api.request("job.run", { i: 1_000_000 + k }, { timeout: 10_000, delivery })));
      expect(burst).toEqual(Array.from({ length: 50 }, (_, k) => (1_000_000 + k) * 2));
    },
    120_000,
  );
});
