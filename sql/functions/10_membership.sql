-- Functions of membership: nodes, their heartbeats and their end.
--
-- A repeatable file (see migration 14): the live definition of each function
-- below, applied by migrate() after the numbered migrations and again whenever this
-- file changes. Edit the function here; a new numbered migration is only for tables,
-- types, policies, and for dropping a function or changing its arguments or result.
-- First written in migration 4.

-- core.register_node(node_id, namespace, display_name, metadata, host, pid, hears_notify)
--   Creates the namespace when new and registers the node as alive (re-registering an
--   existing id revives it). hears_notify (default true) records whether the node hears
--   NOTIFYs on its channel; senders put what they would NOTIFY a deaf node into its queue.
--   Returns the node's started_at.
--   Errors: check violations for names outside the grammar. Locks: the node's row.
--   (Live since migration 15, which added hears_notify.)
create or replace function core.register_node(
  p_node_id uuid, p_namespace text, p_display_name text, p_metadata jsonb, p_host text, p_pid integer,
  p_hears_notify boolean default true
) returns timestamptz
language sql as $$
  insert into core.namespaces (name) values (p_namespace) on conflict (name) do nothing;
  insert into core.nodes (node_id, namespace, display_name, metadata, host, pid, hears_notify)
  values (p_node_id, p_namespace, p_display_name, coalesce(p_metadata, '{}'::jsonb), p_host, p_pid, coalesce(p_hears_notify, true))
  on conflict (node_id) do update
    set display_name = excluded.display_name, metadata = excluded.metadata, host = excluded.host,
        pid = excluded.pid, hears_notify = excluded.hears_notify, status = 'alive', started_at = now(),
        last_heartbeat_at = now(), stopped_at = null
  returning started_at;
$$;

-- core.deaf_nodes(node_ids)
--   Those of the given nodes that cannot hear NOTIFYs on their channel
--   (core.nodes.hears_notify false, migration 15); nodes the registry does not know (or
--   that a namespace role cannot see) count as hearing. Senders ask it for every message
--   they would NOTIFY, so the usual answer costs almost nothing: a probe without
--   parameters of the partial index nodes_deaf_idx (which holds only deaf nodes) comes
--   first, with a plan PostgreSQL keeps; only when some node is deaf are the given ones
--   looked up (a lookup by a parameter is planned again at every call).
--   Result: uuid[], empty when all hear. Errors: none. Locks: none.
create or replace function core.deaf_nodes(p_node_ids uuid[]) returns uuid[]
language plpgsql stable as $$
declare
  v_deaf uuid[];
begin
  if not exists (select 1 from core.nodes n where not n.hears_notify) then
    return '{}';
  end if;
  select coalesce(array_agg(n.node_id), '{}') into v_deaf
    from core.nodes n where n.node_id = any(p_node_ids) and not n.hears_notify;
  return v_deaf;
end;
$$;

-- core.node_hears(node_id)
--   Whether the node hears NOTIFYs on its channel: not among core.deaf_nodes.
--   Result: boolean. Errors: none. Locks: none.
create or replace function core.node_hears(p_node_id uuid) returns boolean
language sql stable as $$
  select cardinality(core.deaf_nodes(array[p_node_id])) = 0;
$$;

-- core.has_deaf_nodes(namespace)
--   Whether an alive node of the namespace cannot hear NOTIFYs (registered with
--   hears_notify false). A direct request that finds no node to NOTIFY asks it before
--   failing: such a node answers through its group's queue instead.
--   Result: boolean. Errors: none. Locks: none.
create or replace function core.has_deaf_nodes(p_namespace text) returns boolean
language sql stable as $$
  select exists (select 1 from core.nodes n where n.namespace = p_namespace and n.status = 'alive' and not n.hears_notify);
$$;

-- core.touch_node_heartbeat(node_id)
--   Records a heartbeat. A node marked dead by a peer (a long pause, a partition) comes
--   back to life; a stopped node stays stopped. Returns false for an unknown or stopped
--   node, so the caller learns it must register again. Locks: the node's row.
create or replace function core.touch_node_heartbeat(p_node_id uuid) returns boolean
language sql as $$
  with touched as (
    update core.nodes
       set last_heartbeat_at = now(), status = 'alive'
     where node_id = p_node_id and status <> 'stopped'
    returning 1
  )
  select exists (select 1 from touched);
$$;

-- core.mark_dead_nodes(namespace, ttl)
--   Marks dead every alive node of the namespace whose last heartbeat is older than ttl.
--   Returns the ids it marked. Locks: those rows (SKIP LOCKED, so concurrent callers
--   never wait on each other).
create or replace function core.mark_dead_nodes(p_namespace text, p_ttl interval) returns setof uuid
language sql as $$
  with expired as (
    select node_id from core.nodes
     where namespace = p_namespace and status = 'alive' and last_heartbeat_at < now() - p_ttl
     for update skip locked
  )
  update core.nodes n set status = 'dead'
    from expired e
   where n.node_id = e.node_id
  returning n.node_id;
$$;

-- core.stop_node(node_id)
--   Marks the node stopped (a graceful exit). Returns false when the node is unknown.
--   Locks: the node's row.
create or replace function core.stop_node(p_node_id uuid) returns boolean
language sql as $$
  with stopped as (
    update core.nodes set status = 'stopped', stopped_at = now()
     where node_id = p_node_id
    returning 1
  )
  select exists (select 1 from stopped);
$$;
