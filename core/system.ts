/**
 * CoreSystem: one namespace on one PostgreSQL database. It owns the connection pool,
 * applies the migrations on connect, and registers the nodes of this process.
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type pg from "pg";
import type { Registry } from "prom-client";
import { createPool, toNexusError, type PoolOptions } from "./db/database.js";
import { assertKnownKeys, assertWholeNumber, optionKeys } from "./model/options.js";
import { NotificationListener } from "./db/listener.js";
import { migrate } from "./db/migrations.js";
import type { Queryable } from "./db/queryable.js";
import { Publisher } from "./delivery/publisher.js";
import { dropGroup } from "./delivery/queries/drop-group.js";
import type { EmitOutcome, EmitRow } from "./delivery/queries/emit.js";
import { DeadLetters } from "./dead-letters/dead-letters.js";
import { EventLog, resolveEventLogOptions, type EventLogMaintenanceReport, type EventLogOptions, type EventLogSettings } from "./event-log/event-log.js";
import type { ReplayOptions, ReplayResult } from "./event-log/replay.js";
import { Broadcasts, type BroadcastHandler } from "./membership/broadcasts.js";
import { HEARING_PROBE_TIMEOUT_MS, probeHearing } from "./membership/hearing.js";
import { NodeRegistry, type NodeTimings } from "./membership/registry.js";
import { ResponderDirectory } from "./requests/responders.js";
import { Metrics, validateMetricsOptions, type ConsumerObserver, type MetricsOptions, type MetricsSnapshot, type TopQueries } from "./metrics/metrics.js";
import type { NamespaceContext } from "./model/context.js";
import { ClosedError, ValidationError } from "./model/errors.js";
import { createDefaultLogger, redactConnectionString, type Logger } from "./model/logger.js";
import { assertEventType, assertGroup, assertNamespace, groupQueueName, isUuid } from "./model/names.js";
import { assertHeaders, assertIdempotencyKey, assertMilliseconds, assertPayload, DEFAULT_MAX_PAYLOAD_BYTES } from "./model/payload.js";
import { CoreNode, type NodeServices } from "./node.js";
import { createNamespaceRole, type NamespaceRole, type NamespaceRoleOptions } from "./roles/roles.js";
import { schedulerSettings, validateSchedulerOptions, type SchedulerOptions, type SchedulerSettings } from "./schedules/scheduler.js";
import { Schedules } from "./schedules/tasks.js";
import type { Delivery } from "./requests/delivery.js";

export type { BroadcastHandler } from "./membership/broadcasts.js";

/** Options of {@link CoreSystem.connect}. */
export interface ConnectOptions {
  /** PostgreSQL connection string, e.g. `postgres://user:pass@host:5432/core`. */
  connectionString: string;
  /** The namespace this system works in: {@link assertNamespace}'s grammar. */
  namespace: string;
  /** A pino logger; the package logs through a child of it. Default: its own, at `CORE_LOG_LEVEL`. */
  logger?: Logger;
  /** Connection pool settings. */
  pool?: PoolOptions;
  /** Milliseconds between a node's heartbeats (default 5,000). */
  heartbeatIntervalMs?: number;
  /** Milliseconds of silence after which a node is marked dead (default 30,000; at least twice the interval). */
  nodeTtlMs?: number;
  /** Apply the shipped migrations on connect (default true). With false, an outdated schema is an error. */
  migrate?: boolean;
  /** `application_name` of the connections, shown in `pg_stat_activity` (default `nexus-core`; the LISTEN connection adds `-listen`). */
  applicationName?: string;
  /**
   * A direct (not pooled) connection string for LISTEN, when `connectionString` points at
   * a transaction-mode pooler such as PgBouncer. Default: `connectionString`. Without it
   * behind such a pooler the system cannot hear notifications: see
   * {@link CoreSystem.hearsNotifications}.
   */
  listenConnectionString?: string;
  /** Largest serialised payload of an event, in bytes (default 1 MiB). */
  maxPayloadBytes?: number;
  /** Milliseconds during which a repeated idempotency key publishes nothing (default 24 h). */
  idempotencyWindowMs?: number;
  /**
   * How replies travel: `notify` (default) sends small replies as NOTIFY payloads, the
   * fast path; `queue` sends every reply through the requester's queue, for namespaces
   * isolated from other roles (any role of the database can LISTEN).
   */
  replies?: "notify" | "queue";
  /** Send responder stacks with error replies (default false: message, code and data only). */
  sendErrorStacks?: boolean;
  /** Milliseconds after a node stops or dies before its own queue is dropped (default 10 minutes). */
  nodeQueueGraceMs?: number;
  /** Event log partitions and retention, used by {@link CoreSystem.maintainEventLog}: `{ partitionInterval, premake, retentionMs, namespaceRetentionMs }`. */
  eventLog?: EventLogOptions;
  /**
   * Name the package's statements so PostgreSQL plans each once per connection (default
   * true), and pipeline the pool's connections (statements issued together leave
   * together: a consumer's `begin` with its read, its settlement with `commit`). Set false
   * behind a transaction-mode pooler that cannot route named prepared statements
   * (PgBouncer before 1.21, or without `max_prepared_statements`): both are then off.
   */
  preparedStatements?: boolean;
  /** Metrics: `{ registry }` puts them on your prom-client registry (default: a registry of this system's own). */
  metrics?: MetricsOptions;
  /** The fallback scheduler of this system's started nodes: `{ enabled, catchUpWindowMs, pollIntervalMs, takeoverIntervalMs, fireRetentionMs }`. */
  scheduler?: SchedulerOptions;
}

