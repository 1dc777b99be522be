import type { Queryable } from "../../db/queryable.js";

/** Arguments of {@link registerNode}. */
export interface RegisterNodeArgs {
  nodeId: string;
  namespace: string;
  displayName: string;
  metadata: Record<string, unknown>;
  host: string;
  pid: number;
  /** False when the node cannot hear NOTIFYs on its channel (senders then use its queue). */
  hearsNotify: boolean;
}

/** Registers a node as alive (creating its namespace when new); returns its start time. See `core.register_node`. */
export async function registerNode(db: Queryable, args: RegisterNodeArgs): Promise<Date> {
  const { rows } = await db.query<{ started_at: Date }>({
    name: "nexus_register_node",
    text: "select core.register_node($1, $2, $3, $4, $5, $6, $7) as started_at",
    values: [args.nodeId, args.namespace, args.displayName, JSON.stringify(args.metadata), args.host, args.pid, args.hearsNotify],
  });
  return rows[0]!.started_at;
}
