/**
 * `PgServer`: a Nest custom transport strategy on the core. `@EventPattern` handlers are
 * core event handlers of the app's group; `@MessagePattern` handlers answer core requests.
 * Delivery (acknowledgement, retries, dead letters, request routing) is the core's: this
 * class only translates packets, contexts and Observables.
 */
import { EventEmitter } from "node:events";
import { Server, type CustomTransportStrategy, type MessageHandler, type ReadPacket } from "@nestjs/microservices";
import { catchError, map, throwError, type Observable } from "rxjs";
import type { CoreEvent, CoreNode, CoreRequest, CoreSystem, EventHeaders, HandlerContext, RespondOptions, SubscribeOptions } from "../../core/index.js";
import { assertGroup, CONNECT_OPTION_KEYS, InvalidStateError, NoHandlerError, RESPOND_OPTION_KEYS, SUBSCRIBE_OPTION_KEYS, assertKnownKeys } from "../../core/index.js";
import { openConnection, connectionOf, type PgConnectionOptions } from "./connection.js";
import { PgContext, type PgContextArgs } from "./context.js";
import { NestEventHandlerError, NestRpcError, PgNestOptionsError } from "./errors.js";
import { coreTypeOf, NEST_PACKET_HEADER, replyOf } from "./mapping.js";
import { watchStatus } from "./status.js";

/** Options of {@link PgServer}: the core's connection options (or `system`) plus the transport's own. */
export interface PgServerOptions extends PgConnectionOptions {
  /** The app's consumer and responder group (required, as the RMQ transport requires `queue`): instances of one app share its events and requests. */
  group: string;
  /** The node's display name (default: `group`). */
  nodeName?: string;
  /**
   * True (default): an event is acknowledged when its handler's stream completes. False,
   * as in the RMQ transport: the handler acknowledges or rejects through
   * `PgContext.ack()` / `nack()`.
   */
  noAck?: boolean;
  /** Options of the app's event subscriptions (concurrency, maxAttempts, backoff, timeout, ...). */
  events?: Omit<SubscribeOptions, "group">;
  /** Options of the app's request handling (concurrency, prefetch, timeout, ...). */
  requests?: Omit<RespondOptions, "group">;
  /** Nest's consumer serializer, applied to each reply value (default: none, the value is the reply). */
  serializer?: { serialize(value: unknown, options?: Record<string, unknown>): unknown };
  /** Nest's consumer deserializer, applied to each incoming packet `{ pattern, data, id? }`. */
  deserializer?: { deserialize(value: unknown, options?: Record<string, unknown>): unknown };
}

const OWN_OPTIONS = ["group", "nodeName", "noAck", "events", "requests", "serializer", "deserializer"] as const;

/** Events {@link PgServer.on} accepts. */
export interface PgServerEvents {
  [event: string]: (...args: never[]) => void;
  /** A handler or connection error the server logged. */
  error: (error: unknown) => void;
}

/**
 * The Postgres transport strategy.
 *
 * @example
 * const app = await NestFactory.createMicroservice(AppModule, {
 *   strategy: new PgServer({ connectionString, namespace: "shop", group: "billing" }),
 * });
 */
// Status is typed `string` (the values are {@link PgStatus}) so that PgServer is assignable to `Server`, as `strategy` needs.
export class PgServer extends Server<PgServerEvents, string> implements CustomTransportStrategy {
  /** Nest 12: event handler errors reach the transport (which retries them) rather than being only logged. */
  readonly propagatesEventHandlerErrors = true;
  readonly #options: PgServerOptions;
  readonly #events = new EventEmitter();
  #system: CoreSystem | undefined;
  #ownsSystem = false;
  #node: CoreNode | undefined;
  #stopWatching: (() => void) | undefined;

  constructor(options: PgServerOptions) {
    super();
    if (options === null || typeof options !== "object") {
      throw new PgNestOptionsError("options", "PgServer needs options: { connectionString, namespace, group } or { system, group }.");
    }
    assertKnownKeys("PgServer options", options, [...CONNECT_OPTION_KEYS, "system", ...OWN_OPTIONS]);
    assertKnownKeys("PgServer options.events", options.events, SUBSCRIBE_OPTION_KEYS.filter((key) => key !== "group"), "events");
    assertKnownKeys("PgServer options.requests", options.requests, RESPOND_OPTION_KEYS.filter((key) => key !== "group"), "requests");
    assertGroup(options.group);
    this.#options = options;
    this.initializeSerializer(options);
    this.initializeDeserializer(options);
  }

  /** Connects, subscribes every handler's pattern in the app's group and starts consuming. */
  async listen(callback: (error?: unknown) => void): Promise<void> {
    try {
      await this.#start();
    } catch (error) {
      callback(error);
      return;
    }
    callback();
  }

