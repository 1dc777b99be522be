/**
 * The client a handler gets: the consumer's transaction, with a savepoint taken before
 * the handler's first query, so a failing handler rolls back its own writes and nothing
 * else of the batch. A handler that never queries costs no savepoint.
 */
import type pg from "pg";
import { ClosedError } from "./errors.js";

const SAVEPOINT = "nexus_handler";

/** The query surface of a handler's transaction (node-postgres' `query`). */
export interface HandlerClient {
  /** Runs a statement inside the handler's transaction. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** @internal The consumer's side of a {@link HandlerClient}. */
export class SavepointClient implements HandlerClient {
  readonly #raw: pg.ClientBase;
  #savepoint: Promise<unknown> | undefined;
  #closed = false;

  constructor(raw: pg.ClientBase) {
    this.#raw = raw;
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>> {
    if (this.#closed) throw new ClosedError("The handler's transaction client (the handler has finished or timed out)");
    this.#savepoint ??= this.#raw.query(`savepoint ${SAVEPOINT}`);
    await this.#savepoint;
    return typeof text === "string" ? this.#raw.query<R>(text, values) : this.#raw.query<R>(text);
  }

  /** Ends the handler's use: keeps its writes (`commit`) or undoes them. Throws if the handler left the transaction aborted. */
  async finish(keep: boolean): Promise<void> {
    this.#closed = true;
    if (!this.#savepoint) return;
    await this.#savepoint;
    await this.#raw.query(keep ? `release savepoint ${SAVEPOINT}` : `rollback to savepoint ${SAVEPOINT}`);
    if (!keep) await this.#raw.query(`release savepoint ${SAVEPOINT}`);
  }
}
