-- Functions of schedules: scheduled tasks, pg_cron jobs or the project's own scheduler, fires.
--
-- A repeatable file (see migration 14): the live definition of each function
-- below, applied by migrate() after the numbered migrations and again whenever this
-- file changes. Edit the function here; a new numbered migration is only for tables,
-- types, policies, and for dropping a function or changing its arguments or result.
-- First written in migration 7.

-- core.scheduler_lock_key(namespace)
--   The key of the session-level advisory lock whose holder is the namespace's fallback
--   scheduler. Immutable.
create or replace function core.scheduler_lock_key(p_namespace text) returns bigint
language sql immutable strict parallel safe as $$
  select hashtextextended('nexus:scheduler:' || p_namespace, 0);
$$;

-- core.task_job_name(namespace, name)
--   The pg_cron job name of a task: 'nexus:<namespace>:<name>' when it fits pg_cron's
--   63-byte name type, else 'nexus~<prefix>~<16 hex digits of md5>' (readable names start
--   with 'nexus:', hashed ones with 'nexus~', so the two forms never collide).
--   Deterministic and immutable. Errors: none. Locks: none.
create or replace function core.task_job_name(p_namespace text, p_name text) returns text
language sql immutable strict parallel safe as $$
  select case
           when octet_length('nexus:' || p_namespace || ':' || p_name) <= 63 then 'nexus:' || p_namespace || ':' || p_name
           else 'nexus~' || left(p_namespace || ':' || p_name, 40) || '~' || left(md5(p_namespace || '/' || p_name), 16)
         end;
$$;

-- core.pg_cron_status()
--   Whether tasks can run as pg_cron jobs here, decided at run time:
--     installed  pg_cron is in pg_extension;        version    its extversion;
--     usable     installed, 1.4 or later (named jobs, cron.unschedule(bigint)), this role may
--                use schema cron, cron.schedule and cron.job, this database is
--                cron.database_name, and jobs run in UTC (pg_cron 1.4 always uses GMT;
--                1.5 and later use cron.timezone, which must then be GMT/UTC);
--     can_alter  cron.alter_job exists (1.4 and later) and this role may execute it (its
--                EXECUTE is revoked from PUBLIC): pause then deactivates the job, and
--                otherwise unschedules it;
--     reason     why not usable, else null.
--   Errors: none (a privilege error in the lookups makes it not usable). Locks: none.
create or replace function core.pg_cron_status(
  out installed boolean, out version text, out usable boolean, out can_alter boolean, out reason text
)
language plpgsql stable as $$
declare
  v_parts text[];
  v_database text;
  v_timezone text;
begin
  select e.extversion into version from pg_extension e where e.extname = 'pg_cron';
  installed := version is not null;
  usable := false;
  can_alter := false;
  if not installed then
    reason := 'pg_cron is not installed in this database';
    return;
  end if;
  -- Looking up a name in schema cron needs USAGE on it (else even to_regprocedure raises).
  if not has_schema_privilege('cron', 'usage') then
    reason := format('role %s has no USAGE on schema cron', current_user);
    return;
  end if;
  if to_regprocedure('cron.schedule(text,text,text)') is null or to_regprocedure('cron.unschedule(bigint)') is null then
    reason := format('pg_cron %s is older than 1.4', version);
    return;
  end if;
  if not has_function_privilege('cron.schedule(text,text,text)', 'execute')
     or not has_function_privilege('cron.unschedule(bigint)', 'execute')
     or not has_table_privilege('cron.job', 'select') then
    reason := format('role %s may not use pg_cron (cron.schedule, cron.unschedule, cron.job)', current_user);
    return;
  end if;
  -- pg_cron's settings may be superuser-only: unreadable ones are taken at their defaults
  -- (and pg_cron can only be created in the database it runs jobs in).
  begin
    v_database := current_setting('cron.database_name', true);
  exception when insufficient_privilege then
    v_database := current_database();
  end;
  if coalesce(v_database, 'postgres') <> current_database() then
    reason := format('pg_cron runs jobs in database %s, not %s', v_database, current_database());
    return;
  end if;
  v_parts := regexp_match(version, '^(\d+)\.(\d+)');
  if v_parts is not null and (v_parts[1]::integer, v_parts[2]::integer) >= (1, 5) then
    begin
      v_timezone := coalesce(current_setting('cron.timezone', true), 'GMT');
    exception when insufficient_privilege then
      v_timezone := 'GMT';
    end;
    if lower(v_timezone) not in ('gmt', 'utc', 'etc/utc', 'etc/gmt', 'gmt0', 'etc/gmt0', 'utc0', 'uct', 'etc/uct',
                                 'zulu', 'etc/zulu', 'universal', 'etc/universal', 'greenwich', 'etc/greenwich') then
      reason := format('pg_cron runs jobs in time zone %s (cron.timezone), not UTC', v_timezone);
      return;
    end if;
  end if;
  usable := true;
  can_alter := to_regprocedure('cron.alter_job(bigint,text,text,text,text,boolean)') is not null
               and has_function_privilege('cron.alter_job(bigint,text,text,text,text,boolean)', 'execute');
