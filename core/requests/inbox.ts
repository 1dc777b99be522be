/**
 * A node's inbox: its channel `nexus:n:<node id>` and its queue `n_<node id>`. Replies to
 * its requests and cancellations of its streams arrive there, and so do direct messages
 * (`sendTo`): through the queue by default, in order, retried and dead-lettered; or on
 * the direct path (`direct.ts`), by NOTIFY, at most once; and the copies of events the
 * node subscribed for itself alone (`onNodeEvent`).
 */
import type pg from "pg";
import { QueueConsumer } from "../delivery/consumer.js";
import { ClosedError, asError } from "../model/errors.js";
import { EventDispatcher, patternMatcher, type Route } from "../delivery/dispatch.js";
import { NodeQueueDispatcher } from "./dispatch.js";
import type { EventHandler } from "../model/events.js";
import type { NotificationListener } from "../db/listener.js";
import type { NamespaceContext } from "../model/context.js";
import type { Logger } from "../model/logger.js";
import type { ChannelEnvelope, EventEnvelope, ReplyEnvelope, RequestEnvelope } from "../model/messages.js";
import type { ResponderDirectory } from "./responders.js";
import { DirectMessages, directEnvelope } from "./direct.js";
import { ensureNodeQueue } from "./queries/ensure-node-queue.js";
import { sendRequests } from "./queries/send-requests.js";
import { Coalescer } from "../db/coalescer.js";
import { sendBatchToNode, sendToNode } from "./queries/send-to-node.js";
import { Requester } from "./requester.js";
import { DEFAULT_BACKOFF } from "../model/backoff.js";

/** What an inbox needs beside its namespace (whose `logger` is the node's). */
export interface InboxInit {
  nodeId: string;
  listener: NotificationListener;
  /** Who answers which requests directly (the system's view). */
  directory: ResponderDirectory;
  /** Whether the namespace has live nodes that cannot hear notifications (the registry's answer). */
  hasDeafNodes: () => Promise<boolean>;
  /** A direct request arrived: answer it (see `NodeSubscriptions.answerDirect`). */
  onRequest: (request: RequestEnvelope) => void;
  /** A requester cancelled a stream this node may be sending. */
  onCancel: (correlationId: string) => void;
  /**
   * Milliseconds between reads of the node's queue when no NOTIFY wakes it: 2,000, or
   * short for a node that cannot hear (its replies arrive there unannounced).
   */
  pollIntervalMs: number;
}

/** Messages waiting for one target node, sent in order, one batch at a time. */
interface Outbox {
  waiting: { envelope: EventEnvelope; resolve: () => void; reject: (error: unknown) => void }[];
  sending: boolean;
}

/** The node's channel, queue, requester and direct messages. */
export class NodeInbox {
  readonly requester: Requester;
  /** The node's queue: `n_` and the node id's 32 hex digits (`core.node_queue`). */
  readonly queue: string;
  readonly #init: InboxInit & { namespace: string; pool: pg.Pool; logger: Logger };
  readonly #directRoutes: Route<EventHandler>[] = [];
  #nodeEventRoutes: Route<EventHandler>[] = [];
  readonly #outboxes = new Map<string, Outbox>();
  readonly #consumer: QueueConsumer;
  readonly #direct: DirectMessages;
  #opening: Promise<void> | undefined;

