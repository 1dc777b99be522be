/**
 * A dedicated (never pooled) connection that session state lives on: the LISTEN
 * channels of a system, the scheduler leader's advisory lock. It reports `connected` and
 * `lost`; with `reconnect`, a lost connection is re-established with jittered
 * exponential backoff, and `onConnect` runs again on each new connection before it counts
 * as connected (the listener re-LISTENs there). Without `reconnect`, the owner decides
 * when to `open` again (the scheduler contends for leadership on its own schedule).
 */
import { EventEmitter } from "node:events";
import pg from "pg";
import { ClosedError, ConnectionError } from "../model/errors.js";
import type { Logger } from "../model/logger.js";

const MIN_RETRY_MS = 100;
const MAX_RETRY_MS = 5_000;

/** Exponential backoff from 100 ms to 5 s with full jitter, for reconnects (`failures` is 1-based). */
export function jitteredBackoff(failures: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_RETRY_MS, MIN_RETRY_MS * 2 ** (failures - 1));
  return Math.round(MIN_RETRY_MS / 2 + random() * (ceiling - MIN_RETRY_MS / 2));
}

/** What a {@link DedicatedConnection} needs. */
export interface DedicatedConnectionOptions {
  connectionString: string;
  /** `application_name`, shown in `pg_stat_activity`. */
  applicationName: string;
  /** Names the connection in logs: "LISTEN", "scheduler". */
  purpose: string;
  logger: Logger;
  /** Re-establish a lost connection with backoff until closed (default false). */
  reconnect?: boolean;
  /** Runs on every new connection before it counts as connected (e.g. LISTEN again). */
  onConnect?: (client: pg.Client) => Promise<void>;
  /** Receives the notifications of the connection. */
  onNotification?: (channel: string, payload: string) => void;
}

/** Events of a {@link DedicatedConnection}. */
export interface DedicatedConnectionEvents {
  /** A connection is up; `reconnected` is true after a loss. */
  connected: [reconnected: boolean];
  /** The connection was lost (not by `close`). */
  lost: [error: Error];
}

/** One session connection, reconnecting if asked; see the module comment. */
export class DedicatedConnection extends EventEmitter<DedicatedConnectionEvents> {
  readonly #options: DedicatedConnectionOptions;
  #client: pg.Client | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #wasLost = false;
  #closed = false;

  constructor(options: DedicatedConnectionOptions) {
    super();
    this.#options = options;
  }

  /** The connection while it is up. */
  get client(): pg.Client | undefined {
    return this.#client;
  }

  /** True while the connection is up. */
  get connected(): boolean {
    return this.#client !== undefined;
  }

  /**
   * Connects (a no-op while connected) and resolves to the client. On failure it rejects
   * with the error and, with `reconnect`, keeps retrying in the background.
   */
  async open(): Promise<pg.Client> {
    this.#closed = false;
    if (this.#client) return this.#client;
    try {
      return await this.#connect();
    } catch (error) {
      if (this.#options.reconnect) this.#scheduleRetry();
      throw error;
    }
  }

  /** Ends the connection (and what lives on it) and stops retrying. `open` may follow. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const client = this.#client;
    this.#client = undefined;
    if (!client) return;
    client.removeAllListeners("end");
    await client.end().catch(() => {});
  }

  async #connect(): Promise<pg.Client> {
    const { connectionString, applicationName, onConnect, onNotification } = this.#options;
    const client = new pg.Client({ connectionString, application_name: applicationName, keepAlive: true });
    if (onNotification) client.on("notification", (message) => onNotification(message.channel, message.payload ?? ""));
    client.on("error", (error) => this.#lost(client, error));
    client.on("end", () => this.#lost(client, new ConnectionError(`the ${this.#options.purpose} connection ended`)));
    try {
      await client.connect();
      await onConnect?.(client);
    } catch (error) {
      client.removeAllListeners("end");
      await client.end().catch(() => {});
      throw error;
    }
    if (this.#closed && this.#options.reconnect) {
      await client.end().catch(() => {});
      throw new ClosedError(`the ${this.#options.purpose} connection`);
    }
    this.#client = client;
    this.#failures = 0;
    const reconnected = this.#wasLost;
    this.#wasLost = false;
    if (reconnected) this.#options.logger.info({ connection: this.#options.purpose }, "connection re-established");
    this.emit("connected", reconnected);
    return client;
  }

  #lost(client: pg.Client, error: Error): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    client.removeAllListeners("end");
    client.end().catch(() => {});
    if (this.#closed) return;
    this.#wasLost = true;
    this.emit("lost", error);
    if (!this.#options.reconnect) return; // the owner decides what follows, and logs it
    this.#options.logger.warn({ err: error, connection: this.#options.purpose }, "connection lost; reconnecting");
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retryTimer) return;
    this.#failures += 1;
    this.#wasLost = true;
    const delay = jitteredBackoff(this.#failures);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connect().catch((error: unknown) => {
        if (this.#closed) return;
        this.#options.logger.warn({ err: error, connection: this.#options.purpose, retryInMs: delay }, "reconnect failed");
        this.#scheduleRetry();
      });
    }, delay);
    this.#retryTimer.unref();
  }
}