exception when insufficient_privilege then
  -- A catalog lookup this role may not make: pg_cron is not for it.
  usable := false;
  can_alter := false;
  reason := format('role %s may not use pg_cron: %s', current_user, sqlerrm);
end;
$$;

-- core.sync_task_cron_job(task_id)
--   Makes pg_cron match the task row: a job named core.task_job_name(...) running
--   core.run_scheduled_task('<id>') on the task's expression while runner = 'pg_cron'
--   (deactivated with cron.alter_job while paused where the role may, else removed), and
--   no job otherwise, or when the task is gone (its job is then found by its command).
--   cron.schedule replaces a job of the same name and keeps its id. Records the job id in
--   cron_job_id. Returns it, or null. Does nothing where pg_cron is not usable.
--   Errors: pg_cron's own ("invalid schedule"). Locks: the task row (update); pg_cron's rows.
create or replace function core.sync_task_cron_job(p_task_id uuid) returns bigint
language plpgsql as $$
declare
  v_cron record;
  v_task core.scheduled_tasks;
  v_command text := format('select core.run_scheduled_task(%L)', p_task_id);
  v_job bigint;
begin
  select * into v_cron from core.pg_cron_status();
  if not v_cron.usable then
    return null;
  end if;
  select * into v_task from core.scheduled_tasks where task_id = p_task_id;
  select j.jobid into v_job from cron.job j
   where j.jobid = v_task.cron_job_id or j.command = v_command
   order by j.jobid = v_task.cron_job_id desc nulls last
   limit 1;

  if v_task.task_id is null or v_task.runner <> 'pg_cron' or (not v_task.enabled and not v_cron.can_alter) then
    if v_job is not null then
      perform cron.unschedule(v_job);
      v_job := null;
    end if;
  else
    v_job := cron.schedule(core.task_job_name(v_task.namespace, v_task.name), v_task.cron_expression, v_command);
    -- A job deactivated by a pause stays inactive when rescheduled; make it match.
    if v_cron.can_alter and exists (select 1 from cron.job j where j.jobid = v_job and j.active <> v_task.enabled) then
      perform cron.alter_job(v_job, active := v_task.enabled);
    end if;
  end if;

  if v_task.task_id is not null and v_task.cron_job_id is distinct from v_job then
    update core.scheduled_tasks set cron_job_id = v_job where task_id = p_task_id;
  end if;
  return v_job;
end;
$$;

-- core.schedule_task(namespace, name, expression, timezone, cron_capable, event_type, payload, headers)
--   Creates or replaces the task (namespace, name), creating the namespace when new; all
--   arguments are validated by the caller (cron_capable: the expression is a standard
--   5-field one that pg_cron parses). The runner is pg_cron when cron_capable, the time
--   zone is UTC and pg_cron is usable here, else the fallback scheduler; the pg_cron job
--   follows (core.sync_task_cron_job). A paused task stays paused. fire_from moves to now
--   only when the expression or time zone changed, so a process that schedules its tasks
--   again on every start keeps their catch-up. Returns the task row.
--   Errors: check violations for names outside the grammar; pg_cron's own.
--   Locks: the task row; pg_cron's rows.
create or replace function core.schedule_task(
  p_namespace text, p_name text, p_expression text, p_timezone text, p_cron_capable boolean,
  p_event_type text, p_payload jsonb, p_headers jsonb
) returns core.scheduled_tasks
language plpgsql as $$
declare
  v_runner text := case
    when p_cron_capable and p_timezone = 'UTC' and (select s.usable from core.pg_cron_status() s) then 'pg_cron'
    else 'scheduler'
  end;
  v_task_id uuid;
  v_task core.scheduled_tasks;
begin
  insert into core.namespaces (name) values (p_namespace) on conflict (name) do nothing;
  insert into core.scheduled_tasks as t (namespace, name, cron_expression, timezone, runner, event_type, payload, headers)
  values (p_namespace, p_name, p_expression, p_timezone, v_runner, p_event_type,
          coalesce(p_payload, '{}'::jsonb), coalesce(p_headers, '{}'::jsonb))
  on conflict (namespace, name) do update
    set cron_expression = excluded.cron_expression,
        timezone = excluded.timezone,
        runner = excluded.runner,
        event_type = excluded.event_type,
        payload = excluded.payload,
        headers = excluded.headers,
        updated_at = now(),
        fire_from = case
          when (t.cron_expression, t.timezone) is distinct from (excluded.cron_expression, excluded.timezone) then now()
          else t.fire_from
        end
  returning t.task_id into v_task_id;
  perform core.sync_task_cron_job(v_task_id);
  select * into v_task from core.scheduled_tasks where task_id = v_task_id;
  return v_task;
