/**
 * Dead letters and replay. Reading dead letters is open like the other operation routes;
 * retry, purge and replay change state, so they need the admin token (see auth.ts) and
 * are rate-limited per client address, counted before the token is checked, so guessing
 * tokens is throttled too.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteShorthandOptions } from "fastify";
import type { RouteContext } from "../app.js";
import { HttpError } from "../errors.js";
import {
  deadLetterPageSchema,
  deadLetterParams,
  deadLetterQuery,
  deadLetterSchema,
  errorResponses,
  groupParams,
  replayBodySchema,
  retryBodySchema,
  type ReplayBody,
  type RetryBody,
} from "../schemas.js";

const READ_ERRORS = errorResponses(400, 404, 503);
const ADMIN_ERRORS = errorResponses(400, 401, 403, 404, 429, 503);

export function registerAdminRoutes(app: FastifyInstance, context: RouteContext): void {
  const { system } = context;
  const admin: RouteShorthandOptions = {
    config: { rateLimit: context.adminRateLimit },
    // Before the body is parsed: a request without the token costs no parsing.
    preParsing: async (request: FastifyRequest, _reply: FastifyReply, payload) => {
      context.token.authorize(request);
      return payload;
    },
  };
  const security = [{ adminToken: [] }];

  app.get<{ Params: { group: string }; Querystring: { limit?: number; after?: string; type?: string } }>(
    "/dead-letters/:group",
    {
      schema: {
        summary: "A page of a group's dead letters, oldest first (without payloads)",
        tags: ["dead letters"],
        params: groupParams,
        querystring: deadLetterQuery,
        response: { 200: deadLetterPageSchema, ...READ_ERRORS },
      },
    },
    (request) => system.deadLetters.list(request.params.group, request.query),
  );

  app.get<{ Params: { group: string; id: string } }>(
    "/dead-letters/:group/:id",
    {
      schema: {
        summary: "One dead letter in full: payload, headers, error with its stack",
        tags: ["dead letters"],
        params: deadLetterParams,
        response: { 200: deadLetterSchema, ...READ_ERRORS },
      },
    },
    async (request) => {
      const { group, id } = request.params;
      const letter = await system.deadLetters.get(group, id);
      if (!letter) throw new HttpError(404, "not_found", `Group ${group} has no dead letter ${id}.`);
      return letter;
    },
  );

  app.post<{ Params: { group: string }; Body: RetryBody }>(
    "/dead-letters/:group/retry",
    {
      ...admin,
      schema: {
        summary: "Move dead letters back to the group's queue (ids, or a filter; {} retries all)",
        tags: ["dead letters"],
        security,
        params: groupParams,
        body: retryBodySchema,
        response: { 200: { type: "object", properties: { retried: { type: "integer" } } }, ...ADMIN_ERRORS },
      },
    },
    async (request) => {
      const { ids, type, before } = request.body;
      if (ids && (type !== undefined || before !== undefined)) {
        throw new HttpError(400, "invalid_request", "Give either ids or a filter (type, before), not both.");
      }
      const selection = ids ?? { ...(type !== undefined ? { type } : {}), ...(before !== undefined ? { before } : {}) };
      return { retried: await system.deadLetters.retry(request.params.group, selection) };
    },
  );

  app.delete<{ Params: { group: string } }>(
    "/dead-letters/:group",
    {
      ...admin,
      schema: {
        summary: "Delete every dead letter of the group",
        tags: ["dead letters"],
        security,
        params: groupParams,
        response: { 200: { type: "object", properties: { purged: { type: "integer" } } }, ...ADMIN_ERRORS },
      },
    },
    async (request) => ({ purged: await system.deadLetters.purge(request.params.group) }),
  );

  app.post<{ Body: ReplayBody }>(
    "/replay",
    {
      ...admin,
      schema: {
        summary: "Re-enqueue the logged events of [from, to) to one group",
        tags: ["replay"],
        security,
        body: replayBodySchema,
        response: { 200: { type: "object", properties: { replayId: { type: "string" }, count: { type: "integer" } } }, ...ADMIN_ERRORS },
      },
    },
    (request) => system.replay(request.body),
  );
}
