/**
 * The client a handler gets: the consumer's transaction, with a savepoint taken before
 * the handler's first query, so a failing handler rolls back its own writes and nothing
 * else of the batch. A handler that never queries costs no savepoint. Once the handler
 * has finished or timed out, the client refuses further use.
 */
import type pg from "pg";
import { ClosedError, asError } from "../model/errors.js";

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
  #running: Promise<unknown> | undefined;
  #closedBecause: string | undefined;

  constructor(raw: pg.ClientBase) {
    this.#raw = raw;
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>> {
    if (this.#closedBecause) throw new ClosedError(`The handler's transaction client (${this.#closedBecause})`);
    this.#savepoint ??= this.#raw.query(`savepoint ${SAVEPOINT}`);
    await this.#savepoint;
    const running = typeof text === "string" ? this.#raw.query<R>(text, values) : this.#raw.query<R>(text);
    this.#running = running.catch(() => {});
    return running;
  }

  /** Refuses every later query; `reason` goes into the error they get. */
  close(reason: string): void {
    this.#closedBecause ??= reason;
  }

  /** Resolves when the last query the handler started has settled, or false after `timeoutMs`. */
  async settled(timeoutMs: number): Promise<boolean> {
    if (!this.#running) return true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const result = await Promise.race([this.#running.then(() => true as const), timedOut]);
    clearTimeout(timer);
    return result;
  }

  /** Ends the handler's use: keeps its writes or undoes them. Throws if the handler left the transaction aborted. */
  async finish(keep: boolean): Promise<void> {
    this.close("the handler has finished");
    if (!this.#savepoint) return;
    await this.#savepoint;
    await this.#running;
    await this.#raw.query(keep ? `release savepoint ${SAVEPOINT}` : `rollback to savepoint ${SAVEPOINT}`);
    if (!keep) await this.#raw.query(`release savepoint ${SAVEPOINT}`);
  }
}

/**
 * @internal The client of a handler on the direct path, which runs outside any
 * transaction: the first query opens one on a pooled connection, and {@link finish}
 * commits or rolls it back. A handler that never queries costs nothing.
 */
export class LazyTransactionClient implements HandlerClient {
  readonly #pool: pg.Pool;
  #client: Promise<pg.PoolClient> | undefined;
  #closedBecause: string | undefined;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>> {
    if (this.#closedBecause) throw new ClosedError(`The handler's transaction client (${this.#closedBecause})`);
    this.#client ??= this.#begin();
    const client = await this.#client;
    return typeof text === "string" ? client.query<R>(text, values) : client.query<R>(text);
  }

  /** Ends the handler's use: commits its writes or rolls them back, and returns the connection. */
  async finish(commit: boolean): Promise<void> {
    this.#closedBecause ??= "the handler has finished";
    const opening = this.#client;
    if (!opening) return;
    const client = await opening.catch(() => undefined);
    if (!client) return;
    try {
      await client.query(commit ? "commit" : "rollback");
      client.release();
    } catch (error) {
      client.release(asError(error));
      throw error;
    }
  }

  async #begin(): Promise<pg.PoolClient> {
    const client = await this.#pool.connect();
    try {
      await client.query("begin");
      return client;
    } catch (error) {
      client.release(asError(error));
      throw error;
    }
  }
}
