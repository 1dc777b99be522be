-- Functions of jobs: the engine of the BullMQ-style facade.
--
-- A repeatable file (see migration 14): the live definition of each function
-- below, applied by migrate() after the numbered migrations and again whenever this
-- file changes. Edit the function here; a new numbered migration is only for tables,
-- types, policies, and for dropping a function or changing its arguments or result.
-- First written in migration 11.

-- core.bull_add(namespace, queue, jobs)
--   Adds jobs (a JSON array of {id?, name, data, opts, priority, lifo, delay, attempts,
--   dedupId?, dedupTtl?}) in one statement. A job whose id already exists, or whose
--   deduplication id belongs to a job not yet finished (or within its ttl), is not added:
--   the existing job's id is returned with added = false. Wakes the queue's workers at
--   commit. Locks: the inserted rows.
create or replace function core.bull_add(p_namespace text, p_queue text, p_jobs jsonb)
returns table (id text, added boolean)
language plpgsql as $$
declare
  v_job jsonb;
  v_id text;
  v_existing text;
  v_seq bigint;
  v_now_ms bigint := (extract(epoch from clock_timestamp()) * 1000)::bigint;
  v_any boolean := false;
begin
  for v_job in select value from jsonb_array_elements(p_jobs) loop
    v_existing := null;
    if v_job ? 'dedupId' then
      select j.id into v_existing from core.bull_jobs j
      where j.namespace = p_namespace and j.queue = p_queue and j.dedup_id = v_job->>'dedupId'
        and (j.state in ('waiting', 'active') or j.dedup_until > now())
      limit 1;
    end if;
    if v_existing is not null then
      id := v_existing; added := false; return next; continue;
    end if;
    v_id := coalesce(v_job->>'id', nextval('core.bull_job_ids')::text);
    insert into core.bull_jobs as j (namespace, queue, id, name, data, opts, priority, order_key, run_at,
      attempts, dedup_id, dedup_until, created_ms)
    values (p_namespace, p_queue, v_id, v_job->>'name', v_job->'data', v_job->'opts',
      coalesce((v_job->>'priority')::integer, 0), 0,
      now() + make_interval(secs => coalesce((v_job->>'delay')::float8, 0) / 1000),
      coalesce((v_job->>'attempts')::integer, 1), v_job->>'dedupId',
      now() + make_interval(secs => coalesce((v_job->>'dedupTtl')::float8, 0) / 1000),
      coalesce((v_job->>'timestamp')::bigint, v_now_ms))
    on conflict on constraint bull_jobs_pkey do nothing
    returning j.seq into v_seq;
    if v_seq is null then
      id := v_id; added := false; return next; continue;
    end if;
    update core.bull_jobs j set order_key = case when (v_job->>'lifo')::boolean then -v_seq else v_seq end
    where j.namespace = p_namespace and j.queue = p_queue and j.id = v_id;
    v_any := true;
    id := v_id; added := true; return next;
  end loop;
  if v_any then
    perform core.broadcast(p_namespace, 'bullmq.' || p_queue, '"added"'::jsonb, null);
  end if;
end;
$$;

-- core.bull_claim(namespace, queue, limit, token, lock_ms)
--   Takes up to `limit` due waiting jobs of an unpaused queue, highest priority first,
--   and makes them active under `token` until lock_ms from now. Asynchronous commit: a
--   claim lost in a crash leaves the job waiting, to be taken again. Locks: the taken
--   rows (SKIP LOCKED: concurrent workers take different jobs).
create or replace function core.bull_claim(p_namespace text, p_queue text, p_limit integer, p_token text, p_lock_ms integer)
returns setof core.bull_jobs
language plpgsql as $$
begin
  perform set_config('synchronous_commit', 'off', true);
  return query
  with picked as (
    select j.namespace, j.queue, j.id from core.bull_jobs j
    where j.namespace = p_namespace and j.queue = p_queue and j.state = 'waiting' and j.run_at <= now()
      and not exists (select 1 from core.bull_queues q where q.namespace = p_namespace and q.queue = p_queue and q.paused)
    order by j.priority, j.order_key
    limit p_limit
    for update skip locked
  )
  update core.bull_jobs j
  set state = 'active', attempts_started = j.attempts_started + 1, lock_token = p_token,
      lock_until = now() + make_interval(secs => p_lock_ms::float8 / 1000),
      processed_ms = (extract(epoch from clock_timestamp()) * 1000)::bigint
  from picked
  where j.namespace = picked.namespace and j.queue = picked.queue and j.id = picked.id
  returning j.*;
end;
$$;

