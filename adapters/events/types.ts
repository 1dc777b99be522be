/**
 * Typed event maps, as `node:events` types them (`@types/node`'s `EventEmitter<T>`): the
 * same helper shapes, so that `PgEventEmitter<T>`'s methods match its base class exactly.
 *
 * @example
 * interface Orders { "order.created": [order: { id: number }, by: string] }
 * const orders = new PgEventEmitter<Orders>(system);
 * orders.on("order.created", (order, by) => {}); // typed
 */

/** The map of an untyped emitter: any name, any arguments. */
export type DefaultEventMap = [never];
/** Event names to argument tuples, e.g. `{ "order.created": [order: Order] }`. */
export type EventMap<T> = Record<keyof T, unknown[]> | DefaultEventMap;
// Listener parameters of an untyped emitter are `any`, as in `node:events`: with `unknown`,
// a listener declared `(order: Order) => void` would not be accepted.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyRest = [...args: any[]];
/** The arguments of event `K`. */
export type Args<K, T> = T extends DefaultEventMap ? AnyRest : K extends keyof T ? T[K] : never;
/** An event name: any string or symbol, or one of the map's keys. */
export type Key<K, T> = T extends DefaultEventMap ? string | symbol : K | keyof T;
/** A listener of event `K`. */
export type Listener<K, T, F> = T extends DefaultEventMap
  ? F
  : K extends keyof T
    ? T[K] extends unknown[]
      ? (...args: T[K]) => void
      : never
    : never;
/** A listener as `on` takes it. */
export type Listener1<K, T> = Listener<K, T, (...args: AnyRest) => void>;