  constructor(context: NamespaceContext, inbox: InboxInit) {
    const init = { ...inbox, namespace: context.namespace, pool: context.pool, logger: context.logger };
    this.#init = init;
    // Concurrent requests of this node share one statement and commit.
    const requests = new Coalescer<RequestEnvelope, boolean>(async (envelopes) => {
      const queues = await sendRequests(init.pool, init.namespace, envelopes);
      return envelopes.map((envelope) => (queues.get(envelope.id) ?? null) !== null);
    });
    this.requester = new Requester(init.nodeId, init.namespace, {
      send: (envelope: RequestEnvelope) => requests.add(envelope),
      pickDirect: (type: string) => init.directory.pick(type),
      sendDirect: (nodeId: string, envelope: RequestEnvelope) => this.#direct.sendEnvelope(nodeId, envelope),
      hasDeafNodes: () => init.hasDeafNodes(),
      cancel: (responder, correlationId) => {
        sendToNode(init.pool, responder, { kind: "cancel", c: correlationId }, false).catch((error: unknown) =>
          init.logger.warn({ err: asError(error), correlationId }, "could not cancel a stream"),
        );
      },
    });
    this.queue = `n_${init.nodeId.replace(/-/g, "")}`;
    this.#direct = new DirectMessages(context, init.nodeId, this.#directRoutes, (envelope) => {
      if (envelope.kind === "reply") this.requester.receive(envelope);
      else if (envelope.kind === "cancel") this.#init.onCancel(envelope.c);
      else this.#init.onRequest(envelope);
    });
    this.#consumer = new QueueConsumer({
      pool: init.pool,
      name: `node ${init.nodeId}`,
      queue: this.queue,
      settings: {
        // One lane: direct messages are handled in the order they were sent.
        concurrency: 1,
        prefetch: 50,
        maxAttempts: 5,
        backoff: DEFAULT_BACKOFF,
        visibilityTimeoutMs: 30_000,
        pollIntervalMs: init.pollIntervalMs,
        timeoutMs: undefined,
        readInTransaction: false,
      },
      dispatcher: new NodeQueueDispatcher(
        {
          reply: (reply) => this.requester.receive(reply),
          request: (request) => this.#init.onRequest(request),
          cancel: (correlationId) => this.#init.onCancel(correlationId),
        },
        new EventDispatcher(`node ${init.nodeId}`, () => this.#directRoutes),
        // A copy that arrives after its pattern was removed has no one else to go to.
        new EventDispatcher(`node ${init.nodeId}`, () => this.#nodeEventRoutes, "drop"),
      ),
      logger: init.logger,
    });
  }

  /** Listens on the node's channel, creates its queue and starts reading it. Idempotent. */
  open(): Promise<void> {
    this.#opening ??= (async () => {
      await this.#init.listener.listen(`nexus:n:${this.#init.nodeId}`, (payload) => this.#onNotification(payload));
      await ensureNodeQueue(this.#init.pool, this.#init.nodeId);
      this.#consumer.start();
    })();
    return this.#opening;
  }

  /** Handles direct messages whose type matches `pattern`. */
  onDirect(pattern: string, handler: EventHandler): void {
    this.#directRoutes.push({ pattern, matches: patternMatcher(pattern), handler });
  }

  /** Handles the node's own copies of events matching `pattern`; true for the pattern's first handler. */
  onNodeEvent(pattern: string, handler: EventHandler): boolean {
    const first = !this.#nodeEventRoutes.some((route) => route.pattern === pattern);
    this.#nodeEventRoutes.push({ pattern, matches: patternMatcher(pattern), handler });
    return first;
  }

  /** Removes the handlers of `pattern`; copies that still arrive for it are dropped. */
  offNodeEvent(pattern: string): void {
    this.#nodeEventRoutes = this.#nodeEventRoutes.filter((route) => route.pattern !== pattern);
  }

  /** The patterns the node subscribed for itself. */
  nodeEventPatterns(): Set<string> {
    return new Set(this.#nodeEventRoutes.map((route) => route.pattern));
  }

  /**
   * Sends a direct message to `nodeId`'s queue. Messages to one node leave in the order of
   * the calls: each target's messages go out one batch at a time, the next batch after
   * the previous one committed.
   */
  sendTo(nodeId: string, type: string, payload: unknown, headers: Record<string, string> | undefined): Promise<void> {
    const envelope = directEnvelope(this.#init.nodeId, type, payload, headers);
    const outbox = this.#outboxes.get(nodeId) ?? { waiting: [], sending: false };
    this.#outboxes.set(nodeId, outbox);
    const sent = new Promise<void>((resolve, reject) => outbox.waiting.push({ envelope, resolve, reject }));
    if (!outbox.sending) void this.#flush(nodeId, outbox);
    return sent;
  }

  /** Sends a direct message to `nodeId` on the direct path (at most once; see direct.ts). */
  sendDirect(nodeId: string, type: string, payload: unknown, headers: Record<string, string> | undefined): Promise<void> {
    return this.#direct.send(nodeId, type, payload, headers);
  }

  /** Sends the replies to a direct request on the direct path. */
  async replyDirect(replies: { node: string; message: unknown }[]): Promise<void> {
    await Promise.all(replies.map((reply) => this.#direct.sendEnvelope(reply.node, reply.message as ReplyEnvelope)));
  }

  /** Wakes the queue reader (after a reconnect, notifications may have been missed). */
  wake(): void {
    this.#consumer.wake();
  }

  /** Stops reading the queue and listening on the channel. */
  async close(graceMs: number): Promise<void> {
    this.requester.failAll(new ClosedError(`Node ${this.#init.nodeId} (it stopped before its request was answered)`));
    await Promise.all([this.#consumer.stop(graceMs), this.#direct.close(graceMs)]);
    await this.#init.listener.unlisten(`nexus:n:${this.#init.nodeId}`);
  }

  async #flush(nodeId: string, outbox: Outbox): Promise<void> {
    outbox.sending = true;
    while (outbox.waiting.length > 0) {
      const batch = outbox.waiting.splice(0, 500);
      try {
        await sendBatchToNode(this.#init.pool, nodeId, batch.map((item) => item.envelope));
        batch.forEach((item) => item.resolve());
      } catch (error) {
        batch.forEach((item) => item.reject(error));
      }
    }
    outbox.sending = false;
    this.#outboxes.delete(nodeId);
  }

  #onNotification(payload: string): void {
    if (payload === "") return this.#consumer.wake();
    let envelope: ChannelEnvelope;
    try {
      envelope = JSON.parse(payload) as ChannelEnvelope;
    } catch {
      this.#init.logger.warn({ payload: payload.slice(0, 200) }, "ignored a malformed notification on the node channel");
      return;
    }
    this.#direct.receive(envelope);
  }
}
