/**
 * The pgmq-compatible SQL (sql/000003_pgmq_compat.sql) on a database of its own, checked
 * against the results pgmq 1.13 documents and its regression tests expect
 * (pgmq-extension/test/sql/base.sql and expected/base.out). The file is applied by hand,
 * in one transaction, so that these tests need nothing but the SQL itself.
 */
import { readFile } from "node:fs/promises";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createScratchDatabase, type ScratchDatabase } from "../support/database.js";

/** A row of pgmq.message_record as node-postgres returns it (bigint as text). */
interface MessageRow {
  msg_id: string;
  read_ct: number;
  enqueued_at: Date;
  last_read_at: Date | null;
  vt: Date;
  message: unknown;
  headers: unknown;
}

interface MetricsRow {
  queue_name: string;
  queue_length: string;
  newest_msg_age_sec: number | null;
  oldest_msg_age_sec: number | null;
  total_messages: string;
  scrape_time: Date;
  queue_visible_length: string;
  default_partition_length: string | null;
}

const INVALID_CHARACTERS = "queue name contains invalid characters: $, ;, --, or \\'";
const TOO_LONG = "queue name is too long, maximum length is 47 characters";

let database: ScratchDatabase;
let client: pg.Client;
let other: pg.Client;
const notices: string[] = [];

async function connect(): Promise<pg.Client> {
  const connection = new pg.Client({ connectionString: database.url });
  await connection.connect();
  return connection;
}

async function rows<T extends pg.QueryResultRow>(sql: string, params: unknown[] = [], on: pg.Client = client): Promise<T[]> {
  return (await on.query<T>(sql, params)).rows;
}

/** The message ids of rows, as numbers. */
function ids(result: Array<{ msg_id: string } | Record<string, string>>, column = "msg_id"): number[] {
  return result.map((row) => Number((row as Record<string, string>)[column]));
}

async function createQueue(name: string): Promise<void> {
  await client.query("select pgmq.create($1)", [name]);
}

async function send(queue: string, message: unknown): Promise<number> {
  const [row] = await rows<{ send: string }>("select * from pgmq.send($1, $2::jsonb)", [queue, JSON.stringify(message)]);
  return Number(row!.send);
}

async function read(queue: string, vt: number, qty: number, on: pg.Client = client): Promise<MessageRow[]> {
  return rows<MessageRow>("select * from pgmq.read($1, $2::integer, $3::integer)", [queue, vt, qty], on);
}

async function errorOf(promise: Promise<unknown>): Promise<{ message: string; code?: string }> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, "the statement should have failed").toBeInstanceOf(Error);
  return error as { message: string; code?: string };
}

beforeAll(async () => {
  database = await createScratchDatabase("pgmq_compat");
  const sql = await readFile(new URL("../../sql/000003_pgmq_compat.sql", import.meta.url), "utf8");
  client = await connect();
  client.on("notice", (notice) => notices.push(notice.message ?? ""));
  await client.query("begin");
  await client.query(sql);
  await client.query("commit");
  other = await connect();
});

afterAll(async () => {
  await client?.end();
  await other?.end();
  await database?.drop();
});