/** The keys {@link ConnectOptions} allows (adapters check the connection options they pass on against it). */
export const CONNECT_OPTION_KEYS = optionKeys<ConnectOptions>({
  connectionString: true, namespace: true, logger: true, pool: true, heartbeatIntervalMs: true, nodeTtlMs: true, migrate: true,
  applicationName: true, listenConnectionString: true, maxPayloadBytes: true, idempotencyWindowMs: true, replies: true,
  sendErrorStacks: true, nodeQueueGraceMs: true, eventLog: true, preparedStatements: true, metrics: true, scheduler: true,
});
const POOL_OPTION_KEYS = optionKeys<PoolOptions>({ max: true, idleTimeoutMs: true, connectionTimeoutMs: true });
const REGISTER_NODE_OPTION_KEYS = optionKeys<RegisterNodeOptions>({ displayName: true, metadata: true, nodeId: true });
const EMIT_STATEMENT_OPTION_KEYS = ["headers", "delay", "idempotencyKey", "sourceNode"] as const;
/** The largest `maxPayloadBytes`: PostgreSQL stores at most 1 GiB in one field. */
const MAX_PAYLOAD_BYTES_LIMIT = 1024 * 1024 * 1024;

/** Options of {@link CoreSystem.registerNode}. */
export interface RegisterNodeOptions {
  /** A human name for the node, e.g. the service name (1-200 characters). */
  displayName: string;
  /** Free-form JSON metadata stored with the node. */
  metadata?: Record<string, unknown>;
  /** A stable node id (a UUID); default `CORE_NODE_ID`, else a new random UUID. */
  nodeId?: string;
}

const DEFAULT_APPLICATION_NAME = "nexus-core";
/** Marks a CoreSystem across copies of the package (two bundles, two installs), where `instanceof` fails. */
const SYSTEM_BRAND = Symbol.for("@nexus-core/core.CoreSystem");

/**
 * The state of a system's connection to the database, as its LISTEN connection sees it:
 * `connected`; `reconnecting` while that connection is lost (the pool reconnects on its
 * own, queries may fail meanwhile); `disconnected` once closed.
 */
export type SystemStatus = "connected" | "reconnecting" | "disconnected";

/** The events of a {@link CoreSystem}. */
export interface CoreSystemEvents {
  /** The connection state changed; see {@link SystemStatus}. */
  status: [status: SystemStatus];
  /**
   * Something failed in the background with no caller to reject (a lost connection).
   * Emitted only while someone listens: the failure is logged either way.
   */
  error: [error: Error];
}

/**
 * A connection to one namespace of a Nexus Core database. Create it with
 * {@link CoreSystem.connect}. It composes the capabilities (delivery, requests,
 * membership, schedules, event log, dead letters, metrics, roles), each wired with the
 * same namespace context, and emits `status` and `error` (see {@link CoreSystemEvents}).
 */
