/**
 * `POST /events` and `POST /events/batch`: validate, emit, answer 202 with the ids once
 * the events are committed. Concurrent single emits of this process share one commit
 * (the library coalesces them), so the single route needs no batching of its own.
 */
import type { FastifyInstance } from "fastify";
import type { RouteContext } from "../app.js";
import { payloadTooLarge } from "../errors.js";
import { batchSchema, errorResponses, eventSchema, type EventBody } from "../schemas.js";

const ERRORS = errorResponses(400, 413, 415, 503);

export function registerEventRoutes(app: FastifyInstance, context: RouteContext): void {
  const { node, system } = context;
  app.post<{ Body: EventBody }>(
    "/events",
    {
      schema: {
        summary: "Emit one event",
        description: "Writes the event to the log and to the queue of every subscribed group, then answers 202 with its id.",
        tags: ["events"],
        body: eventSchema,
        response: { 202: { type: "object", required: ["id"], properties: { id: { type: "string", format: "uuid" } } }, ...ERRORS },
      },
    },
    async (request, reply) => {
      const { type, payload, ...options } = request.body;
      const id = await emitting([payload], system.maxPayloadBytes, () => node.emit(type, payload, options));
      return reply.code(202).send({ id });
    },
  );

  app.post<{ Body: { events: EventBody[] } }>(
    "/events/batch",
    {
      bodyLimit: context.batchBodyLimit,
      schema: {
        summary: `Emit up to ${context.maxBatch} events at once`,
        description: "All or nothing, in order, in one transaction; answers 202 with the ids in the order given.",
        tags: ["events"],
        body: batchSchema(context.maxBatch),
        response: {
          202: { type: "object", required: ["ids"], properties: { ids: { type: "array", items: { type: "string", format: "uuid" } } } },
          ...ERRORS,
        },
      },
    },
    async (request, reply) => {
      const { events } = request.body;
      const ids = await emitting(
        events.map((event) => event.payload),
        system.maxPayloadBytes,
        () => node.emitBatch(events),
      );
      return reply.code(202).send({ ids });
    },
  );
}

/** Runs an emit, turning the library's payload-size error into a 413. */
async function emitting<T>(payloads: unknown[], maxBytes: number, emit: () => Promise<T>): Promise<T> {
  try {
    return await emit();
  } catch (error) {
    throw payloadTooLarge(error, payloads, maxBytes) ?? error;
  }
}
