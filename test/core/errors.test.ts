/**
 * One vocabulary for failures: `asError`, and `NoHandlerError` on the three paths where a
 * delivered message finds no handler on the node that read it (a group's event, a request,
 * a direct message), against the real database.
 */
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  CoreSystem,
  ErrorCode,
  NexusError,
  NoHandlerError,
  NonError,
  RemoteError,
  asError,
  type ConnectOptions,
  type CoreNode,
} from "../../core/index.js";
import { capturingLogger } from "../support/capture.js";
import { dropNamespaceLeftovers, testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { waitUntil } from "../support/wait.js";

let admin: pg.Pool;
const systems: CoreSystem[] = [];
const namespaces: string[] = [];

beforeAll(() => {
  admin = new pg.Pool({ connectionString: testDatabaseUrl(), max: 2, application_name: "nexus-test-admin" });
  admin.on("error", () => {});
});

afterEach(async () => {
  await Promise.allSettled(systems.splice(0).map((system) => system.close()));
  for (const namespace of namespaces.splice(0)) await dropNamespaceLeftovers(admin, namespace);
});

afterAll(async () => {
  await admin?.end();
});

async function connect(label: string, options: Partial<ConnectOptions> = {}): Promise<CoreSystem> {
  const namespace = uniqueNamespace(label);
  namespaces.push(namespace);
  const system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace, ...options });
  systems.push(system);
  return system;
}

/**
 * A group whose queue receives `unhandled` (an instance that subscribed it started, then
 * stopped) while its only running instance handles `handled` alone.
 */
async function groupMissingAHandler(
  system: CoreSystem,
  kind: "event" | "request",
  group: string,
  handled: string,
  unhandled: string,
): Promise<CoreNode> {
  const gone = await system.registerNode({ displayName: `${group}-gone` });
  const fast = { group, maxAttempts: 2, backoff: { type: "fixed" as const, delay: 0 }, pollInterval: 100 };
  if (kind === "event") await gone.onEvent(unhandled, () => {}, fast);
  else await gone.onRequest(unhandled, () => "never", { group });
  await gone.start();
  await gone.stop();
  const running = await system.registerNode({ displayName: group });
  if (kind === "event") await running.onEvent(handled, () => {}, fast);
  else await running.onRequest(handled, () => "handled", { group });
  await running.start();
  return running;
}

/** The log records of `lines` (pino JSON) with message `msg`. */
function records(lines: string[], msg: string): Record<string, unknown>[] {
  return lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((record) => record.msg === msg);
}

describe("asError", () => {
  it("keeps an Error as it is and wraps anything else in a NonError whose cause is the value", () => {
    const error = new TypeError("boom");
    expect(asError(error)).toBe(error);
    const nexus = new NoHandlerError("a.b", "group g");
    expect(asError(nexus)).toBe(nexus);

    const fromString = asError("plain string");
    expect(fromString).toBeInstanceOf(NonError);
    expect(fromString).toBeInstanceOf(NexusError);
    expect(fromString).toMatchObject({ name: "NonError", message: "plain string", code: ErrorCode.nonError, cause: "plain string" });

    const value = { status: "error", at: 3 };
    expect(asError(value)).toMatchObject({ message: '{"status":"error","at":3}', cause: value });
    expect(asError(undefined).message).toBe("undefined was thrown instead of an Error");
    expect(asError(null).message).toBe("null was thrown instead of an Error");
    expect(asError(42n).message).toBe("42");
  });

  it("NoHandlerError carries its code, the type and where it looked", () => {
    const error = new NoHandlerError("order.created", "group billing on this node", "it will be retried");
    expect(error).toMatchObject({
      name: "NoHandlerError",
      code: "ERR_NEXUS_NO_HANDLER",
      type: "order.created",
      where: "group billing on this node",
      retryable: true,
      message: "No handler for order.created in group billing on this node; it will be retried.",
    });
  });
});

describe("NoHandlerError on the three paths", () => {
  it("an event no handler of the running instance matches is retried, then dead-lettered with a NoHandlerError recorded", async () => {
    const { logger, lines } = capturingLogger();
    const system = await connect("nohandler-event", { logger });
    await groupMissingAHandler(system, "event", "billing", "invoice.paid", "invoice.voided");
    const emitter = await system.registerNode({ displayName: "emitter" });
    await emitter.emit("invoice.voided", { id: 1 });

    const page = await waitUntil("a dead letter", () => system.deadLetters.list("billing"), (result) => result.items.length === 1, 15_000);
    expect(page.items[0]).toMatchObject({
      type: "invoice.voided",
      attempts: 2,
      error: { name: "NoHandlerError", code: ErrorCode.noHandler, message: expect.stringContaining("No handler for invoice.voided in group billing") },
    });
    // One log shape: the error under `err`, serialised by pino with its type and code.
    const retried = records(lines, "handler failed; message will be retried");
    expect(retried[0]).toMatchObject({ attempt: 1, err: { type: "NoHandlerError", code: ErrorCode.noHandler } });
    expect(records(lines, "handler failed on its last attempt; message dead-lettered")[0]).toMatchObject({ err: { type: "NoHandlerError" } });
  });

  it("a request no handler of the running instance matches rejects at the caller with a RemoteError carrying the no-handler code", async () => {
    const system = await connect("nohandler-request");
    await groupMissingAHandler(system, "request", "math", "math.add", "math.divide");
    const api = await system.registerNode({ displayName: "api" });
    await api.start();
    expect(await api.request("math.add", {}, { timeout: 5_000 })).toBe("handled");

    const error = await api.request("math.divide", {}, { timeout: 5_000 }).then(
      () => undefined,
      (rejection: unknown) => rejection,
    );
    expect(error).toBeInstanceOf(RemoteError);
    expect(error).toMatchObject({
      code: ErrorCode.remote,
      remoteCode: "ERR_NEXUS_NO_HANDLER",
      remoteName: "NoHandlerError",
      message: "No handler for math.divide in group math.",
    });
  });

  it("a direct message no handler of the target matches fails with a NoHandlerError and is retried (handled once a handler exists)", async () => {
    const { logger, lines } = capturingLogger();
    const system = await connect("nohandler-direct", { logger });
    const target = await system.registerNode({ displayName: "target" });
    target.onDirect("dm.known", () => {});
    await target.start();
    const sender = await system.registerNode({ displayName: "sender" });
    await sender.sendTo(target.nodeId, "dm.unknown", { n: 1 });

    const [failure] = await waitUntil("a logged failure", () => records(lines, "handler failed; message will be retried"), (found) => found.length > 0, 10_000);
    expect(failure).toMatchObject({
      attempt: 1,
      err: { type: "NoHandlerError", code: ErrorCode.noHandler, message: expect.stringContaining(`No handler for dm.unknown in node ${target.nodeId}`) },
    });

    // The retry (the default backoff: about a second later) finds the handler added since.
    const received: unknown[] = [];
    target.onDirect("dm.unknown", (message, context) => void received.push({ payload: message.payload, attempt: context.attempt }));
    await waitUntil("the retried message", () => received, (found) => found.length === 1, 15_000);
    expect(received).toEqual([{ payload: { n: 1 }, attempt: 2 }]);
  });
});
