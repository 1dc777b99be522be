/**
 * `QueueEvents`: BullMQ's global events of a queue, from the core's broadcasts (NOTIFY):
 * `completed` ({ jobId, returnvalue }), `failed` ({ jobId, failedReason }), `progress`
 * ({ jobId, data }). Like BullMQ's, only events after it connected are seen.
 */
import { EventEmitter } from "node:events";
import type { CoreSystem } from "../../core/index.js";
import { Connection, assertKnownOptions, assertQueueName, type ConnectionOptions } from "./options.js";

/** Options of {@link QueueEvents}. */
export interface QueueEventsOptions {
  /** The core's connection options or a connected `CoreSystem`. */
  connection: ConnectionOptions;
  /** The namespace (default `bull`). */
  prefix?: string;
  /** Start listening on construction (default true); else call `run()`. */
  autorun?: boolean;
}

interface Broadcast {
  event: "completed" | "failed" | "progress";
  jobs?: { jobId: string; returnvalue?: unknown; failedReason?: string }[];
  jobId?: string;
  data?: unknown;
}

/** A queue's events across processes, as BullMQ's `QueueEvents`. */
export class QueueEvents extends EventEmitter {
  /** The queue's name. */
  readonly name: string;
  /** Resolves to the connected system. */
  readonly ready: Promise<CoreSystem>;
  readonly #connection: Connection;
  #unsubscribe: (() => void) | null = null;
  #listening: Promise<void> | null = null;

  constructor(name: string, opts: QueueEventsOptions) {
    super();
    assertQueueName(name);
    assertKnownOptions(opts, new Set(["connection", "prefix", "autorun"]), "opts");
    this.name = name;
    this.#connection = new Connection(opts.connection, opts.prefix);
    this.ready = this.#connection.ready;
    if (opts.autorun !== false) void this.run().catch((error: unknown) => this.emit("error", error));
  }

  /** Starts listening; resolves once listening. */
  run(): Promise<void> {
    this.#listening ??= this.ready.then((system) => {
      this.#unsubscribe = system.onBroadcast(`bullmq.${this.name}.events`, (payload) => this.#deliver(payload as Broadcast));
    });
    return this.#listening;
  }

  /** Resolves once listening. */
  async waitUntilReady(): Promise<void> {
    await this.run();
  }

  #deliver(message: Broadcast): void {
    if (message.event === "progress") {
      this.emit("progress", { jobId: message.jobId, data: message.data });
      return;
    }
    for (const job of message.jobs ?? []) {
      if (message.event === "completed") this.emit("completed", { jobId: job.jobId, returnvalue: job.returnvalue });
      else this.emit("failed", { jobId: job.jobId, failedReason: job.failedReason });
    }
  }

  /** Stops listening and closes the connection it opened. */
  async close(): Promise<void> {
    this.#unsubscribe?.();
    await this.#connection.close();
  }
}
