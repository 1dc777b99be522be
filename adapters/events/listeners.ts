/**
 * How a bus delivery runs the listeners of an event: as Node's emit does (in order, on the
 * list as it was when the delivery started, stopping at a synchronous throw), then waiting
 * for the promises they returned, so that an async listener's failure fails the delivery.
 */

/** Calls every listener (stopping at a synchronous throw, as Node does), then waits for the promises they returned. */
export async function callListeners(target: unknown, listeners: readonly ((...args: unknown[]) => unknown)[], args: unknown[]): Promise<void> {
  const pending: PromiseLike<unknown>[] = [];
  let thrown: { error: unknown } | undefined;
  for (const listener of listeners) {
    try {
      const result = Reflect.apply(listener, target, args);
      if (isPromiseLike(result)) pending.push(result);
    } catch (error) {
      thrown = { error };
      break;
    }
  }
  const settled = await Promise.allSettled(pending);
  if (thrown) throw thrown.error;
  const rejected = settled.find((outcome): outcome is PromiseRejectedResult => outcome.status === "rejected");
  if (rejected) throw rejected.reason;
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === "object" || typeof value === "function") && typeof (value as PromiseLike<unknown>).then === "function";
}
