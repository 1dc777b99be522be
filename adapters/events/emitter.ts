/**
 * PgEventEmitter: a `node:events` EventEmitter whose events also travel between processes
 * through the core. Local semantics are Node's own (the class extends EventEmitter and
 * only adds name checks and bus subscriptions around it); `emit` publishes a core event
 * of type `name` whose payload is the argument array. README.md has the mapping, the two
 * delivery modes and the guarantees.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import {
  CONNECT_OPTION_KEYS,
  ClosedError,
  type CoreSystem,
  DEFAULT_MAX_PAYLOAD_BYTES,
  NoHandlerError,
  SUBSCRIBE_OPTION_KEYS,
  ValidationError,
  asError,
  assertGroup,
  assertKnownKeys,
  type ConnectOptions,
  type CoreEvent,
  type CoreNode,
  type EmitOptions,
  type HandlerContext,
  type SubscribeOptions,
} from "../../core/index.js";
import { isCoreSystem, openSystem } from "../../core/internal.js";
import { PublishError, invalidArgValue } from "./errors.js";
import { callListeners } from "./listeners.js";
import { DELIVERED_LOCALLY_HEADER, argsToPayload, busName, isBusName, payloadToArgs } from "./mapping.js";
import type { Args, DefaultEventMap, EventMap, Key, Listener1 } from "./types.js";

/** `broadcast`: every instance hears each event; `group`: one instance of the group does. */
export type EmitterMode = "broadcast" | "group";

/** Options of {@link PgEventEmitter}. */
export interface PgEventEmitterOptions extends Omit<SubscribeOptions, "group"> {
  /**
   * `broadcast` (default): every emitter instance of the namespace hears each event once,
   * and `emit` runs the emitting instance's own listeners synchronously, as Node does.
   * `group`: one instance of `group` handles each event (possibly the emitting one), and
   * `emit` runs no listener synchronously.
   */
  mode?: EmitterMode;
  /** The consumer group of `group` mode (required there): a service name such as `billing`. */
  group?: string;
  /** Display name of the emitter's node in `core.nodes` (default: the group, else `event-emitter`). */
  displayName?: string;
  /** Node's `captureRejections` option, for listeners of local emits. */
  captureRejections?: boolean;
}

/**
 * How {@link PgEventEmitter.with} publishes: `client` (a `pg` client inside your open
 * transaction: published only if it commits), `headers`, `delay` (ms), `idempotencyKey`.
 */
export type PublishOptions = Pick<EmitOptions, "client" | "headers" | "delay" | "idempotencyKey">;

/** What {@link PgEventEmitter.with} returns. */
export interface EmitterPublisher<T extends EventMap<T> = DefaultEventMap> {
  /** {@link PgEventEmitter.emitAsync} with the options given to `with`. */
  emitAsync<K>(eventName: Key<K, T>, ...args: Args<K, T>): Promise<string>;
}

/** The bus delivery whose listeners are running (see {@link PgEventEmitter.currentDelivery}). */
export interface EmitterDelivery {
  /** The core event: `id` (the same in every copy), `type`, `payload`, `headers`, `sourceNode`, ... */
  event: CoreEvent;
  /** The handler context: `attempt`, `client` (the delivery's transaction), `signal`, ... */
  context: HandlerContext;
}

const GROUP_ONLY_OPTIONS = ["concurrency", "prefetch", "maxAttempts", "backoff", "visibilityTimeout", "pollInterval", "timeout"] as const;
const EMITTER_OPTION_KEYS = ["mode", "displayName", "captureRejections", ...SUBSCRIBE_OPTION_KEYS];
const PUBLISH_OPTION_KEYS = ["client", "headers", "delay", "idempotencyKey"] as const;

/**
 * A `node:events` EventEmitter on PostgreSQL: `emit` reaches the listeners of every
 * process of the namespace (README.md).
 *
 * @example
 * const chat = await PgEventEmitter.create({ connectionString, namespace: "chat" });
 * chat.on("chat.message", (text, from) => console.log(`${from}: ${text}`));
 * await chat.ready(); // connected, and the listener is subscribed on the bus
 * chat.emit("chat.message", "hello", "ada"); // runs the local listener now, and every other instance's soon
 */
