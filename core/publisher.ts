/**
 * Publishing. Emits without a caller transaction that arrive in the same turn of the
 * event loop share one `core.emit` call and one commit: on this kind of machine a
 * durable commit costs ~0.4 ms, so a hundred concurrent emits cost one commit instead of
 * a hundred (DESIGN.md, performance model). Emits with a caller's client run at once on
 * that client, inside the caller's transaction.
 */
import { emitEvents, emitStatement, type EmitOutcome, type EmitRow } from "./queries/emit.js";
import type { Queryable } from "./queries/queryable.js";

/** Events flushed in one call at most; more wait for the next flush. */
const MAX_EVENTS_PER_FLUSH = 500;

interface PendingEmit {
  rows: EmitRow[];
  sourceNode: string | null;
  resolve: (outcomes: EmitOutcome[]) => void;
  reject: (error: unknown) => void;
}

/** Sends events through `core.emit`, coalescing concurrent emits. */
export class Publisher {
  readonly #db: Queryable;
  readonly #namespace: string;
  readonly #idempotencyWindowMs: number;
  readonly #toError: (error: unknown) => Error;
  #pending: PendingEmit[] = [];
  #flushScheduled = false;

  constructor(db: Queryable, namespace: string, idempotencyWindowMs: number, toError: (error: unknown) => Error) {
    this.#db = db;
    this.#namespace = namespace;
    this.#idempotencyWindowMs = idempotencyWindowMs;
    this.#toError = toError;
  }

  /**
   * Publishes `rows` all-or-nothing and returns one outcome per row. With `client`, in
   * the caller's transaction; without, coalesced with other emits of this turn.
   */
  publish(rows: EmitRow[], sourceNode: string | null, client?: Queryable): Promise<EmitOutcome[]> {
    if (client) {
      return emitEvents(client, this.#namespace, rows, sourceNode, this.#idempotencyWindowMs).catch((error: unknown) => {
        throw this.#toError(error);
      });
    }
    return new Promise((resolve, reject) => {
      this.#pending.push({ rows, sourceNode, resolve, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /** The statement publishing `rows`, for a caller that runs it on its own driver. */
  statement(rows: EmitRow[], sourceNode: string | null): { text: string; values: unknown[] } {
    return emitStatement(this.#namespace, rows, sourceNode, this.#idempotencyWindowMs);
  }

  #flush(): void {
    this.#flushScheduled = false;
    while (this.#pending.length > 0) {
      const batch = this.#takeBatch();
      void this.#send(batch);
    }
  }

  #takeBatch(): PendingEmit[] {
    let count = 0;
    let take = 0;
    while (take < this.#pending.length && (take === 0 || count + this.#pending[take]!.rows.length <= MAX_EVENTS_PER_FLUSH)) {
      count += this.#pending[take]!.rows.length;
      take += 1;
    }
    return this.#pending.splice(0, take);
  }

  async #send(batch: PendingEmit[]): Promise<void> {
    // One source node per call: group the batch by it (nearly always a single group).
    const bySource = new Map<string | null, PendingEmit[]>();
    for (const pending of batch) bySource.set(pending.sourceNode, [...(bySource.get(pending.sourceNode) ?? []), pending]);
    await Promise.all(
      [...bySource].map(async ([sourceNode, emits]) => {
        try {
          const outcomes = await emitEvents(this.#db, this.#namespace, emits.flatMap((emit) => emit.rows), sourceNode, this.#idempotencyWindowMs);
          let offset = 0;
          for (const emit of emits) {
            emit.resolve(outcomes.slice(offset, offset + emit.rows.length));
            offset += emit.rows.length;
          }
        } catch (error) {
          const wrapped = this.#toError(error);
          for (const emit of emits) emit.reject(wrapped);
        }
      }),
    );
  }
}
