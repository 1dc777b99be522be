/**
 * CoreNode: one registered process (or part of one) in a namespace. It emits events and
 * requests, consumes its groups' queues and its own inbox once started, heartbeats on an
 * unref'd timer, and on each beat marks dead the peers that have gone silent.
 */
import type { NotificationListener } from "./db/listener.js";
import type { Queryable } from "./db/queryable.js";
import type { EmitOutcome, EmitRow } from "./delivery/queries/emit.js";
import { subscribe } from "./delivery/queries/subscribe.js";
import { unsubscribe } from "./delivery/queries/unsubscribe.js";
import { NodeSubscriptions, type RespondOptions } from "./delivery/subscriptions.js";
import type { EventLog } from "./event-log/event-log.js";
import { DEAF_POLL_INTERVALS, NODE_QUEUE_POLL_MS } from "./membership/hearing.js";
import type { NodeRegistry } from "./membership/registry.js";
import type { ConsumerObserver } from "./metrics/metrics.js";
import type { NamespaceContext } from "./model/context.js";
import { ValidationError, asError } from "./model/errors.js";
import type { BatchEvent, EmitOptions, EventHandler, SubscribeOptions } from "./model/events.js";
import type { Logger } from "./model/logger.js";
import { assertEventType, assertPattern, isUuid, isValidGroup } from "./model/names.js";
import { assertKnownKeys } from "./model/options.js";
import { assertHeaders, assertIdempotencyKey, assertMilliseconds, assertPayload } from "./model/payload.js";
import type { RequestHandler } from "./requests/dispatch.js";
import { NodeInbox } from "./requests/inbox.js";
import { assertDelivery, type Delivery } from "./requests/delivery.js";
import type { RequestOptions } from "./requests/requester.js";
import type { ResponderDirectory } from "./requests/responders.js";
import type { RequestEnvelope } from "./model/messages.js";
import type { Scheduler } from "./schedules/scheduler.js";
import type { ScheduledTask, ScheduledTaskStatus, ScheduleTaskOptions, Schedules } from "./schedules/tasks.js";

/**
 * What a node is given by the system that registers it: the namespace context and the
 * capabilities a node works through. A node never sees the system itself.
 */
export interface NodeServices {
  readonly context: NamespaceContext;
  /** The system's LISTEN connection, shared by its nodes. */
  readonly listener: NotificationListener;
  /** Publishes validated rows (coalesced per event-loop turn, counted in metrics). */
  readonly publish: (rows: EmitRow[], sourceNode: string | null, client?: Queryable) => Promise<EmitOutcome[]>;
  /** The metrics observer of a consumer of `group`. */
  readonly observe: (group: string, kind: "event" | "request") => ConsumerObserver;
  /** How responders reply: through queues only (isolated namespaces), and with stacks or not. */
  readonly replies: { readonly viaQueue: boolean; readonly sendStacks: boolean };
  /**
   * False when the system's LISTEN connection did not hear its own NOTIFY at connect (see
   * `CoreSystem.hearsNotifications`): its nodes are registered as deaf, poll their queues
   * and send requests through queues.
   */
  readonly hearsNotifications: boolean;
  readonly registry: NodeRegistry;
  /** Who answers which requests directly (the system's view, shared by its nodes). */
  readonly directory: ResponderDirectory;
  readonly eventLog: EventLog;
  readonly schedules: Schedules;
}

const EMIT_OPTION_KEYS = ["headers", "delay", "idempotencyKey", "client"] as const;
const BATCH_EVENT_KEYS = ["type", "payload", "headers", "delay", "idempotencyKey"] as const;
const REQUEST_OPTION_KEYS = ["timeout", "headers", "signal", "delivery", "durable"] as const;

export type { Delivery } from "./requests/delivery.js";

/** Options of {@link CoreNode.sendTo}. */
export interface SendToOptions {
  /** Headers carried to the handler. */
  headers?: Record<string, string>;
  /** The path: `queue` (default) or `direct`; see {@link Delivery}. */
  delivery?: Delivery;
}

