/**
 * The systems of a test: each connected on a fresh namespace of the test database (unless
 * the options name another namespace or connection string), remembered, and closed after
 * the test. {@link useSystems} registers the closing hook itself; files whose teardown
 * must close systems between other steps (kill children first, drop tables after) make
 * {@link testSystems} and call `close()` at that point of their own hook.
 */
import { afterAll, afterEach } from "vitest";
import { CoreSystem, type ConnectOptions } from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace } from "./database.js";

export interface TestSystems {
  /**
   * Connects a system with `options` on the test database and remembers it. Without
   * `options.namespace` it gets a namespace no other test uses, named after the label.
   */
  connect(options?: Partial<ConnectOptions>): Promise<CoreSystem>;
  /** The systems connected and not yet closed by {@link close}, oldest first. */
  readonly open: readonly CoreSystem[];
  /**
   * Closes every remembered system at once and forgets them. Waits for all of them, then
   * rejects with the first failure, if any.
   */
  close(): Promise<void>;
}

/** Systems closed by the caller's own hook (see the module comment); `label` names their namespaces. */
export function testSystems(label = "t"): TestSystems {
  const open: CoreSystem[] = [];
  return {
    open,
    async connect(options = {}) {
      const system = await CoreSystem.connect({
        connectionString: testDatabaseUrl(),
        ...options,
        namespace: options.namespace ?? uniqueNamespace(label),
      });
      open.push(system);
      return system;
    },
    async close() {
      const results = await Promise.allSettled(open.splice(0).map((system) => system.close()));
      const failed = results.find((result) => result.status === "rejected");
      if (failed) throw failed.reason;
    },
  };
}

/**
 * Systems closed after each test (`after: "each"`, the default) or after the enclosing
 * `describe` block or file (`after: "all"`). Call it at the top of a file or `describe`.
 */
export function useSystems({ label = "t", after = "each" }: { label?: string; after?: "each" | "all" } = {}): TestSystems {
  const systems = testSystems(label);
  (after === "each" ? afterEach : afterAll)(() => systems.close());
  return systems;
}
