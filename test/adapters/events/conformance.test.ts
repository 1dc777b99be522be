/**
 * Conformance: the same assertions on a plain `node:events` EventEmitter and on a
 * PgEventEmitter (broadcast mode, its default), so that code written against
 * `node:events` keeps its local behaviour when its constructor changes. Event names are
 * valid event types, since PgEventEmitter publishes them.
 */
import { EventEmitter, on, once } from "node:events";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem } from "../../../core/index.js";
import { PgEventEmitter } from "../../../adapters/events/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../../support/database.js";

let system: CoreSystem;
const created: PgEventEmitter[] = [];
beforeAll(async () => {
  system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace: uniqueNamespace("ee-conformance") });
});
afterEach(async () => {
  await Promise.all(created.splice(0).map((emitter) => emitter.close()));
});
afterAll(() => system.close());

const implementations: [string, () => EventEmitter][] = [
  ["EventEmitter", () => new EventEmitter()],
  [
    "PgEventEmitter",
    () => {
      const emitter = new PgEventEmitter(system);
      created.push(emitter);
      return emitter;
    },
  ],
];

/** The error a call throws (synchronously), or undefined. */
function thrownBy(call: () => unknown): unknown {
  try {
    call();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe.each(implementations)("%s behaves as node:events", (_name, make) => {
  it("is an EventEmitter", () => {
    expect(make()).toBeInstanceOf(EventEmitter);
  });

  it("calls listeners in the order they were added, with the arguments, and says whether there were any", () => {
    const emitter = make();
    const calls: string[] = [];
    emitter.on("order.created", (a: number, b: string) => calls.push(`first ${a} ${b}`));
    emitter.addListener("order.created", (a: number, b: string) => calls.push(`second ${a} ${b}`));
    emitter.on("order.created", function (this: unknown) {
      calls.push(`this is the emitter: ${this === emitter}`);
    });
    expect(emitter.emit("order.created", 1, "x")).toBe(true);
    expect(emitter.emit("order.updated", 1)).toBe(false);
    expect(calls).toEqual(["first 1 x", "second 1 x", "this is the emitter: true"]);
  });

  it("runs a once listener one time and removes it", () => {
    const emitter = make();
    const calls: number[] = [];
    emitter.once("tick", (n: number) => calls.push(n));
    expect(emitter.listenerCount("tick")).toBe(1);
    emitter.emit("tick", 1);
    emitter.emit("tick", 2);
    expect(calls).toEqual([1]);
    expect(emitter.listenerCount("tick")).toBe(0);
    expect(emitter.emit("tick", 3)).toBe(false);
  });

  it("puts prepended listeners first, once ones included", () => {
    const emitter = make();
    const calls: string[] = [];
    emitter.on("tick", () => calls.push("on"));
    emitter.prependListener("tick", () => calls.push("prepend"));
    emitter.prependOnceListener("tick", () => calls.push("prependOnce"));
    emitter.emit("tick");
    emitter.emit("tick");
    expect(calls).toEqual(["prependOnce", "prepend", "on", "prepend", "on"]);
  });

  it("keeps the listener list of an emit in progress: removals and additions count from the next emit", () => {
    const emitter = make();
    const calls: string[] = [];
    const second = (): void => void calls.push("second");
    const late = (): void => void calls.push("late");
    emitter.once("tick", () => {
      calls.push("first");
      emitter.removeListener("tick", second);
      emitter.on("tick", late);
    });
    emitter.on("tick", second);
    emitter.emit("tick");
    expect(calls).toEqual(["first", "second"]);
    calls.length = 0;
    emitter.emit("tick");
    expect(calls).toEqual(["late"]);
  });

  it("throws an emitted error that nobody listens to, and hands it over when someone does", () => {
    const emitter = make();
    const error = new Error("boom");
    expect(thrownBy(() => emitter.emit("error", error))).toBe(error);
    const unhandled = thrownBy(() => emitter.emit("error", "not an Error")) as NodeJS.ErrnoException;
    expect(unhandled).toBeInstanceOf(Error);
    expect(unhandled.code).toBe("ERR_UNHANDLED_ERROR");
    const seen: unknown[] = [];
    emitter.on("error", (received) => seen.push(received));
    expect(emitter.emit("error", error)).toBe(true);
    expect(seen).toEqual([error]);
  });

  it("counts listeners, per listener too", () => {
    const emitter = make();
    const listener = (): void => {};
    emitter.on("tick", listener);
    emitter.on("tick", listener);
    emitter.once("tick", () => {});
    expect(emitter.listenerCount("tick")).toBe(3);
    expect(emitter.listenerCount("tick", listener)).toBe(2);
    expect(emitter.listenerCount("tock")).toBe(0);
    emitter.removeListener("tick", listener);
    expect(emitter.listenerCount("tick")).toBe(2);
  });

  it("names the events that have listeners, symbols included, and forgets removed ones", () => {
    const emitter = make();
    const symbol = Symbol("local");
    const listener = (): void => {};
    emitter.on("order.created", listener);
    emitter.on(symbol, listener);
    emitter.on("tick", listener);
    // As Node keeps them: strings in the order they were added, then symbols.
    expect(emitter.eventNames()).toEqual(["order.created", "tick", symbol]);
    emitter.removeAllListeners("tick");
    expect(emitter.eventNames()).toEqual(["order.created", symbol]);
    // An explicit undefined names the event "undefined", not every event.
    emitter.removeAllListeners(undefined);
    expect(emitter.eventNames()).toEqual(["order.created", symbol]);
    emitter.removeAllListeners();
    expect(emitter.eventNames()).toEqual([]);
  });

  it("returns once wrappers from rawListeners and plain listeners from listeners", () => {
    const emitter = make();
    const listener = (): void => {};
    emitter.once("tick", listener);
    const [raw] = emitter.rawListeners("tick") as (((...args: unknown[]) => void) & { listener?: unknown })[];
    expect(emitter.listeners("tick")).toEqual([listener]);
    expect(raw).not.toBe(listener);
    expect(raw!.listener).toBe(listener);
    raw!();
    expect(emitter.listenerCount("tick")).toBe(0);
  });

  it("emits newListener before adding and removeListener after removing, with the original listener", () => {
    const emitter = make();
    const log: string[] = [];
    const listener = (): void => {};
    emitter.on("newListener", (name: string, added: unknown) => {
      log.push(`new ${String(name)} ${added === listener} count=${emitter.listenerCount(name)}`);
    });
    emitter.on("removeListener", (name: string, removed: unknown) => {
      log.push(`removed ${String(name)} ${removed === listener} count=${emitter.listenerCount(name)}`);
    });
    emitter.once("tick", listener);
    emitter.emit("tick");
    emitter.on("tock", listener);
    emitter.off("tock", listener);
    expect(log).toEqual([
      "new removeListener false count=0",
      "new tick true count=0",
      "removed tick true count=0",
      "new tock true count=0",
      "removed tock true count=0",
    ]);
  });

  it("validates listeners as Node does", () => {
    const emitter = make();
    const plain = new EventEmitter();
    for (const call of [
      (target: EventEmitter) => target.on("tick", "not a function" as unknown as () => void),
      (target: EventEmitter) => target.once("tick", 42 as unknown as () => void),
      (target: EventEmitter) => target.removeListener("tick", null as unknown as () => void),
    ]) {
      const expected = thrownBy(() => call(plain)) as NodeJS.ErrnoException;
      const actual = thrownBy(() => call(emitter)) as NodeJS.ErrnoException;
      expect(actual).toBeInstanceOf(TypeError);
      expect(actual.code).toBe("ERR_INVALID_ARG_TYPE");
      expect(actual.message).toBe(expected.message);
    }
    expect(thrownBy(() => emitter.setMaxListeners(-1))).toBeInstanceOf(RangeError);
    emitter.setMaxListeners(3);
    expect(emitter.getMaxListeners()).toBe(3);
  });

  it("works with events.once, which also rejects on error", async () => {
    const emitter = make();
    const waiting = once(emitter, "order.created");
    emitter.emit("order.created", { id: 1 }, "second");
    await expect(waiting).resolves.toEqual([{ id: 1 }, "second"]);
    expect(emitter.listenerCount("order.created")).toBe(0);
    const failing = once(emitter, "order.created");
    const error = new Error("failed first");
    emitter.emit("error", error);
    await expect(failing).rejects.toBe(error);
    expect(emitter.listenerCount("error")).toBe(0);
  });

  it("works with events.on, stopping on an abort signal and removing its listeners", async () => {
    const emitter = make();
    const controller = new AbortController();
    const received: unknown[] = [];
    const consuming = (async () => {
      for await (const args of on(emitter, "tick", { signal: controller.signal })) {
        received.push(args);
        if (received.length === 2) controller.abort();
      }
    })();
    expect(emitter.listenerCount("tick")).toBe(1);
    emitter.emit("tick", 1);
    emitter.emit("tick", 2, "b");
    const error = (await consuming.catch((e: unknown) => e)) as Error;
    expect(error.name).toBe("AbortError");
    expect(emitter.emit("tick", 3)).toBe(false);
    expect(received).toEqual([[1], [2, "b"]]);
    expect(emitter.listenerCount("tick")).toBe(0);
    expect(emitter.listenerCount("error")).toBe(0);
  });

  it("keeps symbol events local and working", () => {
    const emitter = make();
    const symbol = Symbol("private");
    const calls: unknown[] = [];
    emitter.on(symbol, (value: unknown) => calls.push(value));
    expect(emitter.emit(symbol, 1)).toBe(true);
    expect(calls).toEqual([1]);
  });
});