/** What {@link CoreNode}'s constructor needs; nodes are made by `CoreSystem.registerNode`. */
export interface CoreNodeInit {
  services: NodeServices;
  nodeId: string;
  displayName: string;
  metadata: Record<string, unknown>;
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
  /** The namespace this node works in. */
  readonly namespace: string;
  /** A child of the system's logger, bound to this node. */
  readonly logger: Logger;
  readonly #services: NodeServices;
  /** The namespace context with this node's logger. */
  readonly #context: NamespaceContext;
  readonly #onStopped: () => void;
  readonly #heartbeatTimer: NodeJS.Timeout;
  readonly #subscriptions: NodeSubscriptions;
  readonly #inbox: NodeInbox;
  #beating: Promise<void> | undefined;
  readonly #stopWatchingResponders: () => void;
  /** True once this node announced its request patterns for the direct path. */
  #answersDirect = false;
  #started = false;
  #stopped = false;
  #scheduler: Scheduler | undefined;
  #maintenanceTimer: NodeJS.Timeout | undefined;

  /** @internal Use {@link CoreSystem.registerNode}. */
  constructor(init: CoreNodeInit) {
    this.#services = init.services;
    this.namespace = init.services.context.namespace;
    this.nodeId = init.nodeId;
    this.displayName = init.displayName;
    this.metadata = init.metadata;
    this.logger = init.services.context.logger.child({ nodeId: init.nodeId });
    this.#context = { ...init.services.context, logger: this.logger };
    this.#onStopped = init.onStopped;
    this.#heartbeatTimer = setInterval(() => this.#beat(), init.services.registry.timings.heartbeatIntervalMs);
    this.#heartbeatTimer.unref();
    const { replies, hearsNotifications } = init.services;
    const requestPollMs = hearsNotifications ? undefined : DEAF_POLL_INTERVALS.requestGroupMs;
    this.#subscriptions = new NodeSubscriptions(this.#context, { ...replies, nodeId: init.nodeId, pool: this.#context.pool }, init.services.observe, requestPollMs);
    this.#inbox = new NodeInbox(this.#context, {
      nodeId: init.nodeId,
      listener: init.services.listener,
      directory: init.services.directory,
      hasDeafNodes: () => init.services.registry.hasDeafNodes(),
      pollIntervalMs: hearsNotifications ? NODE_QUEUE_POLL_MS : DEAF_POLL_INTERVALS.nodeQueueMs,
      onCancel: (correlationId) => this.#subscriptions.cancel(correlationId),
      onRequest: (request) => void this.#answerDirect(request),
    });
    this.#stopWatchingResponders = init.services.directory.onDown((nodeId) => this.#inbox.requester.failTarget(nodeId));
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
    assertKnownKeys("node.emit options", options ?? null, EMIT_OPTION_KEYS);
    const row = this.#emitRow({ type, payload, ...options });
    const [outcome] = await this.#services.publish([row], this.nodeId, clientOf(options));
    return outcome!.eventId;
  }

  /** Publishes several events all-or-nothing, in order; returns their ids. */
  async emitBatch(events: BatchEvent[], options: Pick<EmitOptions, "client"> = {}): Promise<string[]> {
    if (!Array.isArray(events) || events.length === 0) {
      throw new ValidationError("events", "emitBatch needs a non-empty array of { type, payload, headers?, delay?, idempotencyKey? }.");
    }
    assertKnownKeys("node.emitBatch options", options ?? null, ["client"]);
    events.forEach((event, index) => assertKnownKeys(`node.emitBatch events[${index}]`, event ?? null, BATCH_EVENT_KEYS, `events[${index}]`));
    const rows = events.map((event) => this.#emitRow(event));
    const outcomes = await this.#services.publish(rows, this.nodeId, clientOf(options));
    return outcomes.map((outcome) => outcome.eventId);
  }

  /**
   * Handles events whose type matches `pattern` (`*` one segment, `**` one or more) in
   * the consumer group `options.group` (default: this node's display name). Each event
   * reaches one instance of each subscribed group. The subscription is durable: the
   * group's queue keeps events while no consumer runs.
   */
  onEvent<TPayload = unknown>(pattern: string, handler: EventHandler<TPayload>, options: SubscribeOptions = {}): Promise<void> {
    this.#assertNotStopped("subscribe");
    if (options?.group === undefined && !isValidGroup(this.displayName)) return Promise.reject(this.#defaultGroupError("onEvent"));
    return this.#subscriptions.addEvent(pattern, handler as EventHandler, options.group ?? this.displayName, options);
  }

  /**
   * Answers requests whose type matches `pattern` in the responder group `options.group`
   * (default: this node's display name); instances of the group share the requests. The
   * handler returns the reply (a value or a promise), or an async iterable (a Node stream
   * included) whose values are sent in order; a throw answers with the error's message,
   * `code` and `data`. A request whose caller has given up (its timeout passed before it
   * was read) is not run.
   */
  async onRequest<TPayload = unknown>(pattern: string, handler: RequestHandler<TPayload>, options: RespondOptions = {}): Promise<void> {
    this.#assertNotStopped("answer requests");
    if (options?.group === undefined && !isValidGroup(this.displayName)) throw this.#defaultGroupError("onRequest");
    await this.#subscriptions.addRequest(pattern, handler as RequestHandler, options.group ?? this.displayName, options);
    await this.#announceResponder();
  }

  /**
   * Sends a request to the group answering `type` and resolves with its reply (for a
   * streamed reply, the array of its values). Rejects with `RequestTimeoutError` when no
   * reply comes within `options.timeout` (default 30 s), `NoResponderError` when no group
   * answers the type, `RemoteError` carrying the responder's message, code and data, or
   * `CancelledError` when `options.signal` aborts.
   *
   * @example
   * const sum = await node.request("math.sum", { a: 1, b: 2 }, { timeout: 5_000 });
   */
  async request<TReply = unknown>(type: string, payload: unknown, options: RequestOptions = {}): Promise<TReply> {
    const sent = this.#validateRequest(type, payload, options);
    try {
      await this.#inbox.open();
      return (await this.#inbox.requester.request(type, payload, sent)) as TReply;
    } catch (error) {
      throw this.#context.toError(error, `request ${type}`);
    }
  }

  /**
   * Sends a request and yields the values of its reply in order as they arrive (a single
   * reply yields once). Breaking out of the loop or aborting `options.signal` stops the
   * responder's stream. `options.timeout` bounds the wait for each value.
   */
  async *requestStream<TValue = unknown>(type: string, payload: unknown, options: RequestOptions = {}): AsyncGenerator<TValue, void, undefined> {
    const sent = this.#validateRequest(type, payload, options);
    try {
      await this.#inbox.open();
      yield* this.#inbox.requester.requestStream(type, payload, sent) as AsyncGenerator<TValue, void, undefined>;
    } catch (error) {
      throw this.#context.toError(error, `request ${type}`);
    }
  }

  /**
   * Sends a direct message to one node's own queue. Messages from this node to one target
   * are handled there in the order of the calls. Resolves once the message is committed.
   * With `delivery: 'direct'` it is a NOTIFY on the target's channel, except to a node
   * registered as unable to hear notifications (`CoreSystem.hearsNotifications` false
   * there): the database puts it into that node's queue instead, which the node polls.
   */
  async sendTo(nodeId: string, type: string, payload: unknown, options: SendToOptions = {}): Promise<void> {
    assertKnownKeys("node.sendTo options", options ?? null, ["headers", "delivery"]);
    const delivery = this.#assertDelivery(options.delivery);
    if (!isUuid(nodeId)) {
      throw new ValidationError("nodeId", `sendTo needs the target's node id (a UUID); got ${JSON.stringify(nodeId)}.`);
    }
    assertEventType(type, "message type");
    assertPayload(payload, this.#context.limits.maxPayloadBytes);
    assertHeaders(options.headers);
    try {
      if (delivery === "direct") await this.#inbox.sendDirect(nodeId, type, payload, options.headers);
      else await this.#inbox.sendTo(nodeId, type, payload, options.headers);
    } catch (error) {
      throw this.#context.toError(error, `send ${type} to node ${nodeId}`);
    }
  }

  /**
   * Handles direct messages (from `sendTo`) whose type matches `pattern`. From the queue
   * path a throw retries, then dead-letters; from the direct path it is logged and the
   * message dropped (at most once).
   */
  onDirect<TPayload = unknown>(pattern: string, handler: EventHandler<TPayload>): void {
    this.#assertNotStopped("receive direct messages");
    assertPattern(pattern);
    if (typeof handler !== "function") throw new ValidationError("handler", "handler must be a function (message, context) => ...");
    this.#inbox.onDirect(pattern, handler as EventHandler);
  }

  /**
   * Handles events whose type matches `pattern` on this node alone: every node that
   * subscribes this way gets its own copy of each matching event (beside the copies of
   * the subscribed groups), through its own queue, handled in order with retries and a
   * dead-letter queue like direct messages. The subscription lives as long as the node:
   * it is removed with the node's queue `nodeQueueGraceMs` after the node stops or dies
   * (a node restarted with the same id within that time finds what arrived meanwhile), or
   * by {@link offNodeEvent}. Copies that arrive after their pattern was removed are
   * dropped. Adapters use it for broadcasts that must reach every instance once, such as
   * the EventEmitter's broadcast mode.
   */
  async onNodeEvent<TPayload = unknown>(pattern: string, handler: EventHandler<TPayload>): Promise<void> {
    this.#assertNotStopped("subscribe");
    assertPattern(pattern);
    if (typeof handler !== "function") throw new ValidationError("handler", "handler must be a function (event, context) => ...");
    const first = this.#inbox.onNodeEvent(pattern, handler as EventHandler);
    if (!first || !this.#started) return;
    try {
      await this.#recordNodeEvent(pattern);
    } catch (error) {
      this.#inbox.offNodeEvent(pattern);
      throw error;
    }
  }

  /** Removes this node's own subscription of `pattern` (see {@link onNodeEvent}) and its handlers; false when there was none. */
  async offNodeEvent(pattern: string): Promise<boolean> {
    assertPattern(pattern);
    this.#inbox.offNodeEvent(pattern);
    try {
      return await unsubscribe(this.#context.pool, this.namespace, this.#inbox.queue, pattern);
    } catch (error) {
      throw this.#context.toError(error, `unsubscribe node ${this.nodeId} from ${pattern}`);
    }
  }

  /** A node's own subscriptions are recorded under its queue's name, as group and queue. */
  async #recordNodeEvent(pattern: string): Promise<void> {
    try {
      await subscribe(this.#context.pool, this.namespace, this.#inbox.queue, pattern, this.#inbox.queue);
    } catch (error) {
      throw this.#context.toError(error, `subscribe node ${this.nodeId} to ${pattern}`);
    }
  }

  /** Removes the durable subscription of `pattern` for `group` (default: the display name). */
  unsubscribe(pattern: string, group: string = this.displayName): Promise<boolean> {
    return this.#subscriptions.remove(pattern, group);
  }

  /**
   * Creates or replaces the namespace's task `options.name`: it emits `eventType` with
   * `payload` on `cronExpression` (5 fields in UTC, run by pg_cron where installed; or 6
   * with seconds, run by the started nodes' fallback scheduler). Checked with croner
   * before anything is written. Resolves to the task and its next fire time.
   *
   * @example
   * await node.scheduleTask({ name: "cleanup", cronExpression: "0 3 * * *", eventType: "maintenance.cleanup", payload: { limit: 100 } });
   */
  scheduleTask(options: ScheduleTaskOptions): Promise<ScheduledTask> {
    return this.#services.schedules.schedule(options);
  }

  /** The namespace's scheduled tasks, by name, each with its newest recorded fire. */
  listTasks(): Promise<ScheduledTaskStatus[]> {
    return this.#services.schedules.list();
  }

  /** Pauses a task (its pg_cron job too); false when there is no such task. */
  pauseTask(name: string): Promise<boolean> {
    return this.#services.schedules.setPaused(name, true);
  }

  /** Resumes a paused task from now on (times passed while paused are not caught up); false when there is no such task. */
  resumeTask(name: string): Promise<boolean> {
    return this.#services.schedules.setPaused(name, false);
  }

  /** Removes a task, its pg_cron job and its fire records; false when there was no such task. */
  unscheduleTask(name: string): Promise<boolean> {
    return this.#services.schedules.unschedule(name);
  }

  /** Records the subscriptions and starts consuming. */
  async start(): Promise<void> {
    this.#assertNotStopped("start");
    if (this.#started) return;
    this.#started = true;
    await this.#inbox.open();
    for (const pattern of this.#inbox.nodeEventPatterns()) await this.#recordNodeEvent(pattern);
    await this.#subscriptions.start();
    await this.#announceResponder();
    if (!this.#stopped) this.#scheduler = this.#services.schedules.startScheduler(this.nodeId, this.logger);
    this.#scheduleMaintenance(5_000 + Math.random() * 25_000);
    this.logger.info("node started");
  }

  /** @internal Wakes the consumers of `queue` (or all, and the inbox): called on NOTIFY and after reconnects. */
  wake(queue?: string): void {
    this.#subscriptions.wake(queue);
    if (queue === undefined || queue === this.#inbox.queue) this.#inbox.wake();
  }

  /** Runs an event log maintenance pass after `delayMs`, then every `maintenanceIntervalMs` (see EventLogOptions). */
  #scheduleMaintenance(delayMs: number): void {
    const intervalMs = this.#services.eventLog.settings.maintenanceIntervalMs;
    if (intervalMs === 0 || this.#stopped) return;
    this.#maintenanceTimer = setTimeout(() => {
      this.#services.eventLog
        .maintain()
        .then((report) => {
          if (report.created.length > 0 || report.dropped.length > 0) this.logger.info({ report }, "event log maintained");
        })
        .catch((error: unknown) => this.logger.warn({ err: asError(error) }, "event log maintenance failed; retrying on the next pass"))
        .finally(() => this.#scheduleMaintenance(intervalMs));
    }, delayMs);
    this.#maintenanceTimer.unref();
  }

  /** The delivery path of a direct message: `queue` (default) or `direct`, which isolated namespaces refuse. */
  #assertDelivery(delivery: unknown): Delivery {
    assertDelivery(delivery);
    if (delivery !== "direct") return "queue";
    if (this.#services.replies.viaQueue) {
      throw new ValidationError(
        "delivery",
        "delivery 'direct' travels in NOTIFY payloads, which any role of the database can read; this system was connected with replies: 'queue' (an isolated namespace), so it sends through queues only. Use delivery: 'queue'.",
      );
    }
    return "direct";
  }

  #assertNotStopped(action: string): void {
    if (this.#stopped) throw new ValidationError("node", `Node ${this.nodeId} is stopped and cannot ${action}; register a new node.`);
  }

  /** The error of onEvent/onRequest without `group` when the display name, the default group, is not a valid group name. */
  #defaultGroupError(call: string): ValidationError {
    return new ValidationError(
      "group",
      `node.${call} was given no group option, so the group defaulted to the display name ${JSON.stringify(this.displayName)}, which is not a valid group name ` +
        `(1-40 lowercase letters, digits, '_' and '-', starting with a letter or digit). Pass { group } explicitly, or register the node with a display name that is a valid group name.`,
    );
  }

  /** Validates a request; resolves to the options it is sent with (`direct` becomes `queue` on a system that cannot hear its replies). */
  #validateRequest(type: string, payload: unknown, options: RequestOptions): RequestOptions {
    this.#assertNotStopped("send requests");
    assertKnownKeys("node.request options", options ?? null, REQUEST_OPTION_KEYS);
    if (options.durable !== undefined) {
      throw new ValidationError(
        "durable",
        "durable is retired: use delivery: 'queue' (the default: another instance runs the request if its responder dies) or delivery: 'direct' (at most once, what durable: false was).",
      );
    }
    const delivery = this.#assertDelivery(options.delivery);
    assertEventType(type, "request type");
    assertPayload(payload, this.#context.limits.maxPayloadBytes);
    assertHeaders(options.headers);
    assertMilliseconds("timeout", options.timeout, 1, 86_400_000);
    // A deaf system knows no direct responders (it hears no membership broadcasts) and
    // would hear no direct reply: its requests take the queue path, replies its queue.
    return delivery === "direct" && !this.#services.hearsNotifications ? { ...options, delivery: "queue" } : options;
  }

  #emitRow(event: BatchEvent): EmitRow {
    assertEventType(event?.type);
    assertPayload(event.payload, this.#context.limits.maxPayloadBytes);
    assertHeaders(event.headers);
    assertMilliseconds("delay", event.delay, 0, 7 * 86_400_000);
    assertIdempotencyKey(event.idempotencyKey);
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
    const dead = await this.#services.registry.heartbeat(this.nodeId, this.logger, this.#stopped);
    await this.#services.directory.withdraw(dead, this.nodeId);
  }

  /** Tells the namespace which requests this started node answers directly (none in an isolated namespace, or from a system that cannot hear). */
  async #announceResponder(): Promise<void> {
    const patterns = this.#subscriptions.requestPatterns();
    if (!this.#started || this.#stopped || patterns.length === 0 || this.#services.replies.viaQueue || !this.#services.hearsNotifications) return;
    this.#answersDirect = true;
    await this.#services.directory.announce(this.nodeId, patterns);
  }

  /** Answers a request that came on the direct path, and sends its reply on the direct path. */
  async #answerDirect(request: RequestEnvelope): Promise<void> {
    try {
      const replies = await this.#subscriptions.answerDirect(request);
      await this.#inbox.replyDirect(replies);
    } catch (error) {
      this.logger.warn({ err: asError(error), type: request.type, requester: request.replyTo }, "could not answer a direct request");
    }
  }

  /**
   * Stops gracefully: stops reading, lets in-flight handlers finish (their signals abort
   * after `graceMs`, default 10 s), gives back messages read but not started, stops
   * heartbeating and marks the node stopped in `core.nodes`. Idempotent.
   */
  async stop(options: { graceMs?: number } = {}): Promise<void> {
    assertKnownKeys("node.stop options", options ?? null, ["graceMs"]);
    assertMilliseconds("graceMs", options.graceMs, 0);
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#heartbeatTimer);
    clearTimeout(this.#maintenanceTimer);
    // Requesters stop choosing this node at once, and fail what they sent it directly.
    if (this.#answersDirect) await this.#services.directory.withdraw([this.nodeId], this.nodeId);
    this.#stopWatchingResponders();
    await this.#scheduler?.stop();
    const graceMs = options.graceMs ?? 10_000;
    await this.#subscriptions.stop(graceMs);
    await this.#inbox.close(graceMs);
    await this.#beating;
    try {
      await this.#services.registry.stop(this.nodeId);
      this.logger.info("node stopped");
    } finally {
      this.#onStopped();
    }
  }

  #beat(): void {
    if (this.#beating || this.#stopped) return;
    this.#beating = this.heartbeat()
      .catch((error: unknown) => this.logger.warn({ err: this.#context.toError(error, "heartbeat") }, "heartbeat failed; retrying on the next beat"))
      .finally(() => (this.#beating = undefined));
  }
}

function clientOf(options: Pick<EmitOptions, "client">): Queryable | undefined {
  return options.client as Queryable | undefined;
}
