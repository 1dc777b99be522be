/**
 * PgTransporter: Moleculer's transporter contract translated onto the core. Targeted
 * packets (REQ, RES, targeted EVENT, INFO, PING/PONG to one node) go to the target node
 * with `sendTo` / `onDirect`: on the core's direct path by default (a NOTIFY, at most
 * once, as Moleculer's Redis and NATS transporters deliver them), or through the node's
 * queue with `delivery: "queue"`; broadcasts over
 * NOTIFY (`broadcast` / `onBroadcast`), and, with `disableBalancer`, balanced requests and
 * events to durable group queues (`emit` / `onEvent`) acknowledged once Moleculer's
 * handler has finished. The delivery itself (order, retries, dead letters, clean-up of
 * departed nodes' queues) is the core's.
 */
import { randomUUID } from "node:crypto";
import Moleculer from "moleculer";
import { asError, assertDelivery, assertNamespace, ErrorCode, InvalidStateError, NexusError, CONNECT_OPTION_KEYS, assertKnownKeys, assertWholeNumber, type BackoffOptions, type ConnectOptions, type CoreEvent, type CoreNode, type CoreSystem, type Delivery, type Logger, type SystemStatus } from "../../core/index.js";
import { openSystem } from "../../core/internal.js";
import { PgTransporterConfigError } from "./errors.js";
import { balancedEventSubscription, balancedEventType, balancedRequest, decode, encode, packetType, PREFIX, type BroadcastPayload, type DirectPayload, type PacketPayload } from "./mapping.js";

/** How the durable group queues of balanced requests and events (used with `disableBalancer`) are consumed. */
export interface PgBalancedOptions {
  /** Packets of one action or event group handled at once on this node (default 8). Each running handler holds a pool connection. */
  concurrency?: number;
  /** Packets read per batch (default 10). */
  prefetch?: number;
  /** Deliveries of a balanced event whose handler keeps rejecting before it is dead-lettered (default 5). */
  maxAttempts?: number;
  /** Delay before each redelivery (default: exponential from 1 s, at most 5 min). */
  backoff?: BackoffOptions;
  /** Milliseconds before a packet read by a node that died is delivered to another instance (default 30,000; whole seconds). */
  visibilityTimeout?: number;
}

const BALANCED_OPTION_KEYS = ["concurrency", "prefetch", "maxAttempts", "backoff", "visibilityTimeout"] as const;
const TRANSPORTER_OPTION_KEYS = ["connectionString", "namespace", "core", "system", "delivery", "balanced", "connectionCheckIntervalMs", "stopGraceMs"] as const;

/** Options of {@link PgTransporter}. */
export interface PgTransporterOptions {
  /** PostgreSQL connection string. Default: the `CORE_DATABASE_URL` environment variable. */
  connectionString?: string;
  /** The core namespace. Default: the broker's `namespace`, or `moleculer` when it has none. */
  namespace?: string;
  /**
   * Further core settings (pool size, heartbeat, `nodeTtlMs`, `nodeQueueGraceMs`: how long
   * the queue of a node that went away is kept, like AMQP's `autoDeleteQueues`, logger, ...).
   */
  core?: Omit<ConnectOptions, "connectionString" | "namespace">;
  /** Consumption of the balanced group queues. */
  balanced?: PgBalancedOptions;
  /**
   * How targeted packets travel (REQ, RES, targeted EVENT, INFO and PING/PONG to one
   * node): `direct` (default), a NOTIFY on the target's channel, at most once, as on
   * Moleculer's Redis and NATS transporters; or `queue`, through the target's queue,
   * kept while it is down. A system connected with `replies: 'queue'` (an isolated
   * namespace) uses `queue`, saying so once in the log.
   */
  delivery?: Delivery;
  /**
   * An open `CoreSystem` to use instead of connecting (then `connectionString`, `namespace`
   * and `core` are not needed; the transporter leaves closing it to its owner).
   */
  system?: CoreSystem;
  /**
   * @deprecated No effect: the transporter follows the core system's `status` events
   * instead of polling the connection. Setting it logs a warning once.
   */
  connectionCheckIntervalMs?: number;
  /** Milliseconds in-flight balanced handlers get to finish on disconnect (default 5,000). */
  stopGraceMs?: number;
}

