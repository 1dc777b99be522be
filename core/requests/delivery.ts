/**
 * The two paths a message to one node, or a request, can take, checked once for the core
 * and its adapters: `queue` (durable: kept while the target is down, retried, run again
 * elsewhere after a crash) and `direct` (a NOTIFY, at most once, about a round trip).
 */
import { ValidationError } from "../model/errors.js";

/**
 * How a direct message or a request travels: `queue` through a queue, kept while the
 * target is down; `direct` as a NOTIFY on the target's channel, in order, at most once
 * (lost when the target is down or its handler throws), about a round trip instead of a
 * queue write and read.
 */
export type Delivery = "queue" | "direct";

/** Throws a ValidationError naming `argument` unless `value` is a {@link Delivery} or absent. */
export function assertDelivery(value: unknown, argument = "delivery"): asserts value is Delivery | undefined {
  if (value !== undefined && value !== "queue" && value !== "direct") {
    throw new ValidationError(argument, `${argument} must be 'queue' or 'direct'; got ${JSON.stringify(value)}.`);
  }
}