describe("pgmq-compatible SQL: schema", () => {
  it("starts with the migration runner's directive and creates pgmq's catalogue table and types", async () => {
    const sql = await readFile(new URL("../../sql/000003_pgmq_compat.sql", import.meta.url), "utf8");
    expect(sql.split("\n", 1)[0]).toBe("-- nexus:skip-if-extension pgmq");

    const meta = await rows<{ column_name: string; data_type: string; is_nullable: string }>(
      `select column_name, data_type, is_nullable from information_schema.columns
        where table_schema = 'pgmq' and table_name = 'meta' order by ordinal_position`,
    );
    expect(meta).toEqual([
      { column_name: "queue_name", data_type: "character varying", is_nullable: "NO" },
      { column_name: "is_partitioned", data_type: "boolean", is_nullable: "NO" },
      { column_name: "is_unlogged", data_type: "boolean", is_nullable: "NO" },
      { column_name: "created_at", data_type: "timestamp with time zone", is_nullable: "NO" },
    ]);

    const attributes = async (type: string): Promise<string[]> =>
      (
        await rows<{ attribute: string }>(
          `select a.attname || ' ' || format_type(a.atttypid, a.atttypmod) as attribute
             from pg_attribute a join pg_type t on t.typrelid = a.attrelid
            where t.oid = $1::regtype and a.attnum > 0 order by a.attnum`,
          [type],
        )
      ).map((row) => row.attribute);
    expect(await attributes("pgmq.message_record")).toEqual([
      "msg_id bigint",
      "read_ct integer",
      "enqueued_at timestamp with time zone",
      "last_read_at timestamp with time zone",
      "vt timestamp with time zone",
      "message jsonb",
      "headers jsonb",
    ]);
    expect(await attributes("pgmq.queue_record")).toEqual([
      "queue_name character varying",
      "is_partitioned boolean",
      "is_unlogged boolean",
      "created_at timestamp with time zone",
    ]);
    expect(await attributes("pgmq.metrics_result")).toEqual([
      "queue_name text",
      "queue_length bigint",
      "newest_msg_age_sec integer",
      "oldest_msg_age_sec integer",
      "total_messages bigint",
      "scrape_time timestamp with time zone",
      "queue_visible_length bigint",
      "default_partition_length bigint",
    ]);
  });

  it("has pgmq 1.13's function signatures", async () => {
    const signatures = (
      await rows<{ signature: string }>(
        `select p.proname || '(' || pg_get_function_arguments(p.oid) || ') -> ' || pg_get_function_result(p.oid) as signature
           from pg_proc p where p.pronamespace = 'pgmq'::regnamespace and p.proname not like '\\_%'`,
      )
    ).map((row) => row.signature);
    expect(signatures).toEqual(
      expect.arrayContaining([
        "create(queue_name text) -> void",
        "create_non_partitioned(queue_name text) -> void",
        "create_unlogged(queue_name text) -> void",
        "send(queue_name text, msg jsonb) -> SETOF bigint",
        "send(queue_name text, msg jsonb, headers jsonb) -> SETOF bigint",
        "send(queue_name text, msg jsonb, delay integer) -> SETOF bigint",
        "send(queue_name text, msg jsonb, delay timestamp with time zone) -> SETOF bigint",
        "send(queue_name text, msg jsonb, headers jsonb, delay integer) -> SETOF bigint",
        "send(queue_name text, msg jsonb, headers jsonb, delay timestamp with time zone) -> SETOF bigint",
        "send_batch(queue_name text, msgs jsonb[]) -> SETOF bigint",
        "send_batch(queue_name text, msgs jsonb[], headers jsonb[]) -> SETOF bigint",
        "send_batch(queue_name text, msgs jsonb[], delay integer) -> SETOF bigint",
        "send_batch(queue_name text, msgs jsonb[], delay timestamp with time zone) -> SETOF bigint",
        "send_batch(queue_name text, msgs jsonb[], headers jsonb[], delay integer) -> SETOF bigint",
        "send_batch(queue_name text, msgs jsonb[], headers jsonb[], delay timestamp with time zone) -> SETOF bigint",
        "read(queue_name text, vt integer, qty integer, conditional jsonb DEFAULT '{}'::jsonb) -> SETOF pgmq.message_record",
        "read_with_poll(queue_name text, vt integer, qty integer, max_poll_seconds integer DEFAULT 5, poll_interval_ms integer DEFAULT 100, conditional jsonb DEFAULT '{}'::jsonb) -> SETOF pgmq.message_record",
        "pop(queue_name text, qty integer DEFAULT 1) -> SETOF pgmq.message_record",
        "delete(queue_name text, msg_id bigint) -> boolean",
        "delete(queue_name text, msg_ids bigint[]) -> SETOF bigint",
        "archive(queue_name text, msg_id bigint) -> boolean",
        "archive(queue_name text, msg_ids bigint[]) -> SETOF bigint",
        "set_vt(queue_name text, msg_id bigint, vt integer) -> SETOF pgmq.message_record",
        "set_vt(queue_name text, msg_ids bigint[], vt timestamp with time zone) -> SETOF pgmq.message_record",
        "purge_queue(queue_name text) -> bigint",
        "drop_queue(queue_name text) -> boolean",
        "metrics(queue_name text) -> pgmq.metrics_result",
        "metrics_all() -> SETOF pgmq.metrics_result",
        "list_queues() -> SETOF pgmq.queue_record",
        "format_table_name(queue_name text, prefix text) -> text",
        "validate_queue_name(queue_name text) -> void",
      ]),
    );
  });
});

