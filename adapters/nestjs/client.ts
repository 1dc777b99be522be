/**
 * `PgClient`: a Nest `ClientProxy` on the core. `send` is a core request (a stream of reply
 * values), on the direct path by default (what Nest's Redis and NATS transports promise),
 * `emit` a core event resolved once committed.
 */
import { EventEmitter } from "node:events";
import { ClientProxy, type ReadPacket, type WritePacket } from "@nestjs/microservices";
import { CONNECT_OPTION_KEYS, assertDelivery, ErrorCode, InvalidStateError, NoResponderError, RemoteError, assertKnownKeys, type CoreNode, type CoreSystem, type Delivery } from "../../core/index.js";
import { connectionOf, openConnection, type PgConnectionOptions } from "./connection.js";
import { NestErrorCode, PgNestOptionsError } from "./errors.js";
import { coreTypeOf, NEST_PACKET_HEADER } from "./mapping.js";
import { PgRecord, type PgRecordOptions } from "./record-builder.js";
import { watchStatus } from "./status.js";

/** Nest's own "no message handler" error text, which its Redis and NATS transports send for an unknown pattern. */
export const NO_MESSAGE_HANDLER = "There is no matching message handler defined in the remote service.";

/** Default milliseconds `send` waits for a reply (for a stream: for each next value). */
export const DEFAULT_SEND_TIMEOUT_MS = 30_000;

/** Options of {@link PgClient}: the core's connection options (or `system`) plus the client's own. */
export interface PgClientOptions extends PgConnectionOptions {
  /** The client node's display name (default `nest-client`). */
  nodeName?: string;
  /**
   * Milliseconds `send` waits for a reply, and for each next value of a stream, before its
   * Observable errors with the core's `RequestTimeoutError` (default 30,000).
   */
  timeout?: number;
  /**
   * How `send` travels: `direct` (default), a NOTIFY to one live instance of the server,
   * at most once, as on Nest's Redis and NATS transports; or `queue`, through the
   * server group's request queue, run again by another instance if one dies mid-request.
   * A system connected with `replies: 'queue'` (an isolated namespace) uses `queue`,
   * saying so once in the log.
   */
  delivery?: Delivery;
  /** Nest's producer serializer: when given, the whole serialised packet is the core payload (with header `nest-packet: 1`). */
  serializer?: { serialize(value: unknown, options?: Record<string, unknown>): unknown };
  /** Nest's producer deserializer, applied to each reply value (pair it with the server's serializer). */
  deserializer?: { deserialize(value: unknown, options?: Record<string, unknown>): unknown };
}

const OWN_OPTIONS = ["nodeName", "timeout", "delivery", "serializer", "deserializer"] as const;

/** Events {@link PgClient.on} accepts. */
export interface PgClientEvents {
  [event: string]: (...args: never[]) => void;
  /** A connection error. */
  error: (error: unknown) => void;
}

/**
 * The Postgres client proxy.
 *
 * @example
 * ClientsModule.register([{ name: "MATH", customClass: PgClient, options: { connectionString, namespace: "shop" } }]);
 */
// Status is typed `string` (the values are {@link PgStatus}) so that PgClient is assignable to `ClientProxy`, as `customClass` needs.
export class PgClient extends ClientProxy<PgClientEvents, string> {
  readonly #options: PgClientOptions;
  readonly #events = new EventEmitter();
  #connecting: Promise<{ node: CoreNode; system: CoreSystem; owned: boolean; stopWatching: () => void }> | undefined;
  #node: CoreNode | undefined;
  #delivery: Delivery = "direct";

  constructor(options: PgClientOptions) {
    super();
    if (options === null || typeof options !== "object") {
      throw new PgNestOptionsError("options", "PgClient needs options: { connectionString, namespace } or { system }.");
    }
    assertKnownKeys("PgClient options", options, [...CONNECT_OPTION_KEYS, "system", ...OWN_OPTIONS]);
    if (options.timeout !== undefined && !(Number.isInteger(options.timeout) && options.timeout > 0)) {
      throw new PgNestOptionsError("timeout", `timeout must be a positive whole number of milliseconds; got ${String(options.timeout)}.`);
    }
    assertDelivery(options.delivery);
    this.#options = options;
    this.initializeSerializer(options);
    this.initializeDeserializer(options);
  }

