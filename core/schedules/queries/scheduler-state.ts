import type { Queryable } from "../../db/queryable.js";

/** What a node that is not the scheduler leader checks before contending. */
export interface SchedulerState {
  /** The namespace has enabled tasks for the fallback scheduler. */
  hasWork: boolean;
  /** The backend holding the namespace's scheduler lock, or null when no one does. */
  leaderPid: number | null;
}

/** Whether there is work for the fallback scheduler and who leads it. See `core.scheduler_state`. */
export async function schedulerState(db: Queryable, namespace: string): Promise<SchedulerState> {
  const { rows } = await db.query<{ has_work: boolean; leader_pid: number | null }>({
    name: "nexus_scheduler_state",
    text: "select has_work, leader_pid from core.scheduler_state($1)",
    values: [namespace],
  });
  return { hasWork: rows[0]?.has_work === true, leaderPid: rows[0]?.leader_pid ?? null };
}