export class CoreSystem extends EventEmitter<CoreSystemEvents> {
  /** The namespace this system works in. */
  readonly namespace: string;
  /** The system's logger (a child of the one given, bound to the namespace). */
  readonly logger: Logger;
  /** The connection pool. Queries on it see schemas `core` and `pgmq`. */
  readonly pool: pg.Pool;
  readonly #connectionString: string;
  /** Largest serialised payload of an event, in bytes. */
  readonly maxPayloadBytes: number;
  /** True when every reply goes through queues (option `replies: 'queue'`). */
  readonly repliesViaQueue: boolean;
  /** True when error replies carry the responder's stack. */
  readonly sendErrorStacks: boolean;
  /** @internal The system's LISTEN connection, shared by its nodes. */
  readonly listener: NotificationListener;
  /** The dead letters of the namespace's groups: list, get, retry, purge. */
  readonly deadLetters: DeadLetters;
  /** The namespace's scheduled tasks: schedule, list, pause, resume, unschedule (also on every node). */
  readonly schedules: Schedules;
  readonly #context: NamespaceContext;
  readonly #nodes = new Set<CoreNode>();
  readonly #publisher: Publisher;
  readonly #broadcasts: Broadcasts;
  readonly #registry: NodeRegistry;
  readonly #directory: ResponderDirectory;
  readonly #eventLog: EventLog;
  readonly #metrics: Metrics;
  readonly #schedulerSettings: SchedulerSettings;
  #status: SystemStatus = "connected";
  #closed = false;
  #closing: Promise<void> | undefined;
  #hearsNotifications = true;
  /** @internal See {@link isCoreSystem}. */
  readonly [SYSTEM_BRAND] = true;

