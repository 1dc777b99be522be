/**
 * The `status` Observable of `PgServer` and `PgClient`: the core system's own `status`
 * events (`connected`, `reconnecting` while the LISTEN connection is lost, `disconnected`
 * once closed), passed on as they happen.
 */
import type { CoreSystem, SystemStatus } from "../../core/index.js";

/** Statuses the Postgres transport reports. */
export type PgStatus = SystemStatus;

/** Reports the system's status now, then each change; returns a stop function. */
export function watchStatus(system: CoreSystem, report: (status: PgStatus) => void): () => void {
  report(system.status);
  system.on("status", report);
  return () => void system.off("status", report);
}
