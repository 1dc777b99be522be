/**
 * Typed event maps: the checks are types, verified by `tsc --noEmit` (npm run typecheck)
 * inside functions that never run, since adding a listener starts an emitter.
 */
import { EventEmitter } from "node:events";
import { describe, expect, expectTypeOf, it } from "vitest";
import { PgEventEmitter } from "../../../adapters/events/index.js";

interface Orders {
  "order.created": [order: { id: number }, channel: string];
  "order.cancelled": [id: number];
}

function typedCalls(orders: PgEventEmitter<Orders>): Promise<string>[] {
  orders.on("order.created", (order, channel) => {
    expectTypeOf(order).toEqualTypeOf<{ id: number }>();
    expectTypeOf(channel).toEqualTypeOf<string>();
  });
  orders.once("order.cancelled", (id) => expectTypeOf(id).toEqualTypeOf<number>());
  // @ts-expect-error: not an event of the map
  orders.on("order.shipped", () => {});
  // @ts-expect-error: wrong arguments
  orders.emit("order.cancelled", "not a number");
  expectTypeOf(orders.emit("order.cancelled", 1)).toEqualTypeOf<boolean>();
  return [
    orders.emitAsync("order.cancelled", 1),
    orders.with({ headers: { traceparent: "00-1" } }).emitAsync("order.created", { id: 1 }, "web"),
    // @ts-expect-error: not an event of the map
    orders.emitAsync("order.shipped"),
    // @ts-expect-error: wrong arguments
    orders.with({}).emitAsync("order.created", { id: "1" }, "web"),
  ];
}

function untypedCalls(emitter: PgEventEmitter): void {
  emitter.on("anything.at.all", (a: number, b: string) => void [a, b]);
  emitter.emit("anything.at.all", 1, "b", { more: true });
}

describe("typed event maps", () => {
  it("type listeners and emits from the map, as node:events does", () => {
    expectTypeOf(typedCalls).returns.toEqualTypeOf<Promise<string>[]>();
    expectTypeOf(untypedCalls).toBeFunction();
    const orders = new PgEventEmitter<Orders>({ connectionString: "postgres://unused", namespace: "unused" });
    expect(orders).toBeInstanceOf(EventEmitter);
    expectTypeOf(orders).toMatchTypeOf<EventEmitter<Orders>>();
  });
});
