-- Migration 12: namespace roles, for tenants that share one database.
--
-- A namespace role (made by CoreSystem.createNamespaceRole, core/roles.ts) is a PostgreSQL
-- login role mapped to one namespace in core.namespace_roles. It may emit and consume in
-- that namespace and nothing else:
--   * the shared core tables have row-level security: a namespace role sees and writes
--     only the rows of its namespace (the table owner and roles that are not namespace
--     roles are not affected: owners bypass RLS, and the policies let unmapped roles see
--     every row as before);
--   * a queue's tables (pgmq.q_<queue>, pgmq.a_<queue>) are granted only to the roles of
--     the namespace the queue belongs to. Queues made later (a new group, a new node) are
--     created for a namespace role by SECURITY DEFINER functions that first check that the
--     queue's name is the one the namespace's grammar gives (core.group_queue_name, or the
--     queue of a node registered in that namespace), then grant the new tables to the
--     namespace's roles; queues made by an unmapped role (the application owner) are
--     granted to the namespace's roles too.
-- A refusal is SQLSTATE 42501 (insufficient_privilege), which the package turns into a
-- PermissionError. NOTIFY cannot be restricted by PostgreSQL: see README, "Namespace
-- isolation", for what channel names and timing still reveal.

create table core.namespace_roles (
  role_name  name primary key,
  namespace  text not null references core.namespaces (name) on delete cascade,
  created_at timestamptz not null default now()
);

comment on table core.namespace_roles is 'PostgreSQL roles confined to one namespace (row-level security and queue grants).';

-- Every role reads the mapping: the policies of the other tables look the caller up here.
grant select on core.namespace_roles to public;

-- core.caller_namespace()
--   The namespace of the current role when it is a namespace role, else null. Invoker
--   rights on purpose: it must see the caller, not a definer. Locks: none.
create function core.caller_namespace() returns text
language sql stable parallel safe as $$
  select namespace from core.namespace_roles where role_name = current_user;
$$;

-- core.assert_caller_namespace(namespace)
--   Raises 42501 when the current role is a namespace role of another namespace: for the
--   calls whose refusal no policy or grant expresses (a NOTIFY, a plan that would only
--   find nothing). Invoker rights. Locks: none.
create function core.assert_caller_namespace(p_namespace text) returns void
language plpgsql stable as $$
declare
  v_caller text := core.caller_namespace();
begin
  if v_caller is not null and v_caller is distinct from p_namespace then
    raise exception 'permission denied: namespace role % may only work in namespace %, not %', current_user, v_caller, p_namespace
      using errcode = 'insufficient_privilege';
  end if;
end;
$$;

-- core.group_queue_name(namespace, group)
--   The pgmq queue of a group: the same function as groupQueueName in core/names.ts
--   (readable 'namespace__group' when unambiguous and short, else a sanitised prefix and
--   the first 12 hex digits of sha256(namespace NUL group)). Immutable.
create function core.group_queue_name(p_namespace text, p_group text) returns text
language sql immutable strict parallel safe as $$
  select case
    when p_namespace ~ '^[a-z0-9]+(_[a-z0-9]+)*$' and p_group ~ '^[a-z0-9]+(_[a-z0-9]+)*$'
         and (p_namespace || '__' || p_group) !~ '_(dlq|rq)$'
         and length(p_namespace || '__' || p_group) <= 43
      then p_namespace || '__' || p_group
    else regexp_replace(left(regexp_replace(p_namespace || '_' || p_group, '[-_]+', '_', 'g'), 29), '_$', '')
         || '_h' || left(encode(sha256(convert_to(p_namespace, 'UTF8') || '\x00'::bytea || convert_to(p_group, 'UTF8')), 'hex'), 12)
  end;
$$;

-- core.queue_privilege(queue, privilege)
--   Whether the current role holds `privilege` on the queue's table; false when the queue
--   does not exist. Used by the policy of core.message_failures. Locks: none.
create function core.queue_privilege(p_queue text, p_privilege text) returns boolean
language sql stable as $$
  select coalesce(has_table_privilege(to_regclass('pgmq.' || quote_ident('q_' || lower(p_queue))), p_privilege), false);
$$;

-- core.grant_queue(namespace, queue)
--   Grants the queue's tables (and their identity sequences) to every role of the
--   namespace. Internal: not executable by other roles. Locks: the grants' catalogue rows.
create function core.grant_queue(p_namespace text, p_queue text) returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_role name;
  v_table regclass;
  v_sequence text;
