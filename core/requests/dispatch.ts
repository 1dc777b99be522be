/**
 * Request dispatch: a responder group's consumer runs one handler per request and replies
 * (a stream of values included); a node's own queue routes replies back to the waiting
 * request, and direct messages and the node's own event copies to their handlers.
 */
import type { FollowUp, DeliveryScope, Dispatcher } from "../delivery/consumer.js";
import type { EventDispatcher, Route } from "../delivery/dispatch.js";
import type { QueueMessage } from "../delivery/queries/queue-table.js";
import type { Queryable } from "../db/queryable.js";
import { CancelledError, HandlerTimeoutError, NoHandlerError, type SerializedError } from "../model/errors.js";
import type { HandlerContext } from "../model/events.js";
import type { NodeEnvelope, ReplyEnvelope, RequestEnvelope } from "../model/messages.js";
import { claimRequest } from "./queries/claim-request.js";
import { sendToNode } from "./queries/send-to-node.js";

/** A request as its handler sees it. */
export interface CoreRequest<TPayload = unknown> {
  /** The request's correlation id. */
  id: string;
  type: string;
  payload: TPayload;
  headers: Record<string, string>;
  /** The requesting node. */
  sourceNode: string;
}

/**
 * Answers a request: a value, a promise of one, or an async iterable (a stream of values,
 * sent in order as they come). A throw answers with the error.
 */
export type RequestHandler<TPayload = unknown> = (request: CoreRequest<TPayload>, context: HandlerContext) => unknown;

/** How replies leave a responder. */
export interface ReplyOptions {
  /** Send every reply through the requester's queue, never as a NOTIFY payload (isolated namespaces). */
  viaQueue: boolean;
  /** Include responder stacks in error replies. */
  sendStacks: boolean;
  /** This node's id, written on replies so a requester can cancel a stream. */
  nodeId: string;
  /** Connections for stream items, sent outside the handler's transaction so they arrive as they come. */
  pool: Queryable;
}

/** Runs one request handler per request and replies inside the handler's transaction. */
export class RequestDispatcher implements Dispatcher {
  readonly #streams = new Map<string, AbortController>();
  readonly #nextSeq = new Map<string, number>();

  constructor(
    private readonly group: string,
    private readonly routes: () => readonly Route<RequestHandler>[],
    private readonly replies: ReplyOptions,
  ) {}

  /** A requester cancelled: stop the stream answering request `correlationId`, if it runs here. */
  cancel(correlationId: string): void {
    this.#streams.get(correlationId)?.abort(new CancelledError(`Request ${correlationId}`));
  }

  async deliver(message: QueueMessage, scope: DeliveryScope): Promise<FollowUp | void> {
    const request = message.message as RequestEnvelope;
    // Judged on the database's clock (the read time plus what has elapsed here since), so
    // that a request waiting behind slower ones of its batch is not started late either.
    const databaseNow = message.readAt.getTime() + (performance.now() - message.receivedAt);
    if (databaseNow > message.enqueuedAt.getTime() + request.timeoutMs) return;
    // A non-durable request runs at most once: it is claimed first, on its own commit.
    if (!request.durable && !(await claimRequest(this.replies.pool, request.id))) return;
    const route = this.routes().find((candidate) => candidate.matches(request.type));
    if (!route) {
      return this.#reply(request, { error: serializeError(new NoHandlerError(request.type, `group ${this.group}`), false) });
    }
    const controller = new AbortController();
    scope.signal.addEventListener("abort", () => controller.abort(scope.signal.reason), { once: true });
    const context: HandlerContext = {
      client: scope.transaction,
      attempt: message.readCount,
      messageId: message.msgId,
      headers: request.headers,
      signal: controller.signal,
    };
    const result = await route.handler(
      { id: request.id, type: request.type, payload: request.payload, headers: request.headers, sourceNode: request.sourceNode },
      context,
    );
    if (!isAsyncIterable(result)) return this.#reply(request, { value: result });
    await this.#stream(request, result, controller);
    return this.#reply(request, { stream: true });
  }

