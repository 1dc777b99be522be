/**
 * The consumer's hot statements on one queue's table, named so that each connection
 * prepares them once, instead of pgmq's functions. `pgmq.read` and `pgmq.delete` (in the
 * extension and in the compatible SQL alike) build their statement as text at every call,
 * so PostgreSQL parses and plans it every time: about 0.3 ms of server time per read here,
 * against 0.06 ms for the statement itself (bench/RESULTS.md, issue 16's profile).
 *
 * The table is named by `core.queue_table` (the rule pgmq and the compatible SQL share)
 * and quoted as an identifier: the statements' text holds no value, only that name.
 * Columns used are those of every pgmq release the project supports; `last_read_at`
 * (pgmq 1.10+ and the compatible SQL) is kept current where the table has it.
 */
import { createHash } from "node:crypto";
import pg from "pg";
import type { Queryable } from "../../db/queryable.js";
import type { NodeMessage } from "../../requests/queries/send-to-node.js";

/** A queue message as the consumer reads it. */
export interface QueueMessage {
  /** pgmq's message id (a bigint, as a string). */
  msgId: string;
  /** How many times the message has been read, this read included: the attempt number. */
  readCount: number;
  enqueuedAt: Date;
  /** The database's clock when the message was read. */
  readAt: Date;
  /** This process's clock (performance.now()) when the read returned: with readAt, the database's time later on. */
  receivedAt: number;
  /** The event envelope `{ id, type, payload, headers, emittedAt, sourceNode }`. */
  message: unknown;
}

/** What a consumer's batch transaction settles before it commits. */
export interface BatchSettlement {
  /** Handled messages to delete. */
  acked: string[];
  /** Messages read but not started (the consumer is stopping), to make visible again uncounted. */
  released: string[];
  /** Follow-up messages (requests' replies) that leave when the batch commits. */
  outbound: NodeMessage[];
}

interface ReadRow {
  msg_id: string;
  read_ct: number;
  enqueued_at: Date;
  read_at: Date;
  message: unknown;
}

/** One queue's table and the statements a consumer runs on it. */
export class QueueTable {
  readonly queue: string;
  readonly #read: { name: string; text: string };
  readonly #take: { name: string; text: string };
  readonly #lock: { name: string; text: string };
  readonly #settle: { name: string; text: string };

