import type { Queryable } from "../../db/queryable.js";

/**
 * Removes the event subscriptions held by the queues of nodes stopped or dead for longer
 * than `graceMs` (subscriptions made with `onNodeEvent`, whose queue is the node's own).
 * Runs before `core.clean_up_namespace` drops those queues, so that no emit is routed to
 * a dropped queue. Returns the subscriptions removed. Locks: the deleted rows.
 */
export async function removeGoneNodeSubscriptions(db: Queryable, namespace: string, graceMs: number): Promise<number> {
  const { rowCount } = await db.query({
    name: "nexus_remove_gone_node_subscriptions",
    text: `delete from core.subscriptions s
             using core.nodes n
            where s.namespace = $1 and n.namespace = $1 and s.kind = 'event'
              and s.queue_name = core.node_queue(n.node_id)
              and n.status in ('stopped', 'dead')
              and coalesce(n.stopped_at, n.last_heartbeat_at) < now() - make_interval(secs => $2::float8 / 1000)`,
    values: [namespace, graceMs],
  });
  return rowCount ?? 0;
}
