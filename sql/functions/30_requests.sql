-- Functions of requests: node queues and channels, requests, direct sends, broadcasts, request claims, namespace clean-up.
--
-- A repeatable file (see migration 14): the live definition of each function
-- below, applied by migrate() after the numbered migrations and again whenever this
-- file changes. Edit the function here; a new numbered migration is only for tables,
-- types, policies, and for dropping a function or changing its arguments or result.
-- First written in migrations 6 and 10.

-- core.notify_limit()
--   Largest NOTIFY payload the package sends: PostgreSQL's limit is 8000 bytes.
--   Result: integer (7900). Errors: none. Locks: none.
create or replace function core.notify_limit() returns integer language sql immutable parallel safe as 'select 7900';

-- core.node_queue(node_id)
--   The pgmq queue of a node: 'n_' and the node id's 32 hex digits. Immutable.
--   Result: text (null for null). Errors: none. Locks: none.
create or replace function core.node_queue(p_node_id uuid) returns text
language sql immutable strict parallel safe as $$
  select 'n_' || replace(p_node_id::text, '-', '');
$$;

-- core.node_channel(node_id)
--   The NOTIFY channel of a node: 'nexus:n:<node id>'. Immutable.
--   Result: text (null for null). Errors: none. Locks: none.
create or replace function core.node_channel(p_node_id uuid) returns text
language sql immutable strict parallel safe as $$
  select 'nexus:n:' || p_node_id::text;
$$;

-- core.ensure_node_queue(node_id)
--   Creates the node's queue and its dead-letter queue when missing; returns the queue.
--   A namespace role has them made by core.ensure_namespace_node_queue (as the owner,
--   for a node of its namespace); another role makes them itself and grants them to the
--   roles of the node's namespace, if it has any.
--   Errors: 42501 (a namespace role and a node of another namespace, or an unknown one).
--   Locks: pgmq.create's, only for a new queue.
--   (Live since migration 12, which added the namespace-role path.)
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

-- core.send_requests(namespace, envelopes)
--   envelopes: a JSON array of request envelopes ({ id, type, ... }), from one or many
--   callers of one process (concurrent requests share this call and its commit). Routes
--   each to the one group answering its type: an exact pattern before wildcards, then the
--   first group by name. Sends them to their groups' request queues, in order, with one
--   insert (core.enqueue) and one NOTIFY per queue. The commit is asynchronous: the callers are
--   waiting and time out if a server crash loses their requests (DESIGN.md, performance
--   model); a responder crash loses nothing, the requests stay queued. Returns
--   (request_id, queue) per envelope, queue null when no group answers its type.
--   Locks: none beyond the inserts of core.enqueue.
create or replace function core.send_requests(p_namespace text, p_envelopes jsonb)
returns table (request_id uuid, queue text)
language plpgsql as $$
declare
  v_queues text[];
  v_envelopes jsonb[];
  v_batch record;
begin
  perform set_config('synchronous_commit', 'off', true);
  select array_agg(routed.queue order by routed.ord), array_agg(routed.envelope order by routed.ord)
    into v_queues, v_envelopes
    from (
      select e.ord, e.envelope,
             (select s.queue_name from core.subscriptions s
               where s.namespace = p_namespace and s.kind = 'request' and (e.envelope ->> 'type') ~ s.pattern_regex
               order by (s.pattern = e.envelope ->> 'type') desc, s.group_name
               limit 1) as queue
        from jsonb_array_elements(p_envelopes) with ordinality as e(envelope, ord)
    ) routed;
  for v_batch in
    select q.queue, array_agg(q.envelope order by q.ord) as envelopes
      from unnest(v_queues, v_envelopes) with ordinality as q(queue, envelope, ord)
     where q.queue is not null
     group by q.queue
  loop
    perform core.enqueue(v_batch.queue, v_batch.envelopes);
    perform pg_notify('nexus:' || p_namespace, v_batch.queue);
  end loop;
  return query
    select (q.envelope ->> 'id')::uuid, q.queue
      from unnest(v_queues, v_envelopes) with ordinality as q(queue, envelope, ord)
     order by q.ord;
