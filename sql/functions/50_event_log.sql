-- Functions of event log: partitions (pg_partman or the project's own), retention, replay.
--
-- A repeatable file (see migration 14): the live definition of each function
-- below, applied by migrate() after the numbered migrations and again whenever this
-- file changes. Edit the function here; a new numbered migration is only for tables,
-- types, policies, and for dropping a function or changing its arguments or result.
-- First written in migration 8.

-- core.partman_schema()
--   The schema of the pg_partman extension, or null where it is not installed.
--   Result: name. Errors: none. Locks: none.
create or replace function core.partman_schema() returns name
language sql stable as $$
  select n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace where e.extname = 'pg_partman';
$$;

-- core.event_log_partitions()
--   The partitions of core.event_log with their ranges, read from the catalog (so it sees
--   partitions made by pg_partman, by this migration's functions or by hand).
--   Result: (partition, range_from, range_to, is_default), ordered by range_from; the
--   bounds are null for the default partition and for MINVALUE/MAXVALUE bounds.
--   Errors: none. Locks: none (catalog reads).
create or replace function core.event_log_partitions()
returns table (partition regclass, range_from timestamptz, range_to timestamptz, is_default boolean)
language sql stable as $$
  select c.oid::regclass,
         m[1]::timestamptz,
         m[2]::timestamptz,
         b.bound = 'DEFAULT'
    from pg_inherits i
    join pg_class c on c.oid = i.inhrelid
   cross join lateral (select pg_get_expr(c.relpartbound, c.oid) as bound) b
    left join lateral (select regexp_match(b.bound, '^FOR VALUES FROM \(''([^'']+)''\) TO \(''([^'']+)''\)$') as m) r on true
   where i.inhparent = 'core.event_log'::regclass
   order by 2 nulls first, 1;
$$;

-- core.event_log_slot(at, interval)
--   Start of the partition slot holding `at`: the UTC hour ('1 hour') or UTC day ('1 day').
--   Result: timestamptz. Errors: 22023 for any other interval. Locks: none.
create or replace function core.event_log_slot(p_at timestamptz, p_interval interval) returns timestamptz
language plpgsql immutable strict parallel safe as $$
begin
  if p_interval = interval '1 hour' then
    return date_trunc('hour', p_at at time zone 'UTC') at time zone 'UTC';
  elsif p_interval = interval '1 day' then
    return date_trunc('day', p_at at time zone 'UTC') at time zone 'UTC';
  end if;
  raise exception 'event log partition interval must be 1 hour or 1 day, not %', p_interval using errcode = '22023';
end;
$$;

-- core.create_event_log_partition(at, interval)
--   Without pg_partman: creates the partition whose slot (core.event_log_slot) holds `at`,
--   clipped to the gap between existing partitions where another interval's partitions
--   overlap the slot (after a change of interval). Rows of the default partition in its
--   range move into it first (PostgreSQL refuses a partition whose rows sit in the
--   default). Named 'event_log_pYYYYMMDD' (day), 'event_log_pYYYYMMDD_HH24MI' (hour), or
--   'event_log_pYYYYMMDD_HH24MISS' when clipped; UTC.
--   Result: (partition name, rows moved), or no row when a partition already covers `at`.
--   Errors: 22023 for an unsupported interval; 42P07 when a table of that name exists
--   outside the partition set. Locks: ACCESS EXCLUSIVE on the default partition (taken
--   first, so no emit can add a row to the moved range before ATTACH checks it), SHARE
--   UPDATE EXCLUSIVE on core.event_log (ATTACH), both until the transaction ends.
create or replace function core.create_event_log_partition(p_at timestamptz, p_interval interval)
returns table (partition_name text, rows_moved bigint)
language plpgsql set timezone = 'UTC' as $$
declare
  v_slot timestamptz := core.event_log_slot(p_at, p_interval);
  v_from timestamptz;
  v_to timestamptz;
  v_name text;
  v_default regclass;
  v_columns text;
  v_moved bigint := 0;
begin
  if exists (select 1 from core.event_log_partitions() p
              where not p.is_default and p.range_from <= p_at and p.range_to > p_at) then
    return;
  end if;
  select greatest(v_slot, max(p.range_to) filter (where p.range_to <= p_at)),
         least(v_slot + p_interval, min(p.range_from) filter (where p.range_from > p_at))
    into v_from, v_to
    from core.event_log_partitions() p where not p.is_default;
  v_from := coalesce(v_from, v_slot);
  v_to := coalesce(v_to, v_slot + p_interval);
  v_name := 'event_log_p' || to_char(v_from, case
    when v_from <> v_slot or v_to <> v_slot + p_interval then 'YYYYMMDD"_"HH24MISS'
    when p_interval = interval '1 hour' then 'YYYYMMDD"_"HH24MI'
    else 'YYYYMMDD' end);
  if to_regclass(format('core.%I', v_name)) is not null then
    raise exception 'cannot create event log partition core.%: a table of that name exists outside the partition set', v_name
      using errcode = '42P07';
  end if;

  select p.partition into v_default from core.event_log_partitions() p where p.is_default;
  if v_default is not null then
    execute format('lock table %s in access exclusive mode', v_default);
  end if;
  execute format('create table core.%I (like core.event_log including defaults including constraints including storage including comments)', v_name);
  if v_default is not null then
    select string_agg(quote_ident(a.attname), ', ' order by a.attnum) into v_columns
      from pg_attribute a
     where a.attrelid = 'core.event_log'::regclass and a.attnum > 0 and not a.attisdropped and a.attgenerated = '';
    execute format('with moved as (delete from %s where emitted_at >= $1 and emitted_at < $2 returning %s)
                    insert into core.%I (%s) select %2$s from moved', v_default, v_columns, v_name, v_columns)
      using v_from, v_to;
    get diagnostics v_moved = row_count;
  end if;
  execute format('alter table core.event_log attach partition core.%I for values from (%L) to (%L)', v_name, v_from, v_to);
  partition_name := v_name;
  rows_moved := v_moved;
  return next;
end;
$$;

-- core.assert_event_log_not_partman()
--   Guard of the functions below: they manage partitions themselves, which must not
--   happen once pg_partman manages core.event_log.
--   Errors: 55000 (object_not_in_prerequisite_state) when partman.part_config has it.
create or replace function core.assert_event_log_not_partman() returns void
language plpgsql as $$
declare
  v_schema name := core.partman_schema();
  v_registered boolean := false;
begin
  if v_schema is not null then
    execute format('select exists (select 1 from %I.part_config where parent_table = %L)', v_schema, 'core.event_log')
      into v_registered;
  end if;
  if v_registered then
    raise exception 'core.event_log is managed by pg_partman: use core.maintain_event_log' using errcode = '55000';
  end if;
end;
$$;

-- core.ensure_event_log_partitions(interval, premake)
--   Without pg_partman: makes sure partitions exist for the slot holding now() and the
--   `premake` slots after it (interval '1 hour' or '1 day', UTC-aligned).
--   Result: the names of the partitions created (none when all exist).
--   Errors: 22023 for an unsupported interval or a premake outside 0-1000; 55000 when
--   pg_partman manages the table; 42P07 (see core.create_event_log_partition).
--   Locks: as core.create_event_log_partition, per partition created.
create or replace function core.ensure_event_log_partitions(p_interval interval, p_premake integer) returns setof text
language plpgsql set timezone = 'UTC' as $$
declare
  v_slot timestamptz := core.event_log_slot(now(), p_interval);
begin
  perform core.assert_event_log_not_partman();
  if p_premake is null or p_premake < 0 or p_premake > 1000 then
    raise exception 'premake must be 0-1000, not %', p_premake using errcode = '22023';
  end if;
  for i in 0 .. p_premake loop
    return query select c.partition_name from core.create_event_log_partition(v_slot + p_interval * i, p_interval) c;
  end loop;
end;
$$;

-- core.partition_event_log_default(interval, max_partitions)
--   Without pg_partman: moves the rows of the default partition into partitions of their
--   own slots (creating up to max_partitions of them, oldest first), so that nothing
--   stays in the default and retention applies to every row.
--   Result: (partitions created, rows moved).
--   Errors: as core.create_event_log_partition; 55000 when pg_partman manages the table.
--   Locks: as core.create_event_log_partition, per partition created.
create or replace function core.partition_event_log_default(p_interval interval, p_max_partitions integer)
returns table (created text[], moved bigint)
language plpgsql set timezone = 'UTC' as $$
declare
  v_default regclass;
  v_oldest timestamptz;
  v_made record;
begin
  perform core.assert_event_log_not_partman();
  created := '{}';
  moved := 0;
  select p.partition into v_default from core.event_log_partitions() p where p.is_default;
  if v_default is not null then
    for i in 1 .. coalesce(p_max_partitions, 0) loop
      execute format('select min(emitted_at) from %s', v_default) into v_oldest;
      exit when v_oldest is null;
      select c.partition_name, c.rows_moved into v_made from core.create_event_log_partition(v_oldest, p_interval) c;
      exit when v_made.partition_name is null; -- cannot happen: a covered row is not in the default
      created := created || v_made.partition_name;
      moved := moved + v_made.rows_moved;
    end loop;
  end if;
  return next;
end;
$$;

-- core.drop_expired_event_log_partitions(retention)
--   Without pg_partman: drops every partition whose upper bound is older than
--   now() - retention (never the default one, never the one holding now()).
--   Result: the names of the partitions dropped.
--   Errors: 22023 for a retention that is not positive; 55000 when pg_partman manages the
--   table. Locks: ACCESS EXCLUSIVE on core.event_log and on each dropped partition.
create or replace function core.drop_expired_event_log_partitions(p_retention interval) returns setof text
language plpgsql as $$
declare
  v_partition record;
begin
  perform core.assert_event_log_not_partman();
  if p_retention is null or p_retention <= interval '0' then
    raise exception 'retention must be a positive interval, not %', p_retention using errcode = '22023';
  end if;
  for v_partition in
    select p.partition, p.partition::text as name from core.event_log_partitions() p
     where not p.is_default and p.range_to < now() - p_retention
     order by p.range_to
  loop
    execute format('drop table %s', v_partition.partition);
    return next v_partition.name;
  end loop;
end;
$$;

-- core.maintain_event_log(interval, premake, retention)
--   One maintenance pass over core.event_log, as described at the top of this file.
--   Arguments: the partition interval ('1 hour' or '1 day'; with pg_partman it applies
--   when the table is registered, and a registered interval that differs is kept and
--   reported in "warnings"), the partitions to keep ahead of now() (1-1000), and the
--   partition retention (positive).
--   Only one pass runs at a time: a pass that finds another running returns at once with
--   "ran": false. Runs in UTC (partition names and day boundaries).
--   Result: jsonb {
--     ran, mode ('partman' | 'builtin'), partmanVersion, registered (this pass registered
--     the table with pg_partman), partitionInterval (as used), created [names],
--     dropped [names], movedFromDefault (rows), warnings [text] }.
--   Errors: 22023 for invalid arguments; 55P03 when a lock is not granted within
--   lock_timeout (2 s): nothing is changed and the next pass retries.
--   Locks: a transaction-level advisory lock; ACCESS EXCLUSIVE on core.event_log when
--   the pass registers the table with pg_partman, when a partition expires, or when the
--   default partition holds rows, taken first (so a concurrent emit waits instead of
--   deadlocking); otherwise SHARE UPDATE EXCLUSIVE on it and ACCESS EXCLUSIVE on the
--   default partition while partitions are attached (see create_event_log_partition).
create or replace function core.maintain_event_log(p_interval interval, p_premake integer, p_retention interval) returns jsonb
language plpgsql set timezone = 'UTC' set lock_timeout = '2s' as $$
declare
  v_schema name := core.partman_schema();
  v_version text;
  v_major integer;
  v_mode text := 'builtin';
  v_registered boolean := false;
  v_registered_now boolean := false;
  v_interval interval := p_interval;
  v_before text[];
  v_middle text[];
  v_after text[];
  v_warnings text[] := '{}';
  v_moved bigint := 0;
  v_rows bigint;
  v_default regclass;
  v_has_default_rows boolean := false;
  v_adopted text[] := '{}';
  v_child record;
  v_left boolean;
begin
  perform core.event_log_slot(now(), p_interval); -- validates the interval
  if p_premake is null or p_premake < 1 or p_premake > 1000 then
    raise exception 'premake must be 1-1000, not %', p_premake using errcode = '22023';
  end if;
  if p_retention is null or p_retention <= interval '0' then
    raise exception 'retention must be a positive interval, not %', p_retention using errcode = '22023';
  end if;
  if not pg_try_advisory_xact_lock(7120394851203948600) then
    return jsonb_build_object('ran', false);
  end if;

  if v_schema is not null then
    select e.extversion into v_version from pg_extension e where e.extname = 'pg_partman';
    v_major := coalesce(substring(v_version from '^(\d+)')::integer, 0);
    if v_major >= 4 then
      v_mode := 'partman';
    else
      v_warnings := v_warnings || format('pg_partman %s is too old (4.x or 5.x needed): partitions are managed without it', v_version);
    end if;
  end if;

  select coalesce(array_agg(p.partition::text order by p.partition::text), '{}') into v_before from core.event_log_partitions() p;

  if v_mode = 'partman' then
    execute format('select exists (select 1 from %I.part_config where parent_table = %L)', v_schema, 'core.event_log')
      into v_registered;
    if not v_registered then
      -- Register: pg_partman makes its own default partition and refuses a table that has
      -- one, so every existing partition (the default included) is detached and renamed,
      -- create_parent runs, and partition_data_time moves their rows into partman's
      -- partitions (creating the ones they need). Nothing is lost: a partition still
      -- holding rows afterwards aborts the pass.
      lock table core.event_log in access exclusive mode;
      for v_child in select p.partition from core.event_log_partitions() p loop
        execute format('alter table core.event_log detach partition %s', v_child.partition);
        v_adopted := v_adopted || format('event_log_adopt_%s', cardinality(v_adopted) + 1);
        if to_regclass(format('core.%I', v_adopted[cardinality(v_adopted)])) is not null then
          raise exception 'cannot register core.event_log with pg_partman: core.% exists', v_adopted[cardinality(v_adopted)]
            using errcode = '42P07';
        end if;
        execute format('alter table %s rename to %I', v_child.partition, v_adopted[cardinality(v_adopted)]);
      end loop;
      if v_major >= 5 then
        execute format('select %I.create_parent(p_parent_table => %L, p_control => %L, p_interval => %L, p_type => %L, p_premake => %s)',
          v_schema, 'core.event_log', 'emitted_at',
          case when p_interval = interval '1 hour' then '1 hour' else '1 day' end, 'range', p_premake);
      else
        execute format('select %I.create_parent(p_parent_table => %L, p_control => %L, p_type => %L, p_interval => %L, p_premake => %s)',
          v_schema, 'core.event_log', 'emitted_at', 'native',
          case when p_interval = interval '1 hour' then 'hourly' else 'daily' end, p_premake);
      end if;
      v_registered_now := true;
    end if;

    execute format('update %I.part_config set premake = $1, retention = $2, retention_keep_table = false,
                    infinite_time_partitions = true where parent_table = %L', v_schema, 'core.event_log')
      using p_premake, p_retention::text;
    execute format('select partition_interval::interval from %I.part_config where parent_table = %L', v_schema, 'core.event_log')
      into v_interval;
    if v_interval <> p_interval then
      v_warnings := v_warnings || format('core.event_log is registered with pg_partman at an interval of %s; the configured %s is not applied (pg_partman cannot change the interval of an existing set)', v_interval, p_interval);
    end if;

    for i in 1 .. coalesce(cardinality(v_adopted), 0) loop
      loop
        execute format('select %I.partition_data_time(p_parent_table => %L, p_batch_count => 1000, p_source_table => %L, p_analyze => false)',
          v_schema, 'core.event_log', 'core.' || v_adopted[i]) into v_rows;
        v_moved := v_moved + coalesce(v_rows, 0);
        exit when coalesce(v_rows, 0) <= 0;
      end loop;
      execute format('select exists (select 1 from core.%I)', v_adopted[i]) into v_left;
      if v_left then
        raise exception 'pg_partman left rows in core.% while registering core.event_log', v_adopted[i] using errcode = 'XX000';
      end if;
      execute format('drop table core.%I', v_adopted[i]);
    end loop;
  end if;

  -- Lock order: a pass that will drop a partition or empty the default takes the parent's
  -- strongest lock before any partition's, as emits do (parent, then partition).
  select p.partition into v_default from core.event_log_partitions() p where p.is_default;
  if v_default is not null then
    execute format('select exists (select 1 from %s)', v_default) into v_has_default_rows;
  end if;
  if v_has_default_rows or exists (select 1 from core.event_log_partitions() p
                                    where not p.is_default and p.range_to < now() - p_retention) then
    lock table core.event_log in access exclusive mode;
  end if;

  if v_mode = 'partman' then
    if v_has_default_rows then
      loop
        execute format('select %I.partition_data_time(p_parent_table => %L, p_batch_count => 1000, p_analyze => false)',
          v_schema, 'core.event_log') into v_rows;
        v_moved := v_moved + coalesce(v_rows, 0);
        exit when coalesce(v_rows, 0) <= 0;
      end loop;
    end if;
    select coalesce(array_agg(p.partition::text), '{}') into v_middle from core.event_log_partitions() p;
    execute format('select %I.run_maintenance(p_parent_table => %L, p_analyze => false)', v_schema, 'core.event_log');
  else
    select v_moved + d.moved into v_moved from core.partition_event_log_default(p_interval, 1000) d;
    perform core.ensure_event_log_partitions(p_interval, p_premake);
    select coalesce(array_agg(p.partition::text), '{}') into v_middle from core.event_log_partitions() p;
    perform core.drop_expired_event_log_partitions(p_retention);
  end if;

  select coalesce(array_agg(p.partition::text order by p.partition::text), '{}') into v_after from core.event_log_partitions() p;

  return jsonb_build_object(
    'ran', true,
    'mode', v_mode,
    'partmanVersion', v_version,
    'registered', v_registered_now,
    'partitionInterval', case v_interval when interval '1 hour' then 'hourly' when interval '1 day' then 'daily'
                           else v_interval::text end,
    -- Partitions made and dropped by the same pass (rows moved out of the default into an
    -- expired slot) appear in both lists.
    'created', to_jsonb(array(select n from ((select unnest(v_middle) except select unnest(v_before))
                                             union (select unnest(v_after) except select unnest(v_middle))) c(n) order by 1)),
    'dropped', to_jsonb(array(select n from ((select unnest(v_before) except select unnest(v_middle))
                                             union (select unnest(v_middle) except select unnest(v_after))) d(n) order by 1)),
    'movedFromDefault', v_moved,
    'warnings', to_jsonb(v_warnings));
end;
$$;

-- core.delete_expired_events(namespace, retention, limit)
--   Per-namespace retention: deletes up to `limit` rows of the namespace emitted before
--   now() - retention, oldest first (the caller repeats while the result equals limit).
--   Partition retention still drops whole partitions, so this only shortens retention.
--   Result: the number of rows deleted. Errors: none. Locks: the deleted rows.
create or replace function core.delete_expired_events(p_namespace text, p_retention interval, p_limit integer) returns integer
language sql as $$
  with doomed as (
    select emitted_at, id from core.event_log
     where namespace = p_namespace and emitted_at < now() - p_retention
     order by emitted_at, id
     limit p_limit
  ), deleted as (
    delete from core.event_log e using doomed d
     where e.emitted_at = d.emitted_at and e.id = d.id
    returning 1
  )
  select count(*)::integer from deleted;
$$;

-- core.replay_plan(namespace, group, queue, patterns, from, to)
--   Plans a replay into `queue`, the event queue of one group. Only events the group is
--   subscribed to (one of its current event patterns) are counted, and of those only the
--   ones matching one of `patterns` (validated event types or patterns; null for every
--   type).
--   Result: one row (queue_exists, subscribed, cutoff, total): whether the queue exists in
--   pgmq, whether the group has an event subscription on it, the window's upper bound
--   clamped to now() (events emitted after the replay starts reach the group normally, so
--   they are not replayed), and the number of logged events with emitted_at in
--   [from, cutoff) to replay (0 unless subscribed).
--   Errors: 42501 when a namespace role plans a replay in another namespace (its policies
--   would only make the plan find no subscription). Locks: none (reads).
--   (Live since migration 12, which added the namespace check.)
create or replace function core.replay_plan(p_namespace text, p_group text, p_queue text, p_patterns text[], p_from timestamptz, p_to timestamptz)
returns table (queue_exists boolean, subscribed boolean, cutoff timestamptz, total bigint)
language plpgsql stable as $$
declare
  v_group_regexes text[];
  v_type_regexes text[];
begin
  perform core.assert_caller_namespace(p_namespace);
  queue_exists := exists (select 1 from pgmq.meta m where m.queue_name = p_queue);
  select array_agg(s.pattern_regex) into v_group_regexes
    from core.subscriptions s
   where s.namespace = p_namespace and s.group_name = p_group and s.kind = 'event' and s.queue_name = p_queue;
  subscribed := v_group_regexes is not null;
  cutoff := least(p_to, now());
  total := 0;
  if queue_exists and subscribed then
    select array_agg(core.pattern_regex(p)) into v_type_regexes from unnest(p_patterns) p;
    select count(*) into total
      from core.event_log e
     where e.namespace = p_namespace and e.emitted_at >= p_from and e.emitted_at < cutoff
       and e.type ~ any (v_group_regexes)
       and (v_type_regexes is null or e.type ~ any (v_type_regexes));
  end if;
  return next;
end;
$$;

-- core.replay_batch(namespace, group, queue, replay_id, patterns, from, to, after_emitted_at, after_id, limit)
--   Sends the next page of a replay: up to `limit` logged events of the namespace with
--   emitted_at in [from, to), after the keyset (after_emitted_at, after_id) (both null for
--   the first page), in (emitted_at, id) order, filtered as core.replay_plan filters them,
--   with one pgmq.send_batch to `queue`, then a NOTIFY on 'nexus:<namespace>' that wakes
--   the group's consumers. Each message is the envelope core.emit sends
--   { id, type, payload, headers, emittedAt, sourceNode }, with the header
--   "nexus-replay": replay_id added, so handlers see the original event id.
--   Result: one row (sent, last_emitted_at, last_id): the keyset of the next page.
--   Errors: P0002 (no_data_found) when the group has no event subscription with that
--   queue (dropped since the plan). Locks: none beyond pgmq.send_batch's inserts.
create or replace function core.replay_batch(
  p_namespace text, p_group text, p_queue text, p_replay_id uuid, p_patterns text[],
  p_from timestamptz, p_to timestamptz, p_after_emitted_at timestamptz, p_after_id uuid, p_limit integer
) returns table (sent integer, last_emitted_at timestamptz, last_id uuid)
language plpgsql as $$
declare
  v_group_regexes text[];
  v_type_regexes text[];
  v_after_at timestamptz := coalesce(p_after_emitted_at, p_from - interval '1 microsecond');
  v_after_id uuid := case when p_after_emitted_at is null then 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid else p_after_id end;
  v_messages jsonb[];
begin
  select array_agg(s.pattern_regex) into v_group_regexes
    from core.subscriptions s
   where s.namespace = p_namespace and s.group_name = p_group and s.kind = 'event' and s.queue_name = p_queue;
  if v_group_regexes is null then
    raise exception 'group % of namespace % has no event subscription on queue %', p_group, p_namespace, p_queue
      using errcode = 'P0002';
  end if;
  select array_agg(core.pattern_regex(p)) into v_type_regexes from unnest(p_patterns) p;

  select array_agg(page.message order by page.emitted_at, page.id),
         count(*)::integer,
         (array_agg(page.emitted_at order by page.emitted_at desc, page.id desc))[1],
         (array_agg(page.id order by page.emitted_at desc, page.id desc))[1]
    into v_messages, sent, last_emitted_at, last_id
    from (
      select e.emitted_at, e.id,
             jsonb_build_object(
               'id', e.id, 'type', e.type, 'payload', e.payload,
               'headers', e.headers || jsonb_build_object('nexus-replay', p_replay_id::text),
               'emittedAt', e.emitted_at, 'sourceNode', e.source_node) as message
        from core.event_log e
       where e.namespace = p_namespace
         and (e.emitted_at, e.id) > (v_after_at, v_after_id)
         and e.emitted_at >= p_from and e.emitted_at < p_to
         and e.type ~ any (v_group_regexes)
         and (v_type_regexes is null or e.type ~ any (v_type_regexes))
       order by e.emitted_at, e.id
       limit p_limit
    ) page;

  if sent > 0 then
    perform pgmq.send_batch(p_queue, v_messages, 0);
    perform pg_notify('nexus:' || p_namespace, p_queue);
  end if;
  return next;
end;
$$;
