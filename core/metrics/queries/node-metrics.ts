import type { Queryable } from "../../db/queryable.js";

/** A node of the namespace as the metrics show it. */
export interface NodeMetricsRow {
  nodeId: string;
  displayName: string;
  status: "alive" | "stopped" | "dead";
  /** Status alive and a heartbeat within the TTL, judged on the database's clock. */
  alive: boolean;
  startedAt: Date;
  lastHeartbeatAt: Date;
  /** Seconds since the last heartbeat, on the database's clock. */
  heartbeatAgeSeconds: number;
}

/**
 * The namespace's alive nodes, and those stopped or dead within `recentMs`, by display
 * name. A node is live when its status is alive and its last heartbeat is within `ttlMs`.
 */
export async function nodeMetrics(db: Queryable, namespace: string, ttlMs: number, recentMs: number): Promise<NodeMetricsRow[]> {
  const { rows } = await db.query<{
    node_id: string;
    display_name: string;
    status: "alive" | "stopped" | "dead";
    alive: boolean;
    started_at: Date;
    last_heartbeat_at: Date;
    heartbeat_age: number;
  }>({
    name: "nexus_node_metrics",
    text: `select node_id, display_name, status,
                  status = 'alive' and last_heartbeat_at >= now() - make_interval(secs => $2::float8 / 1000) as alive,
                  started_at, last_heartbeat_at,
                  greatest(extract(epoch from now() - last_heartbeat_at), 0)::float8 as heartbeat_age
             from core.nodes
            where namespace = $1
              and (status = 'alive' or coalesce(stopped_at, last_heartbeat_at) >= now() - make_interval(secs => $3::float8 / 1000))
            order by display_name, node_id`,
    values: [namespace, ttlMs, recentMs],
  });
  return rows.map((row) => ({
    nodeId: row.node_id,
    displayName: row.display_name,
    status: row.status,
    alive: row.alive,
    startedAt: row.started_at,
    lastHeartbeatAt: row.last_heartbeat_at,
    heartbeatAgeSeconds: row.heartbeat_age,
  }));
}