describe("pgmq-compatible SQL: queues", () => {
  it("create makes the queue table, its archive, pgmq's indexes and a meta row, and is idempotent", async () => {
    await createQueue("test_default_queue");
    notices.length = 0;
    await createQueue("test_default_queue");
    expect(notices).toEqual([
      'relation "q_test_default_queue" already exists, skipping',
      'relation "a_test_default_queue" already exists, skipping',
      'relation "q_test_default_queue_vt_idx" already exists, skipping',
      'relation "archived_at_idx_test_default_queue" already exists, skipping',
    ]);

    const queues = await rows<{ queue_name: string; is_partitioned: boolean; is_unlogged: boolean; created_at: Date }>(
      "select * from pgmq.list_queues() where queue_name = 'test_default_queue'",
    );
    expect(queues).toHaveLength(1);
    expect(queues[0]).toMatchObject({ queue_name: "test_default_queue", is_partitioned: false, is_unlogged: false });
    expect(queues[0]!.created_at).toBeInstanceOf(Date);

    const columns = await rows<{ table_name: string; columns: string }>(
      `select table_name, string_agg(column_name, ',' order by ordinal_position) as columns
         from information_schema.columns where table_schema = 'pgmq' and table_name in ('q_test_default_queue', 'a_test_default_queue')
        group by table_name order by table_name`,
    );
    expect(columns).toEqual([
      { table_name: "a_test_default_queue", columns: "msg_id,read_ct,enqueued_at,last_read_at,archived_at,vt,message,headers" },
      { table_name: "q_test_default_queue", columns: "msg_id,read_ct,enqueued_at,last_read_at,vt,message,headers" },
    ]);
    const indexes = await rows<{ indexname: string; indexdef: string }>(
      "select indexname, indexdef from pg_indexes where schemaname = 'pgmq' and tablename like '%test_default_queue' order by indexname",
    );
    expect(indexes.map((index) => index.indexname)).toEqual([
      "a_test_default_queue_pkey",
      "archived_at_idx_test_default_queue",
      "q_test_default_queue_pkey",
      "q_test_default_queue_vt_idx",
    ]);
    expect(indexes[1]!.indexdef).toContain("(archived_at)");
    expect(indexes[3]!.indexdef).toContain("(vt)");
    const [identity] = await rows<{ is_identity: string; identity_generation: string }>(
      `select is_identity, identity_generation from information_schema.columns
        where table_schema = 'pgmq' and table_name = 'q_test_default_queue' and column_name = 'msg_id'`,
    );
    expect(identity).toEqual({ is_identity: "YES", identity_generation: "ALWAYS" });
  });

  it("create_unlogged makes an unlogged queue table and says so in list_queues", async () => {
    await client.query("select pgmq.create_unlogged('test_unlogged_queue')");
    const [queue] = await rows<{ is_unlogged: boolean }>("select is_unlogged from pgmq.list_queues() where queue_name = 'test_unlogged_queue'");
    expect(queue!.is_unlogged).toBe(true);
    const persistence = await rows<{ relname: string; relpersistence: string }>(
      "select relname, relpersistence from pg_class where relnamespace = 'pgmq'::regnamespace and relname in ('q_test_unlogged_queue', 'a_test_unlogged_queue') order by relname",
    );
    expect(persistence).toEqual([
      { relname: "a_test_unlogged_queue", relpersistence: "p" },
      { relname: "q_test_unlogged_queue", relpersistence: "u" },
    ]);
    await client.query(`select * from pgmq.send('test_unlogged_queue', '{"hello": "world"}', '{"header": 1}'::jsonb)`);
    const [row] = await rows<{ msg_id: string; read_ct: number; enqueued_in_future: boolean; vt_in_future: boolean; message: unknown; headers: unknown }>(
      `select msg_id, read_ct, enqueued_at > now() as enqueued_in_future, vt > now() as vt_in_future, message, headers
         from pgmq.read('test_unlogged_queue', 2, 1)`,
    );
    expect(row).toEqual({ msg_id: "1", read_ct: 1, enqueued_in_future: false, vt_in_future: true, message: { hello: "world" }, headers: { header: 1 } });
  });

  it("a queue created in a transaction that rolls back leaves nothing behind", async () => {
    await client.query("begin");
    await createQueue("transaction_test_queue");
    await client.query("rollback");
    expect(await rows("select 1 from pg_tables where schemaname = 'pgmq' and tablename = 'q_transaction_test_queue'")).toEqual([]);
    expect(await rows("select 1 from pgmq.meta where queue_name = 'transaction_test_queue'")).toEqual([]);
  });

  it("queue names: at most 47 characters, no $ ; -- or quote, lower-cased table names", async () => {
    expect((await errorOf(createQueue("a".repeat(48)))).message).toBe(TOO_LONG);
    await createQueue("a".repeat(47));
    expect((await errorOf(client.query("select pgmq.create_non_partitioned($1)", ["b".repeat(48)]))).message).toBe(TOO_LONG);

    const [valid] = await rows<{ q: string; a: string; u: string; cased: string }>(
      `select pgmq.format_table_name('cat', 'q') as q, pgmq.format_table_name('cat-dog', 'a') as a,
              pgmq.format_table_name('cat_dog', 'q') as u, pgmq.format_table_name('MyQueue', 'q') as cased`,
    );
    expect(valid).toEqual({ q: "q_cat", a: "a_cat-dog", u: "q_cat_dog", cased: "q_myqueue" });
    for (const name of ["dollar$fail", "double--hyphen-fail", "semicolon;fail", "single'quote-fail"]) {
      expect((await errorOf(client.query("select pgmq.format_table_name($1, 'a')", [name]))).message).toBe(INVALID_CHARACTERS);
    }
    expect((await errorOf(createQueue("dollar$-signed"))).message).toBe(INVALID_CHARACTERS);

    // pgmq's "failed SQL injection attack": the name is refused before any SQL is built.
    await createQueue("abc");
    const attack = "abc where false;\n     create table public.attack_vector(id int);\n     delete from pgmq.q_abc";
    expect((await errorOf(client.query("select pgmq.delete($1, 1)", [attack]))).message).toBe(INVALID_CHARACTERS);
    expect(await rows("select to_regclass('public.attack_vector') as t")).toEqual([{ t: null }]);

    // Hyphens and capitals work; the table name is lower-cased, meta keeps the spelling.
    for (const name of ["queue-hyphened", "QueueCased"]) {
      await createQueue(name);
      expect(await send(name, { hello: "world" })).toBe(1);
      expect(await rows("select msg_id, read_ct, message from pgmq.read($1, 1, 1)", [name])).toEqual([
        { msg_id: "1", read_ct: 1, message: { hello: "world" } },
      ]);
      expect(await rows("select pgmq.archive($1, 1::bigint) as archived", [name])).toEqual([{ archived: true }]);
    }
    expect(await rows("select to_regclass('pgmq.q_queuecased') is not null as exists")).toEqual([{ exists: true }]);
    expect(await rows("select queue_name from pgmq.meta where lower(queue_name) = 'queuecased'")).toEqual([{ queue_name: "QueueCased" }]);
  });

  it("drop_queue drops both tables and the meta row; true for a queue, false with a notice otherwise", async () => {
    await createQueue("exists");
    await send("exists", { a: 1 });
    expect(await rows("select pgmq.drop_queue('exists') as dropped")).toEqual([{ dropped: true }]);
    expect(await rows("select to_regclass('pgmq.q_exists') as q, to_regclass('pgmq.a_exists') as a")).toEqual([{ q: null, a: null }]);
    expect(await rows("select 1 from pgmq.list_queues() where queue_name = 'exists'")).toEqual([]);

    notices.length = 0;
    expect(await rows("select pgmq.drop_queue('does_not_exist') as dropped")).toEqual([{ dropped: false }]);
    expect(notices).toEqual(["pgmq queue `does_not_exist` does not exist"]);

    await createQueue("old_style_drop");
    notices.length = 0;
    expect(await rows("select pgmq.drop_queue('old_style_drop', false) as dropped")).toEqual([{ dropped: true }]);
    expect(notices).toEqual([
      "drop_queue(queue_name, partitioned) is deprecated and will be removed in PGMQ v2.0. Use drop_queue(queue_name) instead",
    ]);
    expect(await rows("select to_regclass('pgmq.q_old_style_drop') as q")).toEqual([{ q: null }]);
  });

  it("create_partitioned refuses clearly: partitioned queues need the extension", async () => {
    const error = await errorOf(client.query("select pgmq.create_partitioned('parts')"));
    expect(error.code).toBe("0A000");
    expect(await rows("select to_regclass('pgmq.q_parts') as q")).toEqual([{ q: null }]);
  });
});

