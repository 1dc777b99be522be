/**
 * Dispatchers: what a consumer does with each kind of queue message. Events and direct
 * messages run their matching handlers; requests run one handler and reply, a stream of
 * values included; replies on a node's queue go back to the waiting request.
 */
import type { FollowUp, DeliveryScope, Dispatcher } from "./consumer.js";
import { HandlerTimeoutError, type SerializedError } from "./errors.js";
import type { CoreEvent, EventHandler, HandlerContext } from "./events.js";
import type { EventEnvelope, NodeEnvelope, ReplyEnvelope, RequestEnvelope } from "./messages.js";
import type { QueueMessage } from "./queries/read-messages.js";
import { claimRequest } from "./queries/claim-request.js";
import { sendToNode } from "./queries/send-to-node.js";
import type { Queryable } from "./queries/queryable.js";

/** A handler and the pattern it was registered with. */
export interface Route<THandler> {
  pattern: string;
  matches: (type: string) => boolean;
  handler: THandler;
}

/** Compiles a validated pattern as `core.pattern_regex` does: `*` one segment, `**` one or more. */
export function patternMatcher(pattern: string): (type: string) => boolean {
  const source = pattern
    .split(".")
    .map((segment) => (segment === "**" ? ".+" : segment === "*" ? "[^.]+" : segment.replace(/\$/g, "\\$")))
    .join("\\.");
  const regex = new RegExp(`^${source}$`);
  return (type) => regex.test(type);
}

/**
 * Runs the event handlers whose pattern matches; any throw fails the message (retry, then
 * dead letter). A message no handler matches fails too (another instance of the group may
 * handle it), unless `unrouted` is `"drop"`: then it is acknowledged without a handler
 * (a node's own subscriptions, which no other consumer can take over).
 */
export class EventDispatcher implements Dispatcher {
  constructor(
    private readonly where: string,
    private readonly routes: () => readonly Route<EventHandler>[],
    private readonly unrouted: "retry" | "drop" = "retry",
  ) {}

  async deliver(message: QueueMessage, scope: DeliveryScope): Promise<void> {
    const event = toEvent(message);
    const routes = this.routes().filter((route) => route.matches(event.type));
    if (routes.length === 0) {
      if (this.unrouted === "drop") return;
      throw new Error(`No handler for ${event.type} in ${this.where} on this node (another instance subscribed it); it will be retried.`);
    }
    const context: HandlerContext = {
      client: scope.transaction,
      attempt: message.readCount,
      messageId: message.msgId,
      headers: event.headers,
      signal: scope.signal,
    };
    for (const route of routes) await route.handler(event, context);
  }
}

/** Turns a queue message into the event a handler sees. */
export function toEvent(message: QueueMessage): CoreEvent {
  const envelope = message.message as EventEnvelope;
  return {
    id: envelope.id,
    messageId: message.msgId,
    type: envelope.type,
    payload: envelope.payload,
    headers: envelope.headers ?? {},
    emittedAt: new Date(envelope.emittedAt),
    sourceNode: envelope.sourceNode,
  };
}

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
    this.#streams.get(correlationId)?.abort(new Error("cancelled by the requester"));
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
      return this.#reply(request, {
        error: { name: "Error", code: "ERR_NEXUS_NO_HANDLER", message: `No handler for request ${request.type} in group ${this.group}.` },
      });
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

/**
 * A node's own queue: replies go back to their requests, direct messages to their
 * handlers, and copies of events (no `kind`: `core.emit`'s envelope) to the node's own
 * event subscriptions.
 */
export class NodeQueueDispatcher implements Dispatcher {
  constructor(
    private readonly onReply: (reply: ReplyEnvelope) => void,
    private readonly direct: EventDispatcher,
    private readonly events: EventDispatcher,
  ) {}

  async deliver(message: QueueMessage, scope: DeliveryScope): Promise<void> {
    const envelope = message.message as NodeEnvelope;
    if (envelope.kind === "reply") return this.onReply(envelope);
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
