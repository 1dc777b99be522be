/**
 * One LISTEN connection per system. Channels: `nexus:<namespace>` (queue wake-ups and
 * broadcasts) and `nexus:n:<node id>` for each node (replies, cancellations, node-queue
 * wake-ups). It is a reconnecting {@link DedicatedConnection}: after a reconnect it
 * LISTENs on every channel again and reports the reconnect, since notifications sent
 * meanwhile are gone.
 */
import type pg from "pg";
import type { Logger } from "../model/logger.js";
import { DedicatedConnection } from "./dedicated-connection.js";

/** Receives the notifications of one channel. */
export type NotificationHandler = (payload: string) => void;

/** A self-healing LISTEN connection. */
export class NotificationListener {
  /** The connection; its `connected` and `lost` events tell the system's status. */
  readonly connection: DedicatedConnection;
  readonly #channels = new Map<string, NotificationHandler>();
  /** LISTEN and UNLISTEN go one at a time: pg refuses overlapping queries on one client. */
  #commands: Promise<unknown> = Promise.resolve();

  constructor(connectionString: string, applicationName: string, onReconnected: () => void, logger: Logger) {
    this.connection = new DedicatedConnection({
      connectionString,
      applicationName,
      purpose: "LISTEN",
      logger,
      reconnect: true,
      onConnect: (client) => this.#listenAll(client),
      onNotification: (channel, payload) => this.#channels.get(channel)?.(payload),
    });
    this.connection.on("connected", (reconnected) => {
      if (reconnected) onReconnected();
    });
  }

  /** True while the LISTEN connection is up. */
  get connected(): boolean {
    return this.connection.connected;
  }

  /** Connects; on failure keeps retrying in the background and rejects with the first error. */
  async start(): Promise<void> {
    await this.connection.open();
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

  /** Ends the connection and stops retrying. */
  close(): Promise<void> {
    return this.connection.close();
  }

  async #listenAll(client: pg.Client): Promise<void> {
    for (const channel of this.#channels.keys()) await client.query(`listen ${client.escapeIdentifier(channel)}`);
  }

  /** Runs LISTEN or UNLISTEN on the current connection, after the commands before it; none while disconnected. */
  #command(verb: "listen" | "unlisten", channel: string): Promise<void> {
    const run = this.#commands.then(async () => {
      const client = this.connection.client;
      if (client) await client.query(`${verb} ${client.escapeIdentifier(channel)}`);
    });
    this.#commands = run.catch(() => {});
    return run;
  }
}
