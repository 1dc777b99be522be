import type { Queryable } from "../../db/queryable.js";

/**
 * Tries to take the namespace's scheduler lock: a session-level advisory lock, held until
 * the session ends, so run it on a dedicated connection (never a pooled one). True when
 * this session now holds it. See `core.scheduler_lock_key`.
 */
export async function tryLockScheduler(db: Queryable, namespace: string): Promise<boolean> {
  const { rows } = await db.query<{ locked: boolean }>({
    name: "nexus_try_lock_scheduler",
    text: "select pg_try_advisory_lock(core.scheduler_lock_key($1)) as locked",
    values: [namespace],
  });
  return rows[0]?.locked === true;
}
