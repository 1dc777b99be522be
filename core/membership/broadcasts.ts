/**
 * Broadcasts: non-durable messages to every live node of the namespace that listens on a
 * channel (discovery, heartbeats of the frameworks). They ride the namespace's NOTIFY
 * channel as JSON objects; a payload too large for NOTIFY goes through
 * `core.broadcast_payloads` and is fetched by each receiver.
 */
import type { NamespaceContext } from "../model/context.js";
import { assertEventType } from "../model/names.js";
import { assertPayload } from "../model/payload.js";
import { broadcast, fetchBroadcastPayload } from "./queries/broadcast.js";

/** Receives a broadcast: its payload and the node that sent it. */
export type BroadcastHandler = (payload: unknown, meta: { channel: string; sourceNode: string | null }) => void;

/** A broadcast as it arrives on the namespace channel: channel, payload or its row id, sender. */
interface BroadcastNotification {
  b: string;
  p?: unknown;
  r?: number;
  s: string | null;
}

/** The broadcasts of a namespace: sending, and handing received ones to their handlers. */
export class Broadcasts {
  readonly #context: NamespaceContext;
  readonly #handlers = new Map<string, Set<BroadcastHandler>>();

  constructor(context: NamespaceContext) {
    this.#context = context;
  }

  /** Sends `payload` to every live node listening on `channel`; see `CoreSystem.broadcast`. */
  async send(channel: string, payload: unknown, sourceNode: string | null): Promise<void> {
    this.#context.assertOpen();
    assertEventType(channel, "broadcast channel");
    assertPayload(payload, this.#context.limits.maxPayloadBytes);
    try {
      await broadcast(this.#context.pool, this.#context.namespace, channel, payload, sourceNode);
    } catch (error) {
      throw this.#context.toError(error, `broadcast on ${channel}`);
    }
  }

  /** Calls `handler` for every broadcast on `channel`; returns a function that stops it. */
  on(channel: string, handler: BroadcastHandler): () => void {
    assertEventType(channel, "broadcast channel");
    const handlers = this.#handlers.get(channel) ?? new Set<BroadcastHandler>();
    this.#handlers.set(channel, handlers.add(handler));
    return () => void handlers.delete(handler);
  }

  /** Hands a broadcast from the namespace channel (a JSON object) to its channel's handlers. */
  receive(notification: string): void {
    const message = JSON.parse(notification) as BroadcastNotification;
    const handlers = this.#handlers.get(message.b);
    if (!handlers?.size) return;
    const deliver = (value: unknown): void => {
      for (const handler of handlers) {
        try {
          handler(value, { channel: message.b, sourceNode: message.s });
        } catch (error) {
          this.#context.logger.error({ err: error, channel: message.b }, "a broadcast handler threw");
        }
      }
    };
    if (message.r === undefined) return deliver(message.p);
    fetchBroadcastPayload(this.#context.pool, message.r).then(deliver, (error: unknown) =>
      this.#context.logger.warn({ err: error, channel: message.b }, "could not fetch a large broadcast payload"),
    );
  }
}
