-- Functions of roles: namespace roles, row-level security helpers and queue grants.
--
-- A repeatable file (see migration 14): the live definition of each function
-- below, applied by migrate() after the numbered migrations and again whenever this
-- file changes. Edit the function here; a new numbered migration is only for tables,
-- types, policies, and for dropping a function or changing its arguments or result.
-- First written in migration 12.

-- core.caller_namespace()
--   The namespace of the current role when it is a namespace role, else null. Invoker
--   rights on purpose: it must see the caller, not a definer. PL/pgSQL, not SQL: a SQL
--   function that is not inlined is planned again at every call (PostgreSQL before 18),
--   about 50 µs on every statement that asks (core.send_direct, core.broadcast, the
--   row-level policies), where PL/pgSQL keeps its plan for the session. Locks: none.
create or replace function core.caller_namespace() returns text
language plpgsql stable parallel safe as $$
begin
  return (select namespace from core.namespace_roles where role_name = current_user);
end;
$$;

-- core.assert_caller_namespace(namespace)
--   Raises 42501 when the current role is a namespace role of another namespace: for the
--   calls whose refusal no policy or grant expresses (a NOTIFY, a plan that would only
--   find nothing). Invoker rights. Locks: none.
create or replace function core.assert_caller_namespace(p_namespace text) returns void
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
--   Result: text (null when either argument is null). Errors: none. Locks: none.
create or replace function core.group_queue_name(p_namespace text, p_group text) returns text
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
create or replace function core.queue_privilege(p_queue text, p_privilege text) returns boolean
language sql stable as $$
  select coalesce(has_table_privilege(to_regclass(format('pgmq.%I', core.queue_table(p_queue))), p_privilege), false);
$$;

-- core.grant_queue(namespace, queue)
--   Grants the queue's tables (and their identity sequences) to every role of the
--   namespace. Internal: not executable by other roles. Locks: the grants' catalogue rows.
create or replace function core.grant_queue(p_namespace text, p_queue text) returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_role name;
  v_table regclass;
  v_sequence text;
begin
  for v_role in select r.role_name from core.namespace_roles r where r.namespace = p_namespace loop
    foreach v_table in array array[to_regclass(format('pgmq.%I', core.queue_table(p_queue))),
                                   to_regclass(format('pgmq.%I', core.queue_table(p_queue, 'a')))] loop
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
create or replace function core.create_granted_queues(p_namespace text, p_queues text[]) returns void
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
create or replace function core.assert_namespace_member(p_namespace text) returns void
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
create or replace function core.ensure_namespace_queues(p_namespace text, p_group text, p_queue text, p_kind text) returns void
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
create or replace function core.ensure_namespace_node_queue(p_node_id uuid) returns void
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
create or replace function core.drop_namespace_queue(p_queue text) returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  v_table regclass := to_regclass(format('pgmq.%I', core.queue_table(p_queue)));
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
create or replace function core.grant_group_queues(p_namespace text, p_queue text, p_kind text) returns void
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
  perform core.grant_queue(p_namespace, p_queue);
  if p_kind = 'event' then
    perform core.grant_queue(p_namespace, p_queue || '_dlq');
  end if;
end;
$$;

revoke execute on function core.grant_group_queues(text, text, text) from public;

-- core.grant_namespace_role(role, namespace)
--   Maps an existing role to a namespace and grants it what a node of that namespace
--   uses: the schemas, the shared tables above (filtered by their policies), and the
--   tables of the namespace's existing queues. Run by the database owner (createNamespaceRole
--   does); idempotent. Locks: the grants' catalogue rows.
create or replace function core.grant_namespace_role(p_role name, p_namespace text) returns void
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