-- core.bull_next_due(namespace, queue)
--   Milliseconds until the earliest delayed job of the queue is due (null: none, or the
--   queue is paused and resuming wakes the workers), so an idle worker sleeps that long.
create or replace function core.bull_next_due(p_namespace text, p_queue text) returns float8
language sql stable as $$
  select greatest(0, extract(epoch from min(j.run_at) - now()) * 1000)
  from core.bull_jobs j
  where j.namespace = p_namespace and j.queue = p_queue and j.state = 'waiting'
    and not exists (select 1 from core.bull_queues q where q.namespace = p_namespace and q.queue = p_queue and q.paused);
$$;

-- core.bull_complete(namespace, queue, token, ids, returnvalues)
--   Completes a batch of active jobs held under `token` (a job whose lock was lost is
--   skipped). Applies each job's removeOnComplete (true, a count or {count, age}) and
--   broadcasts one `completed` event for the batch on `bullmq.<queue>.events` (QueueEvents).
--   Asynchronous commit: a completion lost in a crash makes the job run again after its
--   lock expires (at least once, as BullMQ). Returns the ids completed.
create or replace function core.bull_complete(p_namespace text, p_queue text, p_token text, p_ids text[], p_values jsonb[])
returns setof text
language plpgsql as $$
declare
  v_done jsonb;
begin
  perform set_config('synchronous_commit', 'off', true);
  with done as (
    update core.bull_jobs j
    set state = 'completed', returnvalue = v.value, attempts_made = j.attempts_made + 1,
        finished_ms = (extract(epoch from clock_timestamp()) * 1000)::bigint, lock_token = null, lock_until = null
    from unnest(p_ids, p_values) as v(id, value)
    where j.namespace = p_namespace and j.queue = p_queue and j.id = v.id and j.state = 'active' and j.lock_token = p_token
    returning j.id, j.returnvalue
  )
  select coalesce(jsonb_agg(jsonb_build_object('jobId', done.id, 'returnvalue', done.returnvalue)), '[]'::jsonb) into v_done from done;
  if jsonb_array_length(v_done) > 0 then
    perform core.bull_apply_retention(p_namespace, p_queue, 'completed', p_ids, 'removeOnComplete');
    perform core.broadcast(p_namespace, 'bullmq.' || p_queue || '.events', jsonb_build_object('event', 'completed', 'jobs', v_done), null);
  end if;
  return query select e.value->>'jobId' from jsonb_array_elements(v_done) e;
end;
$$;

-- core.bull_apply_retention(namespace, queue, state, ids, option)
--   Deletes finished jobs as the `option` (removeOnComplete / removeOnFail) of the jobs
--   just finished says: true deletes them, a number or {count} keeps that many newest of
--   the state, {age} deletes those older than age seconds.
create or replace function core.bull_apply_retention(p_namespace text, p_queue text, p_state text, p_ids text[], p_option text)
returns void
language plpgsql as $$
declare
  v_keep jsonb;
  v_count bigint;
  v_age float8;
