-- nexus:skip-if-extension pgmq
--
-- Migration 3: pgmq-compatible SQL, for databases where the pgmq extension is missing.
--
-- What this is. The project keeps its queues in pgmq (github.com/pgmq/pgmq). Where the
-- server offers the extension, migration 2 creates it and the migration runner records
-- this file as applied without running it (the directive on line 1). Everywhere else this
-- file creates, in schema `pgmq`, the objects the project uses from pgmq 1.13, with the
-- same names, argument names and types, defaults, return types and results, so that the
-- same SQL works against either. It was written from pgmq's documentation
-- (pgmq.github.io/pgmq, release 1.13.0) and from the results its regression tests expect
-- (pgmq-extension/test/expected/base.out); it is not a copy of pgmq's source.
--
-- What it creates:
--   table  pgmq.meta                    one row per queue, as pgmq has it
--   types  pgmq.message_record, pgmq.queue_record, pgmq.metrics_result (1.13 layout)
--   per queue, made by create(): pgmq.q_<name> (the queue) and pgmq.a_<name> (its archive),
--          with pgmq's columns and indexes (<q table>_vt_idx, archived_at_idx_<name>)
--   functions
--     queues   create, create_non_partitioned, create_unlogged, create_partitioned (refuses),
--              drop_queue (and its deprecated 2-argument form), purge_queue, list_queues,
--              detach_archive (deprecated no-op, as in 1.13)
--     sending  send (6 forms), send_batch (6 forms)
--     reading  read, read_with_poll (each with an integer vt and a timestamptz vt), pop
--     settling delete, archive (one id, or an array), set_vt (4 forms)
--     metrics  metrics, metrics_all
--     helpers  format_table_name, validate_queue_name, acquire_queue_lock
--     private  _create_queue, _read_messages, _poll_messages, _set_vt (not part of pgmq)
--
-- Where it differs from the extension (details in sql/PGMQ.md):
--   * no partitioned queues (pg_partman), no FIFO/grouped reads, no topics, no NOTIFY
--     triggers; create_partitioned raises feature_not_supported;
--   * rows that read, pop, delete, archive and set_vt return come back ordered by msg_id;
--   * read_with_poll with an integer vt sets vt = (time of the read) + vt, as documented,
--     where the 1.13 extension anchors it to the start of the call;
--   * read_with_poll reads at least once, and never sleeps past max_poll_seconds;
--   * purge_queue deletes rows (ROW EXCLUSIVE lock) instead of TRUNCATE (ACCESS EXCLUSIVE);
--   * queue names that differ only in letter case share one table in pgmq too; here
--     create() treats a second spelling as the existing queue instead of adding a second
--     pgmq.meta row, and drop_queue() removes the meta row of every spelling.
--
-- Rules this file keeps: identifiers reach dynamic SQL only through format('%I'); values
-- only through EXECUTE ... USING; it runs inside the migration runner's transaction
-- (nothing non-transactional, no COMMIT); it needs no superuser (the database owner can run
-- it); it expects a database without a `pgmq` schema.

create schema pgmq;

comment on schema pgmq is
  'pgmq-compatible queues (nexus migration 3); replaced by the pgmq extension when it is installed';

---------------------------------------------------------------------------------------------
-- Catalogue of queues
---------------------------------------------------------------------------------------------

-- One row per queue. queue_name keeps the spelling given to create(); the queue's tables
-- are named after its lower-cased form (see format_table_name).
create table pgmq.meta (
  queue_name     varchar                  not null unique,
  is_partitioned boolean                  not null,
  is_unlogged    boolean                  not null,
  created_at     timestamp with time zone not null default now()
);

-- pgmq lets pg_monitor read its tables and sequences, present and future.
grant usage on schema pgmq to pg_monitor;
grant select on all tables in schema pgmq to pg_monitor;
grant select on all sequences in schema pgmq to pg_monitor;
alter default privileges in schema pgmq grant select on tables to pg_monitor;
alter default privileges in schema pgmq grant select on sequences to pg_monitor;

---------------------------------------------------------------------------------------------
-- Types (field order is part of the API: clients decode these records by position)
---------------------------------------------------------------------------------------------

-- A message as read, popped or re-timed.
create type pgmq.message_record as (
  msg_id       bigint,
  read_ct      integer,
  enqueued_at  timestamp with time zone,
  last_read_at timestamp with time zone,
  vt           timestamp with time zone,
  message      jsonb,
  headers      jsonb
);

-- A row of list_queues().
create type pgmq.queue_record as (
  queue_name     varchar,
  is_partitioned boolean,
  is_unlogged    boolean,
  created_at     timestamp with time zone
);

-- A row of metrics() / metrics_all(). default_partition_length arrived in pgmq 1.13 and is
-- always NULL here (no partitioned queues).
create type pgmq.metrics_result as (
  queue_name               text,
  queue_length             bigint,
  newest_msg_age_sec       integer,
  oldest_msg_age_sec       integer,
  total_messages           bigint,
  scrape_time              timestamp with time zone,
  queue_visible_length     bigint,
  default_partition_length bigint
);

---------------------------------------------------------------------------------------------
-- Queue names
---------------------------------------------------------------------------------------------