end;
$$;

-- core.send_to_node(node_id, message, via_queue)
--   Delivers a reply or control message to one node: on its channel by NOTIFY when
--   via_queue is false, the message fits and the node hears NOTIFYs (core.node_hears),
--   else into its queue (created when missing), followed by an empty NOTIFY that wakes
--   its reader (none for a node that cannot hear it: it polls). Returns 'notify' or 'queue'.
--   Transactional: nothing is delivered unless the caller's transaction commits. It sets
--   the transaction's commit to asynchronous: a reply lost in a server crash is lost
--   together with the responder's effects and acknowledgement, so a durable request is
--   simply run again (DESIGN.md, performance model). Locks: none beyond pgmq.send's insert.
create or replace function core.send_to_node(p_node_id uuid, p_message jsonb, p_via_queue boolean) returns text
language plpgsql as $$
declare
  v_text text := p_message::text;
  v_hears boolean := core.node_hears(p_node_id);
begin
  perform set_config('synchronous_commit', 'off', true);
  if not p_via_queue and v_hears and octet_length(v_text) <= core.notify_limit() then
    perform pg_notify(core.node_channel(p_node_id), v_text);
    return 'notify';
  end if;
  perform core.enqueue(core.ensure_node_queue(p_node_id), array[p_message]);
  if v_hears then
    perform pg_notify(core.node_channel(p_node_id), '');
  end if;
  return 'queue';
end;
$$;

-- core.send_direct(namespace, node_ids, messages)
--   The direct path (at most once): NOTIFYs each message, a JSON text, on its node's
--   channel, in array order, in one statement. A message too large for NOTIFY waits in
--   core.broadcast_payloads, and its NOTIFY carries '{"kind":"ref","r":<id>}' in its place;
--   the receiver handles its channel in order and fetches it there. A message to a node
--   that cannot hear NOTIFYs (core.nodes.hears_notify false, migration 15) goes into its
--   queue instead, which it polls. Nothing is kept for a node that is not listening.
--   Commits asynchronously (synchronous_commit off for the transaction): what a server
--   crash loses was never more than at most once.
--   Result: integer, the number of messages sent. Errors: 42501 when a namespace role
--   sends into another namespace; 22023 when the arrays differ in length. Locks: none
--   (PostgreSQL's NOTIFY queue lock at commit; pgmq.send's insert for a deaf node).
create or replace function core.send_direct(p_namespace text, p_node_ids uuid[], p_messages text[]) returns integer
language plpgsql as $$
declare
  v_count integer := coalesce(array_length(p_messages, 1), 0);
  v_message text;
  v_id bigint;
  v_deaf uuid[];
begin
  perform core.assert_caller_namespace(p_namespace);
  if coalesce(array_length(p_node_ids, 1), 0) <> v_count then
    raise exception 'core.send_direct needs one node id per message (% node ids, % messages)', coalesce(array_length(p_node_ids, 1), 0), v_count
      using errcode = '22023';
  end if;
  perform set_config('synchronous_commit', 'off', true);
  v_deaf := core.deaf_nodes(p_node_ids);
  for v_i in 1 .. v_count loop
    v_message := p_messages[v_i];
    if p_node_ids[v_i] = any(v_deaf) then
      perform core.enqueue(core.ensure_node_queue(p_node_ids[v_i]), array[v_message::jsonb]);
      continue;
    end if;
    if octet_length(v_message) > core.notify_limit() then
      insert into core.broadcast_payloads (namespace, payload) values (p_namespace, v_message::jsonb) returning id into v_id;
      v_message := json_build_object('kind', 'ref', 'r', v_id)::text;
    end if;
    perform pg_notify(core.node_channel(p_node_ids[v_i]), v_message);
  end loop;
  return v_count;
