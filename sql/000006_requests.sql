-- Migration 6: request/response, direct sends and broadcasts.
--
-- Requests go durably to the responder group's request queue ('<group queue>_rq'), with a
-- correlation id, the requester's node id (its reply address) and a deadline. Replies
-- come back on the requester's node channel 'nexus:n:<node id>' by NOTIFY when small and
-- allowed, or through the requester's node queue 'n_<node id hex>' (which also carries
-- direct sends), followed by an empty NOTIFY to wake it. Broadcasts are a NOTIFY on the
-- namespace channel; a payload too large for NOTIFY waits in core.broadcast_payloads.

-- A group subscribes a pattern either to events (fan-out copies) or to requests (one
-- responder group answers each request).
alter table core.subscriptions add column kind text not null default 'event' check (kind in ('event', 'request'));
alter table core.subscriptions drop constraint subscriptions_pkey;
alter table core.subscriptions add primary key (namespace, group_name, pattern, kind);

-- core.subscribe, core.unsubscribe, core.drop_group: as in migration 5, for the new key.
--   subscribe and unsubscribe concern event subscriptions; drop_group removes both kinds
--   and drops the group's request queue too.
create or replace function core.subscribe(p_namespace text, p_group text, p_pattern text, p_queue text) returns void
language plpgsql as $$
begin
  insert into core.namespaces (name) values (p_namespace) on conflict (name) do nothing;
  if not exists (select 1 from pgmq.meta where queue_name = p_queue) then
    perform pgmq.create(p_queue);
  end if;
  if not exists (select 1 from pgmq.meta where queue_name = p_queue || '_dlq') then
    perform pgmq.create(p_queue || '_dlq');
  end if;
  insert into core.subscriptions (namespace, group_name, pattern, queue_name, kind)
  values (p_namespace, p_group, p_pattern, p_queue, 'event')
  on conflict (namespace, group_name, pattern, kind) do nothing;
end;
$$;

create or replace function core.unsubscribe(p_namespace text, p_group text, p_pattern text) returns boolean
language sql as $$
  with removed as (
    delete from core.subscriptions
     where namespace = p_namespace and group_name = p_group and pattern = p_pattern and kind = 'event'
    returning 1
  )
  select exists (select 1 from removed);
$$;

create or replace function core.drop_group(p_namespace text, p_group text, p_queue text) returns integer
language plpgsql as $$
declare
  v_removed integer;
  v_queue text;
begin
  delete from core.subscriptions where namespace = p_namespace and group_name = p_group;
  get diagnostics v_removed = row_count;
  delete from core.message_failures where queue_name = p_queue;
  foreach v_queue in array array[p_queue, p_queue || '_dlq', p_queue || '_rq'] loop
    if exists (select 1 from pgmq.meta where queue_name = v_queue) then
      perform pgmq.drop_queue(v_queue);
    end if;
  end loop;
  return v_removed;
end;
$$;

-- Largest NOTIFY payload the package sends: PostgreSQL's limit is 8000 bytes.
create function core.notify_limit() returns integer language sql immutable parallel safe as 'select 7900';

-- core.node_queue(node_id)
--   The pgmq queue of a node: 'n_' and the node id's 32 hex digits. Immutable.
create function core.node_queue(p_node_id uuid) returns text
language sql immutable strict parallel safe as $$
  select 'n_' || replace(p_node_id::text, '-', '');
$$;

-- core.node_channel(node_id)
--   The NOTIFY channel of a node: 'nexus:n:<node id>'. Immutable.
create function core.node_channel(p_node_id uuid) returns text
language sql immutable strict parallel safe as $$
  select 'nexus:n:' || p_node_id::text;
$$;

-- core.emit: as in migration 5, fanning out to event subscriptions only.
create or replace function core.emit(
  p_namespace text, p_events jsonb, p_source_node uuid default null,
  p_idempotency_window interval default interval '24 hours'
) returns table (event_id uuid, published boolean)
language plpgsql as $$
declare
  v_event jsonb;
  v_id uuid;
  v_key text;
  v_first uuid;
  v_headers jsonb;
  v_matched text[];
  v_queues text[] := '{}';
  v_delays integer[] := '{}';
  v_messages jsonb[] := '{}';
  v_batch record;
