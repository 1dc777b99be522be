-- Migration 9: dead-letter tooling and metrics.
--
-- A group's dead-letter queue is '<group queue>_dlq' (core.fail_message writes it): each
-- message is the original envelope { id, type, payload, headers, emittedAt, sourceNode }
-- plus a "deadLetter" field { error, attempts, firstFailedAt, lastFailedAt, queue, msgId,
-- enqueuedAt }. A dead letter is identified by its message id in that queue. The functions
-- below list, read, retry and purge them (core/dead-letters.ts), and gather the queue
-- figures and top statements of core/metrics.ts.
--
-- Every function that takes a group queue raises P0002 (no_data_found) with the message
-- 'queue <name> does not exist' when the queue or its dead-letter queue is missing, which
-- the package turns into an UnknownGroupError. Queue tables are named only through
-- pgmq.format_table_name and format('%I'); values travel as parameters (EXECUTE ... USING).
-- Only pgmq functions every release has are used (send_batch with an integer delay,
-- metrics), so this runs on the pgmq extension and on the compatible SQL alike.

-- core.assert_dead_letter_queue(queue)
--   Raises P0002 unless the group queue and its dead-letter queue both exist. Returns the
--   dead-letter queue's table name (pgmq.q_<queue>_dlq). Locks: none.
create function core.assert_dead_letter_queue(p_queue text) returns text
language plpgsql stable as $$
begin
  if not exists (select 1 from pgmq.meta m where m.queue_name = p_queue)
     or not exists (select 1 from pgmq.meta m where m.queue_name = p_queue || '_dlq') then
    raise exception 'queue % does not exist', p_queue using errcode = 'no_data_found';
  end if;
  return pgmq.format_table_name(p_queue || '_dlq', 'q');
end;
$$;

-- core.list_dead_letters(queue, after, limit, pattern)
--   One page of the group's dead letters, by ascending message id: those with an id above
--   `after` (null: from the start) whose event type matches `pattern` (an event type or a
--   pattern with '*' and '**'; null: any), at most `limit` of them. Each row carries the
--   dead letter's id, the time it was dead-lettered (its enqueue time in the dead-letter
--   queue) and its message without the payload and without the error's stack, so that a
--   page stays small. Errors: P0002 (no queue). Locks: none (a plain read).
create function core.list_dead_letters(p_queue text, p_after bigint, p_limit integer, p_pattern text)
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
create function core.get_dead_letter(p_queue text, p_msg_id bigint)
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
create function core.retry_dead_letters(
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
create function core.purge_dead_letters(p_queue text) returns bigint
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

-- core.group_queue_metrics(namespace)
--   For every group of the namespace with a subscription (events or requests), the
--   pgmq.metrics figures of its queue: length, visible length, age of the oldest message
--   in seconds (null when empty) and, for event groups, the length of the dead-letter
--   queue (null when there is none). A queue dropped while this runs is left out. Ordered
--   by group and kind. Locks: ACCESS SHARE on each queue table (pgmq.metrics counts rows).
create function core.group_queue_metrics(p_namespace text)
returns table (group_name text, kind text, queue_name text, queue_length bigint, visible_length bigint,
               oldest_msg_age_sec integer, dead_letter_length bigint)
language plpgsql as $$
declare
  v_group record;
begin
  for v_group in
    select distinct s.group_name, s.kind, s.queue_name
      from core.subscriptions s
     where s.namespace = p_namespace
     order by s.group_name, s.kind
  loop
    group_name := v_group.group_name;
    kind := v_group.kind;
    queue_name := v_group.queue_name;
    dead_letter_length := null;
    begin
      select m.queue_length, m.queue_visible_length, m.oldest_msg_age_sec
        into queue_length, visible_length, oldest_msg_age_sec
        from pgmq.metrics(v_group.queue_name) m;
      if exists (select 1 from pgmq.meta m where m.queue_name = v_group.queue_name || '_dlq') then
        select m.queue_length into dead_letter_length from pgmq.metrics(v_group.queue_name || '_dlq') m;
      end if;
    exception when undefined_table then
      continue;
    end;
    return next;
  end loop;
end;
$$;

-- core.top_queries(limit)
--   The costliest statements of this database by total execution time, from
--   pg_stat_statements (found in whatever schema it was created in; 1.8+ column names,
--   or total_time / mean_time before 1.8): query text, calls, total and mean time in
--   milliseconds, rows. A role without pg_read_all_stats sees '<insufficient privilege>'
--   as the text of other roles' statements.
--   Errors: 0A000 (feature_not_supported) when pg_stat_statements is not installed here;
--   55000 from pg_stat_statements itself when it is not in shared_preload_libraries.
--   Locks: none.
create function core.top_queries(p_limit integer)
returns table (queryid bigint, query text, calls bigint, total_time_ms double precision,
               mean_time_ms double precision, rows bigint)
language plpgsql stable as $$
declare
  v_schema name;
  v_suffix text := '_exec_time';
begin
  select n.nspname into v_schema
    from pg_extension e join pg_namespace n on n.oid = e.extnamespace
   where e.extname = 'pg_stat_statements';
  if v_schema is null then
    raise exception 'pg_stat_statements is not installed in database %', current_database()
      using errcode = 'feature_not_supported';
  end if;
  if not exists (select 1 from pg_attribute a
                  where a.attrelid = to_regclass(format('%I.pg_stat_statements', v_schema))
                    and a.attname = 'total_exec_time') then
    v_suffix := '_time';
  end if;
  return query execute format(
    'select s.queryid, s.query, s.calls, s.%2$I, s.%3$I, s.rows
       from %1$I.pg_stat_statements s
      where s.dbid = (select d.oid from pg_database d where d.datname = current_database())
      order by s.%2$I desc
      limit $1',
    v_schema, 'total' || v_suffix, 'mean' || v_suffix)
    using p_limit;
end;
$$;
