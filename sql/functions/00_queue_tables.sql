-- Functions of queue naming: the one place that derives a pgmq queue's table name.
--
-- A repeatable file (see migration 14): the live definition of each function
-- below, applied by migrate() after the numbered migrations and again whenever this
-- file changes. Edit the function here; a new numbered migration is only for tables,
-- types, policies, and for dropping a function or changing its arguments or result.
-- First written here (release after migration 14). It sorts first: the SQL-language
-- functions of the later files that call it are checked against it when created.

-- core.queue_table(queue_name, prefix)
--   The name, unqualified and unquoted, of a queue's table in schema pgmq: prefix 'q'
--   (the default) for the queue, 'a' for its archive. It is pgmq.format_table_name,
--   which the pgmq extension and the compatible SQL of migration 3 both define with the
--   same rule (prefix || '_' || queue_name, lower-cased), so the name is the one pgmq
--   gave the table in either mode. Every core function that reaches a queue's table
--   names it through this function: format('pgmq.%I', core.queue_table(queue)).
--   Result: text; null for a null queue name.
--   Errors: P0001 (raised by pgmq.format_table_name) when the name holds '$', ';', '--'
--   or a single quote, which no queue name of the core does.
--   Locks: none.
create or replace function core.queue_table(p_queue text, p_prefix text default 'q') returns text
language sql stable as $$
  select pgmq.format_table_name(p_queue, p_prefix);
$$;

-- core.enqueue(queue_name, messages, delay_seconds)
--   What pgmq.send_batch(queue, messages, delay) does, in one dynamic statement instead
--   of pgmq's three nested calls (each planned at every call): the messages go into the
--   queue's table in array order (ascending msg_id), visible after delay_seconds.
--   The core's senders on hot paths (emit, requests, messages to nodes) use it.
--   Result: integer, the number of messages sent.
--   Errors: 42P01 when the queue has no table; P0001 from core.queue_table for a bad name.
--   Locks: ROW EXCLUSIVE on the queue's table (inserts).
create or replace function core.enqueue(p_queue text, p_messages jsonb[], p_delay_seconds integer default 0) returns integer
language plpgsql as $$
begin
  execute format(
    'insert into pgmq.%I (vt, message)
     select clock_timestamp() + make_interval(secs => $2), m.message
       from unnest($1::jsonb[]) with ordinality as m(message, n)
      order by m.n', core.queue_table(p_queue))
    using p_messages, p_delay_seconds;
  return cardinality(p_messages);
end;
$$;

-- core.uuid_v7()
--   A time-ordered UUID (RFC 9562 version 7: 48 bits of Unix milliseconds, then random
--   bits), so that ids made one after another land next to each other in an index
--   (PostgreSQL 18 has uuidv7(); 15 does not). Event ids use it.
--   Result: uuid. Errors: none. Locks: none.
create or replace function core.uuid_v7() returns uuid
language sql volatile parallel safe as $$
  select encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              placing substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
              from 1 for 6),
      52, 1), 53, 1),
    'hex')::uuid;
$$;
