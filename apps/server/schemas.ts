/**
 * JSON Schemas of the server's routes: Fastify validates requests with them and
 * serialises answers with them, and @fastify/swagger turns them into the OpenAPI document.
 * Names and payload sizes are checked again by the library, whose messages say what is
 * allowed; the schemas catch the shape.
 */

/** `$id` of the shared error body. */
export const ERROR_BODY = "ErrorBody";

export const errorBodySchema = {
  $id: ERROR_BODY,
  type: "object",
  description: "Every error answer: a stable machine-readable code and a message for people.",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "string", examples: ["invalid_name"] },
        message: { type: "string" },
      },
    },
  },
} as const;

/** Response entries for error statuses, all with the shared error body. */
export function errorResponses(...statuses: number[]): Record<number, { $ref: string }> {
  return Object.fromEntries(statuses.map((status) => [status, { $ref: `${ERROR_BODY}#` }]));
}

const MAX_DELAY_MS = 7 * 86_400_000;

/** One event as the client sends it. */
export const eventSchema = {
  type: "object",
  required: ["type", "payload"],
  additionalProperties: false,
  properties: {
    type: {
      type: "string",
      minLength: 1,
      maxLength: 255,
      description: "Event type: dot-separated segments of letters, digits, _ - : $ (e.g. order.created).",
      examples: ["demo.hello"],
    },
    payload: { description: "Any JSON value, at most maxPayloadBytes (1 MiB by default) once serialised." },
    headers: { type: "object", additionalProperties: { type: "string" }, description: "String headers carried with the event (traceparent...)." },
    delay: { type: "integer", minimum: 0, maximum: MAX_DELAY_MS, description: "Milliseconds before consumers see it (rounded up to seconds)." },
    idempotencyKey: { type: "string", minLength: 1, maxLength: 255, description: "A repeat within the idempotency window publishes nothing and returns the first id." },
  },
} as const;

/** What `POST /events` and each item of `POST /events/batch` carry. */
export interface EventBody {
  type: string;
  payload: unknown;
  headers?: Record<string, string>;
  delay?: number;
  idempotencyKey?: string;
}

export function batchSchema(maxEvents: number): object {
  return {
    type: "object",
    required: ["events"],
    additionalProperties: false,
    properties: { events: { type: "array", minItems: 1, maxItems: maxEvents, items: eventSchema } },
  };
}

const groupParam = { type: "string", minLength: 1, maxLength: 40, description: "Consumer group (1-40 of a-z 0-9 _ -)." } as const;
const messageIdText = { type: "string", pattern: "^[1-9][0-9]{0,18}$" } as const;

export const groupParams = { type: "object", required: ["group"], properties: { group: groupParam } } as const;
export const deadLetterParams = {
  type: "object",
  required: ["group", "id"],
  properties: { group: groupParam, id: { ...messageIdText, description: "Dead-letter id." } },
} as const;

export const deadLetterQuery = {
  type: "object",
  additionalProperties: false,
  properties: {
    limit: { type: "integer", minimum: 1, maximum: 1000, default: 100 },
    after: { ...messageIdText, description: "The previous page's nextAfter." },
    type: { type: "string", minLength: 1, maxLength: 255, description: "An event type or pattern (order.*, billing.**)." },
  },
} as const;

export const retryBodySchema = {
  type: "object",
  additionalProperties: false,
  description: "Either ids, or a filter (type, before); {} retries every dead letter of the group.",
  properties: {
    ids: { type: "array", minItems: 1, maxItems: 10_000, items: messageIdText },
    type: { type: "string", minLength: 1, maxLength: 255 },
    before: { type: "string", format: "date-time" },
  },
} as const;

export interface RetryBody {
  ids?: string[];
  type?: string;
  before?: string;
}

export const replayBodySchema = {
  type: "object",
  required: ["group", "from", "to"],
  additionalProperties: false,
  properties: {
    group: groupParam,
    from: { type: "string", format: "date-time", description: "Start of the window (inclusive)." },
    to: { type: "string", format: "date-time", description: "End of the window (exclusive)." },
    types: { type: "array", maxItems: 100, items: { type: "string", minLength: 1, maxLength: 255 } },
    dryRun: { type: "boolean", default: false },
    batchSize: { type: "integer", minimum: 1, maximum: 5000 },
  },
} as const;

export interface ReplayBody {
  group: string;
  from: string;
  to: string;
  types?: string[];
  dryRun?: boolean;
  batchSize?: number;
}

const nullableString = { type: ["string", "null"] } as const;
const nullableNumber = { type: ["number", "null"] } as const;

const deadLetterError = {
  type: "object",
  properties: { name: { type: "string" }, message: { type: "string" }, code: { type: "string" }, stack: { type: "string" } },
} as const;

const deadLetterSummaryProperties = {
  id: { type: "string" },
  eventId: nullableString,
  type: nullableString,
  error: deadLetterError,
  attempts: { type: "integer" },
  firstFailedAt: nullableString,
  lastFailedAt: nullableString,
  deadLetteredAt: { type: "string" },
  originalMessageId: nullableString,
  originalEnqueuedAt: nullableString,
} as const;

export const deadLetterPageSchema = {
  type: "object",
  properties: {
    items: { type: "array", items: { type: "object", properties: deadLetterSummaryProperties } },
    nextAfter: nullableString,
  },
} as const;

export const deadLetterSchema = {
  type: "object",
  properties: {
    ...deadLetterSummaryProperties,
    payload: { description: "The event's JSON payload." },
    headers: { type: "object", additionalProperties: { type: "string" } },
    emittedAt: nullableString,
    sourceNode: nullableString,
  },
} as const;

export const nodesSchema = {
  type: "object",
  properties: {
    namespace: { type: "string" },
    collectedAt: { type: "string" },
    nodes: {
      type: "array",
      items: {
        type: "object",
        properties: {
          nodeId: { type: "string" },
          displayName: { type: "string" },
          status: { type: "string", enum: ["alive", "stopped", "dead"] },
          alive: { type: "boolean" },
          startedAt: { type: "string" },
          lastHeartbeatAt: { type: "string" },
          heartbeatAgeSeconds: { type: "number" },
        },
      },
    },
  },
} as const;

export const queuesSchema = {
  type: "object",
  properties: {
    namespace: { type: "string" },
    collectedAt: { type: "string" },
    groups: {
      type: "array",
      items: {
        type: "object",
        properties: {
          group: { type: "string" },
          kind: { type: "string", enum: ["event", "request"] },
          queue: { type: "string" },
          queueLength: nullableNumber,
          visibleLength: nullableNumber,
          oldestMessageAgeSeconds: nullableNumber,
          deadLetterLength: nullableNumber,
          handled: { type: "number" },
          failed: { type: "number" },
          deadLettered: { type: "number" },
        },
      },
    },
  },
} as const;
