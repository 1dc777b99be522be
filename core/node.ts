/**
 * CoreNode: one registered process (or part of one) in a namespace. It emits events,
 * consumes its groups' queues once started, heartbeats on an unref'd timer, and on each
 * beat marks dead the peers that have gone silent.
 */
import { ValidationError } from "./errors.js";
import type { BatchEvent, EmitOptions, EventHandler, SubscribeOptions } from "./events.js";
import type { Logger } from "./logger.js";
import { assertEventType } from "./names.js";
import { assertHeaders, assertMilliseconds, assertPayload } from "./payload.js";
import type { EmitRow } from "./queries/emit.js";
import { markDeadNodes } from "./queries/mark-dead-nodes.js";
import { stopNode } from "./queries/stop-node.js";
import { touchNodeHeartbeat } from "./queries/touch-node-heartbeat.js";
import type { Queryable } from "./queries/queryable.js";
import { NodeSubscriptions } from "./subscriptions.js";
import type { CoreSystem } from "./system.js";

/** How often a node heartbeats and how long silence lasts before a node is dead. */
export interface NodeTimings {
  heartbeatIntervalMs: number;
  nodeTtlMs: number;
}

/** What {@link CoreNode}'s constructor needs; nodes are made by {@link CoreSystem.registerNode}. */
export interface CoreNodeInit {
  system: CoreSystem;
  nodeId: string;
  displayName: string;
  metadata: Record<string, unknown>;
  timings: NodeTimings;
  onStopped: () => void;
}

/** A registered node. Create it with {@link CoreSystem.registerNode}. */
export class CoreNode {
  /** The node's id (a UUID), its primary key in `core.nodes`. */
  readonly nodeId: string;
  /** The human name given at registration. */
  readonly displayName: string;
  /** The metadata given at registration. */
  readonly metadata: Readonly<Record<string, unknown>>;
  /** The system this node belongs to. */
  readonly system: CoreSystem;
  /** A child of the system's logger, bound to this node. */
  readonly logger: Logger;
  readonly #timings: NodeTimings;
  readonly #onStopped: () => void;
  readonly #heartbeatTimer: NodeJS.Timeout;
  readonly #subscriptions: NodeSubscriptions;
  #beating: Promise<void> | undefined;
  #started = false;
  #stopped = false;

  /** @internal Use {@link CoreSystem.registerNode}. */
  constructor(init: CoreNodeInit) {
    this.system = init.system;
    this.nodeId = init.nodeId;
    this.displayName = init.displayName;
    this.metadata = init.metadata;
    this.logger = init.system.logger.child({ nodeId: init.nodeId });
    this.#timings = init.timings;
    this.#onStopped = init.onStopped;
    this.#heartbeatTimer = setInterval(() => this.#beat(), init.timings.heartbeatIntervalMs);
    this.#heartbeatTimer.unref();
    this.#subscriptions = new NodeSubscriptions(init.system.pool, init.system.namespace, this.logger);
  }

  /**
   * Publishes one event and returns its id once it is committed: written to the event
   * log and copied to the queue of every group subscribed to a matching pattern.
   * With `options.client`, it joins the caller's open transaction instead.
   *
   * @example
   * const id = await node.emit("order.created", { orderId: 42 }, { headers: { traceparent } });
   */
  async emit(type: string, payload: unknown, options: EmitOptions = {}): Promise<string> {
    const row = this.#emitRow({ type, payload, ...options });
    const [outcome] = await this.system.publish([row], this.nodeId, clientOf(options));
    return outcome!.eventId;
  }