describe("pgmq-compatible SQL: sending", () => {
  it("send returns ids in sequence and stores headers; a NULL message is allowed", async () => {
    await createQueue("send_queue");
    expect(await send("send_queue", { hello: "world" })).toBe(1);
    const [withHeaders] = await rows<{ send: string }>(
      "select * from pgmq.send('send_queue', $1::jsonb, $2::jsonb)",
      [JSON.stringify({ hello: "world" }), JSON.stringify({ trace_id: "abc123" })],
    );
    expect(withHeaders!.send).toBe("2");
    await client.query("select pgmq.send('send_queue', null)");
    const messages = await read("send_queue", 30, 10);
    expect(messages.map(({ msg_id, message, headers }) => ({ msg_id, message, headers }))).toEqual([
      { msg_id: "1", message: { hello: "world" }, headers: null },
      { msg_id: "2", message: { hello: "world" }, headers: { trace_id: "abc123" } },
      { msg_id: "3", message: null, headers: null },
    ]);
  });

  it("a delayed message (integer seconds or a timestamp) cannot be read before its delay", async () => {
    await createQueue("delay_queue");
    await client.query(`select pgmq.send('delay_queue', '{"n": 1}', 1)`);
    await client.query(`select pgmq.send('delay_queue', '{"n": 2}', clock_timestamp() + interval '1 second')`);
    await client.query(`select pgmq.send('delay_queue', '{"n": 3}', '{"h": 3}'::jsonb, 1)`);
    await client.query(`select pgmq.send('delay_queue', '{"n": 4}', '{"h": 4}'::jsonb, clock_timestamp() + interval '1 second')`);
    expect(await read("delay_queue", 30, 10)).toEqual([]);
    const stored = await rows<{ delayed: boolean }>(
      "select vt - enqueued_at >= interval '0.9 seconds' as delayed from pgmq.q_delay_queue order by msg_id",
    );
    expect(stored).toEqual([{ delayed: true }, { delayed: true }, { delayed: true }, { delayed: true }]);

    await sleep(1_100);
    const messages = await read("delay_queue", 30, 10);
    expect(messages.map(({ message, headers }) => ({ message, headers }))).toEqual([
      { message: { n: 1 }, headers: null },
      { message: { n: 2 }, headers: null },
      { message: { n: 3 }, headers: { h: 3 } },
      { message: { n: 4 }, headers: { h: 4 } },
    ]);
  });

  it("send_batch returns the ids in the order of the messages, with their headers", async () => {
    await createQueue("batch_queue");
    const batch = await rows<{ send_batch: string }>("select * from pgmq.send_batch('batch_queue', $1::jsonb[], $2::jsonb[])", [
      [{ hello: "world_0" }, { hello: "world_1" }, { hello: "world_2" }],
      [{ header: 1 }, null, { header: 3 }],
    ]);
    expect(ids(batch, "send_batch")).toEqual([1, 2, 3]);
    expect(await rows("select msg_id, message, headers from pgmq.read('batch_queue', 0, 3)")).toEqual([
      { msg_id: "1", message: { hello: "world_0" }, headers: { header: 1 } },
      { msg_id: "2", message: { hello: "world_1" }, headers: null },
      { msg_id: "3", message: { hello: "world_2" }, headers: { header: 3 } },
    ]);
    const plain = await rows<{ send_batch: string }>("select * from pgmq.send_batch('batch_queue', $1::jsonb[])", [["4", "5"]]);
    expect(ids(plain, "send_batch")).toEqual([4, 5]);
  });

  it("send_batch with a delay hides the whole batch; it validates its arrays", async () => {
    await createQueue("batch_delay_queue");
    const delayed = await rows<{ send_batch: string }>("select * from pgmq.send_batch('batch_delay_queue', array['1', '2']::jsonb[], 10)");
    expect(ids(delayed, "send_batch")).toEqual([1, 2]);
    const stamped = await rows<{ send_batch: string }>(
      "select * from pgmq.send_batch('batch_delay_queue', array['3']::jsonb[], array['{\"h\": 1}']::jsonb[], clock_timestamp() + interval '10 seconds')",
    );
    expect(ids(stamped, "send_batch")).toEqual([3]);
    expect(await read("batch_delay_queue", 30, 10)).toEqual([]);

    const mismatch = await errorOf(
      client.query(`select pgmq.send_batch('batch_delay_queue', array['{"msg": 1}', '{"msg": 2}']::jsonb[],
                    array['{"header": 1}', '{"header": 2}', '{"header": 3}']::jsonb[])`),
    );
    expect(mismatch.message).toBe("headers array length (3) must match msgs array length (2)");
    expect((await errorOf(client.query("select pgmq.send_batch('batch_delay_queue', array[]::jsonb[])"))).message).toBe(
      "msgs cannot be NULL or empty",
    );
    expect(
      (await errorOf(client.query("select pgmq.send_batch('batch_delay_queue', array['1']::jsonb[], array[]::jsonb[])"))).message,
    ).toBe("headers array length (0) must match msgs array length (1)");
  });
});