begin
  for v_role in select r.role_name from core.namespace_roles r where r.namespace = p_namespace loop
    foreach v_table in array array[to_regclass('pgmq.' || quote_ident('q_' || lower(p_queue))),
                                   to_regclass('pgmq.' || quote_ident('a_' || lower(p_queue)))] loop
      continue when v_table is null;
      execute format('grant select, insert, update, delete on %s to %I', v_table, v_role);
      v_sequence := pg_get_serial_sequence(v_table::text, 'msg_id');
      if v_sequence is not null then
        execute format('grant usage, select on sequence %s to %I', v_sequence, v_role);
      end if;
    end loop;
  end loop;
end;
$$;

revoke execute on function core.grant_queue(text, text) from public;

-- core.create_granted_queues(namespace, queues)
--   Creates each missing queue (as the owner) and grants it to the namespace's roles.
--   Internal: its callers have checked the queues belong to the namespace.
create function core.create_granted_queues(p_namespace text, p_queues text[]) returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_queue text;
begin
  foreach v_queue in array p_queues loop
    if not exists (select 1 from pgmq.meta where queue_name = v_queue) then
      perform pgmq.create(v_queue);
      perform core.grant_queue(p_namespace, v_queue);
    end if;
  end loop;
end;
$$;

revoke execute on function core.create_granted_queues(text, text[]) from public;

-- core.assert_namespace_member(namespace)
--   Raises 42501 unless the session's role is (a member of) a role of the namespace.
--   SECURITY DEFINER functions call it: inside them current_user is the owner, and
--   session_user, which a role cannot change without being superuser, is the caller.
create function core.assert_namespace_member(p_namespace text) returns void
language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
begin
  if not exists (select 1 from core.namespace_roles r
                  where r.namespace = p_namespace and pg_has_role(session_user, r.role_name, 'MEMBER')) then
    raise exception 'permission denied: role % may not use namespace %', session_user, p_namespace
      using errcode = 'insufficient_privilege';
  end if;
end;
$$;

-- core.ensure_namespace_queues(namespace, group, queue, kind)
--   For a namespace role: creates the group's queue (and, for events, its dead-letter
--   queue) when missing, as the owner, after checking that the caller belongs to the
--   namespace and that `queue` is the group's queue ('<group queue>_rq' for kind
--   'request'), so no role can claim another namespace's queue name in advance. Grants
--   them to the namespace's roles. Errors: 42501. Locks: pgmq.create's.
create function core.ensure_namespace_queues(p_namespace text, p_group text, p_queue text, p_kind text) returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_expected text := core.group_queue_name(p_namespace, p_group) || (case when p_kind = 'request' then '_rq' else '' end);
begin
  perform core.assert_namespace_member(p_namespace);
  if p_queue is distinct from v_expected then
    raise exception 'permission denied: queue % is not the % queue of group % in namespace %', p_queue, p_kind, p_group, p_namespace
      using errcode = 'insufficient_privilege';
  end if;
  perform core.create_granted_queues(p_namespace, case when p_kind = 'event' then array[p_queue, p_queue || '_dlq'] else array[p_queue] end);
end;
$$;

-- core.ensure_namespace_node_queue(node_id)
--   For a namespace role: creates a node's queue and dead-letter queue when missing, as
--   the owner, when the node is registered in a namespace the caller belongs to; grants
--   them to that namespace's roles. Errors: 42501 (another namespace's node, or an
--   unknown one). Locks: pgmq.create's.
create function core.ensure_namespace_node_queue(p_node_id uuid) returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_namespace text := (select n.namespace from core.nodes n where n.node_id = p_node_id);
begin
  if v_namespace is null then
    raise exception 'permission denied: node % is not registered', p_node_id using errcode = 'insufficient_privilege';
  end if;
  perform core.assert_namespace_member(v_namespace);
  perform core.create_granted_queues(v_namespace, array[core.node_queue(p_node_id), core.node_queue(p_node_id) || '_dlq']);
end;
$$;

-- core.drop_namespace_queue(queue)
--   For a namespace role: drops a queue it was granted (the queues of its own namespace),
--   as the owner. Errors: 42501 for any other queue. Locks: ACCESS EXCLUSIVE on its tables.
create function core.drop_namespace_queue(p_queue text) returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_table regclass := to_regclass('pgmq.' || quote_ident('q_' || lower(p_queue)));
begin
  if v_table is null then
    return;
  end if;
  if not has_table_privilege(session_user, v_table, 'DELETE') then
    raise exception 'permission denied: role % may not drop queue %', session_user, p_queue using errcode = 'insufficient_privilege';
  end if;
  perform pgmq.drop_queue(p_queue);
end;
$$;

