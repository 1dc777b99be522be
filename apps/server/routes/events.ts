/**
 * `POST /events` and `POST /events/batch`: validate, emit, answer 202 with the ids once
 * the events are committed. Concurrent single emits of this process share one commit
 * (the library coalesces them), so the single route needs no batching of its own.
 */
import type { FastifyInstance } from "fastify";
import type { RouteContext } from "../app.js";
import { HttpError, payloadTooLarge } from "../errors.js";
import { batchSchema, errorResponses, eventSchema, type EventBody } from "../schemas.js";

const ERRORS = errorResponses(400, 403, 413, 415, 429, 503);

export function registerEventRoutes(app: FastifyInstance, context: RouteContext): void {
  const { node, system } = context;
  app.post<{ Body: EventBody }>(
    "/events",
    {
      // Limited per client only when the server is configured to (option ingestRateLimit).
      config: { rateLimit: context.ingestRateLimit },
      preValidation: async (request) => assertUncoerced([request.body]),
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
      config: { rateLimit: context.ingestRateLimit },
      preValidation: async (request) => {
        const events = (request.body as { events?: unknown } | null)?.events;
        if (Array.isArray(events)) assertUncoerced(events);
      },
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

/** The string fields of an event: Fastify's validator would turn a number or null there into a string. */
const STRING_FIELDS = ["type", "idempotencyKey"] as const;

/**
 * Refuses event fields of the wrong JSON type before schema validation, which coerces
 * types (null to "", 5 to "5", "5" to 5): an event must be stored as sent, or refused.
 */
function assertUncoerced(events: readonly unknown[]): void {
  events.forEach((event, index) => {
    if (event === null || typeof event !== "object" || Array.isArray(event)) return;
    const fields = event as Record<string, unknown>;
    const where = events.length > 1 ? `events/${index}/` : "";
    for (const field of STRING_FIELDS) {
      if (field in fields && typeof fields[field] !== "string") throw wrongType(`${where}${field}`, "a string");
    }
    if ("delay" in fields && typeof fields.delay !== "number") throw wrongType(`${where}delay`, "a whole number of milliseconds");
    const headers = fields.headers;
    if (headers !== null && typeof headers === "object" && !Array.isArray(headers)) {
      for (const [name, value] of Object.entries(headers)) {
        if (typeof value !== "string") throw wrongType(`${where}headers/${name}`, "a string");
      }
    }
  });
}

function wrongType(field: string, expected: string): HttpError {
  return new HttpError(400, "invalid_request", `body/${field} must be ${expected}; values are not converted.`);
}