end;
$$;

-- core.broadcast(namespace, channel, payload, source_node)
--   NOTIFYs every node of the namespace: '{"b": channel, "p": payload, "s": source}' when
--   it fits, else the payload goes into core.broadcast_payloads and the NOTIFY carries
--   its id as "r". Non-durable: only live listeners hear it. Commits asynchronously
--   (synchronous_commit off for the transaction). Returns nothing.
--   Errors: 42501 when a namespace role broadcasts into another namespace (a NOTIFY
--   touches no table, so no policy would stop it). Locks: none.
--   (Live since migration 12, which added the namespace check.)
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

-- core.clean_up_namespace(namespace, node_queue_grace, broadcast_ttl)
--   Housekeeping run with heartbeats: drops the queues of nodes stopped or dead for
--   longer than the grace period, and large broadcast payloads older than the TTL.
--   Returns the number of node queues dropped. The queues are dropped through
--   core.drop_queue_if_exists, so a namespace role can drop its namespace's node queues.
--   Errors: none of its own. Locks: ACCESS EXCLUSIVE on dropped queues.
--   (Live since migration 12, which routed the drops through core.drop_queue_if_exists.)
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

-- core.send_batch_to_node(node_id, messages)
--   Puts messages into the node's queue in the given order (created when missing) and
--   wakes its reader with an empty NOTIFY. Returns the number sent.
create or replace function core.send_batch_to_node(p_node_id uuid, p_messages jsonb[]) returns integer
language plpgsql as $$
begin
  perform core.enqueue(core.ensure_node_queue(p_node_id), p_messages);
  perform pg_notify(core.node_channel(p_node_id), '');
  return cardinality(p_messages);
end;
$$;

-- core.send_to_nodes(messages)
--   messages: a JSON array of { node, message, viaQueue }: what core.send_to_node does for
--   each, in order, in one call (a responder's replies of one batch leave together, at its
--   commit). The usual case, a small message for a node that hears, is NOTIFYed here
--   with one look at the registry for the whole batch (core.deaf_nodes); the rest go
--   through core.send_to_node. Returns the number sent.
--   Locks: none beyond core.send_to_node's for messages that go through queues.
create or replace function core.send_to_nodes(p_messages jsonb) returns integer
language plpgsql as $$
declare
  v_item record;
  v_text text;
  v_deaf uuid[] := core.deaf_nodes(array(select (m ->> 'node')::uuid from jsonb_array_elements(p_messages) as m));
begin
  perform set_config('synchronous_commit', 'off', true);
  for v_item in
    select (m ->> 'node')::uuid as node, m -> 'message' as message, coalesce((m ->> 'viaQueue')::boolean, false) as via_queue
      from jsonb_array_elements(p_messages) with ordinality as e(m, n)
     order by e.n
  loop
    v_text := v_item.message::text;
    if not v_item.via_queue and not (v_item.node = any(v_deaf)) and octet_length(v_text) <= core.notify_limit() then
      perform pg_notify(core.node_channel(v_item.node), v_text);
    else
      perform core.send_to_node(v_item.node, v_item.message, true);
    end if;
  end loop;
  return jsonb_array_length(p_messages);
end;
$$;

-- core.claim_request(request_id)
--   Records that the request has started. Returns true for the first claim, false for any
--   later one. Asynchronous commit: a claim lost in a server crash is lost together with
--   the request's own read. Also deletes claims older than an hour. Locks: the claim row.
create or replace function core.claim_request(p_request_id uuid) returns boolean
language plpgsql as $$
declare
  v_claimed boolean;
begin
  perform set_config('synchronous_commit', 'off', true);
  insert into core.request_claims (request_id) values (p_request_id)
  on conflict (request_id) do nothing
  returning true into v_claimed;
  delete from core.request_claims where claimed_at < now() - interval '1 hour';
  return coalesce(v_claimed, false);
end;
$$;