  private constructor(options: ConnectOptions, pool: pg.Pool, logger: Logger) {
    super();
    this.namespace = options.namespace;
    this.pool = pool;
    this.logger = logger;
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.repliesViaQueue = options.replies === "queue";
    this.sendErrorStacks = options.sendErrorStacks === true;
    this.#connectionString = options.connectionString;
    const idempotencyWindowMs = options.idempotencyWindowMs ?? 86_400_000;
    this.#context = {
      namespace: this.namespace,
      pool,
      logger,
      limits: { maxPayloadBytes: this.maxPayloadBytes, idempotencyWindowMs },
      toError: (error, doing) => this.toError(error, doing),
      assertOpen: () => this.#assertOpen(),
    };
    const timings = timingsOf(options);
    const applicationName = options.applicationName ?? DEFAULT_APPLICATION_NAME;
    const directConnectionString = options.listenConnectionString ?? options.connectionString;
    this.#publisher = new Publisher(this.#context);
    this.#broadcasts = new Broadcasts(this.#context);
    this.#registry = new NodeRegistry(this.#context, timings);
    this.#directory = new ResponderDirectory(this.#broadcasts, logger);
    this.#eventLog = new EventLog(this.#context, resolveEventLogOptions(options.eventLog));
    this.#schedulerSettings = schedulerSettings(options.scheduler, directConnectionString, applicationName);
    this.schedules = new Schedules(this.#context, this.#schedulerSettings);
    this.deadLetters = new DeadLetters(this.#context);
    this.#metrics = new Metrics(this.#context, { nodeTtlMs: timings.nodeTtlMs, registry: options.metrics?.registry });
    this.listener = new NotificationListener(directConnectionString, `${applicationName}-listen`, () => this.#nodes.forEach((node) => node.wake()), logger);
    this.listener.connection.on("lost", (error) => this.#connectionLost(error));
    this.listener.connection.on("connected", () => this.#setStatus("connected"));
  }

  /**
   * The path an adapter that defaults to `requested` actually takes: `queue` in place of
   * `direct` when this system sends replies through queues (an isolated namespace, where
   * NOTIFY payloads must not carry data), saying so once in the log as `who`, or when it
   * cannot hear notifications ({@link hearsNotifications}; connect warned already).
   */
  deliveryFor(requested: Delivery, who: string): Delivery {
    if (requested !== "direct") return requested;
    if (!this.#hearsNotifications) {
      // Warned once already, at connect.
      this.logger.info({ adapter: who }, "sending through queues: this system cannot hear notifications");
      return "queue";
    }
    if (!this.repliesViaQueue) return requested;
    this.logger.warn({ adapter: who }, "sending through queues: this system sends replies through queues (an isolated namespace), and the direct path would put messages in NOTIFY payloads");
    return "queue";
  }

  /**
   * Whether this system's LISTEN connection hears what is NOTIFYed through its pool,
   * probed once at connect: it NOTIFYs a token to itself and waits up to 2 s for it.
   * False behind a transaction-mode pooler (PgBouncer) reached without
   * `listenConnectionString`, where LISTEN lands on a pooled server connection and
   * notifications never come back (connect then logs one warning). A deaf system still
   * works, more slowly: its nodes are registered as deaf, so senders put replies and
   * direct messages into their queues; those queues and its request groups are polled
   * often (100 ms and 250 ms), event groups on their `pollInterval`; its requests take
   * the queue path even when asked for `direct`, and its nodes answer requests through
   * their groups' queues only. It hears no broadcasts (`onBroadcast`).
   */
  get hearsNotifications(): boolean {
    return this.#hearsNotifications;
  }

  /** The connection state now; changes are emitted as `status` events. */
  get status(): SystemStatus {
    return this.#status;
  }

  /** @internal The event log settings in force (nodes run maintenance on its interval). */
  get eventLogSettings(): EventLogSettings {
    return this.#eventLog.settings;
  }

  /** @internal Settings of the started nodes' fallback schedulers. */
  get schedulerSettings(): SchedulerSettings {
    return this.#schedulerSettings;
  }

  /**
   * Connects to the database, applies the shipped migrations (unless `migrate: false`)
   * and returns a system bound to `namespace`.
   *
   * @example
   * const system = await CoreSystem.connect({ connectionString: process.env.CORE_DATABASE_URL!, namespace: "demo" });
   */
  static async connect(options: ConnectOptions): Promise<CoreSystem> {
    validateConnectOptions(options);
    const logger = (options.logger ?? createDefaultLogger()).child({ namespace: options.namespace });
    const pool = createPool(
      options.connectionString,
      options.pool ?? {},
      logger,
      options.applicationName ?? DEFAULT_APPLICATION_NAME,
      options.preparedStatements !== false,
    );
    try {
      if (options.migrate !== false) {
        const report = await migrate(pool, { logger });
        logger.debug({ version: report.version, applied: report.applied }, "schema ready");
      }
    } catch (error) {
      await pool.end().catch(() => {});
      throw toNexusError(error, `prepare the schema`, options.connectionString);
    }
    const system = new CoreSystem(options, pool, logger);
    try {
      await system.listener.listen(`nexus:${system.namespace}`, (payload) => system.#onNamespaceNotification(payload));
      await system.listener.start();
    } catch (error) {
      await system.close();
      throw toNexusError(error, "listen for notifications", options.listenConnectionString ?? options.connectionString);
    }
    try {
      await system.#probeHearing(options.listenConnectionString !== undefined);
    } catch (error) {
      await system.close();
      throw toNexusError(error, "check that notifications arrive", options.connectionString);
    }
    logger.info({ database: redactConnectionString(options.connectionString) }, "connected");
    return system;
  }

  /** Sends itself a NOTIFY through the pool; a system that does not hear it works through queues from now on (see {@link hearsNotifications}). */
  async #probeHearing(ownListenConnection: boolean): Promise<void> {
    const probe = await probeHearing(this.pool, this.listener);
    this.#hearsNotifications = probe.heard;
    if (probe.heard) {
      this.logger.debug({ elapsedMs: Math.round(probe.elapsedMs * 100) / 100 }, "heard its own notification");
      return;
    }
    const cause = ownListenConnection
      ? "listenConnectionString may point at a transaction-mode pooler too, or the server drops notifications"
      : "connectionString most likely goes through a transaction-mode pooler (such as PgBouncer), where LISTEN lands on a pooled server connection";
    this.logger.warn(
      { waitedMs: HEARING_PROBE_TIMEOUT_MS },
      `this system did not hear its own NOTIFY within ${HEARING_PROBE_TIMEOUT_MS} ms: ${cause}. ` +
        "It works on through queues, more slowly: its nodes are registered as unable to hear, so senders use their queues, which they poll; " +
        "its requests go through queues (delivery 'direct' included). Fix: set listenConnectionString to a direct (unpooled) connection to PostgreSQL.",
    );
  }

  /**
   * The statement that emits one event, for code on another driver or ORM: run it inside
   * your transaction and the event is published only if that transaction commits.
   *
   * @example
   * const { text, values } = system.emitStatement("order.created", order);
   * await prisma.$executeRawUnsafe(text, ...values); // inside prisma.$transaction
   */
  emitStatement(type: string, payload: unknown, options: { headers?: Record<string, string>; delay?: number; idempotencyKey?: string; sourceNode?: string } = {}): { text: string; values: unknown[] } {
    assertKnownKeys("system.emitStatement options", options, EMIT_STATEMENT_OPTION_KEYS);
    assertEventType(type);
    assertPayload(payload, this.maxPayloadBytes);
    assertHeaders(options.headers);
    assertMilliseconds("delay", options.delay, 0, 7 * 86_400_000);
    assertIdempotencyKey(options.idempotencyKey);
    const row: EmitRow = {
      type,
      payload,
      ...(options.headers ? { headers: options.headers } : {}),
      ...(options.delay ? { delaySeconds: Math.ceil(options.delay / 1000) } : {}),
      ...(options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {}),
    };
    return this.#publisher.statement([row], options.sourceNode ?? null);
  }

  /**
   * Creates a PostgreSQL login role confined to `namespace` (by default
   * `nexus_ns_<namespace>`): it can emit and consume there and nothing else (row-level
   * security on the shared tables, grants on the namespace's queues only). Connect its
   * nodes with `replies: 'queue'`, since NOTIFY payloads are readable by any role. Needs
   * CREATEROLE: without it, a `PermissionError` says so.
   *
   * @example
   * const { roleName } = await system.createNamespaceRole("tenant-a", { password: secret });
   */
  async createNamespaceRole(namespace: string, options: NamespaceRoleOptions = {}): Promise<NamespaceRole> {
    this.#assertOpen();
    try {
      return await createNamespaceRole(this.#context, namespace, options);
    } catch (error) {
      throw this.toError(error, `create the role of namespace ${String(namespace)}`);
    }
  }

  /**
   * Removes a consumer group: its subscriptions, its queue and its dead-letter queue,
   * with what they hold. Stopping consumers never does this; only this call does.
   * Returns the number of subscriptions removed.
   */
  async dropGroup(group: string): Promise<number> {
    this.#assertOpen();
    assertGroup(group);
    try {
      return await dropGroup(this.pool, this.namespace, group, groupQueueName(this.namespace, group));
    } catch (error) {
      throw this.toError(error, `drop group ${group}`);
    }
  }

  /**
   * Sends `payload` to every live node of the namespace listening on `channel` (see
   * {@link onBroadcast}). Not durable: a node that is down misses it. Payloads too large
   * for NOTIFY go through a table transparently.
   */
  broadcast(channel: string, payload: unknown, options: { sourceNode?: string } = {}): Promise<void> {
    assertKnownKeys("system.broadcast options", options, ["sourceNode"]);
    return this.#broadcasts.send(channel, payload, options.sourceNode ?? null);
  }

  /** Calls `handler` for every broadcast on `channel` in this namespace; returns a function that stops it. */
  onBroadcast(channel: string, handler: BroadcastHandler): () => void {
    return this.#broadcasts.on(channel, handler);
  }

  /** The namespace channel carries queue names (wake-ups) and broadcasts (JSON objects). */
  #onNamespaceNotification(payload: string): void {
    if (payload.startsWith("{")) return this.#broadcasts.receive(payload);
    this.#nodes.forEach((node) => node.wake(payload));
  }

  /** @internal The metrics observer of a consumer of `group` (used by nodes' consumers). */
  consumerObserver(group: string, kind: "event" | "request"): ConsumerObserver {
    return this.#metrics.observer({ namespace: this.namespace, group, kind });
  }

  /** @internal Publishes validated rows (used by nodes). */
  publish(rows: EmitRow[], sourceNode: string | null, client?: Queryable): Promise<EmitOutcome[]> {
    this.#assertOpen();
    return this.#publisher.publish(rows, sourceNode, client).then((outcomes) => this.#metrics.countEmitted(outcomes));
  }

  /** Registers a node of this process in `core.nodes`; it heartbeats until stopped. */
  async registerNode(options: RegisterNodeOptions): Promise<CoreNode> {
    this.#assertOpen();
    assertKnownKeys("system.registerNode options", options ?? null, REGISTER_NODE_OPTION_KEYS);
    const nodeId = options.nodeId ?? process.env.CORE_NODE_ID ?? randomUUID();
    validateNodeOptions(options, nodeId);
    const metadata = options.metadata ?? {};
    await this.#registry.register(nodeId, options.displayName, metadata, this.#hearsNotifications);
    const node = new CoreNode({
      services: this.#nodeServices(),
      nodeId,
      displayName: options.displayName,
      metadata,
      onStopped: () => this.#nodes.delete(node),
    });
    this.#nodes.add(node);
    node.logger.info({ displayName: options.displayName }, "node registered");
    return node;
  }

  #nodeServices(): NodeServices {
    return {
      context: this.#context,
      listener: this.listener,
      publish: (rows, sourceNode, client) => this.publish(rows, sourceNode, client),
      observe: (group, kind) => this.consumerObserver(group, kind),
      replies: { viaQueue: this.repliesViaQueue, sendStacks: this.sendErrorStacks },
      hearsNotifications: this.#hearsNotifications,
      registry: this.#registry,
      directory: this.#directory,
      eventLog: this.#eventLog,
      schedules: this.schedules,
    };
  }

  /** The metrics in Prometheus text format (serve it with `metricsRegistry.contentType`); see core/metrics.ts. */
  async metricsText(): Promise<string> {
    this.#assertOpen();
    return this.#metrics.text();
  }

  /** The same figures as {@link metricsText}, for this namespace, as a typed object. */
  async metrics(): Promise<MetricsSnapshot> {
    this.#assertOpen();
    return this.#metrics.snapshot();
  }

  /** The prom-client registry holding the metrics (the one given in `metrics.registry`, else the system's own). */
  get metricsRegistry(): Registry {
    return this.#metrics.registry;
  }

  /** The `limit` (1-1000) costliest statements from pg_stat_statements, or `{ available: false, reason }` without it. */
  async topQueries(limit = 10): Promise<TopQueries> {
    this.#assertOpen();
    return this.#metrics.topQueries(limit);
  }

  /**
   * Runs one event log maintenance pass: partitions ahead of time (pg_partman's, or the
   * project's without it), expired partitions dropped, and this namespace's
   * `namespaceRetentionMs`. Call it periodically from one node (the scheduler's leader);
   * concurrent calls are safe: a pass that finds another running returns `ran: false`.
   */
  async maintainEventLog(): Promise<EventLogMaintenanceReport> {
    return this.#eventLog.maintain();
  }

  /**
   * Re-enqueues the logged events of `[from, to)` in this namespace to one group's queue,
   * in emitted order and in batches, each copy with the header `nexus-replay: <replayId>`;
   * no other group gets anything. `dryRun` only counts. Returns `{ replayId, count }`.
   *
   * @example
   * await system.replay({ group: "billing", types: ["order.*"], from: new Date(Date.now() - 3_600_000), to: new Date() });
   */
  async replay(options: ReplayOptions): Promise<ReplayResult> {
    return this.#eventLog.replay(options);
  }

  /** Wraps a driver error in a typed error naming what failed (for the package's own modules). */
  toError(error: unknown, doing: string): Error {
    return toNexusError(error, doing, this.#connectionString);
  }

  /**
   * Stops every node of this system (marking them stopped; a node's graceful stop still
   * tells the others, so their direct requests to it fail at once) and ends the pool.
   * Idempotent: a second call waits for the first.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await Promise.allSettled([...this.#nodes].map((node) => node.stop()));
    this.#closed = true;
    this.#metrics.close();
    await this.listener.close();
    await this.pool.end();
    this.#setStatus("disconnected");
    this.logger.info("closed");
  }

  #connectionLost(error: Error): void {
    this.#setStatus("reconnecting");
    if (this.listenerCount("error") > 0) this.emit("error", this.toError(error, "keep the LISTEN connection"));
  }

  #setStatus(status: SystemStatus): void {
    if (this.#status === status) return;
    this.#status = status;
    this.emit("status", status);
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError(`CoreSystem for namespace ${this.namespace}`);
  }
}

function timingsOf(options: ConnectOptions): NodeTimings {
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 5_000;
  return {
    heartbeatIntervalMs,
    nodeTtlMs: options.nodeTtlMs ?? Math.max(30_000, heartbeatIntervalMs * 3),
    nodeQueueGraceMs: options.nodeQueueGraceMs ?? 600_000,
  };
}

function validateConnectOptions(options: ConnectOptions): void {
  if (options === null || typeof options !== "object") {
    throw new ValidationError("options", "CoreSystem.connect needs an options object: { connectionString, namespace }.");
  }
  if (typeof options.connectionString !== "string" || options.connectionString.length === 0) {
    throw new ValidationError(
      "connectionString",
      "connectionString must be a PostgreSQL connection string such as postgres://user:password@host:5432/core.",
    );
  }
  assertKnownKeys("CoreSystem.connect options", options, CONNECT_OPTION_KEYS);
  assertNamespace(options.namespace);
  assertKnownKeys("CoreSystem.connect options.pool", options.pool, POOL_OPTION_KEYS, "pool");
  assertWholeNumber("pool.max", options.pool?.max, { min: 1, max: 10_000, unit: "connections" });
  assertWholeNumber("pool.idleTimeoutMs", options.pool?.idleTimeoutMs, { min: 0, unit: "milliseconds" });
  assertWholeNumber("pool.connectionTimeoutMs", options.pool?.connectionTimeoutMs, { min: 0, unit: "milliseconds" });
  assertPositiveMs("heartbeatIntervalMs", options.heartbeatIntervalMs);
  assertPositiveMs("nodeTtlMs", options.nodeTtlMs);
  assertWholeNumber("maxPayloadBytes", options.maxPayloadBytes, { min: 1, max: MAX_PAYLOAD_BYTES_LIMIT, unit: "bytes" });
  assertPositiveMs("idempotencyWindowMs", options.idempotencyWindowMs);
  assertPositiveMs("nodeQueueGraceMs", options.nodeQueueGraceMs);
  resolveEventLogOptions(options.eventLog);
  validateMetricsOptions(options.metrics);
  validateSchedulerOptions(options.scheduler);
  if (options.replies !== undefined && options.replies !== "notify" && options.replies !== "queue") {
    throw new ValidationError("replies", `replies must be 'notify' or 'queue'; got ${JSON.stringify(options.replies)}.`);
  }
  if (options.heartbeatIntervalMs !== undefined && options.nodeTtlMs !== undefined && options.nodeTtlMs < 2 * options.heartbeatIntervalMs) {
    throw new ValidationError("nodeTtlMs", "nodeTtlMs must be at least twice heartbeatIntervalMs, or live nodes would be marked dead.");
  }
}

function assertPositiveMs(argument: string, value: number | undefined): void {
  assertWholeNumber(argument, value, { min: 1, unit: "milliseconds" });
}

function validateNodeOptions(options: RegisterNodeOptions, nodeId: string): void {
  const { displayName, metadata } = options ?? {};
  if (typeof displayName !== "string" || displayName.length < 1 || displayName.length > 200) {
    throw new ValidationError("displayName", "displayName must be a string of 1-200 characters.");
  }
  if (!isUuid(nodeId)) {
    throw new ValidationError("nodeId", `nodeId ${JSON.stringify(nodeId)} is not a UUID (CORE_NODE_ID must be one too).`);
  }
  if (metadata !== undefined && (metadata === null || typeof metadata !== "object" || Array.isArray(metadata))) {
    throw new ValidationError("metadata", "metadata must be a plain JSON object.");
  }
}

/** True when `value` is a {@link CoreSystem}, from this copy of the package or another. */
export function isCoreSystem(value: unknown): value is CoreSystem {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[SYSTEM_BRAND] === true;
}

/** A system an adapter works on, and whether the adapter opened it (and so closes it). */
export interface AdapterSystem {
  readonly system: CoreSystem;
  /** True when the adapter connected it: the adapter closes it; a given system is left to its owner. */
  readonly owned: boolean;
}

/**
 * What every adapter accepts as its connection: the core's connection options (it then
 * connects, and owns the system) or an open `CoreSystem` (used as is, never closed by the
 * adapter).
 */
export async function openSystem(source: ConnectOptions | CoreSystem): Promise<AdapterSystem> {
  if (isCoreSystem(source)) return { system: source, owned: false };
  return { system: await CoreSystem.connect(source), owned: true };
}