begin
  for v_event in select value from jsonb_array_elements(p_events) loop
    v_id := gen_random_uuid();
    v_key := v_event ->> 'idempotencyKey';
    if v_key is not null then
      v_first := null;
      insert into core.idempotency_keys as k (namespace, key, event_id, expires_at)
      values (p_namespace, v_key, v_id, now() + p_idempotency_window)
      on conflict (namespace, key) do update
        set event_id = excluded.event_id, expires_at = excluded.expires_at
        where k.expires_at < now()
      returning k.event_id into v_first;
      if v_first is null then
        select k.event_id into v_first from core.idempotency_keys k where k.namespace = p_namespace and k.key = v_key;
        event_id := v_first;
        published := false;
        return next;
        continue;
      end if;
    end if;

    v_headers := coalesce(v_event -> 'headers', '{}'::jsonb);
    insert into core.event_log (id, namespace, type, payload, headers, emitted_at, source_node, idempotency_key)
    values (v_id, p_namespace, v_event ->> 'type', v_event -> 'payload', v_headers, now(), p_source_node, v_key);

    select array_agg(queue_name) into v_matched
      from (select distinct queue_name from core.subscriptions
             where namespace = p_namespace and kind = 'event' and (v_event ->> 'type') ~ pattern_regex) s;
    if v_matched is not null then
      v_queues := v_queues || v_matched;
      v_delays := v_delays || array_fill(coalesce((v_event ->> 'delaySeconds')::integer, 0), array[cardinality(v_matched)]);
      v_messages := v_messages || array_fill(jsonb_build_object(
        'id', v_id, 'type', v_event ->> 'type', 'payload', v_event -> 'payload',
        'headers', v_headers, 'emittedAt', now(), 'sourceNode', p_source_node), array[cardinality(v_matched)]);
    end if;

    event_id := v_id;
    published := true;
    return next;
  end loop;

  -- One send_batch per (queue, delay) keeps the copies of a batch in emit order.
  for v_batch in
    select queue, delay, array_agg(message order by ord) as messages
      from unnest(v_queues, v_delays, v_messages) with ordinality as c(queue, delay, message, ord)
     group by queue, delay
  loop
    perform pgmq.send_batch(v_batch.queue, v_batch.messages, v_batch.delay);
  end loop;

  perform pg_notify('nexus:' || p_namespace, queue)
     from (select distinct queue from unnest(v_queues, v_delays) as c(queue, delay) where delay = 0) woken;
end;
$$;

-- core.subscribe_requests(namespace, group, pattern, queue_name)
--   Records that the group answers requests matching pattern, on its request queue,
--   creating the queue when it does not exist yet. Returns nothing.
create function core.subscribe_requests(p_namespace text, p_group text, p_pattern text, p_queue text) returns void
language plpgsql as $$
begin
  insert into core.namespaces (name) values (p_namespace) on conflict (name) do nothing;
  if not exists (select 1 from pgmq.meta where queue_name = p_queue) then
    perform pgmq.create(p_queue);
  end if;
  insert into core.subscriptions (namespace, group_name, pattern, queue_name, kind)
  values (p_namespace, p_group, p_pattern, p_queue, 'request')
  on conflict (namespace, group_name, pattern, kind) do nothing;
end;
$$;

-- core.ensure_node_queue(node_id)
--   Creates the node's queue and its dead-letter queue when missing; returns the queue.
create function core.ensure_node_queue(p_node_id uuid) returns text
language plpgsql as $$
declare
  v_queue text := core.node_queue(p_node_id);
begin
  if not exists (select 1 from pgmq.meta where queue_name = v_queue) then
    perform pgmq.create(v_queue);
    perform pgmq.create(v_queue || '_dlq');
  end if;
  return v_queue;
end;
$$;

-- core.request(namespace, type, envelope)
--   Routes a request to the one group answering its type: an exact pattern before
--   wildcards, then the first group by name. Sends the envelope to that group's request
--   queue and wakes its consumers. The commit is asynchronous: the caller is waiting and
--   times out if a server crash loses the request (DESIGN.md, performance model); a
--   responder crash loses nothing, the request stays queued. Returns the queue, or null
--   when no group answers the type. Locks: none beyond pgmq.send's insert.
create function core.request(p_namespace text, p_type text, p_envelope jsonb) returns text
language plpgsql as $$
declare
  v_queue text;
begin
  select queue_name into v_queue
    from core.subscriptions
   where namespace = p_namespace and kind = 'request' and p_type ~ pattern_regex
   order by (pattern = p_type) desc, group_name
   limit 1;
  if v_queue is null then
    return null;
  end if;
  perform set_config('synchronous_commit', 'off', true);
  perform pgmq.send(v_queue, p_envelope, 0);
  perform pg_notify('nexus:' || p_namespace, v_queue);
  return v_queue;
end;
$$;

-- core.send_to_node(node_id, message, via_queue)
--   Delivers a reply or control message to one node: on its channel by NOTIFY when
--   via_queue is false and the message fits, else into its queue (created when missing)
--   followed by an empty NOTIFY that wakes its reader. Returns 'notify' or 'queue'.
--   Transactional: nothing is delivered unless the caller's transaction commits. It sets
--   the transaction's commit to asynchronous: a reply lost in a server crash is lost
--   together with the responder's effects and acknowledgement, so a durable request is
--   simply run again (DESIGN.md, performance model).
create function core.send_to_node(p_node_id uuid, p_message jsonb, p_via_queue boolean) returns text
language plpgsql as $$
declare
  v_text text := p_message::text;
begin
  perform set_config('synchronous_commit', 'off', true);
  if not p_via_queue and octet_length(v_text) <= core.notify_limit() then
    perform pg_notify(core.node_channel(p_node_id), v_text);
    return 'notify';
  end if;
  perform pgmq.send(core.ensure_node_queue(p_node_id), p_message, 0);
  perform pg_notify(core.node_channel(p_node_id), '');
  return 'queue';
