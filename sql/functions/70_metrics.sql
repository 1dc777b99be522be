-- Functions of metrics: queue figures and top statements.
--
-- A repeatable file (see migration 14): the live definition of each function
-- below, applied by migrate() after the numbered migrations and again whenever this
-- file changes. Edit the function here; a new numbered migration is only for tables,
-- types, policies, and for dropping a function or changing its arguments or result.
-- First written in migration 9.

-- core.group_queue_metrics(namespace)
--   For every group of the namespace with a subscription (events or requests), the
--   pgmq.metrics figures of its queue: length, visible length, age of the oldest message
--   in seconds (null when empty) and, for event groups, the length of the dead-letter
--   queue (null when there is none). A queue dropped while this runs is left out. Ordered
--   by group and kind. Locks: ACCESS SHARE on each queue table (pgmq.metrics counts rows).
create or replace function core.group_queue_metrics(p_namespace text)
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
create or replace function core.top_queries(p_limit integer)
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