-- core.grant_group_queues(namespace, queue, kind)
--   After an unmapped role (the application) created a group's queues: grants them to the
--   namespace's roles, if it has any. Locks: the grants' catalogue rows.
create function core.grant_group_queues(p_namespace text, p_queue text, p_kind text) returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
  perform core.grant_queue(p_namespace, p_queue);
  if p_kind = 'event' then
    perform core.grant_queue(p_namespace, p_queue || '_dlq');
  end if;
end;
$$;

revoke execute on function core.grant_group_queues(text, text, text) from public;

-- The queue-creating functions of migrations 5 and 6, now aware of namespace roles: an
-- unmapped caller keeps its own rights (as before), a namespace role goes through the
-- checks above.

create or replace function core.subscribe(p_namespace text, p_group text, p_pattern text, p_queue text, p_kind text default 'event')
returns void
language plpgsql as $$
begin
  insert into core.namespaces (name) values (p_namespace) on conflict (name) do nothing;
  if core.caller_namespace() is null then
    perform core.ensure_queue(p_queue);
    if p_kind = 'event' then
      perform core.ensure_queue(p_queue || '_dlq');
    end if;
    if exists (select 1 from core.namespace_roles where namespace = p_namespace) then
      perform core.grant_group_queues(p_namespace, p_queue, p_kind);
    end if;
  else
    perform core.ensure_namespace_queues(p_namespace, p_group, p_queue, p_kind);
  end if;
  insert into core.subscriptions (namespace, group_name, pattern, queue_name, kind)
  values (p_namespace, p_group, p_pattern, p_queue, p_kind)
  on conflict (namespace, group_name, pattern, kind) do nothing;
end;
$$;

create or replace function core.ensure_node_queue(p_node_id uuid) returns text
language plpgsql as $$
declare
  v_queue text := core.node_queue(p_node_id);
  v_namespace text;
begin
  if exists (select 1 from pgmq.meta where queue_name = v_queue)
     and exists (select 1 from pgmq.meta where queue_name = v_queue || '_dlq') then
    return v_queue;
  end if;
  if core.caller_namespace() is not null then
    perform core.ensure_namespace_node_queue(p_node_id);
    return v_queue;
  end if;
  perform core.ensure_queue(v_queue);
  perform core.ensure_queue(v_queue || '_dlq');
  select n.namespace into v_namespace from core.nodes n where n.node_id = p_node_id;
  if exists (select 1 from core.namespace_roles where namespace = v_namespace) then
    perform core.grant_group_queues(v_namespace, v_queue, 'event');
  end if;
  return v_queue;
end;
$$;

create or replace function core.drop_queue_if_exists(p_queue text) returns void
language plpgsql as $$
begin
  if exists (select 1 from pgmq.meta where queue_name = p_queue) then
    if core.caller_namespace() is null then
      perform pgmq.drop_queue(p_queue);
    else
      perform core.drop_namespace_queue(p_queue);
    end if;
  end if;
end;
$$;

-- Same as migration 6, with the node queues dropped through core.drop_queue_if_exists
-- (a namespace role does not own them).
create or replace function core.clean_up_namespace(p_namespace text, p_node_queue_grace interval, p_broadcast_ttl interval)
returns integer
language plpgsql as $$
declare
  v_queue text;
  v_dropped integer := 0;
begin
  delete from core.broadcast_payloads where namespace = p_namespace and created_at < now() - p_broadcast_ttl;
  for v_queue in
    select m.queue_name
      from core.nodes n
      join pgmq.meta m on m.queue_name = core.node_queue(n.node_id)
     where n.namespace = p_namespace
       and n.status in ('stopped', 'dead')
       and coalesce(n.stopped_at, n.last_heartbeat_at) < now() - p_node_queue_grace
  loop
    perform core.drop_queue_if_exists(v_queue);
    perform core.drop_queue_if_exists(v_queue || '_dlq');
    v_dropped := v_dropped + 1;
  end loop;
  return v_dropped;
end;
$$;

-- Same as migration 6, refusing a namespace role's broadcast into another namespace
-- (a NOTIFY touches no table, so no policy would stop it).
create or replace function core.broadcast(p_namespace text, p_channel text, p_payload jsonb, p_source_node uuid) returns void
language plpgsql as $$
declare
  v_message jsonb := jsonb_build_object('b', p_channel, 'p', p_payload, 's', p_source_node);
  v_id bigint;
begin
  perform core.assert_caller_namespace(p_namespace);
  perform set_config('synchronous_commit', 'off', true);
  if octet_length(v_message::text) > core.notify_limit() then
    insert into core.broadcast_payloads (namespace, payload) values (p_namespace, p_payload) returning id into v_id;
    v_message := jsonb_build_object('b', p_channel, 'r', v_id, 's', p_source_node);
  end if;
  perform pg_notify('nexus:' || p_namespace, v_message::text);
