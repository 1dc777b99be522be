/**
 * Publishing. Emits without a caller transaction that arrive in the same turn of the
 * event loop share one `core.emit` call and one commit (see coalescer.ts). Emits with a
 * caller's client run at once on that client, inside the caller's transaction.
 */
import { Coalescer } from "../db/coalescer.js";
import { emitEvents, emitStatement, type EmitOutcome, type EmitRow } from "./queries/emit.js";
import type { Queryable } from "../db/queryable.js";
import type { NamespaceContext } from "../model/context.js";

interface Emit {
  rows: EmitRow[];
  sourceNode: string | null;
}

/** Sends events through `core.emit`, coalescing concurrent emits. */
export class Publisher {
  readonly #db: Queryable;
  readonly #namespace: string;
  readonly #idempotencyWindowMs: number;
  readonly #toError: (error: unknown) => Error;
  readonly #coalescer: Coalescer<Emit, EmitOutcome[]>;

  constructor(context: NamespaceContext) {
    this.#db = context.pool;
    this.#namespace = context.namespace;
    this.#idempotencyWindowMs = context.limits.idempotencyWindowMs;
    this.#toError = (error) => context.toError(error, "emit");
    this.#coalescer = new Coalescer((emits) => this.#send(emits), (emit) => emit.rows.length);
  }

  /**
   * Publishes `rows` all-or-nothing and returns one outcome per row. With `client`, in
   * the caller's transaction; without, coalesced with other emits of this turn.
   */
  async publish(rows: EmitRow[], sourceNode: string | null, client?: Queryable): Promise<EmitOutcome[]> {
    try {
      if (client) return await emitEvents(client, this.#namespace, rows, sourceNode, this.#idempotencyWindowMs);
      return await this.#coalescer.add({ rows, sourceNode });
    } catch (error) {
      throw this.#toError(error);
    }
  }

  /** The statement publishing `rows`, for a caller that runs it on its own driver. */
  statement(rows: EmitRow[], sourceNode: string | null): { text: string; values: unknown[] } {
    return emitStatement(this.#namespace, rows, sourceNode, this.#idempotencyWindowMs);
  }

  /** One `core.emit` call per source node among the chunk's emits (nearly always one). */
  async #send(emits: Emit[]): Promise<EmitOutcome[][]> {
    const results = new Map<Emit, EmitOutcome[]>();
    const bySource = new Map<string | null, Emit[]>();
    for (const emit of emits) bySource.set(emit.sourceNode, [...(bySource.get(emit.sourceNode) ?? []), emit]);
    await Promise.all(
      [...bySource].map(async ([sourceNode, group]) => {
        const outcomes = await emitEvents(this.#db, this.#namespace, group.flatMap((emit) => emit.rows), sourceNode, this.#idempotencyWindowMs);
        let offset = 0;
        for (const emit of group) {
          results.set(emit, outcomes.slice(offset, offset + emit.rows.length));
          offset += emit.rows.length;
        }
      }),
    );
    return emits.map((emit) => results.get(emit)!);
  }
}
