/**
 * The direct path (at most once) for messages addressed to one live node (direct
 * messages, and direct requests and their replies): each travels
 * as a NOTIFY on the target's channel, and everything a process sends in one turn of the
 * event loop leaves in one statement with an asynchronous commit (`core.send_direct`).
 * One statement is in flight at a time, so messages keep their order across turns, and
 * the receiver handles its channel in arrival order; a message too large for NOTIFY is
 * stored and fetched in its place, its successors waiting for it. Handlers run without a
 * transaction; `ctx.client` opens one on first use, committed when the handler returns.
 * A handler that throws is logged and the message is dropped: nothing is retried or
 * dead-lettered on this path (the queue path, the default of `sendTo`, does that).
 */
import { randomUUID } from "node:crypto";
import { Coalescer } from "../db/coalescer.js";
import type { Route } from "../delivery/dispatch.js";
import { LazyTransactionClient } from "../delivery/handler-client.js";
import { fetchBroadcastPayload } from "../membership/queries/broadcast.js";
import type { NamespaceContext } from "../model/context.js";
import { NoHandlerError, asError } from "../model/errors.js";
import type { CoreEvent, EventHandler, HandlerContext } from "../model/events.js";
import type { ChannelEnvelope, EventEnvelope, StoredEnvelope } from "../model/messages.js";
import type { EventHeaders } from "../model/payload.js";
import { sendDirect } from "./queries/send-direct.js";

interface Outgoing {
  nodeId: string;
  message: string;
}

/** The envelope of a direct message from `sourceNode`, on either path. */
export function directEnvelope(sourceNode: string, type: string, payload: unknown, headers: EventHeaders | undefined): EventEnvelope {
  return {
    kind: "direct",
    id: randomUUID(),
    type,
    payload,
    ...(headers ? { headers } : {}),
    emittedAt: new Date().toISOString(),
    sourceNode,
  };
}

/** A node's direct messages: sending them, and handing received ones to their handlers in order. */
export class DirectMessages {
  readonly #context: NamespaceContext;
  readonly #nodeId: string;
  readonly #routes: Route<EventHandler>[];
  readonly #outgoing: Coalescer<Outgoing, void>;
  readonly #running = new Set<Promise<void>>();
  readonly #stopping = new AbortController();
  readonly #other: (envelope: Exclude<ChannelEnvelope, EventEnvelope | StoredEnvelope>) => void;
  /** The last received message still waiting for a stored payload; later ones wait behind it. */
  #ordered: Promise<void> | undefined;

  /**
   * `routes` are the node's `onDirect` handlers, shared with its queue path; `other`
   * takes the rest of what arrives on the direct path (requests, replies, cancellations),
   * in order.
   */
  constructor(
    context: NamespaceContext,
    nodeId: string,
    routes: Route<EventHandler>[],
    other: (envelope: Exclude<ChannelEnvelope, EventEnvelope | StoredEnvelope>) => void,
  ) {
    this.#context = context;
    this.#nodeId = nodeId;
    this.#routes = routes;
    this.#other = other;
    this.#outgoing = new Coalescer<Outgoing, void>(
      async (items) => {
        await sendDirect(context.pool, context.namespace, items.map((item) => item.nodeId), items.map((item) => item.message));
        return items.map(() => undefined);
      },
      () => 1,
      500,
      true,
    );
  }

  /** Sends one message to `nodeId`; resolves once its statement committed (not once it was handled). */
  send(nodeId: string, type: string, payload: unknown, headers: EventHeaders | undefined): Promise<void> {
    return this.sendEnvelope(nodeId, directEnvelope(this.#nodeId, type, payload, headers));
  }

  /** Sends any envelope of the node channel (a request, a reply) to `nodeId` on the direct path. */
  sendEnvelope(nodeId: string, envelope: Exclude<ChannelEnvelope, StoredEnvelope>): Promise<void> {
    return this.#outgoing.add({ nodeId, message: JSON.stringify(envelope) });
  }

  /** Something arrived on the node's channel: handled in arrival order, a stored one fetched in its place. */
  receive(envelope: ChannelEnvelope): void {
    if (envelope.kind !== "ref" && this.#ordered === undefined) return this.#dispatch(envelope);
    const resolved = envelope.kind === "ref" ? this.#fetch(envelope) : Promise.resolve(envelope);
    const previous = this.#ordered ?? Promise.resolve();
    const mine = previous.then(() => resolved).then((stored) => {
      if (stored) this.#dispatch(stored);
    });
    this.#ordered = mine;
    void mine.finally(() => {
      if (this.#ordered === mine) this.#ordered = undefined;
    });
  }

  /** Waits up to `graceMs` for running handlers, then aborts their signals. */
  async close(graceMs: number): Promise<void> {
    const running = Promise.allSettled([...this.#running]);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([running, late]);
    clearTimeout(timer);
    this.#stopping.abort(new Error("the node is stopping"));
  }

  #dispatch(envelope: Exclude<ChannelEnvelope, StoredEnvelope>): void {
    if (envelope.kind === "request" || envelope.kind === "reply" || envelope.kind === "cancel") this.#other(envelope);
    else this.#start(envelope);
  }

  async #fetch(stored: StoredEnvelope): Promise<Exclude<ChannelEnvelope, StoredEnvelope> | undefined> {
    try {
      const envelope = (await fetchBroadcastPayload(this.#context.pool, stored.r)) as Exclude<ChannelEnvelope, StoredEnvelope> | undefined;
      if (!envelope) this.#context.logger.warn({ payloadId: stored.r }, "a large direct message was gone before it was fetched; dropped");
      return envelope;
    } catch (error) {
      this.#context.logger.warn({ err: asError(error), payloadId: stored.r }, "could not fetch a large direct message; dropped");
      return undefined;
    }
  }

  #start(envelope: EventEnvelope): void {
    const run = this.#handle(envelope);
    this.#running.add(run);
    void run.finally(() => this.#running.delete(run));
  }

  async #handle(envelope: EventEnvelope): Promise<void> {
    const event: CoreEvent = {
      id: envelope.id,
      messageId: envelope.id,
      type: envelope.type,
      payload: envelope.payload,
      headers: envelope.headers ?? {},
      emittedAt: new Date(envelope.emittedAt),
      sourceNode: envelope.sourceNode,
    };
    const routes = this.#routes.filter((route) => route.matches(event.type));
    if (routes.length === 0) {
      const error = new NoHandlerError(event.type, `the direct messages of node ${this.#nodeId}`);
      this.#context.logger.warn({ err: error, type: event.type, sourceNode: event.sourceNode }, "a direct message had no handler; dropped (the direct path is at most once)");
      return;
    }
    const client = new LazyTransactionClient(this.#context.pool);
    const context: HandlerContext = { client, attempt: 1, messageId: envelope.id, headers: event.headers, signal: this.#stopping.signal };
    try {
      for (const route of routes) await route.handler(event, context);
      await client.finish(true);
    } catch (error) {
      await client.finish(false).catch(() => {});
      this.#context.logger.warn({ err: asError(error), type: event.type, sourceNode: event.sourceNode }, "a direct message handler failed; the message is dropped (the direct path is at most once)");
    }
  }
}
