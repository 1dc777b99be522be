-- Migration 4: the core schema: namespaces, nodes and their heartbeats, the event log,
-- subscriptions and scheduled tasks.
--
-- Names are validated in TypeScript before any call; the CHECK constraints repeat the
-- grammar (DESIGN.md, "Names, ids and units") so that no other writer can break it.

create table core.namespaces (
  name       text primary key check (name ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
  settings   jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);

comment on table core.namespaces is 'Namespaces: the unit of isolation; a namespace never spans servers.';

create table core.nodes (
  node_id           uuid primary key,
  namespace         text not null references core.namespaces (name) on delete cascade,
  display_name      text not null check (length(display_name) between 1 and 200),
  metadata          jsonb not null default '{}'::jsonb,
  status            text not null default 'alive' check (status in ('alive', 'stopped', 'dead')),
  host              text,
  pid               integer,
  started_at        timestamptz not null default now(),
  last_heartbeat_at timestamptz not null default now(),
  stopped_at        timestamptz
);

create index nodes_namespace_status_idx on core.nodes (namespace, status, last_heartbeat_at);

comment on table core.nodes is 'Processes registered in a namespace; alive nodes heartbeat, silent ones are marked dead.';

-- The event log: append-only, range-partitioned by emitted_at. The default partition
-- takes rows no other partition covers, so an emit never fails for want of a partition;
-- partition management and retention (pg_partman or the project's own) come with the
-- scheduler.
create table core.event_log (
  id              uuid not null,
  namespace       text not null,
  type            text not null,
  payload         jsonb not null,
  headers         jsonb not null default '{}'::jsonb,
  emitted_at      timestamptz not null default now(),
  source_node     uuid,
  idempotency_key text,
  primary key (emitted_at, id)
) partition by range (emitted_at);

create table core.event_log_default partition of core.event_log default;

create index event_log_namespace_type_time_idx on core.event_log (namespace, type, emitted_at);
create index event_log_id_idx on core.event_log (id);

comment on table core.event_log is 'Every emitted event, once; the source of replay. Partitioned by emitted_at.';

create table core.subscriptions (
  namespace  text not null references core.namespaces (name) on delete cascade,
  group_name text not null check (group_name ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
  pattern    text not null check (length(pattern) between 1 and 255),
  queue_name text not null,
  -- 'event': the group gets a copy of each matching event; 'request': the group answers
  -- matching requests (one responder group per request).
  kind       text not null default 'event' check (kind in ('event', 'request')),
  created_at timestamptz not null default now(),
  primary key (namespace, group_name, pattern, kind)
);

create index subscriptions_queue_idx on core.subscriptions (queue_name);

comment on table core.subscriptions is 'Durable (namespace, group, pattern, kind) subscriptions: events fan out to every matching group; requests go to one.';

create table core.scheduled_tasks (
  task_id         uuid primary key default gen_random_uuid(),
  namespace       text not null references core.namespaces (name) on delete cascade,
  name            text not null check (length(name) between 1 and 200),
  cron_expression text not null,
  event_type      text not null,
  payload         jsonb not null default '{}'::jsonb,
  headers         jsonb not null default '{}'::jsonb,
  enabled         boolean not null default true,
  cron_job_id     bigint,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now(),
  unique (namespace, name)
);

comment on table core.scheduled_tasks is 'Recurring tasks; pg_cron (or the fallback scheduler) runs core.run_scheduled_task.';

-- core.register_node(node_id, namespace, display_name, metadata, host, pid)
--   Creates the namespace when new and registers the node as alive (re-registering an
--   existing id revives it). Returns the node's started_at.
--   Errors: check violations for names outside the grammar. Locks: the node's row.
create function core.register_node(
  p_node_id uuid, p_namespace text, p_display_name text, p_metadata jsonb, p_host text, p_pid integer
) returns timestamptz
language sql as $$
  insert into core.namespaces (name) values (p_namespace) on conflict (name) do nothing;
  insert into core.nodes (node_id, namespace, display_name, metadata, host, pid)
  values (p_node_id, p_namespace, p_display_name, coalesce(p_metadata, '{}'::jsonb), p_host, p_pid)
  on conflict (node_id) do update
    set display_name = excluded.display_name, metadata = excluded.metadata, host = excluded.host,
        pid = excluded.pid, status = 'alive', started_at = now(), last_heartbeat_at = now(), stopped_at = null
  returning started_at;
$$;

-- core.touch_node_heartbeat(node_id)
--   Records a heartbeat. A node marked dead by a peer (a long pause, a partition) comes
--   back to life; a stopped node stays stopped. Returns false for an unknown or stopped
--   node, so the caller learns it must register again. Locks: the node's row.
create function core.touch_node_heartbeat(p_node_id uuid) returns boolean
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
create function core.mark_dead_nodes(p_namespace text, p_ttl interval) returns setof uuid
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
create function core.stop_node(p_node_id uuid) returns boolean
language sql as $$
  with stopped as (
    update core.nodes set status = 'stopped', stopped_at = now()
     where node_id = p_node_id
    returning 1
  )
  select exists (select 1 from stopped);
$$;
