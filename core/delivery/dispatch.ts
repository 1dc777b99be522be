/**
 * Event dispatch: what a consumer does with an event or a direct message: run the
 * handlers whose pattern matches. Requests and a node's own queue are dispatched by
 * `requests/dispatch.ts`.
 */
import type { DeliveryScope, Dispatcher } from "./consumer.js";
import type { CoreEvent, EventHandler, HandlerContext } from "../model/events.js";
import type { EventEnvelope } from "../model/messages.js";
import type { QueueMessage } from "./queries/queue-table.js";
import { NoHandlerError } from "../model/errors.js";

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
      throw new NoHandlerError(event.type, `${this.where} on this node`, "another instance subscribed it; it will be retried");
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