describe("pgmq-compatible SQL: reading", () => {
  it("read hides a message for vt seconds, counts reads and sets last_read_at", async () => {
    await createQueue("vt_queue");
    await send("vt_queue", { n: 1 });
    await send("vt_queue", { n: 2 });

    const [first] = await read("vt_queue", 1, 1);
    expect(first).toMatchObject({ msg_id: "1", read_ct: 1, message: { n: 1 } });
    expect(first!.last_read_at).toBeInstanceOf(Date);
    const hiddenFor = first!.vt.getTime() - first!.last_read_at!.getTime();
    expect(hiddenFor).toBeGreaterThanOrEqual(990);
    expect(hiddenFor).toBeLessThanOrEqual(1_010);
    expect(first!.last_read_at!.getTime()).toBeGreaterThanOrEqual(first!.enqueued_at.getTime());

    // Invisible until vt: the next read gets the other message, then nothing.
    expect(ids(await read("vt_queue", 1, 5))).toEqual([2]);
    expect(await read("vt_queue", 1, 5)).toEqual([]);

    await sleep(1_100);
    const again = await read("vt_queue", 30, 5);
    expect(again.map(({ msg_id, read_ct }) => ({ msg_id, read_ct }))).toEqual([
      { msg_id: "1", read_ct: 2 },
      { msg_id: "2", read_ct: 2 },
    ]);
    expect(again[0]!.last_read_at!.getTime()).toBeGreaterThan(first!.last_read_at!.getTime());
  });

  it("read respects qty and msg_id order; vt 0 leaves the message visible; conditional filters by containment", async () => {
    await createQueue("test_read_queue");
    for (const n of [1, 2, 3]) await send("test_read_queue", { hello: n === 2 ? "world_1" : "world_0" });
    expect(ids(await read("test_read_queue", 0, 1))).toEqual([1]);
    expect(ids(await read("test_read_queue", 0, 1))).toEqual([1]);
    expect(ids(await read("test_read_queue", 0, 2))).toEqual([1, 2]);
    const filtered = await rows<MessageRow>(`select * from pgmq.read('test_read_queue', 30, 5, '{"hello": "world_1"}')`);
    expect(ids(filtered)).toEqual([2]);
    expect(ids(await read("test_read_queue", 30, 5))).toEqual([1, 3]);
  });

  it("read with a timestamp vt keeps the message hidden until that time", async () => {
    await createQueue("read_at_queue");
    await send("read_at_queue", { n: 1 });
    const [row] = await rows<MessageRow & { exact: boolean }>(
      `select *, vt = timestamptz '2100-01-01 00:00:00+00' as exact from pgmq.read('read_at_queue', timestamptz '2100-01-01 00:00:00+00', 1)`,
    );
    expect(row).toMatchObject({ msg_id: "1", read_ct: 1, exact: true });
  });

  it("read_with_poll returns a message that arrives while it waits", async () => {
    await createQueue("poll_queue");
    const started = performance.now();
    const polling = rows<MessageRow>("select * from pgmq.read_with_poll('poll_queue', 30, 1, 2, 50)");
    await sleep(300);
    await other.query(`select pgmq.send('poll_queue', '{"late": true}')`);
    const result = await polling;
    const waited = performance.now() - started;
    expect(result.map(({ msg_id, read_ct, message }) => ({ msg_id, read_ct, message }))).toEqual([
      { msg_id: "1", read_ct: 1, message: { late: true } },
    ]);
    expect(result[0]!.last_read_at).toBeInstanceOf(Date);
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(1_500);
  });

  it("read_with_poll returns nothing once max_poll_seconds have passed", async () => {
    await createQueue("empty_poll_queue");
    const started = performance.now();
    expect(await rows("select * from pgmq.read_with_poll('empty_poll_queue', 30, 1, 1, 100)")).toEqual([]);
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(950);
    expect(waited).toBeLessThan(1_600);
  });

  it("read_with_poll waits for a hidden message to become visible again (set_vt)", async () => {
    await createQueue("poll_vt_queue");
    await send("poll_vt_queue", { hello: "world" });
    await client.query("select pgmq.set_vt('poll_vt_queue', 1::bigint, 1)");
    expect(await read("poll_vt_queue", 2, 1)).toEqual([]);
    const started = performance.now();
    const result = await rows<MessageRow>(`select * from pgmq.read_with_poll('poll_vt_queue', 10, 1, 2, 100, '{"hello": "world"}')`);
    expect(ids(result)).toEqual([1]);
    expect(performance.now() - started).toBeGreaterThan(500);
  });

  it("pop returns and deletes the oldest visible messages, qty of them; nothing from an empty queue", async () => {
    await createQueue("test_pop_queue");
    expect(await rows("select * from pgmq.pop('test_pop_queue')")).toEqual([]);
    for (const n of [1, 2, 3]) await send("test_pop_queue", n);
    await read("test_pop_queue", 0, 1);

    const [popped] = await rows<MessageRow>("select * from pgmq.pop('test_pop_queue')");
    expect(popped).toMatchObject({ msg_id: "1", read_ct: 1, message: 1 });
    expect(popped!.last_read_at).toBeInstanceOf(Date);
    const rest = await rows<MessageRow>("select * from pgmq.pop('test_pop_queue', 10)");
    expect(ids(rest)).toEqual([2, 3]);
    expect(rest[0]!.last_read_at).toBeNull();
    expect(await rows("select count(*)::int as n from pgmq.q_test_pop_queue")).toEqual([{ n: 0 }]);

    for (const n of [4, 5, 6]) await send("test_pop_queue", n);
    expect(ids(await rows("select * from pgmq.pop('test_pop_queue', 3)"))).toEqual([4, 5, 6]);
  });

  it("two concurrent readers in two connections never get the same message (FOR UPDATE SKIP LOCKED)", async () => {
    await createQueue("skip_locked_queue");
    await client.query("select pgmq.send_batch('skip_locked_queue', array(select to_jsonb(n) from generate_series(1, 6) n))");

    // A holds its messages in an open transaction; B does not wait for them, it skips them.
    await other.query("set statement_timeout = '2s'");
    let heldByA: number[];
    let readByB: number[];
    await client.query("begin");
    try {
      heldByA = ids(await read("skip_locked_queue", 30, 3));
      readByB = ids(await rows<MessageRow>("select * from pgmq.read('skip_locked_queue', 30, 3)", [], other));
      await client.query("commit");
    } catch (error) {
      await client.query("rollback");
      throw error;
    }
    expect(heldByA).toEqual([1, 2, 3]);
    expect(readByB).toEqual([4, 5, 6]);

    // Many reads racing from both connections: every message goes to exactly one reader.
    await client.query("select pgmq.send_batch('skip_locked_queue', array(select to_jsonb(n) from generate_series(1, 60) n))");
    const drain = async (on: pg.Client): Promise<number[]> => {
      const got: number[] = [];
      for (;;) {
        const batch = ids(await rows<MessageRow>("select * from pgmq.read('skip_locked_queue', 30, 2)", [], on));
        if (batch.length === 0) return got;
        got.push(...batch);
      }
    };
    const [a, b] = await Promise.all([drain(client), drain(other)]);
    await other.query("reset statement_timeout");
    const all = [...a, ...b].sort((x, y) => x - y);
    expect(all).toEqual(Array.from({ length: 60 }, (_, i) => i + 7));
  });
});