  /** Stops consuming (letting running handlers finish) and closes the connection if the server opened it. */
  async close(): Promise<void> {
    this.#stopWatching?.();
    this.#stopWatching = undefined;
    const node = this.#node;
    const system = this.#system;
    this.#node = undefined;
    this.#system = undefined;
    await node?.stop();
    if (system && this.#ownsSystem) await system.close();
    this._status$.next("disconnected");
  }

  /** Listens to the server's `error` event. */
  on<EventKey extends keyof PgServerEvents = keyof PgServerEvents, EventCallback extends PgServerEvents[EventKey] = PgServerEvents[EventKey]>(
    event: EventKey,
    callback: EventCallback,
  ): void {
    this.#events.on(event as string, callback as unknown as (...args: unknown[]) => void);
  }

  /** The core node the server consumes with (after `listen`). */
  unwrap<T = CoreNode>(): T {
    if (!this.#node) throw new InvalidStateError('Not initialized. Please call the "listen"/"startAllMicroservices" method before accessing the server.');
    return this.#node as T;
  }

  async #start(): Promise<void> {
    const { system, owned } = await openConnection(connectionOf(this.#options, OWN_OPTIONS), "PgServer");
    this.#system = system;
    this.#ownsSystem = owned;
    const { group } = this.#options;
    const node = await system.registerNode({ displayName: this.#options.nodeName ?? group });
    this.#node = node;
    const types = new Map<string, string>();
    for (const [route, handler] of this.getHandlers()) {
      const type = coreTypeOf(route);
      const kind = handler.isEventHandler ? "event" : "request";
      const other = types.get(`${kind}:${type}`);
      if (other !== undefined) {
        throw new PgNestOptionsError("pattern", `Nest patterns ${other} and ${route} both map to the core type ${type}; rename one of them.`);
      }
      types.set(`${kind}:${type}`, route);
      if (handler.isEventHandler) {
        await node.onEvent(type, (event, context) => this.#handleEvent(route, type, event, context), { ...this.#options.events, group });
      } else {
        await node.onRequest(type, (request, context) => this.#handleRequest(route, type, request, context), { ...this.#options.requests, group });
      }
    }
    await node.start();
    this.#stopWatching = watchStatus(system, (status) => this._status$.next(status));
  }

  async #handleEvent(route: string, type: string, event: CoreEvent, context: HandlerContext): Promise<void> {
    const handler = this.#handler(route);
    const packet = await this.#incoming(route, event.payload, event.headers, event.id);
    let settled: Promise<void> | undefined;
    let settle: PgContextArgs["settle"];
    if (this.#options.noAck === false) {
      settled = new Promise<void>((resolve, reject) => {
        settle = (outcome) => (outcome.ack ? resolve() : reject(new NestEventHandlerError(route, outcome.error ?? "rejected by nack()")));
        context.signal.addEventListener("abort", () => reject(new NestEventHandlerError(route, context.signal.reason)), { once: true });
      });
      // A rejection before the stream completes is awaited below; never leave it unhandled.
      settled.catch(() => {});
    }
    const ctx = new PgContext([{ pattern: route, type, messageId: event.messageId, id: event.id, attempt: context.attempt, headers: event.headers, signal: context.signal, client: context.client, settle }]);
    try {
      await completion(this.transformToObservable(await handler(packet.data, ctx)), context.signal);
    } catch (error) {
      throw error instanceof NestEventHandlerError ? error : new NestEventHandlerError(route, error);
    }
    await settled;
  }

  async #handleRequest(route: string, type: string, request: CoreRequest, context: HandlerContext): Promise<unknown> {
    const handler = this.#handler(route);
    const packet = await this.#incoming(route, request.payload, request.headers, request.id);
    const ctx = new PgContext([{ pattern: route, type, messageId: request.id, id: request.id, attempt: context.attempt, headers: request.headers, signal: context.signal, client: context.client, settle: undefined }]);
    let source: Observable<unknown>;
    try {
      source = this.transformToObservable(await handler(packet.data, ctx));
    } catch (error) {
      throw new NestRpcError(error);
    }
    const custom = this.#options.serializer;
    const replies = source.pipe(
      map((response) => (custom ? this.serializer.serialize({ id: request.id, response, isDisposed: false }) : response)),
      catchError((error: unknown) => throwError(() => new NestRpcError(error))),
    );
    const reply = await replyOf(replies, context.signal);
    // A handler returning nothing answers with no value, as on Nest's own transports (the caller's Observable completes empty).
    if (reply.kind === "value") return reply.value === undefined ? emptyStream() : reply.value;
    return reply.values;
  }

  #handler(route: string): MessageHandler {
    const handler = this.getHandlers().get(route);
    // Subscriptions are made from the handlers, so a miss means the app changed them under a running server.
    if (!handler) throw new NoHandlerError(route, "this Nest server", "its handler was removed under the running server; the message is left for another instance");
    return handler;
  }

  /** The Nest packet of a core message: the payload is the data, unless a custom serializer sent the whole packet. */
  async #incoming(route: string, payload: unknown, headers: EventHeaders, id: string): Promise<ReadPacket> {
    const raw = headers[NEST_PACKET_HEADER] === "1" ? payload : { pattern: route, data: payload, id };
    return (await this.deserializer.deserialize(raw, { channel: route })) as ReadPacket;
  }
}

/** Resolves when `source` completes, rejects when it errors or `signal` aborts. */
function completion(source: Observable<unknown>, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const subscription = source.subscribe({ error: reject, complete: resolve });
    signal.addEventListener("abort", () => {
      subscription.unsubscribe();
      reject(signal.reason);
    }, { once: true });
  });
}

async function* emptyStream(): AsyncGenerator<never, void, undefined> {}
