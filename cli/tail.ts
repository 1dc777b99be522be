/**
 * Follows `core.event_log` for one namespace: the events logged after the tail started,
 * in (emitted_at, id) order, optionally only those matching a pattern.
 *
 * Waking: the LISTEN connection on `nexus:<namespace>` (emits NOTIFY there when they
 * wake a group's queue), and a poll as the fallback, since an event no group subscribes
 * to, or a delayed one, notifies no one.
 *
 * The cursor: `emitted_at` is taken at insert time, so a transaction can commit after a
 * later one and its rows appear behind the cursor. Each read therefore starts a grace
 * window before the newest event seen, skips the ids already printed, and then pages
 * forward by (emitted_at, id). Times stay in PostgreSQL's text form (microseconds), never
 * a JS Date (milliseconds), so the keyset is exact.
 */
import type pg from "pg";
import type { Logger } from "pino";
import { NotificationListener } from "../core/internal.js";
import { APPLICATION_NAME } from "./context.js";

/** One logged event, as the tail prints it. */
export interface TailedEvent {
  id: string;
  type: string;
  payload: unknown;
  headers: Record<string, string>;
  emittedAt: string;
  sourceNode: string | null;
}

export interface TailOptions {
  pool: pg.Pool;
  connectionString: string;
  namespace: string;
  /** Only events whose type matches (`*` one segment, `**` one or more); null for all. */
  pattern: string | null;
  logger: Logger;
  /** Milliseconds between reads when no NOTIFY arrives. */
  pollIntervalMs?: number;
  /** How far behind the newest event seen each read looks again, for late commits. */
  graceMs?: number;
}

interface Row {
  id: string;
  type: string;
  payload: unknown;
  headers: Record<string, string>;
  emitted_at: Date;
  position: string;
  source_node: string | null;
}

const PAGE_SIZE = 500;
const NIL_UUID = "00000000-0000-0000-0000-000000000000";

// $1 namespace, $2/$3 the keyset to read after, $4 the pattern (null: every type),
// $5 page size, $6 the newest time seen and $7 the grace window in ms (first page of a
// read: start the window before the newest time seen; later pages: $6 is null, and
// greatest() ignores it).
const READ_EVENTS = `
select id::text, type, payload, headers, emitted_at, emitted_at::text as position, source_node::text
  from core.event_log
 where namespace = $1
   and (emitted_at, id) > (greatest($2::timestamptz, $6::timestamptz - make_interval(secs => $7::double precision / 1000)), $3::uuid)
   and ($4::text is null or type ~ core.pattern_regex($4))
 order by emitted_at, id
 limit $5`;

export class EventTail {
  readonly #options: Required<TailOptions>;
  readonly #listener: NotificationListener;
  /** Ids printed within the grace window, by their emitted_at in ms (for pruning). */
  readonly #seen = new Map<string, number>();
  #start = "";
  #newest: string | null = null;
  #wakeSleeper: (() => void) | undefined;
  /** A wake-up that came while reading: the next sleep returns at once. */
  #woken = false;
  #stopped = false;

  constructor(options: TailOptions) {
    this.#options = { pollIntervalMs: 1_000, graceMs: 2_000, ...options };
    this.#listener = new NotificationListener(options.connectionString, `${APPLICATION_NAME}-listen`, () => this.#wake(), options.logger);
  }

  /** Starts listening and fixes the starting point: events logged from now on. */
  async open(): Promise<void> {
    await this.#listener.listen(`nexus:${this.#options.namespace}`, () => this.#wake());
    await this.#listener.start();
    const { rows } = await this.#options.pool.query<{ now: string }>("select clock_timestamp()::text as now");
    this.#start = rows[0]!.now;
  }

  /** Calls `onEvent` for each new event, in order, until {@link stop} or `onEvent` returns false. */
  async run(onEvent: (event: TailedEvent) => boolean): Promise<void> {
    while (!this.#stopped) {
      for (const event of await this.#readNew()) {
        if (this.#stopped) return;
        if (!onEvent(event)) return;
      }
      await this.#sleep();
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#wake();
  }

  async close(): Promise<void> {
    this.stop();
    await this.#listener.close();
  }

  async #readNew(): Promise<TailedEvent[]> {
    const events: TailedEvent[] = [];
    const { pool, namespace, pattern, graceMs } = this.#options;
    let after = { position: this.#start, id: NIL_UUID };
    let newest: string | null = this.#newest;
    for (;;) {
      const { rows } = await pool.query<Row>(READ_EVENTS, [namespace, after.position, after.id, pattern, PAGE_SIZE, newest, graceMs]);
      for (const row of rows) {
        if (this.#seen.has(row.id)) continue;
        this.#seen.set(row.id, row.emitted_at.getTime());
        events.push({ id: row.id, type: row.type, payload: row.payload, headers: row.headers, emittedAt: row.emitted_at.toISOString(), sourceNode: row.source_node });
      }
      const last = rows.at(-1);
      if (last) {
        after = { position: last.position, id: last.id };
        this.#newest = last.position;
        this.#prune(last.emitted_at.getTime() - graceMs - 1_000);
      }
      if (rows.length < PAGE_SIZE) return events;
      newest = null;
    }
  }

  #prune(before: number): void {
    for (const [id, at] of this.#seen) if (at < before) this.#seen.delete(id);
  }

  #wake(): void {
    if (this.#wakeSleeper) this.#wakeSleeper();
    else this.#woken = true;
  }

  #sleep(): Promise<void> {
    if (this.#woken || this.#stopped) {
      this.#woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wakeSleeper = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.#options.pollIntervalMs);
      this.#wakeSleeper = done;
    });
  }
}
