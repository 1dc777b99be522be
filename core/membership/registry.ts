/**
 * The node registry of a namespace (`core.nodes`): nodes register, heartbeat and stop;
 * every heartbeat also marks silent peers dead and clears what nodes gone for longer
 * than the grace period left behind (their own subscriptions and queues, large
 * broadcast payloads).
 */
import os from "node:os";
import type { Logger } from "../model/logger.js";
import type { NamespaceContext } from "../model/context.js";
import { cleanUpNamespace } from "./queries/clean-up-namespace.js";
import { hasDeafNodes } from "./queries/has-deaf-nodes.js";
import { markDeadNodes } from "./queries/mark-dead-nodes.js";
import { registerNode } from "./queries/register-node.js";
import { removeGoneNodeSubscriptions } from "./queries/remove-node-subscriptions.js";
import { stopNode } from "./queries/stop-node.js";
import { touchNodeHeartbeat } from "./queries/touch-node-heartbeat.js";

/** How often a node heartbeats, how long silence lasts before a node is dead, and how long a gone node's queue is kept. */
export interface NodeTimings {
  heartbeatIntervalMs: number;
  nodeTtlMs: number;
  nodeQueueGraceMs: number;
}

/** How long a broadcast payload too large for NOTIFY is kept for its receivers. */
const BROADCAST_PAYLOAD_TTL_MS = 60_000;

/** The registry of a namespace's nodes. */
export class NodeRegistry {
  readonly #context: NamespaceContext;
  /** The timings the namespace's nodes keep. */
  readonly timings: NodeTimings;

  constructor(context: NamespaceContext, timings: NodeTimings) {
    this.#context = context;
    this.timings = timings;
  }

  /** Records a node as alive (creating the namespace when new), and whether it hears NOTIFYs on its channel. */
  async register(nodeId: string, displayName: string, metadata: Record<string, unknown>, hearsNotify: boolean): Promise<void> {
    this.#context.assertOpen();
    const { pool, namespace } = this.#context;
    try {
      await registerNode(pool, { nodeId, namespace, displayName, metadata, host: os.hostname(), pid: process.pid, hearsNotify });
    } catch (error) {
      throw this.#context.toError(error, `register node ${nodeId}`);
    }
  }

  /** One heartbeat of `nodeId`, then the namespace's housekeeping; logs through the node's `logger`. Resolves with the nodes it marked dead. */
  async heartbeat(nodeId: string, logger: Logger, stopping: boolean): Promise<string[]> {
    const { pool, namespace } = this.#context;
    const alive = await touchNodeHeartbeat(pool, nodeId);
    if (!alive && !stopping) logger.warn("heartbeat found this node stopped or unregistered");
    const dead = await markDeadNodes(pool, namespace, this.timings.nodeTtlMs);
    if (dead.length > 0) logger.info({ deadNodes: dead }, "marked silent nodes dead");
    const unsubscribed = await removeGoneNodeSubscriptions(pool, namespace, this.timings.nodeQueueGraceMs);
    if (unsubscribed > 0) logger.info({ subscriptions: unsubscribed }, "removed the own subscriptions of nodes gone for longer than the grace period");
    const dropped = await cleanUpNamespace(pool, namespace, this.timings.nodeQueueGraceMs, BROADCAST_PAYLOAD_TTL_MS);
    if (dropped > 0) logger.info({ queues: dropped }, "dropped the queues of nodes gone for longer than the grace period");
    return dead;
  }

  /** Whether an alive node of the namespace cannot hear NOTIFYs (it answers requests through its group's queue only). */
  async hasDeafNodes(): Promise<boolean> {
    try {
      return await hasDeafNodes(this.#context.pool, this.#context.namespace);
    } catch (error) {
      throw this.#context.toError(error, "look for nodes that cannot hear notifications");
    }
  }

  /** Marks `nodeId` stopped. */
  async stop(nodeId: string): Promise<void> {
    try {
      await stopNode(this.#context.pool, nodeId);
    } catch (error) {
      throw this.#context.toError(error, `mark node ${nodeId} stopped`);
    }
  }
}