-- pgmq.format_table_name(queue_name text, prefix text) -> text
--   The name of a queue's table: prefix || '_' || queue_name, lower-cased ('q' for the queue,
--   'a' for its archive), e.g. ('MyQueue', 'q') -> 'q_myqueue'. Every function that takes a
--   queue name goes through it. NULL in, NULL out.
--   Errors: P0001 'queue name contains invalid characters: $, ;, --, or \'' when the name
--   holds a dollar sign, a semicolon, a double hyphen or a single quote (pgmq's rule; single
--   hyphens are allowed).
--   Locks: none.
create function pgmq.format_table_name(queue_name text, prefix text)
returns text
language plpgsql
immutable
as $fn$
begin
  if strpos(queue_name, '$') > 0
     or strpos(queue_name, ';') > 0
     or strpos(queue_name, '--') > 0
     or strpos(queue_name, '''') > 0 then
    raise exception 'queue name contains invalid characters: $, ;, --, or \''';
  end if;
  return lower(prefix || '_' || queue_name);
end;
$fn$;

-- pgmq.validate_queue_name(queue_name text) -> void
--   Checks the length rule of create(): at most 47 characters, so that every name derived
--   from the queue name (archived_at_idx_<name> is the longest) fits PostgreSQL's 63-byte
--   identifiers.
--   Errors: P0001 'queue name is too long, maximum length is 47 characters'.
--   Locks: none.
create function pgmq.validate_queue_name(queue_name text)
returns void
language plpgsql
immutable
as $fn$
begin
  if char_length(queue_name) > 47 then
    raise exception 'queue name is too long, maximum length is 47 characters';
  end if;
end;
$fn$;

-- pgmq.acquire_queue_lock(queue_name text) -> void
--   Serialises creating and dropping one queue: takes a transaction-level advisory lock
--   keyed on the lower-cased queue name (the spellings that share a table share the lock),
--   held until the transaction ends.
--   Errors: none of its own.
--   Locks: pg_advisory_xact_lock on the two-int key (hashtext('pgmq.queue'), hashtext(name)).
create function pgmq.acquire_queue_lock(queue_name text)
returns void
language plpgsql
as $fn$
begin
  perform pg_advisory_xact_lock(hashtext('pgmq.queue'), hashtext(lower(queue_name)));
end;
$fn$;

---------------------------------------------------------------------------------------------
-- Creating and dropping queues
---------------------------------------------------------------------------------------------

-- pgmq._create_queue(queue_name text, unlogged boolean) -> void        (private)
--   Creates pgmq.q_<name> (UNLOGGED when asked) and pgmq.a_<name>, their indexes, and the
--   pgmq.meta row. Idempotent: existing objects are kept (PostgreSQL's "already exists,
--   skipping" notices), an existing meta row is kept as it is. When the queue exists under
--   another spelling of the same lower-cased name, nothing is created and a notice says so.
--   Errors: the name errors of format_table_name and validate_queue_name.
--   Locks: acquire_queue_lock(name); CREATE TABLE / CREATE INDEX locks on the new tables;
--   ROW EXCLUSIVE on pgmq.meta.
create function pgmq._create_queue(queue_name text, unlogged boolean)
returns void
language plpgsql
as $fn$
declare
  qtable text := pgmq.format_table_name(queue_name, 'q');
  atable text := pgmq.format_table_name(queue_name, 'a');
  known  varchar;
begin
  perform pgmq.validate_queue_name(queue_name);
  perform pgmq.acquire_queue_lock(queue_name);

  select m.queue_name into known
    from pgmq.meta as m
   where lower(m.queue_name) = lower(_create_queue.queue_name)
     and m.queue_name <> _create_queue.queue_name
   limit 1;
  if found then
    raise notice 'pgmq queue `%` already exists as `%`, skipping', queue_name, known;
    return;
  end if;

  if unlogged then
    execute format(
      'create unlogged table if not exists pgmq.%I (
         msg_id       bigint primary key generated always as identity,
         read_ct      integer not null default 0,
         enqueued_at  timestamp with time zone not null default now(),
         last_read_at timestamp with time zone,
         vt           timestamp with time zone not null,
         message      jsonb,
         headers      jsonb
       )', qtable);
  else
    execute format(
      'create table if not exists pgmq.%I (
         msg_id       bigint primary key generated always as identity,
         read_ct      integer not null default 0,
         enqueued_at  timestamp with time zone not null default now(),
         last_read_at timestamp with time zone,
         vt           timestamp with time zone not null,
         message      jsonb,
         headers      jsonb
       )', qtable);
  end if;

  execute format(
    'create table if not exists pgmq.%I (
       msg_id       bigint primary key,
       read_ct      integer not null default 0,
       enqueued_at  timestamp with time zone not null default now(),
       last_read_at timestamp with time zone,
       archived_at  timestamp with time zone not null default now(),
       vt           timestamp with time zone not null,
       message      jsonb,
       headers      jsonb
     )', atable);

  -- The names pgmq gives these indexes; the archive's keeps the queue name as spelled.
  execute format('create index if not exists %I on pgmq.%I (vt asc)', qtable || '_vt_idx', qtable);
  execute format('create index if not exists %I on pgmq.%I (archived_at)', 'archived_at_idx_' || queue_name, atable);

  insert into pgmq.meta (queue_name, is_partitioned, is_unlogged)
  values (queue_name, false, unlogged)
  on conflict on constraint meta_queue_name_key do nothing;
end;
$fn$;

-- pgmq.create_non_partitioned(queue_name text) -> void
--   Creates a queue: pgmq.q_<name>, its archive pgmq.a_<name>, their indexes and the meta
--   row. Creating an existing queue again is not an error.
--   Errors: 'queue name contains invalid characters: $, ;, --, or \''; 'queue name is too
--   long, maximum length is 47 characters'.
--   Locks: see _create_queue (advisory lock on the name, ROW EXCLUSIVE on pgmq.meta).
create function pgmq.create_non_partitioned(queue_name text)
returns void
language plpgsql
as $fn$
begin
  perform pgmq._create_queue(queue_name, false);
end;
$fn$;

-- pgmq.create(queue_name text) -> void
--   The usual way to create a queue: same as create_non_partitioned.
--   Errors and locks: as create_non_partitioned.
create function pgmq."create"(queue_name text)
returns void
language plpgsql
as $fn$
begin
  perform pgmq.create_non_partitioned(queue_name);
end;
$fn$;

-- pgmq.create_unlogged(queue_name text) -> void
--   Creates a queue whose queue table is UNLOGGED (faster writes, emptied by a crash); the
--   archive stays logged. meta.is_unlogged is true.
--   Errors and locks: as create_non_partitioned.
create function pgmq.create_unlogged(queue_name text)
returns void
language plpgsql
as $fn$
begin
  perform pgmq._create_queue(queue_name, true);
end;
$fn$;

-- pgmq.create_partitioned(queue_name text, partition_interval text DEFAULT '10000',
--                         retention_interval text DEFAULT '100000', premake integer DEFAULT 4)
--   -> void
--   Present so that callers get a clear refusal: partitioned queues need the pgmq extension
--   and pg_partman, which this SQL does not stand in for. Creates nothing.
--   Errors: the name errors first; then always 0A000 (feature_not_supported).
--   Locks: none.
create function pgmq.create_partitioned(
  queue_name text,
  partition_interval text default '10000',
  retention_interval text default '100000',
  premake integer default 4
)
returns void
language plpgsql
as $fn$
begin
  perform pgmq.format_table_name(queue_name, 'q');
  perform pgmq.validate_queue_name(queue_name);
  raise exception 'partitioned queues need the pgmq extension; the pgmq-compatible SQL creates only non-partitioned queues'
    using errcode = 'feature_not_supported',
          hint = 'Use pgmq.create(), or install the pgmq extension and pg_partman.';
end;
$fn$;

-- pgmq.drop_queue(queue_name text) -> boolean
--   Drops the queue table, its archive (with every message in them) and the queue's meta
--   rows. Returns true; returns false, with a NOTICE 'pgmq queue `<name>` does not exist',
--   when there is no queue table.
--   Errors: the name error of format_table_name.
--   Locks: acquire_queue_lock(name); ACCESS EXCLUSIVE on both tables (waits for every
--   transaction using the queue); ROW EXCLUSIVE on pgmq.meta.
create function pgmq.drop_queue(queue_name text)
returns boolean
language plpgsql
as $fn$
declare
  qtable text := pgmq.format_table_name(queue_name, 'q');
  atable text := pgmq.format_table_name(queue_name, 'a');
begin
  perform pgmq.acquire_queue_lock(queue_name);

  if to_regclass(format('pgmq.%I', qtable)) is null then
    raise notice 'pgmq queue `%` does not exist', queue_name;
    return false;
  end if;

  execute format('drop table pgmq.%I', qtable);
  execute format('drop table if exists pgmq.%I', atable);

  delete from pgmq.meta as m
   where lower(m.queue_name) = lower(drop_queue.queue_name);

  return true;
end;
$fn$;

-- pgmq.drop_queue(queue_name text, partitioned boolean) -> boolean
--   Deprecated in pgmq (kept until its 2.0): warns, drops the queue like drop_queue(text)
--   and returns true whatever happened, as pgmq does.
--   Errors and locks: as drop_queue(text).
create function pgmq.drop_queue(queue_name text, partitioned boolean)
returns boolean
language plpgsql
as $fn$
begin
  raise warning 'drop_queue(queue_name, partitioned) is deprecated and will be removed in PGMQ v2.0. Use drop_queue(queue_name) instead';
  perform pgmq.drop_queue(queue_name);
  return true;
end;
$fn$;

-- pgmq.detach_archive(queue_name text) -> void
--   Deprecated no-op in pgmq 1.13 (archive tables are no longer extension members); here
--   too. Warns.
--   Errors: none. Locks: none.
create function pgmq.detach_archive(queue_name text)
returns void
language plpgsql
as $fn$
begin
  raise warning 'detach_archive(queue_name) is deprecated and is a no-op. It will be removed in PGMQ v2.0. Archive tables are no longer member objects.';
end;
$fn$;

-- pgmq.purge_queue(queue_name text) -> bigint
--   Deletes every message of the queue (not of its archive) and returns how many. The
--   msg_id sequence goes on where it was, so total_messages in metrics() is unchanged.
--   Errors: the name error; 42P01 when the queue does not exist.
--   Locks: ROW EXCLUSIVE on the queue table and a row lock on each message: waits for
--   transactions that hold messages (e.g. a read not yet committed). pgmq truncates instead.
create function pgmq.purge_queue(queue_name text)
returns bigint
language plpgsql
as $fn$
declare
  qtable  text := pgmq.format_table_name(queue_name, 'q');
  deleted bigint;
begin
  execute format('delete from pgmq.%I', qtable);
  get diagnostics deleted = row_count;
  return deleted;
end;
$fn$;

-- pgmq.list_queues() -> setof pgmq.queue_record
--   Every queue in pgmq.meta, oldest first.
--   Errors: none. Locks: ACCESS SHARE on pgmq.meta.
create function pgmq.list_queues()
returns setof pgmq.queue_record
language sql
stable
as $fn$
  select m.queue_name, m.is_partitioned, m.is_unlogged, m.created_at
    from pgmq.meta as m
   order by m.created_at, m.queue_name;
$fn$;

---------------------------------------------------------------------------------------------
-- Sending
---------------------------------------------------------------------------------------------

-- pgmq.send(queue_name text, msg jsonb, headers jsonb, delay timestamp with time zone)
--   -> setof bigint
--   Appends one message, readable from `delay` on (its vt), and returns its msg_id. The
--   other five forms of send() come down to this one. enqueued_at is the transaction's
--   start (now()); msg and headers may be NULL.
--   Errors: the name error; 42P01 when the queue does not exist; 23502 when delay is NULL.
--   Locks: ROW EXCLUSIVE on the queue table.
create function pgmq.send(queue_name text, msg jsonb, headers jsonb, delay timestamp with time zone)
returns setof bigint
language plpgsql
as $fn$
declare
  qtable text := pgmq.format_table_name(queue_name, 'q');
begin
  return query execute format(
    'insert into pgmq.%I (vt, message, headers) values ($1, $2, $3) returning msg_id', qtable)
    using delay, msg, headers;
end;
$fn$;

-- pgmq.send(queue_name text, msg jsonb) -> setof bigint
--   A message readable at once, without headers. Errors and locks: as the 4-argument form.
create function pgmq.send(queue_name text, msg jsonb)
returns setof bigint
language sql
as $fn$
  select * from pgmq.send($1, $2, null::jsonb, clock_timestamp());
$fn$;

-- pgmq.send(queue_name text, msg jsonb, headers jsonb) -> setof bigint
--   A message with headers, readable at once. Errors and locks: as the 4-argument form.
create function pgmq.send(queue_name text, msg jsonb, headers jsonb)
returns setof bigint
language sql
as $fn$
  select * from pgmq.send($1, $2, $3, clock_timestamp());
$fn$;

-- pgmq.send(queue_name text, msg jsonb, delay integer) -> setof bigint
--   A message readable `delay` seconds from now. Errors and locks: as the 4-argument form.
create function pgmq.send(queue_name text, msg jsonb, delay integer)
returns setof bigint
language sql
as $fn$
  select * from pgmq.send($1, $2, null::jsonb, clock_timestamp() + make_interval(secs => $3));
$fn$;

-- pgmq.send(queue_name text, msg jsonb, delay timestamp with time zone) -> setof bigint
--   A message readable from the given time. Errors and locks: as the 4-argument form.
create function pgmq.send(queue_name text, msg jsonb, delay timestamp with time zone)
returns setof bigint
language sql
as $fn$
  select * from pgmq.send($1, $2, null::jsonb, $3);
$fn$;

-- pgmq.send(queue_name text, msg jsonb, headers jsonb, delay integer) -> setof bigint
--   A message with headers, readable `delay` seconds from now.
--   Errors and locks: as the 4-argument timestamp form.
create function pgmq.send(queue_name text, msg jsonb, headers jsonb, delay integer)
returns setof bigint
language sql
as $fn$
  select * from pgmq.send($1, $2, $3, clock_timestamp() + make_interval(secs => $4));
$fn$;

-- pgmq.send_batch(queue_name text, msgs jsonb[], headers jsonb[], delay timestamp with time zone)
--   -> setof bigint
--   Appends msgs in array order, all readable from `delay` on, the i-th with the i-th of
--   headers (headers may be NULL: no headers), and returns their msg_ids in ascending order,
--   which is the order of msgs. The other five forms come down to this one.
--   Errors: P0001 'msgs cannot be NULL or empty'; P0001 'headers array length (H) must
--   match msgs array length (M)' when headers is given with another length (an empty array
--   included); the name error; 42P01 when the queue does not exist.
--   Locks: ROW EXCLUSIVE on the queue table.
create function pgmq.send_batch(queue_name text, msgs jsonb[], headers jsonb[], delay timestamp with time zone)
returns setof bigint
language plpgsql
as $fn$
declare
  qtable text := pgmq.format_table_name(queue_name, 'q');
begin
  if msgs is null or cardinality(msgs) = 0 then
    raise exception 'msgs cannot be NULL or empty';
  end if;
  if headers is not null and cardinality(headers) <> cardinality(msgs) then
    raise exception 'headers array length (%) must match msgs array length (%)',
      cardinality(headers), cardinality(msgs);
  end if;

  return query execute format(
    'with inserted as (
       insert into pgmq.%I (vt, message, headers)
       select $1, m.message, h.headers
         from unnest($2) with ordinality as m (message, n)
         left join unnest($3) with ordinality as h (headers, n) using (n)
        order by n
       returning msg_id
     )
     select msg_id from inserted order by msg_id', qtable)
    using delay, msgs, headers;
end;
$fn$;

-- pgmq.send_batch(queue_name text, msgs jsonb[]) -> setof bigint
--   Messages readable at once, without headers. Errors and locks: as the 4-argument form.
create function pgmq.send_batch(queue_name text, msgs jsonb[])
returns setof bigint
language sql
as $fn$
  select * from pgmq.send_batch($1, $2, null::jsonb[], clock_timestamp());
$fn$;

-- pgmq.send_batch(queue_name text, msgs jsonb[], headers jsonb[]) -> setof bigint
--   Messages with headers, readable at once. Errors and locks: as the 4-argument form.
create function pgmq.send_batch(queue_name text, msgs jsonb[], headers jsonb[])
returns setof bigint
language sql
as $fn$
  select * from pgmq.send_batch($1, $2, $3, clock_timestamp());
$fn$;

-- pgmq.send_batch(queue_name text, msgs jsonb[], delay integer) -> setof bigint
--   Messages readable `delay` seconds from now. Errors and locks: as the 4-argument form.
create function pgmq.send_batch(queue_name text, msgs jsonb[], delay integer)
returns setof bigint
language sql
as $fn$
  select * from pgmq.send_batch($1, $2, null::jsonb[], clock_timestamp() + make_interval(secs => $3));
$fn$;

-- pgmq.send_batch(queue_name text, msgs jsonb[], delay timestamp with time zone) -> setof bigint
--   Messages readable from the given time. Errors and locks: as the 4-argument form.
create function pgmq.send_batch(queue_name text, msgs jsonb[], delay timestamp with time zone)
returns setof bigint
language sql
as $fn$
  select * from pgmq.send_batch($1, $2, null::jsonb[], $3);
$fn$;

-- pgmq.send_batch(queue_name text, msgs jsonb[], headers jsonb[], delay integer) -> setof bigint
--   Messages with headers, readable `delay` seconds from now.
--   Errors and locks: as the 4-argument timestamp form.
create function pgmq.send_batch(queue_name text, msgs jsonb[], headers jsonb[], delay integer)
returns setof bigint
language sql
as $fn$
  select * from pgmq.send_batch($1, $2, $3, clock_timestamp() + make_interval(secs => $4));
$fn$;

---------------------------------------------------------------------------------------------
-- Reading
---------------------------------------------------------------------------------------------

-- pgmq._read_messages(queue_name text, vt_at timestamptz, vt_secs integer, qty integer,
--                     conditional jsonb) -> setof pgmq.message_record       (private)
--   The read of read() and read_with_poll(). Picks up to qty visible messages
--   (vt <= clock_timestamp()) in msg_id order, skipping those another transaction holds
--   (SELECT ... FOR UPDATE SKIP LOCKED in a CTE), and in the same statement hides them:
--   vt = vt_at, or clock_timestamp() + vt_secs seconds when vt_at is NULL; read_ct + 1;
--   last_read_at = clock_timestamp(). conditional filters by JSON containment
--   (message @> conditional); '{}' or NULL means no filter. Rows come back by msg_id.
--   Errors: the name error; 42P01 when the queue does not exist; 23502 when the resulting
--   vt is NULL.
--   Locks: ROW SHARE then ROW EXCLUSIVE on the queue table; row locks on the messages read,
--   held to the end of the caller's transaction. Never waits for a locked message.
create function pgmq._read_messages(
  queue_name text,
  vt_at timestamp with time zone,
  vt_secs integer,
  qty integer,
  conditional jsonb
)
returns setof pgmq.message_record
language plpgsql
as $fn$
declare
  qtable text := pgmq.format_table_name(queue_name, 'q');
begin
  return query execute format(
    'with picked as (
       select msg_id
         from pgmq.%1$I
        where vt <= clock_timestamp()
          and ($4::jsonb is null or $4 = ''{}''::jsonb or message @> $4)
        order by msg_id
        limit $3
          for update skip locked
     ),
     hidden as (
       update pgmq.%1$I as q
          set vt = coalesce($1, clock_timestamp() + make_interval(secs => $2)),
              read_ct = q.read_ct + 1,
              last_read_at = clock_timestamp()
         from picked
        where q.msg_id = picked.msg_id
       returning q.msg_id, q.read_ct, q.enqueued_at, q.last_read_at, q.vt, q.message, q.headers
     )
     select msg_id, read_ct, enqueued_at, last_read_at, vt, message, headers
       from hidden
      order by msg_id', qtable)
    using vt_at, vt_secs, qty, conditional;
end;
$fn$;

-- pgmq.read(queue_name text, vt integer, qty integer, conditional jsonb DEFAULT '{}')
--   -> setof pgmq.message_record
--   Reads up to qty visible messages, oldest msg_id first, and makes them invisible for vt
--   seconds from the moment of the read; read_ct goes up by one and last_read_at is set.
--   Messages locked by another reader's open transaction are skipped, never waited for, so
--   concurrent readers never get the same message. conditional: only messages whose JSON
--   contains it ('{}' = all). Returns no rows when nothing is visible.
--   Errors: the name error; 42P01 when the queue does not exist.
--   Locks: row locks on the messages returned (FOR UPDATE SKIP LOCKED), to transaction end.
create function pgmq.read(queue_name text, vt integer, qty integer, conditional jsonb default '{}')
returns setof pgmq.message_record
language sql
as $fn$
  select * from pgmq._read_messages($1, null::timestamp with time zone, $2, $3, $4);
$fn$;

-- pgmq.read(queue_name text, vt timestamp with time zone, qty integer,
--           conditional jsonb DEFAULT '{}') -> setof pgmq.message_record
--   As read() with an integer vt, but the messages read stay invisible until the given time.
--   (pgmq has this form since 1.12. Note that a call with an untyped parameter for vt is
--   then ambiguous: cast it, e.g. $2::integer.)
--   Errors and locks: as the integer form.
create function pgmq.read(queue_name text, vt timestamp with time zone, qty integer, conditional jsonb default '{}')
returns setof pgmq.message_record
language sql
as $fn$
  select * from pgmq._read_messages($1, $2, null::integer, $3, $4);
$fn$;

-- pgmq._poll_messages(queue_name text, vt_at timestamptz, vt_secs integer, qty integer,
--                     max_poll_seconds integer, poll_interval_ms integer, conditional jsonb)
--   -> setof pgmq.message_record                                            (private)
--   The loop of read_with_poll(): reads; returns as soon as a read returns messages;
--   otherwise sleeps (pg_sleep) poll_interval_ms, or what is left of max_poll_seconds if
--   less, and reads again, until max_poll_seconds have passed since the call began. Each
--   read takes a new snapshot, so messages committed during the wait are seen (in READ
--   COMMITTED; a REPEATABLE READ caller sees none).
--   Errors: 22004 when max_poll_seconds or poll_interval_ms is NULL; those of the read.
--   Locks: as _read_messages; holds none while sleeping apart from its transaction's.
create function pgmq._poll_messages(
  queue_name text,
  vt_at timestamp with time zone,
  vt_secs integer,
  qty integer,
  max_poll_seconds integer,
  poll_interval_ms integer,
  conditional jsonb
)
returns setof pgmq.message_record
language plpgsql
as $fn$
declare
  deadline timestamp with time zone;
  pause    double precision;
begin
  if max_poll_seconds is null or poll_interval_ms is null then
    raise exception 'max_poll_seconds and poll_interval_ms must not be NULL'
      using errcode = 'null_value_not_allowed';
  end if;
  deadline := clock_timestamp() + make_interval(secs => max_poll_seconds);
  loop
    return query select * from pgmq._read_messages(queue_name, vt_at, vt_secs, qty, conditional);
    if found then
      return;
    end if;
    -- At least 1 ms between reads, so that a zero interval does not spin.
    pause := least(greatest(poll_interval_ms, 1) / 1000.0,
                   extract(epoch from deadline - clock_timestamp())::double precision);
    exit when pause <= 0;
    perform pg_sleep(pause);
  end loop;
  return;
end;
$fn$;

-- pgmq.read_with_poll(queue_name text, vt integer, qty integer,
--                     max_poll_seconds integer DEFAULT 5, poll_interval_ms integer DEFAULT 100,
--                     conditional jsonb DEFAULT '{}') -> setof pgmq.message_record
--   read(), waiting for messages: reads every poll_interval_ms until a read returns
--   messages (returned at once) or max_poll_seconds have passed (no rows). vt counts from
--   the read that returns the messages. The call holds its connection while it waits.
--   Errors: as read(); 22004 when max_poll_seconds or poll_interval_ms is NULL.
--   Locks: as read(); sleeps with pg_sleep between reads.
create function pgmq.read_with_poll(
  queue_name text,
  vt integer,
  qty integer,
  max_poll_seconds integer default 5,
  poll_interval_ms integer default 100,
  conditional jsonb default '{}'
)
returns setof pgmq.message_record
language sql
as $fn$
  select * from pgmq._poll_messages($1, null::timestamp with time zone, $2, $3, $4, $5, $6);
$fn$;

-- pgmq.read_with_poll(queue_name text, vt timestamp with time zone, qty integer,
--                     max_poll_seconds integer DEFAULT 5, poll_interval_ms integer DEFAULT 100,
--                     conditional jsonb DEFAULT '{}') -> setof pgmq.message_record
--   As the integer form, the messages staying invisible until the given time (pgmq 1.12+).
--   Errors and locks: as the integer form.
create function pgmq.read_with_poll(
  queue_name text,
  vt timestamp with time zone,
  qty integer,
  max_poll_seconds integer default 5,
  poll_interval_ms integer default 100,
  conditional jsonb default '{}'
)
returns setof pgmq.message_record
language sql
as $fn$
  select * from pgmq._poll_messages($1, $2, null::integer, $3, $4, $5, $6);
$fn$;

-- pgmq.pop(queue_name text, qty integer DEFAULT 1) -> setof pgmq.message_record
--   Reads up to qty visible messages and deletes them in the same statement (at-most-once:
--   a message popped by a consumer that then fails is gone). Returned as stored: read_ct
--   and last_read_at are not changed by the pop. Skips messages other transactions hold.
--   Errors: the name error; 42P01 when the queue does not exist.
--   Locks: row locks (FOR UPDATE SKIP LOCKED), ROW EXCLUSIVE on the queue table.
create function pgmq.pop(queue_name text, qty integer default 1)
returns setof pgmq.message_record
language plpgsql
as $fn$
declare
  qtable text := pgmq.format_table_name(queue_name, 'q');
begin
  return query execute format(
    'with picked as (
       select msg_id
         from pgmq.%1$I
        where vt <= clock_timestamp()
        order by msg_id
        limit $1
          for update skip locked
     ),
     removed as (
       delete from pgmq.%1$I as q
        using picked
        where q.msg_id = picked.msg_id
       returning q.msg_id, q.read_ct, q.enqueued_at, q.last_read_at, q.vt, q.message, q.headers
     )
     select msg_id, read_ct, enqueued_at, last_read_at, vt, message, headers
       from removed
      order by msg_id', qtable)
    using qty;
end;
$fn$;

---------------------------------------------------------------------------------------------
-- Settling messages
---------------------------------------------------------------------------------------------

-- pgmq.delete(queue_name text, msg_id bigint) -> boolean
--   Deletes one message for good. true when it was there, false when not.
--   Errors: the name error; 42P01 when the queue does not exist.
--   Locks: ROW EXCLUSIVE on the queue table; the message's row lock (waits if another
--   transaction holds it).
create function pgmq.delete(queue_name text, msg_id bigint)
returns boolean
language plpgsql
as $fn$
declare
  qtable  text := pgmq.format_table_name(queue_name, 'q');
  deleted bigint;
begin
  execute format('delete from pgmq.%I where msg_id = $1', qtable) using msg_id;
  get diagnostics deleted = row_count;
  return deleted > 0;
end;
$fn$;

-- pgmq.delete(queue_name text, msg_ids bigint[]) -> setof bigint
--   Deletes the given messages for good and returns the ids that were there (ascending);
--   ids not in the queue are left out of the result.
--   Errors and locks: as the single form.
create function pgmq.delete(queue_name text, msg_ids bigint[])
returns setof bigint
language plpgsql
as $fn$
declare
  qtable text := pgmq.format_table_name(queue_name, 'q');
begin
  return query execute format(
    'with removed as (delete from pgmq.%I where msg_id = any($1) returning msg_id)
     select msg_id from removed order by msg_id', qtable)
    using msg_ids;
end;
$fn$;

-- pgmq.archive(queue_name text, msg_ids bigint[]) -> setof bigint
--   Moves the given messages from the queue to its archive pgmq.a_<name> in one statement,
--   keeping msg_id, read_ct, enqueued_at, last_read_at, vt, message and headers and setting
--   archived_at = now(). Returns the ids moved (ascending); missing ids are left out.
--   Errors: the name error; 42P01 when the queue or its archive does not exist.
--   Locks: ROW EXCLUSIVE on both tables; the messages' row locks (waits if held).
create function pgmq.archive(queue_name text, msg_ids bigint[])
returns setof bigint
language plpgsql
as $fn$
declare
  qtable text := pgmq.format_table_name(queue_name, 'q');
  atable text := pgmq.format_table_name(queue_name, 'a');
begin
  return query execute format(
    'with moved as (
       delete from pgmq.%I
        where msg_id = any($1)
       returning msg_id, read_ct, enqueued_at, last_read_at, vt, message, headers
     ),
     kept as (
       insert into pgmq.%I (msg_id, read_ct, enqueued_at, last_read_at, vt, message, headers)
       select msg_id, read_ct, enqueued_at, last_read_at, vt, message, headers from moved
       returning msg_id
     )
     select msg_id from kept order by msg_id', qtable, atable)
    using msg_ids;
end;
$fn$;

-- pgmq.archive(queue_name text, msg_id bigint) -> boolean
--   Moves one message to the archive (see the array form). true when it was there.
--   Errors and locks: as the array form.
create function pgmq.archive(queue_name text, msg_id bigint)
returns boolean
language sql
as $fn$
  select exists (select 1 from pgmq.archive($1, array[$2]::bigint[]));
$fn$;

-- pgmq._set_vt(queue_name text, msg_ids bigint[], vt timestamptz)
--   -> setof pgmq.message_record                                            (private)
--   Sets vt of the given messages, visible or not, and returns them (ascending msg_id);
--   read_ct and last_read_at are left alone. Missing ids are left out.
--   Errors: the name error; 42P01 when the queue does not exist; 23502 when vt is NULL.
--   Locks: ROW EXCLUSIVE on the queue table; the messages' row locks (waits if held).
create function pgmq._set_vt(queue_name text, msg_ids bigint[], vt timestamp with time zone)
returns setof pgmq.message_record
language plpgsql
as $fn$
declare
  qtable text := pgmq.format_table_name(queue_name, 'q');
begin
  return query execute format(
    'with changed as (
       update pgmq.%I as q
          set vt = $2
        where q.msg_id = any($1)
       returning q.msg_id, q.read_ct, q.enqueued_at, q.last_read_at, q.vt, q.message, q.headers
     )
     select msg_id, read_ct, enqueued_at, last_read_at, vt, message, headers
       from changed
      order by msg_id', qtable)
    using msg_ids, vt;
end;
$fn$;

-- pgmq.set_vt(queue_name text, msg_id bigint, vt integer) -> setof pgmq.message_record
--   Makes the message visible vt seconds from now (0: at once) and returns it; no rows when
--   it is not in the queue. Errors and locks: as _set_vt.
create function pgmq.set_vt(queue_name text, msg_id bigint, vt integer)
returns setof pgmq.message_record
language sql
as $fn$
  select * from pgmq._set_vt($1, array[$2]::bigint[], clock_timestamp() + make_interval(secs => $3));
$fn$;

-- pgmq.set_vt(queue_name text, msg_id bigint, vt timestamp with time zone)
--   -> setof pgmq.message_record
--   Makes the message visible from the given time and returns it. Errors and locks: _set_vt.
create function pgmq.set_vt(queue_name text, msg_id bigint, vt timestamp with time zone)
returns setof pgmq.message_record
language sql
as $fn$
  select * from pgmq._set_vt($1, array[$2]::bigint[], $3);
$fn$;

-- pgmq.set_vt(queue_name text, msg_ids bigint[], vt integer) -> setof pgmq.message_record
--   Makes the messages visible vt seconds from now and returns those found.
--   Errors and locks: as _set_vt.
create function pgmq.set_vt(queue_name text, msg_ids bigint[], vt integer)
returns setof pgmq.message_record
language sql
as $fn$
  select * from pgmq._set_vt($1, $2, clock_timestamp() + make_interval(secs => $3));
$fn$;

-- pgmq.set_vt(queue_name text, msg_ids bigint[], vt timestamp with time zone)
--   -> setof pgmq.message_record
--   Makes the messages visible from the given time and returns those found.
--   Errors and locks: as _set_vt.
create function pgmq.set_vt(queue_name text, msg_ids bigint[], vt timestamp with time zone)
returns setof pgmq.message_record
language sql
as $fn$
  select * from pgmq._set_vt($1, $2, $3);
$fn$;

---------------------------------------------------------------------------------------------
-- Metrics
---------------------------------------------------------------------------------------------

-- pgmq.metrics(queue_name text) -> pgmq.metrics_result
--   queue_name as given; queue_length: messages in the queue; newest_msg_age_sec /
--   oldest_msg_age_sec: now() minus the newest / oldest enqueued_at, in whole seconds (NULL
--   when empty); total_messages: msg_ids ever handed out (the identity sequence's last
--   value, 0 before the first send; purge, delete and archive do not lower it);
--   scrape_time: now(); queue_visible_length: messages with vt <= now();
--   default_partition_length: NULL (no partitioned queues).
--   Errors: the name error; 42P01 when the queue does not exist.
--   Locks: ACCESS SHARE on the queue table (counts every row: cost grows with the queue).
create function pgmq.metrics(queue_name text)
returns pgmq.metrics_result
language plpgsql
as $fn$
declare
  qtable   text := pgmq.format_table_name(queue_name, 'q');
  seq_name name;
  total    bigint;
  result   pgmq.metrics_result;
begin
  select s.relname into seq_name
    from pg_catalog.pg_class as s
   where s.oid = pg_get_serial_sequence(format('pgmq.%I', qtable), 'msg_id')::regclass;

  execute format('select case when is_called then last_value else 0 end from pgmq.%I', seq_name)
    into total;

  execute format(
    'select $1::text,
            count(*),
            extract(epoch from now() - max(enqueued_at))::integer,
            extract(epoch from now() - min(enqueued_at))::integer,
            $2::bigint,
            now(),
            count(*) filter (where vt <= now()),
            null::bigint
       from pgmq.%I', qtable)
    into result
    using queue_name, total;
  return result;
end;
$fn$;

-- pgmq.metrics_all() -> setof pgmq.metrics_result
--   metrics() of every queue in pgmq.meta whose table exists, by queue name.
--   Errors: none of its own. Locks: as metrics(), queue after queue.
create function pgmq.metrics_all()
returns setof pgmq.metrics_result
language plpgsql
as $fn$
declare
  queue record;
begin
  for queue in
    select m.queue_name
      from pgmq.meta as m
     where to_regclass(format('pgmq.%I', pgmq.format_table_name(m.queue_name, 'q'))) is not null
     order by m.queue_name
  loop
    return next pgmq.metrics(queue.queue_name);
  end loop;
  return;
end;
$fn$;