end;
$$;

-- Same as migration 8, refusing a namespace role's replay in another namespace (its
-- policies would only make the plan find no subscription).
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

-- Row-level security on the shared tables. Each policy admits every row to a role that is
-- not a namespace role (caller_namespace() is null) and only its namespace's rows to one
-- that is; `(select ...)` makes the lookup run once per statement, not once per row.
alter table core.namespaces enable row level security;
create policy namespace_isolation on core.namespaces
  using ((select core.caller_namespace()) is null or name = (select core.caller_namespace()));

alter table core.nodes enable row level security;
create policy namespace_isolation on core.nodes
  using ((select core.caller_namespace()) is null or namespace = (select core.caller_namespace()));

alter table core.event_log enable row level security;
create policy namespace_isolation on core.event_log
  using ((select core.caller_namespace()) is null or namespace = (select core.caller_namespace()));

-- A namespace role's subscriptions must also name their group's own queue.
alter table core.subscriptions enable row level security;
create policy namespace_isolation on core.subscriptions
  using ((select core.caller_namespace()) is null or namespace = (select core.caller_namespace()))
  with check ((select core.caller_namespace()) is null
              or (namespace = (select core.caller_namespace())
                  and queue_name = core.group_queue_name(namespace, group_name) || case when kind = 'request' then '_rq' else '' end));

alter table core.scheduled_tasks enable row level security;
create policy namespace_isolation on core.scheduled_tasks
  using ((select core.caller_namespace()) is null or namespace = (select core.caller_namespace()));

alter table core.schedule_fires enable row level security;
create policy namespace_isolation on core.schedule_fires
  using ((select core.caller_namespace()) is null
         or exists (select 1 from core.scheduled_tasks t where t.task_id = schedule_fires.task_id));

alter table core.idempotency_keys enable row level security;
create policy namespace_isolation on core.idempotency_keys
  using ((select core.caller_namespace()) is null or namespace = (select core.caller_namespace()));

alter table core.broadcast_payloads enable row level security;
create policy namespace_isolation on core.broadcast_payloads
  using ((select core.caller_namespace()) is null or namespace = (select core.caller_namespace()));

-- Failure records carry a queue name, not a namespace: a namespace role sees those of the
-- queues it was granted.
alter table core.message_failures enable row level security;
create policy namespace_isolation on core.message_failures
  using ((select core.caller_namespace()) is null or core.queue_privilege(queue_name, 'DELETE'));

-- core.grant_namespace_role(role, namespace)
--   Maps an existing role to a namespace and grants it what a node of that namespace
--   uses: the schemas, the shared tables above (filtered by their policies), and the
--   tables of the namespace's existing queues. Run by the database owner (createNamespaceRole
--   does); idempotent. Locks: the grants' catalogue rows.
create function core.grant_namespace_role(p_role name, p_namespace text) returns void
language plpgsql as $$
declare
  v_queue text;
begin
  insert into core.namespaces (name) values (p_namespace) on conflict (name) do nothing;
  insert into core.namespace_roles (role_name, namespace) values (p_role, p_namespace)
  on conflict (role_name) do update set namespace = excluded.namespace;
  execute format('grant usage on schema core, pgmq to %I', p_role);
  execute format('grant select on core.schema_migrations, pgmq.meta to %I', p_role);
  execute format('grant select, insert on core.namespaces to %I', p_role);
  execute format('grant select, insert, update on core.nodes to %I', p_role);
  execute format('grant select, insert, delete on core.event_log, core.subscriptions, core.broadcast_payloads, core.request_claims to %I', p_role);
  execute format('grant select, insert, update, delete on core.scheduled_tasks, core.schedule_fires, core.idempotency_keys, core.message_failures to %I', p_role);
  for v_queue in
    select q from (
      select s.queue_name as q from core.subscriptions s where s.namespace = p_namespace
      union select s.queue_name || '_dlq' from core.subscriptions s where s.namespace = p_namespace and s.kind = 'event'
      union select core.node_queue(n.node_id) from core.nodes n where n.namespace = p_namespace
      union select core.node_queue(n.node_id) || '_dlq' from core.nodes n where n.namespace = p_namespace
    ) queues
    where exists (select 1 from pgmq.meta m where m.queue_name = queues.q)
  loop
    perform core.grant_queue(p_namespace, v_queue);
  end loop;
end;
$$;

revoke execute on function core.grant_namespace_role(name, text) from public;