end;
$$;

create table core.broadcast_payloads (
  id         bigint generated always as identity primary key,
  namespace  text not null,
  payload    jsonb not null,
  created_at timestamptz not null default now()
);

comment on table core.broadcast_payloads is 'Broadcast payloads too large for NOTIFY; kept briefly for receivers to fetch.';

-- core.broadcast(namespace, channel, payload, source_node)
--   NOTIFYs every node of the namespace: '{"b": channel, "p": payload, "s": source}' when
--   it fits, else the payload goes into core.broadcast_payloads and the NOTIFY carries
--   its id as "r". Non-durable: only live listeners hear it. Returns nothing.
create function core.broadcast(p_namespace text, p_channel text, p_payload jsonb, p_source_node uuid) returns void
language plpgsql as $$
declare
  v_message jsonb := jsonb_build_object('b', p_channel, 'p', p_payload, 's', p_source_node);
  v_id bigint;
begin
  perform set_config('synchronous_commit', 'off', true);
  if octet_length(v_message::text) > core.notify_limit() then
    insert into core.broadcast_payloads (namespace, payload) values (p_namespace, p_payload) returning id into v_id;
    v_message := jsonb_build_object('b', p_channel, 'r', v_id, 's', p_source_node);
  end if;
  perform pg_notify('nexus:' || p_namespace, v_message::text);
end;
$$;

-- core.clean_up_namespace(namespace, node_queue_grace, broadcast_ttl)
--   Housekeeping run with heartbeats: drops the queues of nodes stopped or dead for
--   longer than the grace period, and large broadcast payloads older than the TTL.
--   Returns the number of node queues dropped. Locks: ACCESS EXCLUSIVE on dropped queues.
create function core.clean_up_namespace(p_namespace text, p_node_queue_grace interval, p_broadcast_ttl interval)
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
    perform pgmq.drop_queue(v_queue);
    if exists (select 1 from pgmq.meta where queue_name = v_queue || '_dlq') then
      perform pgmq.drop_queue(v_queue || '_dlq');
    end if;
    v_dropped := v_dropped + 1;
  end loop;
  return v_dropped;
end;
$$;

-- core.read_messages(queue, vt_seconds, qty): as in migration 5, and also returns
--   read_at, the database's clock at the read, against which request deadlines are judged
--   (the requester's and responder's clocks never need to agree).
drop function core.read_messages(text, integer, integer);
create function core.read_messages(p_queue text, p_vt integer, p_qty integer)
returns table (msg_id bigint, read_ct integer, enqueued_at timestamptz, read_at timestamptz, message jsonb)
language plpgsql as $$
begin
  perform set_config('synchronous_commit', 'off', true);
  return query
    select r.msg_id, r.read_ct, r.enqueued_at, r.vt - make_interval(secs => p_vt), r.message
      from pgmq.read(p_queue, p_vt, p_qty) r;
end;
$$;

-- core.send_batch_to_node(node_id, messages)
--   Puts messages into the node's queue in the given order (created when missing) and
--   wakes its reader with an empty NOTIFY. Returns the number sent.
create function core.send_batch_to_node(p_node_id uuid, p_messages jsonb[]) returns integer
language plpgsql as $$
begin
  perform pgmq.send_batch(core.ensure_node_queue(p_node_id), p_messages, 0);
  perform pg_notify(core.node_channel(p_node_id), '');
  return cardinality(p_messages);
end;
$$;

-- core.lock_messages(queue, ids, read_counts)
--   Replaces migration 5's version, which skipped locked rows: a concurrent pgmq.read
--   whose snapshot still saw a message as visible can hold that row's lock for the rest
--   of its short statement (the lock survives its failed re-check), and skipping then
--   left the message stranded until its visibility timeout. Now the handler transaction
--   locks exactly the messages this consumer read, identified by (msg_id, read_ct), and
--   waits for such a transient lock. A message another consumer has read since has a
--   higher read_ct and is left out without waiting. Returns the ids it locked.
--   Errors: 55P03 (lock_not_available) after 5 s, which fails the batch to be retried.
--   Locks: FOR UPDATE on the rows returned.
drop function core.lock_messages(text, bigint[]);
create function core.lock_messages(p_queue text, p_ids bigint[], p_read_counts integer[]) returns setof bigint
language plpgsql as $$
declare
  v_lock_timeout text := current_setting('lock_timeout');
begin
  perform set_config('lock_timeout', '5s', true);
  return query execute format(
    'select q.msg_id from pgmq.%I q
       join unnest($1::bigint[], $2::integer[]) as mine(msg_id, read_ct)
         on q.msg_id = mine.msg_id and q.read_ct = mine.read_ct
      order by q.msg_id
        for update of q', 'q_' || p_queue)
    using p_ids, p_read_counts;
  perform set_config('lock_timeout', v_lock_timeout, true);
end;
$$;
