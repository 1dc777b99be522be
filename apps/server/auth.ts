/**
 * The admin token of routes that change state (retry, purge, replay). Without a token
 * configured those routes are disabled and answer 403 saying so; with one, a request
 * needs `Authorization: Bearer <token>`, else 401.
 *
 * Tokens are compared in constant time: both sides are hashed with SHA-256 first, so the
 * buffers given to `timingSafeEqual` always have the same length and neither the
 * token's length nor a matching prefix shows in the response time.
 */
import crypto from "node:crypto";
import type { FastifyRequest } from "fastify";
import { HttpError } from "./errors.js";

const BEARER = /^Bearer[ \t]+(.+?)[ \t]*$/i;

function digest(value: string): Buffer {
  return crypto.createHash("sha256").update(value, "utf8").digest();
}

/** Checks bearer tokens against one expected token. */
export class AdminToken {
  readonly #expected: Buffer | undefined;

  /** `token` undefined or empty: admin routes disabled. */
  constructor(token: string | undefined) {
    this.#expected = token ? digest(token) : undefined;
  }

  /** True when a token is configured. */
  get enabled(): boolean {
    return this.#expected !== undefined;
  }

  /** True when `presented` is the configured token (constant time). */
  matches(presented: string): boolean {
    if (!this.#expected) return false;
    return crypto.timingSafeEqual(this.#expected, digest(presented));
  }

  /** Throws the 403 or 401 a request without the right token gets. */
  authorize(request: FastifyRequest): void {
    if (!this.enabled) {
      throw new HttpError(
        403,
        "admin_disabled",
        "This route changes state and is disabled: the server was started without CORE_ADMIN_TOKEN. Set it, then send Authorization: Bearer <token>.",
      );
    }
    const header = request.headers.authorization;
    const presented = typeof header === "string" ? BEARER.exec(header)?.[1] : undefined;
    if (presented === undefined || !this.matches(presented)) {
      throw new HttpError(401, "unauthorized", "This route needs Authorization: Bearer <CORE_ADMIN_TOKEN>; the token is missing or wrong.", {
        "www-authenticate": 'Bearer realm="nexus-admin"',
      });
    }
  }
}