describe("pgmq-compatible SQL: settling", () => {
  it("delete: true/false for one id; the ids that existed for an array", async () => {
    await createQueue("delete_queue");
    await client.query("select pgmq.send_batch('delete_queue', array['1','2','3','4','5','6']::jsonb[])");
    expect(await rows("select pgmq.delete('delete_queue', 5::bigint) as deleted")).toEqual([{ deleted: true }]);
    expect(await rows("select pgmq.delete('delete_queue', 5::bigint) as deleted")).toEqual([{ deleted: false }]);
    expect(ids(await rows("select * from pgmq.delete('delete_queue', array[2, 3]::bigint[])"), "delete")).toEqual([2, 3]);
    expect(ids(await rows("select * from pgmq.delete('delete_queue', array[6, 999]::bigint[])"), "delete")).toEqual([6]);
    expect(ids(await rows("select msg_id from pgmq.q_delete_queue order by msg_id"))).toEqual([1, 4]);
  });

  it("archive moves messages to the a_ table with archived_at, keeping body, headers and counters", async () => {
    await createQueue("archive_queue");
    expect(await rows("select count(*)::int as n from pgmq.a_archive_queue")).toEqual([{ n: 0 }]);
    await client.query(`select pgmq.send('archive_queue', '0', '{"headers": 1}'::jsonb)`);
    await send("archive_queue", 0);
    await read("archive_queue", 0, 1);

    expect(ids(await rows("select * from pgmq.archive('archive_queue', array[1, 2]::bigint[])"), "archive")).toEqual([1, 2]);
    expect(await rows("select count(*)::int as n from pgmq.q_archive_queue")).toEqual([{ n: 0 }]);
    await send("archive_queue", 0);
    expect(await rows("select * from pgmq.archive('archive_queue', 3::bigint)")).toEqual([{ archive: true }]);
    expect(await rows("select * from pgmq.archive('archive_queue', 3::bigint)")).toEqual([{ archive: false }]);
    await send("archive_queue", 0);
    expect(ids(await rows("select * from pgmq.archive('archive_queue', array[4, 999]::bigint[])"), "archive")).toEqual([4]);

    const archived = await rows<{ msg_id: string; message: unknown; headers: unknown; read_ct: number; read: boolean; stamped: boolean }>(
      `select msg_id, message, headers, read_ct, last_read_at is not null as read, archived_at >= enqueued_at as stamped
         from pgmq.a_archive_queue order by msg_id`,
    );
    expect(archived).toEqual([
      { msg_id: "1", message: 0, headers: { headers: 1 }, read_ct: 1, read: true, stamped: true },
      { msg_id: "2", message: 0, headers: null, read_ct: 0, read: false, stamped: true },
      { msg_id: "3", message: 0, headers: null, read_ct: 0, read: false, stamped: true },
      { msg_id: "4", message: 0, headers: null, read_ct: 0, read: false, stamped: true },
    ]);
  });

  it("set_vt hides or shows messages (seconds or a timestamp, one id or many) and returns them", async () => {
    await createQueue("test_set_vt_queue");
    expect(await rows("select * from pgmq.set_vt('test_set_vt_queue', 9999::bigint, 0)")).toEqual([]);
    await send("test_set_vt_queue", 0);

    const [hidden] = await rows<MessageRow & { later: boolean }>(
      "select *, vt > clock_timestamp() + interval '99 seconds' as later from pgmq.set_vt('test_set_vt_queue', 1::bigint, 100)",
    );
    expect(hidden).toMatchObject({ msg_id: "1", read_ct: 0, last_read_at: null, later: true });
    expect(await read("test_set_vt_queue", 1, 1)).toEqual([]);
    expect(ids(await rows("select * from pgmq.set_vt('test_set_vt_queue', 1::bigint, 0)"))).toEqual([1]);
    expect(ids(await read("test_set_vt_queue", 1, 1))).toEqual([1]);

    const future = "2100-01-01T00:00:00.000Z";
    const [stamped] = await rows<MessageRow>("select * from pgmq.set_vt('test_set_vt_queue', 1::bigint, $1::timestamptz)", [future]);
    expect(stamped!.vt.toISOString()).toBe(future);
    expect(stamped!.last_read_at).toBeInstanceOf(Date);
    expect(await read("test_set_vt_queue", 1, 1)).toEqual([]);

    await send("test_set_vt_queue", 0);
    const many = await rows<MessageRow>("select * from pgmq.set_vt('test_set_vt_queue', array[1, 2, 99]::bigint[], 0)");
    expect(ids(many)).toEqual([1, 2]);
    expect(ids(await read("test_set_vt_queue", 1, 5))).toEqual([1, 2]);
    const manyStamped = await rows<MessageRow>("select * from pgmq.set_vt('test_set_vt_queue', array[1, 2]::bigint[], $1::timestamptz)", [future]);
    expect(manyStamped.map((row) => row.vt.toISOString())).toEqual([future, future]);
    expect(ids(await rows("select * from pgmq.set_vt('test_set_vt_queue', array[1, 2]::bigint[], 100)"))).toEqual([1, 2]);
    expect(await read("test_set_vt_queue", 1, 5)).toEqual([]);
  });

  it("purge_queue deletes every message, returns the count and leaves the archive", async () => {
    await createQueue("test_purge_queue");
    await client.query("select pgmq.send_batch('test_purge_queue', array['0','0','0','0','0','0']::jsonb[])");
    await client.query("select pgmq.archive('test_purge_queue', 6::bigint)");
    expect(await rows("select * from pgmq.purge_queue('test_purge_queue')")).toEqual([{ purge_queue: "5" }]);
    expect(await rows("select count(*)::int as n from pgmq.q_test_purge_queue")).toEqual([{ n: 0 }]);
    expect(await rows("select count(*)::int as n from pgmq.a_test_purge_queue")).toEqual([{ n: 1 }]);
    expect(await send("test_purge_queue", 0)).toBe(7);
  });
});

