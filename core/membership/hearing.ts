/**
 * Whether a system hears its notifications. Behind a transaction-mode pooler (PgBouncer)
 * reached without `listenConnectionString`, LISTEN runs on whichever server connection
 * the pooler lends for that one statement, and what is NOTIFYed later never comes back
 * to the listening client: the system is deaf, and nothing fails to say so. At connect a
 * system listens on a channel of its own, NOTIFYs a fresh token through its pool (the
 * way every sender reaches it) and waits a bounded time for it. On a direct connection
 * the token is back in about a NOTIFY round trip (0.3 ms on a 2-vCPU machine, DESIGN.md);
 * a deaf system pays the whole wait, once.
 */
import { randomUUID } from "node:crypto";
import type { NotificationListener } from "../db/listener.js";
import type { Queryable } from "../db/queryable.js";
import { notifyProbe } from "./queries/notify-probe.js";

/** How long a system waits for its own NOTIFY before it counts itself deaf. */
export const HEARING_PROBE_TIMEOUT_MS = 2_000;

/** What the probe found. */
export interface HearingProbe {
  /** True when the token came back on the LISTEN connection within the wait. */
  readonly heard: boolean;
  /** Milliseconds from the NOTIFY's commit to its arrival, or to the end of the wait. */
  readonly elapsedMs: number;
}

/** NOTIFYs a token through `pool` and waits up to `timeoutMs` for `listener` to hear it. */
export async function probeHearing(pool: Queryable, listener: NotificationListener, timeoutMs = HEARING_PROBE_TIMEOUT_MS): Promise<HearingProbe> {
  const channel = `nexus:probe:${randomUUID()}`;
  const token = randomUUID();
  let arrived: () => void = () => {};
  const heard = new Promise<boolean>((resolve) => (arrived = () => resolve(true)));
  await listener.listen(channel, (payload) => {
    if (payload === token) arrived();
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await notifyProbe(pool, channel, token);
    // Timed from the commit: a slow pool does not count against the listener.
    const sent = performance.now();
    const waited = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const outcome = await Promise.race([heard, waited]);
    return { heard: outcome, elapsedMs: performance.now() - sent };
  } finally {
    clearTimeout(timer);
    await listener.unlisten(channel);
  }
}

/**
 * How often a deaf system's nodes read what no NOTIFY announces to them: their own queue
 * (replies to their requests, direct messages) every 100 ms, and their request groups'
 * queues every 250 ms unless `onRequest` was given a `pollInterval`. Event groups keep
 * their `pollInterval` (2 s by default): events wait, callers time out.
 */
export const DEAF_POLL_INTERVALS = { nodeQueueMs: 100, requestGroupMs: 250 } as const;
/** The poll interval of a node's own queue on a system that hears its notifications (they wake it). */
export const NODE_QUEUE_POLL_MS = 2_000;