begin
  for v_keep in
    select distinct j.opts->p_option from core.bull_jobs j
    where j.namespace = p_namespace and j.queue = p_queue and j.id = any (p_ids) and j.opts ? p_option
  loop
    if v_keep = 'true'::jsonb then
      delete from core.bull_jobs j
      where j.namespace = p_namespace and j.queue = p_queue and j.id = any (p_ids) and j.state = p_state and j.opts->p_option = 'true'::jsonb;
      continue;
    end if;
    v_count := case when jsonb_typeof(v_keep) = 'number' then (v_keep#>>'{}')::bigint else (v_keep->>'count')::bigint end;
    v_age := (v_keep->>'age')::float8;
    if v_count is not null then
      delete from core.bull_jobs j
      where j.namespace = p_namespace and j.queue = p_queue and j.state = p_state
        and j.id not in (select k.id from core.bull_jobs k where k.namespace = p_namespace and k.queue = p_queue and k.state = p_state
                         order by k.finished_ms desc limit v_count);
    end if;
    if v_age is not null then
      delete from core.bull_jobs j
      where j.namespace = p_namespace and j.queue = p_queue and j.state = p_state
        and j.finished_ms < (extract(epoch from clock_timestamp()) * 1000 - v_age * 1000)::bigint;
    end if;
  end loop;
end;
$$;

-- core.bull_fail(namespace, queue, token, id, reason, stack, retry_delay_ms)
--   Ends a failed attempt of an active job held under `token`: with retry_delay_ms not
--   null the job waits that long and runs again (the worker computed it with the core's
--   backoff), else it is failed for good and removeOnFail applies. Returns the new state
--   (null when the lock was lost).
create or replace function core.bull_fail(p_namespace text, p_queue text, p_token text, p_id text, p_reason text, p_stack text, p_retry_delay_ms float8)
returns text
language plpgsql as $$
declare
  v_state text;
begin
  update core.bull_jobs j
  set state = case when p_retry_delay_ms is null then 'failed' else 'waiting' end,
      run_at = now() + make_interval(secs => coalesce(p_retry_delay_ms, 0) / 1000),
      attempts_made = j.attempts_made + 1, failed_reason = p_reason,
      stacktrace = j.stacktrace || jsonb_build_array(p_stack),
      finished_ms = case when p_retry_delay_ms is null then (extract(epoch from clock_timestamp()) * 1000)::bigint end,
      lock_token = null, lock_until = null
  where j.namespace = p_namespace and j.queue = p_queue and j.id = p_id and j.state = 'active' and j.lock_token = p_token
  returning j.state into v_state;
  if v_state = 'failed' then
    perform core.bull_apply_retention(p_namespace, p_queue, 'failed', array[p_id], 'removeOnFail');
  elsif v_state = 'waiting' then
    perform core.broadcast(p_namespace, 'bullmq.' || p_queue, '"retry"'::jsonb, null);
  end if;
  return v_state;
end;
$$;

-- core.bull_extend_locks(namespace, queue, token, ids, lock_ms)
--   Renews the locks of a worker's active jobs; returns the ids still held.
create or replace function core.bull_extend_locks(p_namespace text, p_queue text, p_token text, p_ids text[], p_lock_ms integer)
returns setof text
language sql as $$
  update core.bull_jobs j set lock_until = now() + make_interval(secs => p_lock_ms::float8 / 1000)
  where j.namespace = p_namespace and j.queue = p_queue and j.id = any (p_ids) and j.state = 'active' and j.lock_token = p_token
  returning j.id;
$$;

-- core.bull_requeue_stalled(namespace, queue, max_stalled)
--   Active jobs whose lock expired (their worker died or hung): back to waiting, or failed
--   once stalled more than max_stalled times. Returns the ids and their new state.
create or replace function core.bull_requeue_stalled(p_namespace text, p_queue text, p_max_stalled integer)
returns table (id text, state text)
language sql as $$
  update core.bull_jobs j
  set state = case when j.stalled_counter >= p_max_stalled then 'failed' else 'waiting' end,
      stalled_counter = j.stalled_counter + 1, lock_token = null, lock_until = null,
      failed_reason = case when j.stalled_counter >= p_max_stalled then 'job stalled more than allowable limit' else j.failed_reason end,
      finished_ms = case when j.stalled_counter >= p_max_stalled then (extract(epoch from clock_timestamp()) * 1000)::bigint end
  where j.namespace = p_namespace and j.queue = p_queue and j.state = 'active' and j.lock_until < now()
  returning j.id, j.state;
$$;

-- core.bull_counts(namespace, queue)
--   Jobs per BullMQ state: waiting, prioritized, delayed, active, completed, failed, paused.
create or replace function core.bull_counts(p_namespace text, p_queue text)
returns table (state text, count bigint)
language sql stable as $$
  select case
           when j.state <> 'waiting' then j.state
           when j.run_at > now() then 'delayed'
           when coalesce((select q.paused from core.bull_queues q where q.namespace = p_namespace and q.queue = p_queue), false) then 'paused'
           when j.priority > 0 then 'prioritized'
           else 'waiting'
         end as state, count(*)
  from core.bull_jobs j
  where j.namespace = p_namespace and j.queue = p_queue
  group by 1;
$$;

-- core.bull_set_paused(namespace, queue, paused)
--   Pauses or resumes a queue for every worker; resuming wakes them.
create or replace function core.bull_set_paused(p_namespace text, p_queue text, p_paused boolean) returns void
language plpgsql as $$
begin
  insert into core.bull_queues (namespace, queue, paused) values (p_namespace, p_queue, p_paused)
  on conflict (namespace, queue) do update set paused = excluded.paused;
  if not p_paused then
    perform core.broadcast(p_namespace, 'bullmq.' || p_queue, '"resumed"'::jsonb, null);
  end if;
end;
$$;

-- core.bull_remove(namespace, queue, states)
--   Deletes the queue's jobs in `states` (drain: waiting; obliterate: all, and the queue's
--   flags when states is null). Returns how many jobs went.
create or replace function core.bull_remove(p_namespace text, p_queue text, p_states text[]) returns bigint
language plpgsql as $$
declare
  v_count bigint;
begin
  delete from core.bull_jobs j
  where j.namespace = p_namespace and j.queue = p_queue and (p_states is null or j.state = any (p_states));
  get diagnostics v_count = row_count;
  if p_states is null then
    delete from core.bull_queues q where q.namespace = p_namespace and q.queue = p_queue;
  end if;
  return v_count;
end;
$$;