end;
$$;

-- core.set_task_enabled(namespace, name, enabled)
--   Pauses (false) or resumes (true) a task. Resuming moves fire_from to now: the times
--   passed while paused are not caught up. The pg_cron job follows
--   (core.sync_task_cron_job). Returns the task row, or no row for an unknown task.
--   Locks: the task row; pg_cron's rows.
create or replace function core.set_task_enabled(p_namespace text, p_name text, p_enabled boolean) returns setof core.scheduled_tasks
language plpgsql as $$
declare
  v_task_id uuid;
begin
  update core.scheduled_tasks
     set enabled = p_enabled,
         updated_at = now(),
         fire_from = case when p_enabled and not enabled then now() else fire_from end
   where namespace = p_namespace and name = p_name
  returning task_id into v_task_id;
  if v_task_id is null then
    return;
  end if;
  perform core.sync_task_cron_job(v_task_id);
  return query select * from core.scheduled_tasks where task_id = v_task_id;
end;
$$;

-- core.unschedule_task(namespace, name)
--   Removes the task, its pg_cron job and its recorded fires. Returns whether it existed.
--   Locks: the task row (waits for a fire in progress); pg_cron's rows.
create or replace function core.unschedule_task(p_namespace text, p_name text) returns boolean
language plpgsql as $$
declare
  v_task_id uuid;
begin
  delete from core.scheduled_tasks where namespace = p_namespace and name = p_name returning task_id into v_task_id;
  if v_task_id is null then
    return false;
  end if;
  perform core.sync_task_cron_job(v_task_id);  -- the row is gone: removes the job
  return true;
end;
$$;

-- core.list_tasks(namespace)
--   The namespace's tasks by name, each with its newest recorded fire (nulls when none).
--   Locks: none.
create or replace function core.list_tasks(p_namespace text)
returns table (
  task_id uuid, name text, cron_expression text, timezone text, event_type text, payload jsonb, headers jsonb,
  enabled boolean, runner text, cron_job_id bigint, created_at timestamptz, updated_at timestamptz,
  last_scheduled_for timestamptz, last_fired_at timestamptz, last_outcome text, last_error text, last_event_id uuid
)
language sql stable as $$
  select t.task_id, t.name, t.cron_expression, t.timezone, t.event_type, t.payload, t.headers,
         t.enabled, t.runner, t.cron_job_id, t.created_at, t.updated_at,
         f.scheduled_for, f.fired_at, f.outcome, f.error, f.event_id
    from core.scheduled_tasks t
    left join lateral (
      select * from core.schedule_fires f where f.task_id = t.task_id order by f.scheduled_for desc limit 1
    ) f on true
   where t.namespace = p_namespace
   order by t.name;
$$;

-- core.run_scheduled_task(task_id, scheduled_for, source_node)
--   Fires one scheduled time of a task: what pg_cron's job runs (with scheduled_for null:
--   the current minute, in UTC) and what the fallback scheduler calls for each due time.
--   Records the fire in core.schedule_fires first (on conflict do nothing): when the time
--   was already recorded, by another leader or an earlier call, nothing is emitted. Else
--   emits the task's event through core.emit in the caller's transaction, with headers
--   nexus-task, nexus-task-id and nexus-scheduled-for (ISO 8601) added to the task's, and
--   records it as 'fired' with the event id. An emit that fails is rolled back alone and
--   recorded as 'failed' with its error. A paused task is not fired and not recorded; for
--   an unknown task, the pg_cron job still running it (if any) is removed.
--   Returns 'fired', 'failed', 'duplicate', 'paused' or 'missing'.
--   Locks: the task row (FOR KEY SHARE: an unschedule waits for the fire); the fire's key
--   (a concurrent call for the same time waits for this transaction, then does nothing).
create or replace function core.run_scheduled_task(
  p_task_id uuid, p_scheduled_for timestamptz default null, p_source_node uuid default null
) returns text
language plpgsql as $$
declare
  v_task core.scheduled_tasks;
  v_scheduled_for timestamptz := coalesce(p_scheduled_for, date_trunc('minute', now() at time zone 'UTC') at time zone 'UTC');
  v_event_id uuid;
  v_inserted boolean;
