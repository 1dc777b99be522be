/**
 * One LISTEN connection per system, on channel `nexus:<namespace>`: emits NOTIFY the
 * name of each queue they fill, and the listener wakes that queue's consumers. The
 * connection is re-established with jittered exponential backoff when it is lost, and
 * every consumer is woken after a reconnect, since notifications sent meanwhile are gone.
 */
import pg from "pg";
import type { Logger } from "./logger.js";

/** What the listener calls back. */
export interface ListenerHandlers {
  /** A notification on the channel; `payload` is the queue name. */
  onNotification(payload: string): void;
  /** The connection came back after a loss: anything may have been missed. */
  onReconnected(): void;
}

const MIN_RETRY_MS = 100;
const MAX_RETRY_MS = 5_000;

/** A self-healing LISTEN connection. */
export class NotificationListener {
  readonly #connectionString: string;
  readonly #applicationName: string;
  readonly #channel: string;
  readonly #handlers: ListenerHandlers;
  readonly #logger: Logger;
  #client: pg.Client | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #closed = false;

  constructor(connectionString: string, applicationName: string, channel: string, handlers: ListenerHandlers, logger: Logger) {
    this.#connectionString = connectionString;
    this.#applicationName = applicationName;
    this.#channel = channel;
    this.#handlers = handlers;
    this.#logger = logger;
  }

  /** True while the LISTEN connection is up. */
  get connected(): boolean {
    return this.#client !== undefined;
  }

  /** Connects and listens; on failure keeps retrying in the background and rejects with the first error. */
  async start(): Promise<void> {
    try {
      await this.#connect();
    } catch (error) {
      this.#scheduleRetry();
      throw error;
    }
  }

  /** Ends the connection and stops retrying. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }

  async #connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#connectionString, application_name: this.#applicationName });
    client.on("notification", (message) => {
      if (message.channel === this.#channel && message.payload) this.#handlers.onNotification(message.payload);
    });
    client.on("error", (error) => this.#lost(client, error));
    client.on("end", () => this.#lost(client, new Error("connection ended")));
    try {
      await client.connect();
      await client.query(`listen ${client.escapeIdentifier(this.#channel)}`);
    } catch (error) {
      client.removeAllListeners("end");
      await client.end().catch(() => {});
      throw error;
    }
    if (this.#closed) {
      await client.end().catch(() => {});
      return;
    }
    this.#client = client;
    const wasReconnect = this.#failures > 0;
    this.#failures = 0;
    if (wasReconnect) {
      this.#logger.info({ channel: this.#channel }, "LISTEN connection re-established");
      this.#handlers.onReconnected();
    }
  }

  #lost(client: pg.Client, error: Error): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    client.removeAllListeners("end");
    client.end().catch(() => {});
    if (this.#closed) return;
    this.#logger.warn({ err: { message: error.message }, channel: this.#channel }, "LISTEN connection lost; reconnecting");
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retryTimer) return;
    this.#failures += 1;
    const delay = jitteredBackoff(this.#failures);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connect().catch((error: unknown) => {
        this.#logger.warn({ err: { message: (error as Error).message }, retryInMs: delay }, "LISTEN reconnect failed");
        this.#scheduleRetry();
      });
    }, delay);
    this.#retryTimer.unref();
  }
}

/** Exponential backoff from 100 ms to 5 s with full jitter, for reconnects (`failures` is 1-based). */
export function jitteredBackoff(failures: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_RETRY_MS, MIN_RETRY_MS * 2 ** (failures - 1));
  return Math.round(MIN_RETRY_MS / 2 + random() * (ceiling - MIN_RETRY_MS / 2));
}