/** What Moleculer passes to `send` beside the topic and the bytes. */
interface SendMeta {
  packet: { type: string; target?: string | null; payload: { action?: string; event?: string; groups?: string[] } };
  balanced?: boolean;
}

/** The parts of a 0.14 broker the balanced-event path uses that its declarations lack. */
interface BrokerInternals {
  started: boolean;
  MOLECULER_VERSION: string;
  ContextFactory: new (broker: Moleculer.ServiceBroker) => Record<string, unknown> & { setParams(params: unknown, clone?: boolean): void };
  emitLocalServices(ctx: unknown): Promise<unknown>;
  options: { contextParamsCloning?: boolean };
  errorHandler(error: unknown, info: { ctx?: { meta?: object }; event?: unknown }): unknown;
}

/** The fields of an EVENT packet's payload that Moleculer 0.14's transit copies into the context. */
interface EventPacketPayload {
  id: string;
  event: string;
  data: unknown;
  groups?: string[];
  broadcast?: boolean;
  meta?: Record<string, unknown>;
  level?: number;
  tracing?: boolean;
  parentID?: string;
  requestID?: string;
  caller?: string;
  sender: string;
}

/**
 * A Moleculer transporter on PostgreSQL. Use it as `transporter: new PgTransporter({ connectionString })`,
 * or by its registered name `"Postgres"` (connection from `CORE_DATABASE_URL`).
 *
 * @example
 * const broker = new ServiceBroker({ nodeID: "api-1", transporter: new PgTransporter({ connectionString: process.env.CORE_DATABASE_URL }) });
 */
export class PgTransporter extends Moleculer.Transporters.Base {
  // Members of Moleculer's base transporter that 0.14's declarations leave out.
  /** The broker this transporter serves (set by `init`). */
  declare broker: Moleculer.ServiceBroker;
  /** The broker's node id (set by `init`). */
  declare nodeID: string;
  /** Moleculer's topic prefix, `MOL` or `MOL-<namespace>` (set by `init`). */
  declare prefix: string;
  /** True while packets can be published; false makes requests fail with `BrokerDisconnectedError`. */
  declare connected: boolean;

  readonly #options: PgTransporterOptions;
  readonly #connectionString: string | undefined;
  readonly #broadcastChannels = new Map<string, () => void>();
  readonly #balancedGroups = new Set<string>();
  /** Group subscriptions being recorded (Moleculer does not wait for those of events). */
  readonly #subscribing = new Set<Promise<void>>();
  /** Where each Moleculer node's targeted packets go: its core node id, learnt from its broadcasts. */
  readonly #routes = new Map<string, string>();
  #namespace = "moleculer";
  #system: CoreSystem | undefined;
  #node: CoreNode | undefined;
  #logger: Logger | undefined;
  #ownsSystem = false;
  #delivery: Delivery = "direct";
  #stopWatching: (() => void) | undefined;
  #reconnecting = false;
  /**
   * Moleculer 0.14: the failures of the balanced events being handled, keyed by the
   * delivery's `meta` object, which every handler's context copy shares (see {@link #trackEventFailures}).
   */
  readonly #eventFailures = new WeakMap<object, { error?: unknown }>();

