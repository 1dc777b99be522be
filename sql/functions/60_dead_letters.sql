-- Functions of dead letters: list, read, retry and purge a group's dead-letter queue.
--
-- A repeatable file (see migration 14): the live definition of each function
-- below, applied by migrate() after the numbered migrations and again whenever this
-- file changes. Edit the function here; a new numbered migration is only for tables,
-- types, policies, and for dropping a function or changing its arguments or result.
-- First written in migration 9.

-- core.assert_dead_letter_queue(queue)
--   Raises P0002 unless the group queue and its dead-letter queue both exist. Returns the
--   dead-letter queue's table name (core.queue_table of '<queue>_dlq'). Locks: none.
create or replace function core.assert_dead_letter_queue(p_queue text) returns text
language plpgsql stable as $$
begin
  if not exists (select 1 from pgmq.meta m where m.queue_name = p_queue)
     or not exists (select 1 from pgmq.meta m where m.queue_name = p_queue || '_dlq') then
    raise exception 'queue % does not exist', p_queue using errcode = 'no_data_found';
  end if;
  return core.queue_table(p_queue || '_dlq');
end;
$$;

-- core.list_dead_letters(queue, after, limit, pattern)
--   One page of the group's dead letters, by ascending message id: those with an id above
--   `after` (null: from the start) whose event type matches `pattern` (an event type or a
--   pattern with '*' and '**'; null: any), at most `limit` of them. Each row carries the
--   dead letter's id, the time it was dead-lettered (its enqueue time in the dead-letter
--   queue) and its message without the payload and without the error's stack, so that a
--   page stays small. Errors: P0002 (no queue). Locks: none (a plain read).
create or replace function core.list_dead_letters(p_queue text, p_after bigint, p_limit integer, p_pattern text)
returns table (msg_id bigint, dead_lettered_at timestamptz, message jsonb)
language plpgsql stable as $$
declare
  v_table text := core.assert_dead_letter_queue(p_queue);
begin
  return query execute format(
    'select d.msg_id, d.enqueued_at, (d.message - ''payload'') #- ''{deadLetter,error,stack}''
       from pgmq.%I d
      where d.msg_id > coalesce($1, 0)
        and ($3::text is null or (d.message ->> ''type'') ~ core.pattern_regex($3))
      order by d.msg_id
      limit $2', v_table)
    using p_after, p_limit, p_pattern;
end;
$$;

-- core.get_dead_letter(queue, msg_id)
--   The whole dead letter with that id: its message (envelope and "deadLetter") and the
--   time it was dead-lettered. No row when there is none. Errors: P0002 (no queue).
--   Locks: none.
create or replace function core.get_dead_letter(p_queue text, p_msg_id bigint)
returns table (msg_id bigint, dead_lettered_at timestamptz, message jsonb)
language plpgsql stable as $$
declare
  v_table text := core.assert_dead_letter_queue(p_queue);
begin
  return query execute format('select d.msg_id, d.enqueued_at, d.message from pgmq.%I d where d.msg_id = $1', v_table)
    using p_msg_id;
end;
$$;

-- core.retry_dead_letters(namespace, queue, ids, pattern, before)
--   Moves dead letters back to the group's queue, atomically: deletes them from the
--   dead-letter queue and sends each original envelope (the message without its
--   "deadLetter" field) as a new message, visible at once, in their dead-letter order. A
--   new message starts again at attempt 1. Selects by `ids` when it is not null (ids not
--   in the queue are ignored); otherwise every dead letter whose type matches `pattern`
--   (null: any) and that was dead-lettered before `before` (null: any time). Wakes the
--   group's consumers with a NOTIFY on 'nexus:<namespace>'. Returns the number moved.
--   Errors: P0002 (no queue). Locks: the dead letters moved (a concurrent retry of the
--   same ones waits, then finds them gone, so none is sent twice); ROW EXCLUSIVE on both
--   queue tables.
create or replace function core.retry_dead_letters(
  p_namespace text, p_queue text, p_ids bigint[], p_pattern text, p_before timestamptz
) returns integer
language plpgsql as $$
declare
  v_table text := core.assert_dead_letter_queue(p_queue);
  v_messages jsonb[];
begin
  execute format(
    'with moved as (
       delete from pgmq.%I d
        where case when $1::bigint[] is not null then d.msg_id = any($1)
                   else ($2::text is null or (d.message ->> ''type'') ~ core.pattern_regex($2))
                    and ($3::timestamptz is null or d.enqueued_at < $3)
              end
       returning d.msg_id, d.message
     )
     select array_agg(m.message - ''deadLetter'' order by m.msg_id) from moved m', v_table)
    into v_messages
    using p_ids, p_pattern, p_before;
  if v_messages is null then
    return 0;
  end if;
  perform pgmq.send_batch(p_queue, v_messages, 0);
  perform pg_notify('nexus:' || p_namespace, p_queue);
  return cardinality(v_messages);
end;
$$;

-- core.purge_dead_letters(queue)
--   Deletes every dead letter of the group (its dead-letter queue only; the group's queue
--   and every other group's dead letters are untouched). Returns how many were deleted.
--   Errors: P0002 (no queue). Locks: ROW EXCLUSIVE on the dead-letter queue and its rows
--   (unlike pgmq.purge_queue's TRUNCATE, it never blocks a consumer dead-lettering meanwhile).
create or replace function core.purge_dead_letters(p_queue text) returns bigint
language plpgsql as $$
declare
  v_table text := core.assert_dead_letter_queue(p_queue);
  v_deleted bigint;
begin
  execute format('delete from pgmq.%I', v_table);
  get diagnostics v_deleted = row_count;
  return v_deleted;
end;
$$;