  failed(message: QueueMessage, error: unknown): FollowUp {
    const request = message.message as RequestEnvelope;
    return this.#reply(request, { error: serializeError(error, this.replies.sendStacks) });
  }

  /** Sends stream items as they come, each on its own autocommit statement, so they arrive before the end. */
  async #stream(request: RequestEnvelope, values: AsyncIterable<unknown>, controller: AbortController): Promise<void> {
    this.#streams.set(request.id, controller);
    const iterator = values[Symbol.asyncIterator]();
    try {
      while (!controller.signal.aborted) {
        const next = await iterator.next();
        if (next.done) break;
        await sendToNode(this.replies.pool, request.replyTo, this.#envelope(request, { value: next.value, stream: true }), this.replies.viaQueue);
      }
    } finally {
      this.#streams.delete(request.id);
      if (controller.signal.aborted) await iterator.return?.();
    }
  }

  /** The final reply, sent in the handler's transaction: it is delivered only if the handler's writes commit. */
  #reply(request: RequestEnvelope, body: Pick<ReplyEnvelope, "value" | "error" | "stream">): FollowUp {
    const envelope = this.#envelope(request, { ...body, done: true });
    this.#nextSeq.delete(request.id);
    return [{ node: request.replyTo, message: envelope, viaQueue: this.replies.viaQueue }];
  }

  #envelope(request: RequestEnvelope, body: Omit<ReplyEnvelope, "kind" | "c" | "seq" | "r">): ReplyEnvelope {
    const seq = this.#nextSeq.get(request.id) ?? 0;
    this.#nextSeq.set(request.id, seq + 1);
    return { kind: "reply", c: request.id, seq, r: this.replies.nodeId, ...body };
  }
}

/** What a node's own queue hands on besides events and direct messages. */
export interface NodeQueueHandlers {
  /** A reply to one of the node's requests. */
  reply(reply: ReplyEnvelope): void;
  /** A direct request, put here instead of NOTIFYed because the node cannot hear (core.send_direct). */
  request(request: RequestEnvelope): void;
  /** A requester's cancellation of a stream, put here for the same reason (core.send_to_node). */
  cancel(correlationId: string): void;
}

/**
 * A node's own queue: replies go back to their requests, direct messages to their
 * handlers, and copies of events (no `kind`: `core.emit`'s envelope) to the node's own
 * event subscriptions. A node that cannot hear NOTIFYs also finds here what the direct
 * path sends it: requests and cancellations.
 */
export class NodeQueueDispatcher implements Dispatcher {
  constructor(
    private readonly handlers: NodeQueueHandlers,
    private readonly direct: EventDispatcher,
    private readonly events: EventDispatcher,
  ) {}

  async deliver(message: QueueMessage, scope: DeliveryScope): Promise<void> {
    const envelope = message.message as NodeEnvelope | RequestEnvelope;
    if (envelope.kind === "reply") return this.handlers.reply(envelope);
    if (envelope.kind === "request") return this.handlers.request(envelope);
    if (envelope.kind === "cancel") return this.handlers.cancel(envelope.c);
    if (envelope.kind === undefined || envelope.kind === "event") return this.events.deliver(message, scope);
    return this.direct.deliver(message, scope);
  }
}

/** An error as it travels to a requester: message, name, code and data; the stack only when asked. */
export function serializeError(error: unknown, withStack: boolean): SerializedError {
  if (!(error instanceof Error)) return { name: "Error", message: typeof error === "string" ? error : JSON.stringify(error) ?? String(error) };
  const { code, data } = error as { code?: unknown; data?: unknown };
  return {
    name: error instanceof HandlerTimeoutError ? "HandlerTimeoutError" : error.name,
    message: error.message,
    ...(typeof code === "string" ? { code } : {}),
    ...(data !== undefined ? { data: toJson(data) } : {}),
    ...(withStack && error.stack ? { stack: error.stack } : {}),
  };
}

function toJson(value: unknown): unknown {
  try {
    return JSON.parse(JSON.stringify(value)) as unknown;
  } catch {
    return String(value);
  }
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return value !== null && typeof value === "object" && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function";
}