  /** `options` may also be just the connection string. */
  constructor(options: PgTransporterOptions | string = {}) {
    const resolved: PgTransporterOptions = typeof options === "string" ? { connectionString: options } : { ...options };
    validateTransporterOptions(resolved);
    super(resolved);
    this.#options = resolved;
    const connectionString = resolved.connectionString ?? process.env.CORE_DATABASE_URL;
    if (!connectionString && !resolved.system) {
      throw new PgTransporterConfigError(
        "connectionString",
        "PgTransporter needs a PostgreSQL connection string: pass { connectionString } (or an open CoreSystem as { system }), or set CORE_DATABASE_URL.",
      );
    }
    this.#connectionString = connectionString;
    this.hasBuiltInBalancer = true;
  }

  /** Called by the broker: takes the namespace from the broker unless the options set one. */
  override init(...args: Parameters<InstanceType<typeof Moleculer.Transporters.Base>["init"]>): void {
    super.init(...args);
    const brokerNamespace = (this.broker as unknown as { namespace?: string }).namespace;
    const given = this.#options.system;
    if (given && this.#options.namespace !== undefined && this.#options.namespace !== given.namespace) {
      throw new PgTransporterConfigError("namespace", `namespace ${this.#options.namespace} differs from the given system's namespace ${given.namespace}: omit one of them.`);
    }
    const namespace = given?.namespace ?? this.#options.namespace ?? (brokerNamespace || "moleculer");
    try {
      assertNamespace(namespace);
    } catch (error) {
      throw new PgTransporterConfigError(
        "namespace",
        `${asError(error).message} The core namespace comes from the broker's namespace unless PgTransporter's { namespace } option sets one.`,
      );
    }
    this.#namespace = namespace;
    const broker = this.broker as unknown as BrokerInternals;
    if (broker.MOLECULER_VERSION.startsWith("0.14.")) this.#trackEventFailures(broker);
  }