-- core.bull_update(namespace, queue, id, change, value)
--   One job's small changes: 'progress' sets progress, 'log' appends a log line (returns
--   the count of lines), 'retry' moves a failed job back to waiting, 'remove' deletes a
--   job not active. Returns the job's row after the change (none when not found or not
--   allowed in its state).
create or replace function core.bull_update(p_namespace text, p_queue text, p_id text, p_change text, p_value jsonb)
returns setof core.bull_jobs
language plpgsql as $$
begin
  if p_change = 'progress' then
    return query update core.bull_jobs j set progress = p_value
      where j.namespace = p_namespace and j.queue = p_queue and j.id = p_id returning j.*;
  elsif p_change = 'log' then
    return query update core.bull_jobs j set logs = j.logs || (p_value#>>'{}')
      where j.namespace = p_namespace and j.queue = p_queue and j.id = p_id returning j.*;
  elsif p_change = 'retry' then
    return query update core.bull_jobs j
      set state = 'waiting', run_at = now(), failed_reason = null, finished_ms = null, attempts_made = 0, stalled_counter = 0
      where j.namespace = p_namespace and j.queue = p_queue and j.id = p_id and j.state = 'failed' returning j.*;
    perform core.broadcast(p_namespace, 'bullmq.' || p_queue, '"retry"'::jsonb, null);
  elsif p_change = 'remove' then
    return query delete from core.bull_jobs j
      where j.namespace = p_namespace and j.queue = p_queue and j.id = p_id and j.state <> 'active' returning j.*;
  else
    raise exception 'unknown job change %', p_change using errcode = '22023';
  end if;
end;
$$;

-- core.bull_get_jobs(namespace, queue, ids, states, start, end, asc)
--   Jobs by id (ids not null) or by BullMQ state (as core.bull_counts names them), newest
--   first unless asc, rows start..end inclusive as BullMQ's getJobs.
create or replace function core.bull_get_jobs(p_namespace text, p_queue text, p_ids text[], p_states text[], p_start integer, p_end integer, p_asc boolean)
returns setof core.bull_jobs
language sql stable as $$
  select j.* from core.bull_jobs j
  where j.namespace = p_namespace and j.queue = p_queue
    and (p_ids is null or j.id = any (p_ids))
    and (p_states is null or (case
           when j.state <> 'waiting' then j.state
           when j.run_at > now() then 'delayed'
           when j.priority > 0 then 'prioritized'
           else 'waiting' end) = any (p_states))
  order by case when p_asc then j.seq end, j.seq desc
  offset greatest(p_start, 0)
  limit case when p_end < 0 then null else p_end - greatest(p_start, 0) + 1 end;
$$;

-- core.bull_upsert_scheduler(namespace, queue, key, repeat, template, first_job)
--   Creates or replaces a job scheduler and adds its first job (a JSON job as core.bull_add
--   takes it; its id names the fire, so adding a fire twice adds it once). Replacing a
--   scheduler drops its waiting fire first.
create or replace function core.bull_upsert_scheduler(p_namespace text, p_queue text, p_key text, p_repeat jsonb, p_template jsonb, p_first_job jsonb)
returns table (id text, added boolean)
language plpgsql as $$
begin
  insert into core.bull_schedulers (namespace, queue, key, repeat, template) values (p_namespace, p_queue, p_key, p_repeat, p_template)
  on conflict (namespace, queue, key) do update set repeat = excluded.repeat, template = excluded.template;
  delete from core.bull_jobs j
  where j.namespace = p_namespace and j.queue = p_queue and j.state = 'waiting' and j.opts->>'repeatJobKey' = p_key;
  return query select * from core.bull_add(p_namespace, p_queue, jsonb_build_array(p_first_job));
end;
$$;

-- core.bull_next_fire(namespace, queue, key, job)
--   Adds a scheduler's next fire if the scheduler still exists; returns whether it did.
create or replace function core.bull_next_fire(p_namespace text, p_queue text, p_key text, p_job jsonb) returns boolean
language plpgsql as $$
begin
  if not exists (select 1 from core.bull_schedulers s where s.namespace = p_namespace and s.queue = p_queue and s.key = p_key) then
    return false;
  end if;
  return coalesce((select a.added from core.bull_add(p_namespace, p_queue, jsonb_build_array(p_job)) a), false);
end;
$$;

-- core.bull_remove_scheduler(namespace, queue, key)
--   Deletes a job scheduler and its waiting fire; returns whether it existed.
create or replace function core.bull_remove_scheduler(p_namespace text, p_queue text, p_key text) returns boolean
language plpgsql as $$
declare
  v_found boolean;
begin
  delete from core.bull_schedulers s where s.namespace = p_namespace and s.queue = p_queue and s.key = p_key
  returning true into v_found;
  delete from core.bull_jobs j
  where j.namespace = p_namespace and j.queue = p_queue and j.state = 'waiting' and j.opts->>'repeatJobKey' = p_key;
  return coalesce(v_found, false);
end;
$$;