  private constructor(queue: string, table: string, hasLastReadAt: boolean) {
    this.queue = queue;
    const qualified = `pgmq.${pg.escapeIdentifier(table)}`;
    // Statement names are per connection and must not clash between queues (a name
    // prepared once keeps its text): the table's digest tells them apart within 63 bytes.
    const digest = createHash("sha1").update(table).digest("hex").slice(0, 16);
    this.#read = {
      name: `nexus_read_${digest}`,
      // Reads as pgmq.read does (visible messages in id order, skipping those another
      // transaction holds; each hidden for the visibility timeout, its read counted), with
      // an asynchronous commit: a read lost in a server crash loses only a read count and
      // a visibility timeout. read_at is the database's clock at the read.
      text: `with picked as (
               select msg_id from ${qualified}
                where vt <= clock_timestamp()
                order by msg_id
                limit $2
                  for update skip locked
             ), hidden as (
               update ${qualified} as q
                  set vt = clock_timestamp() + make_interval(secs => $1::integer),
                      read_ct = q.read_ct + 1${hasLastReadAt ? ",\n                      last_read_at = clock_timestamp()" : ""}
                 from picked
                where q.msg_id = picked.msg_id
               returning q.msg_id, q.read_ct, q.enqueued_at, q.vt - make_interval(secs => $1::integer) as read_at, q.message
             )
             select msg_id, read_ct, enqueued_at, read_at, message, set_config('synchronous_commit', 'off', true) as async
               from hidden
              order by msg_id`,
    };
    this.#take = {
      name: `nexus_take_${digest}`,
      // The read of a consumer that settles every message in the transaction that reads it
      // (requests): the row locks alone keep other readers away (they skip locked rows) until
      // that transaction ends, and a rollback (a crash) leaves the message visible at once.
      // It writes nothing: no new row version per read, half the churn of the read above,
      // which is what 8 readers of one queue contend on. The attempt it reports (read_ct + 1)
      // is not stored.
      text: `select msg_id, read_ct + 1 as read_ct, enqueued_at, clock_timestamp() as read_at, message
               from ${qualified}
              where vt <= clock_timestamp()
              order by msg_id
              limit $1
                for update skip locked`,
    };
    this.#lock = {
      name: `nexus_lock_${digest}`,
      // Locks exactly the messages this consumer read, identified by (msg_id, read_ct), so
      // that no other consumer reads them (reads skip locked rows) even after their
      // visibility timeout passes. It waits rather than skips: a concurrent read whose
      // snapshot still saw a message as visible can hold that row's lock for the rest of its
      // short statement, and skipping would strand the message until its visibility
      // timeout. A message another consumer has read since has a higher read_ct and is left
      // out without waiting.
      text: `select q.msg_id
               from ${qualified} q
               join unnest($1::bigint[], $2::integer[]) as mine(msg_id, read_ct)
                 on q.msg_id = mine.msg_id and q.read_ct = mine.read_ct
              order by q.msg_id
                for update of q`,
    };
    this.#settle = {
      name: `nexus_settle_${digest}`,
      // core.settle_batch in one statement: acknowledge (delete the messages and their
      // failure records), give back what was read but not started (visible at once, the
      // read uncounted) and send the follow-ups (core.send_to_nodes), all in the batch's
      // transaction.
      text: `with acked as (
               delete from ${qualified} where msg_id = any($1::bigint[]) returning msg_id
             ), forgotten as (
               delete from core.message_failures where queue_name = $3 and msg_id = any($1::bigint[])
             ), released as (
               update ${qualified} set vt = clock_timestamp(), read_ct = greatest(read_ct - 1, 0)
                where msg_id = any($2::bigint[])
               returning msg_id
             ), sent as (
               select core.send_to_nodes($4::jsonb) as messages where jsonb_array_length($4::jsonb) > 0
             )
             select (select count(*) from acked) as acked, (select count(*) from released) as released, (select messages from sent) as sent`,
    };
  }

  /**
   * The table of `queue`, checked to exist.
   * @throws Error naming the queue when it has no table (the group or node was dropped).
   */
  static async of(db: Queryable, queue: string): Promise<QueueTable> {
    const { rows } = await db.query<{ table: string; exists: boolean; has_last_read_at: boolean }>({
      name: "nexus_queue_table",
      text: `select t.name as table, to_regclass(format('pgmq.%I', t.name)) is not null as exists,
                    exists (select 1 from pg_attribute
                             where attrelid = to_regclass(format('pgmq.%I', t.name))
                               and attname = 'last_read_at' and not attisdropped) as has_last_read_at
               from core.queue_table($1) as t(name)`,
      values: [queue],
    });
    const row = rows[0];
    if (!row?.exists) throw new Error(`Queue ${queue} has no table in schema pgmq (was its group or node dropped?)`);
    return new QueueTable(queue, row.table, row.has_last_read_at);
  }

  /** Reads up to `quantity` messages, invisible to others for `visibilitySeconds`. */
  async read(db: Queryable, visibilitySeconds: number, quantity: number): Promise<QueueMessage[]> {
    const { rows } = await db.query<ReadRow>({ ...this.#read, values: [visibilitySeconds, quantity] });
    return this.#messages(rows);
  }

  #messages(rows: ReadRow[]): QueueMessage[] {
    const receivedAt = performance.now();
    return rows.map((row) => ({
      msgId: row.msg_id,
      readCount: row.read_ct,
      enqueuedAt: row.enqueued_at,
      readAt: row.read_at,
      receivedAt,
      message: row.message,
    }));
  }

  /**
   * Takes up to `quantity` visible messages for the current transaction (row locks, no
   * write): for a consumer that settles (deletes) every one of them before it commits.
   */
  async take(db: Queryable, quantity: number): Promise<QueueMessage[]> {
    const { rows } = await db.query<ReadRow>({ ...this.#take, values: [quantity] });
    return this.#messages(rows);
  }

  /**
   * Locks, for the current transaction, the messages read earlier (by id and read count);
   * resolves to the ids it locked. The wait is bounded by a `lock_timeout` of 5 s set for
   * this statement alone (55P03 then fails the batch, to be retried); on a pipelining
   * connection the three statements cost one round trip.
   */
  async lock(client: pg.ClientBase, messages: { msgId: string; readCount: number }[]): Promise<Set<string>> {
    const [, { rows }] = await Promise.all([
      client.query("set local lock_timeout = '5s'"),
      client.query<{ msg_id: string }>({ ...this.#lock, values: [messages.map((message) => message.msgId), messages.map((message) => message.readCount)] }),
      client.query("set local lock_timeout to default"),
    ]);
    return new Set(rows.map((row) => row.msg_id));
  }

  /** Settles a batch in one statement; a no-op without a statement when there is nothing to do. */
  async settle(db: Queryable, settlement: BatchSettlement): Promise<void> {
    const { acked, released, outbound } = settlement;
    if (acked.length === 0 && released.length === 0 && outbound.length === 0) return;
    await db.query({ ...this.#settle, values: [acked, released, this.queue, JSON.stringify(outbound)] });
  }
}
