import { describe, expect, it } from "vitest";
import { ConnectionError, CoreSystem, NexusError, redactConnectionString } from "../../core/index.js";
import { capturingLogger, everythingIn } from "../support/capture.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";

const SECRET = "Tr0ub4dor-and-3-horses";


function withPassword(url: string, password: string): string {
  const parsed = new URL(url);
  parsed.password = password;
  return parsed.toString();
}

describe("secrets", () => {
  it("redacts the password of URL and keyword connection strings", () => {
    expect(redactConnectionString(`postgres://app:${SECRET}@db:5432/core`)).toBe("postgres://app:***@db:5432/core");
    expect(redactConnectionString(`postgres://app@db/core?password=${SECRET}`)).not.toContain(SECRET);
    expect(redactConnectionString(`host=db user=app password=${SECRET} dbname=core`)).toBe("host=db user=app password=*** dbname=core");
  });

  it("keeps the password out of the error and the logs when the server is unreachable", async () => {
    const { logger, lines } = capturingLogger();
    const error = await CoreSystem.connect({
      connectionString: `postgres://app:${SECRET}@127.0.0.1:1/core`,
      namespace: "secrets",
      logger,
      pool: { connectionTimeoutMs: 2_000 },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as ConnectionError).retryable).toBe(true);
    expect((error as ConnectionError).message).toContain("postgres://app:***@127.0.0.1:1/core");
    expect(everythingIn(error)).not.toContain(SECRET);
    expect(lines.join("")).not.toContain(SECRET);
  });

  it("keeps a password out of errors and logs against the real server, whether it accepts it or not", async () => {
    const { logger, lines } = capturingLogger();
    const connectionString = withPassword(testDatabaseUrl(), SECRET);
    const outcome = await CoreSystem.connect({ connectionString, namespace: uniqueNamespace("secrets"), logger }).then(
      async (system) => {
        const node = await system.registerNode({ displayName: "secretive" });
        await node.heartbeat();
        await system.close();
        return "connected";
      },
      (error: unknown) => error,
    );
    if (outcome !== "connected") {
      // A server with password authentication refuses the made-up password: a typed error, still without it.
      expect(outcome).toBeInstanceOf(NexusError);
      expect(everythingIn(outcome)).not.toContain(SECRET);
    } else {
      expect(lines.some((line) => line.includes('"msg":"connected"'))).toBe(true);
    }
    expect(lines.join("")).not.toContain(SECRET);
  });
});