  /** Connects once (later calls share the first); safe before the server is up. Resolves to the core node. */
  async connect(): Promise<CoreNode> {
    this.#connecting ??= this.#open().catch((error: unknown) => {
      this.#connecting = undefined;
      this.#events.emit("error", error);
      throw error;
    });
    return (await this.#connecting).node;
  }

  /** Closes the client's node, and its connection if the client opened it. */
  async close(): Promise<void> {
    const connecting = this.#connecting;
    this.#connecting = undefined;
    this.#node = undefined;
    const opened = await connecting?.catch(() => undefined);
    if (opened) {
      opened.stopWatching();
      await opened.node.stop();
      if (opened.owned) await opened.system.close();
    }
    this._status$.next("disconnected");
  }

  /** Listens to the client's `error` event. */
  override on<EventKey extends keyof PgClientEvents = keyof PgClientEvents, EventCallback extends PgClientEvents[EventKey] = PgClientEvents[EventKey]>(
    event: EventKey,
    callback: EventCallback,
  ): void {
    this.#events.on(event as string, callback as unknown as (...args: unknown[]) => void);
  }

  /** The core node the client sends with (after `connect`). */
  unwrap<T = CoreNode>(): T {
    if (!this.#node) throw new InvalidStateError('Not initialized. Please call the "connect" method first.');
    return this.#node as T;
  }

  async #open(): Promise<{ node: CoreNode; system: CoreSystem; owned: boolean; stopWatching: () => void }> {
    const { system, owned } = await openConnection(connectionOf(this.#options, OWN_OPTIONS), "PgClient");
    const node = await system.registerNode({ displayName: this.#options.nodeName ?? "nest-client" });
    this.#node = node;
    this.#delivery = system.deliveryFor(this.#options.delivery ?? "direct", "PgClient");
    const stopWatching = watchStatus(system, (status) => this._status$.next(status));
    return { node, system, owned, stopWatching };
  }

  /** Sends a request and streams its reply values to `callback`; the returned function cancels it. */
  protected publish(packet: ReadPacket, callback: (packet: WritePacket) => void): () => void {
    const abort = new AbortController();
    let settled = false;
    void (async () => {
      try {
        const node = await this.connect();
        const { type, payload, options } = this.#outgoing(this.assignPacketId(packet));
        const values = node.requestStream(type, payload, {
          timeout: this.#options.timeout ?? DEFAULT_SEND_TIMEOUT_MS,
          headers: options.headers,
          signal: abort.signal,
          delivery: this.#delivery,
        });
        for await (const value of values) callback({ response: await this.#response(value) });
        settled = true;
        callback({ isDisposed: true });
      } catch (error) {
        settled = true;
        // An unsubscribed caller cancelled the request: the core's CancelledError is expected and nobody listens.
        if (!abort.signal.aborted) callback({ err: errorOf(error) });
      }
    })();
    // rxjs runs this teardown after every call, answered or not: only a request still
    // waiting is cancelled (an abort costs a DOMException with its stack).
    return () => {
      if (!settled) abort.abort();
    };
  }

  /** Publishes an event; resolves with its id once it is committed. */
  protected override async dispatchEvent<T = string>(packet: ReadPacket): Promise<T> {
    const node = await this.connect();
    const { type, payload, options } = this.#outgoing(packet);
    const id = await node.emit(type, payload, options);
    return id as T;
  }

  /** The core type, payload and options of a Nest packet (see the README's mapping). */
  #outgoing(packet: ReadPacket): { type: string; payload: unknown; options: PgRecordOptions } {
    const record = packet.data instanceof PgRecord ? (packet.data as PgRecord) : undefined;
    const data: unknown = record ? record.data : packet.data;
    const options: PgRecordOptions = { ...record?.options };
    const type = coreTypeOf(this.normalizePattern(packet.pattern));
    if (!this.#options.serializer) return { type, payload: data, options };
    // A custom serializer owns the wire format: the whole serialised packet travels, marked for the server.
    const payload = this.serializer.serialize({ ...packet, data });
    return { type, payload, options: { ...options, headers: { ...options.headers, [NEST_PACKET_HEADER]: "1" } } };
  }

  async #response(value: unknown): Promise<unknown> {
    if (!this.#options.deserializer) return value;
    const packet = (await this.deserializer.deserialize(value)) as { response?: unknown };
    return packet.response;
  }
}

/** What the caller's Observable errors with: Nest's own values for handler errors and unknown patterns, else the core's error. */
function errorOf(error: unknown): unknown {
  if (error instanceof RemoteError) {
    if (error.remoteCode === NestErrorCode.rpcError) return error.data;
    if (error.remoteCode === ErrorCode.noHandler) return NO_MESSAGE_HANDLER;
  }
  if (error instanceof NoResponderError) return NO_MESSAGE_HANDLER;
  return error;
}