export class PgEventEmitter<T extends EventMap<T> = DefaultEventMap> extends EventEmitter<T> {
  /** The delivery mode (see {@link PgEventEmitterOptions.mode}). */
  readonly mode: EmitterMode;
  /** The consumer group in `group` mode; undefined in `broadcast` mode. */
  readonly group: string | undefined;
  readonly #connection: ConnectOptions | CoreSystem;
  readonly #ownsSystem: boolean;
  readonly #displayName: string;
  readonly #consumerOptions: SubscribeOptions;
  readonly #deliveries = new AsyncLocalStorage<EmitterDelivery>();
  /** Names this instance receives from the bus (broadcast: subscribed; group: routed to the group consumer). */
  readonly #onBus = new Set<string>();
  /** Names whose listeners changed since the last reconciliation. */
  readonly #dirty = new Set<string>();
  readonly #publishing = new Set<Promise<unknown>>();
  #system: CoreSystem | undefined;
  #node: CoreNode | undefined;
  #starting: Promise<CoreNode> | undefined;
  #closing: Promise<void> | undefined;
  /** The last reconciliation of bus subscriptions; never rejects (failures go to `error`). */
  #reconciled: Promise<void> = Promise.resolve();
  #reconcileQueued = false;

  /**
   * @param connection the core's connection options (the emitter connects, and `close`
   *   closes that system) or an existing `CoreSystem` (left open by `close`).
   * @param options `{ mode, group, displayName, captureRejections }` and, in `group` mode,
   *   the group consumer's options (`maxAttempts`, `backoff`, `concurrency`, ...).
   */
  constructor(connection: ConnectOptions | CoreSystem, options: PgEventEmitterOptions = {}) {
    super(options.captureRejections === undefined ? undefined : { captureRejections: options.captureRejections });
    if (connection === null || typeof connection !== "object") {
      throw new ValidationError("connection", "PgEventEmitter needs the core's connection options { connectionString, namespace } or a CoreSystem.");
    }
    assertKnownKeys("PgEventEmitter options", options ?? null, EMITTER_OPTION_KEYS);
    if (!isCoreSystem(connection)) assertKnownKeys("PgEventEmitter connection options", connection, CONNECT_OPTION_KEYS, "connection");
    const { mode = "broadcast", group, displayName, captureRejections: _captureRejections, ...consumerOptions } = options;
    if (mode !== "broadcast" && mode !== "group") throw new ValidationError("mode", `mode must be 'broadcast' or 'group'; got ${JSON.stringify(mode)}.`);
    if (mode === "group") assertGroup(group);
    else validateBroadcastOptions(group, consumerOptions);
    this.mode = mode;
    this.group = mode === "group" ? group : undefined;
    this.#connection = connection;
    this.#ownsSystem = !isCoreSystem(connection);
    this.#displayName = displayName ?? group ?? "event-emitter";
    this.#consumerOptions = consumerOptions;
    if (isCoreSystem(connection)) this.#system = connection;
  }

  /** Creates an emitter and waits until it is {@link ready}. */
  static async create<T extends EventMap<T> = DefaultEventMap>(connection: ConnectOptions | CoreSystem, options: PgEventEmitterOptions = {}): Promise<PgEventEmitter<T>> {
    const emitter = new PgEventEmitter<T>(connection, options);
    try {
      await emitter.ready();
    } catch (error) {
      await emitter.close().catch(() => {});
      throw error;
    }
    return emitter;
  }

  /**
   * Connects (when given connection options), registers the emitter's node and starts it,
   * then waits until every listener added so far is subscribed on the bus; rejects when
   * the emitter cannot start. Call it again after adding listeners to know that events
   * emitted elsewhere from now on reach them. The constructor touches no database: until
   * `ready` (or {@link create}), listeners are only local, except that the first `emit`
   * of a bus event starts the emitter too, since its event must be published.
   */
  async ready(): Promise<void> {
    await this.#start();
    await this.#reconciled;
  }

