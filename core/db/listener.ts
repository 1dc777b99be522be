/**
 * One LISTEN connection per system. Channels: `nexus:<namespace>` (queue wake-ups and
 * broadcasts) and `nexus:n:<node id>` for each node (replies, cancellations, node-queue
 * wake-ups). The connection is re-established with jittered exponential backoff when it
 * is lost; it then LISTENs on every channel again and reports the reconnect, since
 * notifications sent meanwhile are gone.
 */
import pg from "pg";
import type { Logger } from "../model/logger.js";
import { ConnectionError, asError } from "../model/errors.js";

/** Receives the notifications of one channel. */
export type NotificationHandler = (payload: string) => void;

const MIN_RETRY_MS = 100;
const MAX_RETRY_MS = 5_000;

/** A self-healing LISTEN connection. */
export class NotificationListener {
  readonly #connectionString: string;
  readonly #applicationName: string;
  readonly #onReconnected: () => void;
  readonly #logger: Logger;
  readonly #channels = new Map<string, NotificationHandler>();
  #client: pg.Client | undefined;
  /** LISTEN and UNLISTEN go one at a time: pg refuses overlapping queries on one client. */
  #commands: Promise<unknown> = Promise.resolve();
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #closed = false;

  constructor(connectionString: string, applicationName: string, onReconnected: () => void, logger: Logger) {
    this.#connectionString = connectionString;
    this.#applicationName = applicationName;
    this.#onReconnected = onReconnected;
    this.#logger = logger;
  }

  /** True while the LISTEN connection is up. */
  get connected(): boolean {
    return this.#client !== undefined;
  }

  /** Connects; on failure keeps retrying in the background and rejects with the first error. */
  async start(): Promise<void> {
    try {
      await this.#connect();
    } catch (error) {
      this.#scheduleRetry();
      throw error;
    }
  }

  /** Listens on `channel` (now, and again after every reconnect). */
  async listen(channel: string, handler: NotificationHandler): Promise<void> {
    this.#channels.set(channel, handler);
    await this.#command("listen", channel);
  }

  /** Stops listening on `channel`. */
  async unlisten(channel: string): Promise<void> {
    this.#channels.delete(channel);
    await this.#command("unlisten", channel).catch(() => {});
  }

  /** Runs LISTEN or UNLISTEN on the current connection, after the commands before it; none while disconnected. */
  #command(verb: "listen" | "unlisten", channel: string): Promise<void> {
    const run = this.#commands.then(async () => {
      const client = this.#client;
      if (client) await client.query(`${verb} ${client.escapeIdentifier(channel)}`);
    });
    this.#commands = run.catch(() => {});
    return run;
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
    client.on("notification", (message) => this.#channels.get(message.channel)?.(message.payload ?? ""));
    client.on("error", (error) => this.#lost(client, error));
    client.on("end", () => this.#lost(client, new ConnectionError("LISTEN connection ended")));
    try {
      await client.connect();
      for (const channel of this.#channels.keys()) await client.query(`listen ${client.escapeIdentifier(channel)}`);
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
      this.#logger.info("LISTEN connection re-established");
      this.#onReconnected();
    }
  }

  #lost(client: pg.Client, error: Error): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    client.removeAllListeners("end");
    client.end().catch(() => {});
    if (this.#closed) return;
    this.#logger.warn({ err: error }, "LISTEN connection lost; reconnecting");
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retryTimer) return;
    this.#failures += 1;
    const delay = jitteredBackoff(this.#failures);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connect().catch((error: unknown) => {
        this.#logger.warn({ err: asError(error), retryInMs: delay }, "LISTEN reconnect failed");
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