  /** Publishes several events all-or-nothing, in order; returns their ids. */
  async emitBatch(events: BatchEvent[], options: Pick<EmitOptions, "client"> = {}): Promise<string[]> {
    if (!Array.isArray(events) || events.length === 0) {
      throw new ValidationError("events", "emitBatch needs a non-empty array of { type, payload, headers?, delay?, idempotencyKey? }.");
    }
    const rows = events.map((event) => this.#emitRow(event));
    const outcomes = await this.system.publish(rows, this.nodeId, clientOf(options));
    return outcomes.map((outcome) => outcome.eventId);
  }

  /**
   * Handles events whose type matches `pattern` (`*` one segment, `**` one or more) in
   * the consumer group `options.group` (default: this node's display name). Each event
   * reaches one instance of each subscribed group. The subscription is durable: the
   * group's queue keeps events while no consumer runs.
   */
  onEvent<TPayload = unknown>(pattern: string, handler: EventHandler<TPayload>, options: SubscribeOptions = {}): Promise<void> {
    if (this.#stopped) throw new ValidationError("node", `Node ${this.nodeId} is stopped; register a new node to subscribe.`);
    return this.#subscriptions.add(pattern, handler as EventHandler, options.group ?? this.displayName, options);
  }

  /** Removes the durable subscription of `pattern` for `group` (default: the display name). */
  unsubscribe(pattern: string, group: string = this.displayName): Promise<boolean> {
    return this.#subscriptions.remove(pattern, group);
  }

  /** Records the subscriptions and starts consuming. */
  async start(): Promise<void> {
    if (this.#stopped) throw new ValidationError("node", `Node ${this.nodeId} is stopped; register a new node to start again.`);
    if (this.#started) return;
    this.#started = true;
    await this.#subscriptions.start();
    this.logger.info("node started");
  }

  /** @internal Wakes the consumers of `queue` (or all): called on NOTIFY. */
  wake(queue?: string): void {
    this.#subscriptions.wake(queue);
  }

  #emitRow(event: BatchEvent): EmitRow {
    assertEventType(event?.type);
    assertPayload(event.payload, this.system.maxPayloadBytes);
    assertHeaders(event.headers);
    assertMilliseconds("delay", event.delay, 0, 7 * 86_400_000);
    if (event.idempotencyKey !== undefined && (typeof event.idempotencyKey !== "string" || event.idempotencyKey.length < 1 || event.idempotencyKey.length > 255)) {
      throw new ValidationError("idempotencyKey", "idempotencyKey must be a string of 1-255 characters.");
    }
    return {
      type: event.type,
      payload: event.payload,
      ...(event.headers ? { headers: event.headers } : {}),
      ...(event.delay ? { delaySeconds: Math.ceil(event.delay / 1000) } : {}),
      ...(event.idempotencyKey ? { idempotencyKey: event.idempotencyKey } : {}),
    };
  }

  /** True once {@link stop} has been called. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Sends one heartbeat now and marks silent peers dead (the timer does this on its own). */
  async heartbeat(): Promise<void> {
    const pool = this.system.pool;
    const alive = await touchNodeHeartbeat(pool, this.nodeId);
    if (!alive && !this.#stopped) this.logger.warn("heartbeat found this node stopped or unregistered");
    const dead = await markDeadNodes(pool, this.system.namespace, this.#timings.nodeTtlMs);
    if (dead.length > 0) this.logger.info({ deadNodes: dead }, "marked silent nodes dead");
  }

  /**
   * Stops gracefully: stops reading, lets in-flight handlers finish (their signals abort
   * after `graceMs`, default 10 s), gives back messages read but not started, stops
   * heartbeating and marks the node stopped in `core.nodes`. Idempotent.
   */
  async stop(options: { graceMs?: number } = {}): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#heartbeatTimer);
    await this.#subscriptions.stop(options.graceMs ?? 10_000);
    await this.#beating;
    try {
      await stopNode(this.system.pool, this.nodeId);
      this.logger.info("node stopped");
    } catch (error) {
      throw this.system.toError(error, `mark node ${this.nodeId} stopped`);
    } finally {
      this.#onStopped();
    }
  }

  #beat(): void {
    if (this.#beating || this.#stopped) return;
    this.#beating = this.heartbeat()
      .catch((error: unknown) => this.logger.warn({ err: this.system.toError(error, "heartbeat") }, "heartbeat failed; retrying on the next beat"))
      .finally(() => (this.#beating = undefined));
  }
}

function clientOf(options: Pick<EmitOptions, "client">): Queryable | undefined {
  return options.client as Queryable | undefined;
}