  /** The system the emitter works on (after {@link ready}). */
  get system(): CoreSystem {
    if (!this.#system) throw new ValidationError("system", "The emitter has not started: await emitter.ready() first.");
    return this.#system;
  }

  /** The emitter's own node in `core.nodes` (after {@link ready}); its id is every published event's `sourceNode`. */
  get node(): CoreNode {
    if (!this.#node) throw new ValidationError("node", "The emitter has not started: await emitter.ready() first.");
    return this.#node;
  }

  /**
   * Calls the listeners of `eventName` here and publishes the event to every process of
   * the namespace, with the arguments as a JSON array payload. Returns what Node returns:
   * whether this instance has listeners for it.
   *
   * - `broadcast` mode: the listeners here run now, synchronously (a throw propagates as
   *   in Node, and the event is published anyway); this instance skips its own copy.
   * - `group` mode: no listener runs now; one instance of the group gets the event.
   * - Symbols, `error`, `newListener` and `removeListener` stay local, as plain Node events.
   *
   * Publishing is asynchronous: when it fails, a {@link PublishError} goes to the `error`
   * event (and, as Node does with an `error` nobody listens to, is thrown: an uncaught
   * exception). Use {@link emitAsync} to await the commit and handle a failure per call.
   * Throws a Node-style `TypeError` for a name outside the event type grammar or
   * arguments that are not JSON, and `ClosedError` after {@link close}.
   */
  override emit<K>(eventName: Key<K, T>, ...args: Args<K, T>): boolean {
    const name = busName(eventName, this.emit);
    if (name === undefined) return super.emit(eventName, ...args);
    this.#assertOpen();
    const payload = argsToPayload(args, this.#maxPayloadBytes(), this.emit);
    if (this.mode === "group") {
      this.#publishInBackground(name, payload);
      return this.listenerCount(eventName) > 0;
    }
    this.#publishInBackground(name, payload, { headers: { [DELIVERED_LOCALLY_HEADER]: "1" } });
    return super.emit(eventName, ...args);
  }

  /**
   * Publishes the event and resolves to its id once it is committed. No listener runs
   * synchronously, in either mode: this instance's listeners hear it from the bus like
   * every other instance's (in `broadcast` mode) or one instance of the group does.
   * Rejects with a Node-style `TypeError` for a local-only or malformed name, or
   * arguments that are not JSON.
   */
  emitAsync<K>(eventName: Key<K, T>, ...args: Args<K, T>): Promise<string> {
    return this.#emitAsync(eventName, args, {});
  }

  /**
   * Publishing options for one call, e.g. inside your transaction: the event is
   * published only if it commits.
   *
   * @example
   * await client.query("begin");
   * await client.query("insert into orders ...");
   * await orders.with({ client }).emitAsync("order.created", order);
   * await client.query("commit"); // listeners everywhere hear it only now
   */
  with(options: PublishOptions): EmitterPublisher<T> {
    if (options === null || typeof options !== "object") {
      throw new ValidationError("options", "with() takes { client?, headers?, delay?, idempotencyKey? }.");
    }
    assertKnownKeys("PgEventEmitter.with options", options, PUBLISH_OPTION_KEYS);
    const fixed = { ...options };
    return { emitAsync: (eventName, ...args) => this.#emitAsync(eventName, args, fixed) };
  }

  /**
   * The bus delivery whose listeners are running: its core event (`id`, `headers`,
   * `sourceNode`, ...) and context (`attempt`, and `client`, the delivery's transaction,
   * which commits with its acknowledgement). Undefined outside a listener, and in the
   * listeners of a local `emit`.
   */
  currentDelivery(): EmitterDelivery | undefined {
    return this.#deliveries.getStore();
  }

  override addListener<K>(eventName: Key<K, T>, listener: Listener1<K, T>): this {
    const name = busName(eventName, this.addListener);
    super.addListener(eventName, listener);
    return this.#changed(name);
  }

  override on<K>(eventName: Key<K, T>, listener: Listener1<K, T>): this {
    const name = busName(eventName, this.on);
    super.on(eventName, listener);
    return this.#changed(name);
  }

  override prependListener<K>(eventName: Key<K, T>, listener: Listener1<K, T>): this {
    const name = busName(eventName, this.prependListener);
    super.prependListener(eventName, listener);
    return this.#changed(name);
  }

  // `once` and `prependOnceListener` go through `on` and `prependListener`; the once
  // wrapper removes itself through `removeListener`.

  override removeListener<K>(eventName: Key<K, T>, listener: Listener1<K, T>): this {
    super.removeListener(eventName, listener);
    return this.#changed(eventName);
  }

  override off<K>(eventName: Key<K, T>, listener: Listener1<K, T>): this {
    super.off(eventName, listener);
    return this.#changed(eventName);
  }

  override removeAllListeners(...args: [eventName?: Key<unknown, T>]): this {
    // Node tells "all events" from `removeAllListeners(undefined)` by the argument count.
    const names = args.length === 0 ? this.eventNames() : [args[0]];
    super.removeAllListeners(...args);
    for (const name of names) this.#changed(name);
    return this;
  }

  /**
   * Stops receiving from the bus, waits for publishes in flight, stops the emitter's node
   * and closes the system if the emitter connected it. In `broadcast` mode the instance's
   * subscriptions go with it; in `group` mode the group's stay (README.md). Listeners and
   * local-only events keep working; bus events can no longer be emitted. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await Promise.allSettled([...this.#publishing]);
    await this.#reconciled;
    const started = this.#starting ? await this.#starting.catch(() => undefined) : undefined;
    try {
      if (started && this.mode === "broadcast") {
        for (const name of [...this.#onBus]) {
          // Without the database (or with its system closed already), the core removes
          // these subscriptions nodeQueueGraceMs after the node stopped.
          await started.offNodeEvent(name).catch((error: unknown) =>
            started.logger.warn({ err: error, eventName: name }, "could not unsubscribe on close; the subscription goes with the node queue"),
          );
        }
      }
      this.#onBus.clear();
      await started?.stop();
    } finally {
      if (this.#ownsSystem) await this.#system?.close();
    }
  }

  #assertOpen(): void {
    if (this.#closing) throw new ClosedError("PgEventEmitter");
  }

  #maxPayloadBytes(): number {
    return this.#system?.maxPayloadBytes ?? (this.#connection as ConnectOptions).maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  }

  async #emitAsync(eventName: unknown, args: readonly unknown[], options: PublishOptions): Promise<string> {
    const name = busName(eventName, this.emitAsync);
    if (name === undefined) throw invalidArgValue("eventName", "is a local-only event and cannot be published; emit() it", eventName, this.emitAsync);
    this.#assertOpen();
    const payload = argsToPayload(args, this.#maxPayloadBytes(), this.emitAsync);
    // Only emit() may say that the emitting instance already ran its listeners.
    const { [DELIVERED_LOCALLY_HEADER]: _reserved, ...headers } = options.headers ?? {};
    return this.#publish(name, payload, { ...options, ...(options.headers ? { headers } : {}) });
  }

  async #publish(name: string, payload: unknown[], options: PublishOptions): Promise<string> {
    const node = await this.#start();
    return node.emit(name, payload, options);
  }

  #publishInBackground(name: string, payload: unknown[], options: PublishOptions = {}): void {
    const publishing = this.#publish(name, payload, options).catch((error: unknown) => this.#fail(new PublishError(name, error)));
    this.#publishing.add(publishing);
    void publishing.finally(() => this.#publishing.delete(publishing));
  }

  /** An asynchronous failure: to the `error` event on the next tick; with no listener, Node throws it (uncaught). */
  #fail(error: Error): void {
    process.nextTick(() => super.emit("error" as Key<unknown, T>, ...([error] as Args<unknown, T>)));
  }

  #start(): Promise<CoreNode> {
    if (this.#closing && !this.#starting) return Promise.reject(new ClosedError("PgEventEmitter"));
    this.#starting ??= this.#connect().then((node) => {
      // The listeners added before the start join the bus now.
      for (const name of this.eventNames()) this.#changed(name);
      return node;
    });
    return this.#starting;
  }

  async #connect(): Promise<CoreNode> {
    const { system } = await openSystem(this.#connection);
    this.#system = system;
    try {
      const node = await system.registerNode({
        displayName: this.#displayName,
        // Each emitter is its own node, whatever CORE_NODE_ID says: its id tells its own events apart.
        nodeId: randomUUID(),
        metadata: { adapter: "events", mode: this.mode, ...(this.group ? { group: this.group } : {}) },
      });
      await node.start();
      this.#node = node;
      return node;
    } catch (error) {
      if (this.#ownsSystem) await system.close().catch(() => {});
      throw error;
    }
  }

  /**
   * A listener of `eventName` was added or removed: once started, reconcile its bus
   * subscription soon (a failure goes to the `error` event).
   */
  #changed(eventName: unknown): this {
    if (!isBusName(eventName) || this.#closing) return this;
    this.#dirty.add(eventName);
    if (this.#reconcileQueued || !this.#node) return this;
    this.#reconcileQueued = true;
    this.#reconciled = this.#reconciled.then(() => this.#reconcile()).catch((error: unknown) => this.#fail(asError(error)));
    return this;
  }

  async #reconcile(): Promise<void> {
    this.#reconcileQueued = false;
    const node = this.#node;
    if (this.#closing || !node) return;
    const names = [...this.#dirty];
    this.#dirty.clear();
    let failure: { error: unknown } | undefined;
    for (const name of names) {
      if (this.#closing) return;
      try {
        await this.#reconcileName(node, name);
      } catch (error) {
        // Tried again on the name's next listener change.
        this.#dirty.add(name);
        failure ??= { error };
      }
    }
    if (failure) throw failure.error;
  }

  /**
   * Broadcast: subscribe the node for `name` while it has listeners, unsubscribe when the
   * last goes. Group: route `name` to the group consumer once and keep it (the group's
   * subscription is shared by its instances and keeps events while none listens).
   */
  async #reconcileName(node: CoreNode, name: string): Promise<void> {
    const wanted = super.listenerCount(name as Key<unknown, T>) > 0;
    if (this.mode === "group") {
      if (!wanted || this.#onBus.has(name)) return;
      // Marked first: the route exists as soon as onEvent is called, even if recording fails.
      this.#onBus.add(name);
      await node.onEvent(name, (event, context) => this.#deliver(event, context), { group: this.group, ...this.#consumerOptions });
    } else if (wanted && !this.#onBus.has(name)) {
      await node.onNodeEvent(name, (event, context) => this.#deliver(event, context));
      this.#onBus.add(name);
    } else if (!wanted && this.#onBus.has(name)) {
      this.#onBus.delete(name);
      await node.offNodeEvent(name);
    }
  }

  /**
   * Runs the listeners of a bus event as Node's emit would (in order, on a copy of the
   * list, `once` listeners removed as they run) and waits for the promises they return:
   * a throw or a rejection fails the delivery, which the core retries, then dead-letters.
   */
  async #deliver(event: CoreEvent, context: HandlerContext): Promise<void> {
    const own = event.sourceNode !== null && event.sourceNode === this.#node?.nodeId;
    if (this.mode === "broadcast" && own && event.headers[DELIVERED_LOCALLY_HEADER] !== undefined) return;
    const listeners = super.rawListeners(event.type as Key<unknown, T>) as ((...args: unknown[]) => unknown)[];
    if (listeners.length === 0) {
      if (this.mode === "broadcast") return;
      throw new NoHandlerError(event.type, `group ${this.group} on this instance`, "it has no listener here; the event is retried (another instance may take it), then dead-lettered");
    }
    await this.#deliveries.run({ event, context }, () => callListeners(this, listeners, payloadToArgs(event.payload)));
  }
}

function validateBroadcastOptions(group: string | undefined, consumerOptions: SubscribeOptions): void {
  if (group !== undefined) {
    throw new ValidationError("group", "group applies to mode 'group' only; in 'broadcast' mode every instance hears each event.");
  }
  const misplaced = GROUP_ONLY_OPTIONS.filter((option) => consumerOptions[option] !== undefined);
  if (misplaced.length > 0) {
    throw new ValidationError(
      misplaced[0]!,
      `${misplaced.join(", ")} apply to mode 'group' only; in 'broadcast' mode deliveries use the node queue's settings (README.md).`,
    );
  }
}