describe("pgmq-compatible SQL: metrics", () => {
  it("metrics counts messages, visible messages and all messages ever sent, and measures ages", async () => {
    await createQueue("test_metrics_queue");
    const [empty] = await rows<MetricsRow>("select * from pgmq.metrics('test_metrics_queue')");
    expect(empty).toMatchObject({
      queue_name: "test_metrics_queue",
      queue_length: "0",
      newest_msg_age_sec: null,
      oldest_msg_age_sec: null,
      total_messages: "0",
      queue_visible_length: "0",
      default_partition_length: null,
    });

    await client.query("select pgmq.send_batch('test_metrics_queue', array['1', '2', '3', '4', '5']::jsonb[])");
    await client.query("select pgmq.send_batch('test_metrics_queue', array['6', '7']::jsonb[], 10)");
    await client.query("select pgmq.archive('test_metrics_queue', 1::bigint)");
    const [metrics] = await rows<MetricsRow>("select * from pgmq.metrics('test_metrics_queue')");
    expect(metrics).toMatchObject({
      queue_name: "test_metrics_queue",
      queue_length: "6",
      newest_msg_age_sec: 0,
      oldest_msg_age_sec: 0,
      total_messages: "7",
      queue_visible_length: "4",
      default_partition_length: null,
    });
    expect(metrics!.scrape_time).toBeInstanceOf(Date);

    await client.query("update pgmq.q_test_metrics_queue set enqueued_at = now() - interval '100 seconds' where msg_id = 2");
    const [aged] = await rows<MetricsRow>("select * from pgmq.metrics('test_metrics_queue')");
    expect(aged).toMatchObject({ oldest_msg_age_sec: 100, newest_msg_age_sec: 0 });
  });

  it("metrics_all has one row per queue of list_queues", async () => {
    const queues = (await rows<{ queue_name: string }>("select queue_name from pgmq.list_queues()")).map((row) => row.queue_name);
    const all = await rows<MetricsRow>("select * from pgmq.metrics_all()");
    expect(all.map((row) => row.queue_name).sort()).toEqual([...queues].sort());
    expect(all.find((row) => row.queue_name === "test_metrics_queue")).toMatchObject({ queue_length: "6", total_messages: "7" });
  });
});