  /**
   * Moleculer 0.14's ErrorHandler middleware logs a rejecting event handler's error and
   * resolves, so neither transit nor a transporter can tell the handler failed. Its last
   * step before that is `broker.errorHandler`, which throws unless the app's own
   * `errorHandler` takes the error: wrapping it records the errors that stay unhandled for
   * the balanced events this transporter is handling, which are then redelivered (0.15's
   * transit reports them itself).
   */
  #trackEventFailures(broker: BrokerInternals): void {
    const original = broker.errorHandler;
    const failures = this.#eventFailures;
    const record = (meta: object | undefined, error: unknown): void => {
      const delivery = meta ? failures.get(meta) : undefined;
      if (delivery) delivery.error ??= error;
    };
    broker.errorHandler = function errorHandler(this: BrokerInternals, error, info) {
      const id = info?.event ? info.ctx?.meta : undefined;
      try {
        const result = original.call(this, error, info);
        if (result instanceof Promise) {
          return result.catch((rethrown: unknown) => {
            record(id, rethrown);
            throw rethrown;
          });
        }
        return result;
      } catch (rethrown) {
        record(id, rethrown);
        throw rethrown;
      }
    };
  }

  /** Connects to PostgreSQL, registers this broker as a core node and starts consuming its queue. */
  override async connect(): Promise<void> {
    const { system, owned } = await openSystem(
      this.#options.system ?? { ...this.#options.core, connectionString: this.#connectionString!, namespace: this.#namespace },
    );
    try {
      // A fresh core id per broker instance: two brokers given the same nodeID keep
      // separate queues and see each other's INFO, so Moleculer's own duplicate check runs.
      const node = await system.registerNode({ displayName: `moleculer:${this.nodeID}`, nodeId: randomUUID(), metadata: { moleculerNodeID: this.nodeID } });
      node.onDirect(`${PREFIX}.*`, (event: CoreEvent<DirectPayload>) => this.#onDirect(event));
      await node.start();
      this.#system = system;
      this.#node = node;
      this.#logger = system.logger.child({ component: "moleculer", moleculerNodeID: this.nodeID });
    } catch (error) {
      if (owned) await system.close().catch(() => {});
      throw error;
    }
    this.#ownsSystem = owned;
    this.#delivery = system.deliveryFor(this.#options.delivery ?? "direct", "PgTransporter");
    if (this.#options.connectionCheckIntervalMs !== undefined) {
      this.#logger?.warn("PgTransporter's connectionCheckIntervalMs is deprecated and has no effect: the transporter follows the core's status events");
    }
    const onStatus = (status: SystemStatus): void => this.#onStatus(status);
    system.on("status", onStatus);
    this.#stopWatching = () => void system.off("status", onStatus);
    await this.onConnected(false);
  }

  /** Stops consuming (in-flight balanced handlers get `stopGraceMs`), marks the node stopped and closes the pool. */
  override async disconnect(): Promise<void> {
    this.#stopWatching?.();
    this.#stopWatching = undefined;
    this.connected = false;
    for (const stop of this.#broadcastChannels.values()) stop();
    this.#broadcastChannels.clear();
    const node = this.#node;
    const system = this.#system;
    this.#node = undefined;
    this.#system = undefined;
    try {
      await node?.stop({ graceMs: this.#options.stopGraceMs ?? 5_000 });
    } finally {
      if (this.#ownsSystem) await system?.close();
    }
  }

  /** Targeted topics need nothing: every targeted packet arrives in this node's queue. Broadcast topics listen on their channel. */
  override subscribe(cmd: string, nodeID?: string): Promise<void> {
    const system = this.#connectedSystem();
    if (nodeID || this.#broadcastChannels.has(cmd)) return Promise.resolve();
    const stop = system.onBroadcast(packetType(cmd), (payload) => this.#onBroadcast(cmd, payload as BroadcastPayload));
    this.#broadcastChannels.set(cmd, stop);
    return Promise.resolve();
  }

  /** Consumes the durable queue of balanced requests for `action`, shared by every instance serving it. */
  override async subscribeBalancedRequest(action: string): Promise<void> {
    const { type, group } = balancedRequest(action);
    await this.#consumeGroup(type, group, "REQ");
  }

  /** Consumes the durable queue of the balanced events of Moleculer group `group` (one queue per group, whatever `event`). */
  override async subscribeBalancedEvent(_event: string, group: string): Promise<void> {
    const subscription = balancedEventSubscription(group);
    await this.#consumeGroup(subscription.pattern, subscription.group, "EVENT");
  }

  /**
   * Moleculer calls this before re-subscribing after a service change. The group
   * subscriptions are durable and shared with the other instances, so they are kept;
   * the ones made already are not made twice.
   */
  override unsubscribeFromBalancedCommands(): Promise<void> {
    return Promise.resolve();
  }

  /** Moleculer's publish path ends here with the serialized packet. */
  override async send(_topic: string, data: Buffer, meta: SendMeta): Promise<void> {
    const node = this.#node;
    if (!node) return;
    const { packet } = meta;
    if (packet.type === "INFO" && (this.broker.options as { disableBalancer?: boolean }).disableBalancer) await this.#balancedQueuesReady();
    const payload: PacketPayload = { d: encode(data) };
    if (meta.balanced) {
      if (packet.type === "REQ") {
        await node.emit(balancedRequest(packet.payload.action ?? "").type, payload);
      } else {
        // The base transporter sends one packet per group, naming only that group.
        const group = packet.payload.groups?.[0] ?? "";
        await node.emit(balancedEventType(group, packet.payload.event ?? ""), payload);
      }
      return;
    }
    if (packet.target) {
      const target = this.#routes.get(packet.target);
      if (!target) {
        // Like a subject no one listens on: Moleculer's own timeouts and heartbeats deal with it.
        this.#logger?.warn({ cmd: packet.type, target: packet.target }, "no broadcast seen from the target node yet; packet dropped");
        return;
      }
      const direct: DirectPayload = { ...payload, n: this.nodeID };
      await node.sendTo(target, packetType(packet.type), direct, { delivery: this.#delivery });
      return;
    }
    const broadcast: BroadcastPayload = { ...payload, n: this.nodeID, u: node.nodeId };
    await this.#connectedSystem().broadcast(packetType(packet.type), broadcast, { sourceNode: node.nodeId });
  }

  /**
   * A node announces its services (INFO, also the one answering a DISCOVER, which Moleculer
   * sends before subscribing) only once their group queues are subscribed: a balanced
   * packet sent to a group with no subscription yet would reach no queue.
   */
  async #balancedQueuesReady(): Promise<void> {
    await this.makeBalancedSubscriptions();
    await Promise.all(this.#subscribing);
  }

  #consumeGroup(pattern: string, group: string, cmd: "REQ" | "EVENT"): Promise<void> {
    const subscribing = this.#subscribe(pattern, group, cmd);
    this.#subscribing.add(subscribing);
    return subscribing.finally(() => this.#subscribing.delete(subscribing));
  }

  async #subscribe(pattern: string, group: string, cmd: "REQ" | "EVENT"): Promise<void> {
    const node = this.#node;
    if (!node || this.#balancedGroups.has(group)) return;
    this.#balancedGroups.add(group);
    const balanced = this.#options.balanced ?? {};
    try {
      await node.onEvent<PacketPayload>(pattern, (event) => this.#handleBalanced(cmd, event), {
        group,
        concurrency: balanced.concurrency ?? 8,
        prefetch: balanced.prefetch ?? 10,
        ...(balanced.maxAttempts !== undefined ? { maxAttempts: balanced.maxAttempts } : {}),
        ...(balanced.backoff !== undefined ? { backoff: balanced.backoff } : {}),
        ...(balanced.visibilityTimeout !== undefined ? { visibilityTimeout: balanced.visibilityTimeout } : {}),
      });
    } catch (error) {
      this.#balancedGroups.delete(group);
      throw error;
    }
  }

  /**
   * Resolves once Moleculer has handled the packet, so the core acknowledges it only then;
   * a throw makes the core redeliver it (to any instance) and dead-letter it at last.
   */
  async #handleBalanced(cmd: "REQ" | "EVENT", event: CoreEvent<PacketPayload>): Promise<void> {
    const data = decode(event.payload);
    if (cmd === "REQ") {
      // Transit answers the request (a failing action answers with its error) before this resolves.
      await this.receive(cmd, data);
      return;
    }
    const broker = this.broker as unknown as BrokerInternals;
    if (broker.MOLECULER_VERSION.startsWith("0.14.")) {
      await this.#handleEventOn014(data, broker);
      return;
    }
    // 0.15's transit resolves to false when a handler rejected or the broker is not started.
    const handled = (await this.receive(cmd, data)) as unknown;
    if (handled === false) throw new NexusError(ErrorCode.handlerFailed, `A handler of a balanced event rejected (or the broker ${this.nodeID} is stopping); redelivering.`, { retryable: true });
  }

  /**
   * Moleculer 0.14's transit does not return the event handlers' promise, so this does
   * what its `eventHandler` does, waiting for the handlers: the context fields below are
   * the ones 0.14's transit sets (checked on 0.14.6 and 0.14.36). A failure recorded by the wrapped `errorHandler` rejects.
   */
  async #handleEventOn014(data: Buffer, broker: BrokerInternals): Promise<void> {
    const payload = (this.deserialize("EVENT", data) as unknown as { payload: EventPacketPayload }).payload;
    if (!broker.started) throw new InvalidStateError(`Broker ${this.nodeID} is not started; the event ${payload.event} will be redelivered.`);
    const ctx = new broker.ContextFactory(this.broker);
    ctx.id = payload.id;
    ctx.eventName = payload.event;
    ctx.setParams(payload.data, broker.options.contextParamsCloning);
    ctx.eventGroups = payload.groups;
    ctx.eventType = payload.broadcast ? "broadcast" : "emit";
    const meta = payload.meta ?? {};
    ctx.meta = meta;
    ctx.level = payload.level;
    ctx.tracing = !!payload.tracing;
    ctx.parentID = payload.parentID;
    ctx.requestID = payload.requestID;
    ctx.caller = payload.caller;
    ctx.nodeID = payload.sender;
    const delivery: { error?: unknown } = {};
    this.#eventFailures.set(meta, delivery);
    try {
      await broker.emitLocalServices(ctx);
    } finally {
      this.#eventFailures.delete(meta);
    }
    if (delivery.error !== undefined) throw delivery.error;
  }

  /**
   * Targeted packets arrive in order through the node's queue; each is handed to Moleculer
   * without waiting for its handling, so that a long action does not hold up the queue
   * (Moleculer answers requests with its own RES packets).
   */
  #onDirect(event: CoreEvent<DirectPayload>): void {
    const cmd = event.type.slice(PREFIX.length + 1);
    // A node that has only sent targeted packets so far (an INFO answering our DISCOVER) is reachable too.
    if (event.sourceNode && typeof event.payload.n === "string") this.#routes.set(event.payload.n, event.sourceNode);
    Promise.resolve(this.receive(cmd, decode(event.payload))).catch((error: unknown) =>
      this.#logger?.error({ err: error, cmd }, "Moleculer could not handle a targeted packet"),
    );
  }

  #onBroadcast(cmd: string, payload: BroadcastPayload): void {
    if (typeof payload?.d !== "string") return;
    this.#routes.set(payload.n, payload.u);
    Promise.resolve(this.receive(cmd, decode(payload))).catch((error: unknown) =>
      this.#logger?.error({ err: error, cmd }, "Moleculer could not handle a broadcast packet"),
    );
  }

  /**
   * Follows the core system's status (its LISTEN connection, which the core re-establishes
   * on its own): while it is down publishing stops (requests fail with
   * BrokerDisconnectedError); once it is back, `onConnected(true)` makes Moleculer
   * re-announce this node and discover the others.
   */
  #onStatus(status: SystemStatus): void {
    if (!this.#system || this.#reconnecting || status === "disconnected") return;
    const up = status === "connected";
    if (!up && this.connected) {
      this.connected = false;
      this.#logger?.warn("database connection lost; requests fail with BrokerDisconnectedError until it is back");
    } else if (up && !this.connected) {
      this.#reconnecting = true;
      this.#logger?.info("database connection back; re-announcing this node");
      this.onConnected(true)
        .catch((error: unknown) => this.#logger?.warn({ err: error }, "re-announcing after a reconnect failed"))
        .finally(() => (this.#reconnecting = false));
    }
  }

  #connectedSystem(): CoreSystem {
    if (!this.#system) throw new PgTransporterConfigError("transporter", "PgTransporter is not connected; subscribe runs after connect().");
    return this.#system;
  }
}

/** Checks the transporter's own options (Moleculer hands the transporter only these): known keys, the core's connection options in `core`, and the ranges. */
function validateTransporterOptions(options: PgTransporterOptions): void {
  assertKnownKeys("PgTransporter options", options, TRANSPORTER_OPTION_KEYS);
  assertKnownKeys("PgTransporter options.core", options.core, CONNECT_OPTION_KEYS.filter((key) => key !== "connectionString" && key !== "namespace"), "core");
  assertKnownKeys("PgTransporter options.balanced", options.balanced, BALANCED_OPTION_KEYS, "balanced");
  assertDelivery(options.delivery);
  assertWholeNumber("balanced.concurrency", options.balanced?.concurrency, { min: 1, max: 1000 });
  assertWholeNumber("balanced.prefetch", options.balanced?.prefetch, { min: 1, max: 1000, unit: "messages" });
  assertWholeNumber("connectionCheckIntervalMs", options.connectionCheckIntervalMs, { min: 1, unit: "milliseconds" });
  assertWholeNumber("stopGraceMs", options.stopGraceMs, { min: 0, unit: "milliseconds" });
}
