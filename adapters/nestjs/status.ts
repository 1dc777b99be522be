/**
 * The `status` Observable of `PgServer` and `PgClient`: `connected`, `reconnecting` while
 * the core's LISTEN connection is lost (the pool reconnects on its own), `disconnected`
 * once closed.
 */
import type { CoreSystem } from "../../core/index.js";

/** Statuses the Postgres transport reports. */
export type PgStatus = "connected" | "disconnected" | "reconnecting";

/** How often the LISTEN connection's state is read: the core reports reconnects only in its log. */
const STATUS_POLL_MS = 500;

/** Reports `connected` now, then each change of the LISTEN connection; returns a stop function. */
export function watchStatus(system: CoreSystem, report: (status: PgStatus) => void): () => void {
  let last: PgStatus = "connected";
  report(last);
  const timer = setInterval(() => {
    const now: PgStatus = system.listener.connected ? "connected" : "reconnecting";
    if (now !== last) report((last = now));
  }, STATUS_POLL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