begin
  select * into v_task from core.scheduled_tasks where task_id = p_task_id for key share;
  if v_task.task_id is null then
    perform core.sync_task_cron_job(p_task_id);  -- removes a job left running for it
    return 'missing';
  end if;
  if not v_task.enabled then
    return 'paused';
  end if;

  insert into core.schedule_fires (task_id, scheduled_for, outcome, source_node)
  values (p_task_id, v_scheduled_for, 'fired', p_source_node)
  on conflict (task_id, scheduled_for) do nothing
  returning true into v_inserted;
  if v_inserted is null then
    return 'duplicate';
  end if;

  begin
    select e.event_id into v_event_id
      from core.emit(v_task.namespace, jsonb_build_array(jsonb_build_object(
             'type', v_task.event_type,
             'payload', v_task.payload,
             'headers', v_task.headers || jsonb_build_object(
               'nexus-task', v_task.name,
               'nexus-task-id', v_task.task_id::text,
               'nexus-scheduled-for', to_char(v_scheduled_for at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))),
           p_source_node) e;
  exception when others then
    update core.schedule_fires set outcome = 'failed', error = sqlerrm, fired_at = clock_timestamp()
     where task_id = p_task_id and scheduled_for = v_scheduled_for;
    raise warning 'scheduled task % (%) failed to emit % for %: %', v_task.name, v_task.task_id, v_task.event_type, v_scheduled_for, sqlerrm;
    return 'failed';
  end;
  update core.schedule_fires set event_id = v_event_id where task_id = p_task_id and scheduled_for = v_scheduled_for;
  return 'fired';
end;
$$;

-- core.skip_scheduled_fire(task_id, scheduled_for, reason)
--   Records a scheduled time that will not be fired (missed outside the catch-up window),
--   unless that time is already recorded. Returns whether it recorded it.
--   Locks: the fire's key, as core.run_scheduled_task.
create or replace function core.skip_scheduled_fire(p_task_id uuid, p_scheduled_for timestamptz, p_reason text) returns boolean
language sql as $$
  with recorded as (
    insert into core.schedule_fires (task_id, scheduled_for, outcome, error)
    select t.task_id, p_scheduled_for, 'skipped', p_reason from core.scheduled_tasks t where t.task_id = p_task_id
    on conflict (task_id, scheduled_for) do nothing
    returning 1
  )
  select exists (select 1 from recorded);
$$;

-- core.scheduler_tasks(namespace)
--   What the namespace's fallback scheduler runs: enabled tasks whose runner is the
--   scheduler (every enabled task when pg_cron is not installed, so tasks survive the
--   extension's removal), with fire_from and the newest recorded scheduled time, and the
--   database's clock (the leader's reference for what is due). Locks: none.
create or replace function core.scheduler_tasks(p_namespace text)
returns table (task_id uuid, name text, cron_expression text, timezone text, fire_from timestamptz,
               last_scheduled_for timestamptz, db_now timestamptz)
language sql stable as $$
  select t.task_id, t.name, t.cron_expression, t.timezone, t.fire_from,
         (select max(f.scheduled_for) from core.schedule_fires f where f.task_id = t.task_id),
         clock_timestamp()
    from core.scheduled_tasks t
   where t.namespace = p_namespace
     and t.enabled
     and (t.runner = 'scheduler' or not exists (select 1 from pg_extension where extname = 'pg_cron'))
   order by t.task_id;
$$;

-- core.scheduler_state(namespace)
--   What a node that is not the leader checks, on its pool, before contending: whether
--   the namespace has tasks for the fallback scheduler (as core.scheduler_tasks) and the
--   pid of the backend holding the scheduler lock (null when none). So followers hold no
--   connection and contend only when there is work and no leader. Locks: none.
create or replace function core.scheduler_state(p_namespace text, out has_work boolean, out leader_pid integer)
language sql stable as $$
  select exists (select 1 from core.scheduled_tasks t
                  where t.namespace = p_namespace and t.enabled
                    and (t.runner = 'scheduler' or not exists (select 1 from pg_extension where extname = 'pg_cron'))),
         (select l.pid from pg_locks l
           where l.locktype = 'advisory' and l.granted and l.objsubid = 1
             and l.database = (select d.oid from pg_database d where d.datname = current_database())
             and l.classid = ((core.scheduler_lock_key(p_namespace) >> 32) & 4294967295)::oid
             and l.objid = (core.scheduler_lock_key(p_namespace) & 4294967295)::oid
           limit 1);
$$;

-- core.prune_schedule_fires(namespace, keep)
--   Deletes the namespace's fire records older than keep, except each task's newest (the
--   scheduler counts from it). Returns the number deleted. Locks: the deleted rows.
create or replace function core.prune_schedule_fires(p_namespace text, p_keep interval) returns integer
language plpgsql as $$
declare
  v_deleted integer;
begin
  delete from core.schedule_fires f
   using core.scheduled_tasks t
   where t.task_id = f.task_id
     and t.namespace = p_namespace
     and f.fired_at < now() - p_keep
     and f.scheduled_for < (select max(l.scheduled_for) from core.schedule_fires l where l.task_id = f.task_id);
  get diagnostics v_deleted = row_count;
  return v_deleted;
end;
$$;
