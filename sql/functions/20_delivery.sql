-- Functions of delivery: subscriptions, emit, and the consumer's read, lock, ack, fail, release and settle.
--
-- A repeatable file (see migration 14): the live definition of each function
-- below, applied by migrate() after the numbered migrations and again whenever this
-- file changes. Edit the function here; a new numbered migration is only for tables,
-- types, policies, and for dropping a function or changing its arguments or result.
-- First written in migrations 5 and 13.

-- core.pattern_regex(pattern)
--   The anchored regular expression of a validated pattern: '*' is one segment,
--   '**' one or more, anything else literal. Immutable; used by a generated column.
--   Result: text (null for null). Errors: none. Locks: none.
create or replace function core.pattern_regex(p_pattern text) returns text
language sql immutable strict parallel safe as $$
  select '^' || string_agg(
           case segment
             when '**' then '.+'
             when '*' then '[^.]+'
             else replace(segment, '$', '\$')
           end, '\.' order by position) || '$'
    from unnest(string_to_array(p_pattern, '.')) with ordinality as s(segment, position);
$$;

-- core.ensure_queue(queue_name)
--   Creates the pgmq queue when it does not exist yet. (pgmq.create is idempotent, but its
--   CREATE INDEX IF NOT EXISTS takes a SHARE lock on an existing queue table, which would
--   make a starting node wait for every running handler transaction of the queue.)
--   Locks: pgmq.create's, only for a new queue.
create or replace function core.ensure_queue(p_queue text) returns void
language plpgsql as $$
begin
  if not exists (select 1 from pgmq.meta where queue_name = p_queue) then
    perform pgmq.create(p_queue);
  end if;
end;
$$;

-- core.drop_queue_if_exists(queue_name)
--   Drops the pgmq queue, with what it holds, when it exists: directly for a role that is
--   not a namespace role, through core.drop_namespace_queue (as the owner, for a queue of
--   its own namespace) for one that is. Returns nothing.
--   Errors: 42501 when a namespace role drops a queue it was not granted.
--   Locks: ACCESS EXCLUSIVE on its tables.
--   (Live since migration 12, which added the namespace-role path.)
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

-- core.subscribe(namespace, group, pattern, queue_name, kind)
--   Records the durable subscription and creates the group's queue when it does not exist
--   yet: for events with its dead-letter queue, for requests (kind 'request', the group's
--   request queue) without. Creates the namespace row when missing. A role that is not a
--   namespace role creates the queues with its own rights and, when the namespace has
--   roles, grants them to those (core.grant_group_queues); a namespace role goes through
--   core.ensure_namespace_queues, which checks the queue is the group's own.
--   Returns nothing. Errors: 42501 (a namespace role naming another queue, or working in
--   another namespace). Locks: the subscription row; pgmq.create's for a new queue.
--   (Live since migration 12, which added the namespace-role path.)
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

-- core.unsubscribe(namespace, group, pattern)
--   Removes one event subscription; the group's queue keeps what it already holds.
--   Returns whether a row was removed.
create or replace function core.unsubscribe(p_namespace text, p_group text, p_pattern text) returns boolean
language sql as $$
  with removed as (
    delete from core.subscriptions
     where namespace = p_namespace and group_name = p_group and pattern = p_pattern and kind = 'event'
    returning 1
  )
  select exists (select 1 from removed);
$$;

-- core.drop_group(namespace, group, queue_name)
--   Removes every subscription of the group (events and requests) and drops its queue,
--   dead-letter queue and request queue, with what they hold (the queue is named by the
--   caller, since a group whose patterns were all unsubscribed still has a queue). Returns
--   the number of subscriptions removed.
--   Locks: ACCESS EXCLUSIVE on the dropped queue tables.
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
    perform core.drop_queue_if_exists(v_queue);
  end loop;
  return v_removed;
end;
$$;

-- core.emit(namespace, events, source_node, idempotency_window)
--   events: a JSON array of { type, payload, headers?, delaySeconds?, idempotencyKey? },
--   already validated by the caller. An event whose idempotency key was seen within the
--   window returns the first event's id with published = false. Every other event gets a
--   time-ordered id (core.uuid_v7) and is written to core.event_log (emitted_at =
--   clock_timestamp(), in array order, so the events of one transaction keep their order
--   in the log), and one copy goes to the queue of every group with a matching event
--   subscription, a batch's copies in array order. Set-based: one insert into the log,
--   one subscription match per distinct type, one core.enqueue per (queue, delay); only
--   idempotency keys cost a statement each. Then one NOTIFY per woken queue on channel
--   'nexus:<namespace>' with the queue name as payload (delayed copies wake no one; the
--   consumers' poll finds them). All of it commits or rolls back with the caller's
--   transaction. Returns (event_id, published) per event, in order.
--   Locks: idempotency key rows (a concurrent emit with the same key waits for this one).
create or replace function core.emit(
  p_namespace text, p_events jsonb, p_source_node uuid default null,
  p_idempotency_window interval default interval '24 hours'
) returns table (event_id uuid, published boolean)
language plpgsql as $$
declare
  v_count integer := jsonb_array_length(p_events);
  v_ids uuid[];
  v_published boolean[] := array_fill(true, array[jsonb_array_length(p_events)]);
  v_n integer;
  v_key text;
  v_first uuid;
  v_woken text[];
begin
  if v_count = 0 then
    return;
  end if;
  select array_agg(core.uuid_v7() order by e.n) into v_ids
    from jsonb_array_elements(p_events) with ordinality as e(ev, n);

  -- An idempotency key claims its id, or finds the first event's (also within this batch).
  for v_n, v_key in
    select e.n, e.ev ->> 'idempotencyKey' from jsonb_array_elements(p_events) with ordinality as e(ev, n)
     where e.ev ->> 'idempotencyKey' is not null order by e.n
  loop
    v_first := null;
    insert into core.idempotency_keys as k (namespace, key, event_id, expires_at)
    values (p_namespace, v_key, v_ids[v_n], now() + p_idempotency_window)
    on conflict (namespace, key) do update
      set event_id = excluded.event_id, expires_at = excluded.expires_at
      where k.expires_at < now()
    returning k.event_id into v_first;
    if v_first is null then
      select k.event_id into v_first from core.idempotency_keys k where k.namespace = p_namespace and k.key = v_key;
      v_ids[v_n] := v_first;
      v_published[v_n] := false;
    end if;
  end loop;

  with events as (
    select e.n, v_ids[e.n] as id, e.ev ->> 'type' as type, e.ev -> 'payload' as payload,
           coalesce(e.ev -> 'headers', '{}'::jsonb) as headers, e.ev ->> 'idempotencyKey' as idempotency_key,
           coalesce((e.ev ->> 'delaySeconds')::integer, 0) as delay
      from jsonb_array_elements(p_events) with ordinality as e(ev, n)
     where v_published[e.n]
  ), logged as (
    insert into core.event_log (id, namespace, type, payload, headers, emitted_at, source_node, idempotency_key)
    select id, p_namespace, type, payload, headers, clock_timestamp(), p_source_node, idempotency_key
      from events
     order by n
    returning id, emitted_at
  ), routes as (
    select distinct t.type, s.queue_name
      from (select distinct type from events) t
      join core.subscriptions s on s.namespace = p_namespace and s.kind = 'event' and t.type ~ s.pattern_regex
  ), batches as (
    select r.queue_name as queue, e.delay,
           array_agg(jsonb_build_object(
             'id', e.id, 'type', e.type, 'payload', e.payload, 'headers', e.headers,
             'emittedAt', l.emitted_at, 'sourceNode', p_source_node) order by e.n) as messages
      from events e
      join logged l on l.id = e.id
      join routes r on r.type = e.type
     group by r.queue_name, e.delay
  ), sent as (
    select b.queue, b.delay, core.enqueue(b.queue, b.messages, b.delay) as count from batches b
  )
  select coalesce(array_agg(distinct queue) filter (where delay = 0), '{}') into v_woken from sent;

  perform pg_notify('nexus:' || p_namespace, woken) from unnest(v_woken) as woken;
  return query select v_ids[n], v_published[n] from generate_series(1, v_count) as n order by n;
end;
$$;

-- core.read_messages(queue, vt_seconds, qty)
--   pgmq.read with an asynchronous commit: losing a read in a server crash only loses a
--   read_ct increment and a visibility timeout, so it need not wait for the WAL flush.
--   Returns the messages now invisible for vt seconds, with read_at, the database's clock
--   at the read, against which request deadlines are judged (the requester's and
--   responder's clocks never need to agree). Locks: those rows, until the transaction
--   commits (pgmq.read uses FOR UPDATE SKIP LOCKED).
--   Not called by this release: its consumers read and settle through statements
--   prepared per queue (core/delivery/queries/queue-table.ts), which skip pgmq's dynamic
--   SQL. Kept while processes of earlier releases may still call it (a rolling upgrade);
--   a later release drops it in a numbered migration.
create or replace function core.read_messages(p_queue text, p_vt integer, p_qty integer)
returns table (msg_id bigint, read_ct integer, enqueued_at timestamptz, read_at timestamptz, message jsonb)
language plpgsql as $$
begin
  perform set_config('synchronous_commit', 'off', true);
  return query
    select r.msg_id, r.read_ct, r.enqueued_at, r.vt - make_interval(secs => p_vt), r.message
      from pgmq.read(p_queue, p_vt, p_qty) r;
end;
$$;

-- core.lock_messages(queue, ids, read_counts)
--   Called first in a handler transaction: locks exactly the messages this consumer read,
--   identified by (msg_id, read_ct), so that no other consumer reads them (pgmq.read skips
--   locked rows) even after their visibility timeout passes, until this transaction ends.
--   It waits rather than skips: a concurrent pgmq.read whose snapshot still saw a message
--   as visible can hold that row's lock for the rest of its short statement (the lock
--   survives its failed re-check), and skipping would strand the message until its
--   visibility timeout. A message another consumer has read since has a
--   higher read_ct and is left out without waiting. Returns the ids it locked.
--   Errors: 55P03 (lock_not_available) after 5 s, which fails the batch to be retried.
--   Locks: FOR UPDATE on the rows returned.
--   Not called by this release: its consumers lock through a statement prepared per
--   queue (core/delivery/queries/queue-table.ts), which skips the dynamic SQL. Kept while
--   processes of earlier releases may still call it (a rolling upgrade); a later release
--   drops it in a numbered migration.
create or replace function core.lock_messages(p_queue text, p_ids bigint[], p_read_counts integer[]) returns setof bigint
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
        for update of q', core.queue_table(p_queue))
    using p_ids, p_read_counts;
  perform set_config('lock_timeout', v_lock_timeout, true);
end;
$$;

-- core.ack_messages(queue, ids)
--   Deletes handled messages and their failure records. Returns the ids deleted.
--   Not called by this release: its consumers read and settle through statements
--   prepared per queue (core/delivery/queries/queue-table.ts), which skip pgmq's dynamic
--   SQL. Kept while processes of earlier releases may still call it (a rolling upgrade);
--   a later release drops it in a numbered migration.
create or replace function core.ack_messages(p_queue text, p_ids bigint[]) returns setof bigint
language plpgsql as $$
begin
  delete from core.message_failures where queue_name = p_queue and msg_id = any(p_ids);
  return query select * from pgmq.delete(p_queue, p_ids);
end;
$$;

-- core.fail_message(queue, msg_id, attempt, max_attempts, retry_delay_seconds, error)
--   Records a failed attempt. While attempts remain, the message becomes visible again
--   after retry_delay_seconds and 'retry' is returned. After the last attempt the message
--   moves to '<queue>_dlq' with a "deadLetter" field (error, attempts, first and last
--   failure, original queue, id and enqueue time) and 'dead' is returned.
--   Locks: the message row and its failure record.
create or replace function core.fail_message(
  p_queue text, p_msg_id bigint, p_attempt integer, p_max_attempts integer,
  p_retry_delay_seconds integer, p_error jsonb
) returns text
language plpgsql as $$
declare
  v_first_failed_at timestamptz;
  v_message jsonb;
  v_enqueued_at timestamptz;
begin
  insert into core.message_failures as f (queue_name, msg_id, failures, first_failed_at, last_failed_at, last_error)
  values (p_queue, p_msg_id, 1, now(), now(), p_error)
  on conflict (queue_name, msg_id) do update
    set failures = f.failures + 1, last_failed_at = now(), last_error = excluded.last_error
  returning f.first_failed_at into v_first_failed_at;

  if p_attempt < p_max_attempts then
    perform pgmq.set_vt(p_queue, p_msg_id, p_retry_delay_seconds);
    return 'retry';
  end if;

  execute format('select message, enqueued_at from pgmq.%I where msg_id = $1', core.queue_table(p_queue))
    into v_message, v_enqueued_at using p_msg_id;
  perform pgmq.send(p_queue || '_dlq', v_message || jsonb_build_object('deadLetter', jsonb_build_object(
    'error', p_error, 'attempts', p_attempt, 'firstFailedAt', v_first_failed_at, 'lastFailedAt', now(),
    'queue', p_queue, 'msgId', p_msg_id, 'enqueuedAt', v_enqueued_at)), 0);
  perform pgmq.delete(p_queue, p_msg_id);
  delete from core.message_failures where queue_name = p_queue and msg_id = p_msg_id;
  return 'dead';
end;
$$;

-- core.release_messages(queue, ids)
--   Gives back messages read but not handled (a consumer stopping): visible at once, and
--   the read that took them does not count as an attempt. Returns the ids released.
--   Not called by this release: its consumers read and settle through statements
--   prepared per queue (core/delivery/queries/queue-table.ts), which skip pgmq's dynamic
--   SQL. Kept while processes of earlier releases may still call it (a rolling upgrade);
--   a later release drops it in a numbered migration.
create or replace function core.release_messages(p_queue text, p_ids bigint[]) returns setof bigint
language plpgsql as $$
begin
  return query execute format(
    'update pgmq.%I set vt = clock_timestamp(), read_ct = greatest(read_ct - 1, 0) where msg_id = any($1) returning msg_id',
    core.queue_table(p_queue)) using p_ids;
end;
$$;

-- core.settle_batch(queue, acked_ids, released_ids, outbound)
--   In the batch's transaction, in this order: sends `outbound` (a JSON array of
--   { node, message, viaQueue }, as core.send_to_nodes takes it), acknowledges
--   `acked_ids` (core.ack_messages) and makes `released_ids` visible again without
--   counting their read (core.release_messages). Empty arguments are skipped.
--   Locks: those of the three functions it calls.
--   Not called by this release: its consumers read and settle through statements
--   prepared per queue (core/delivery/queries/queue-table.ts), which skip pgmq's dynamic
--   SQL. Kept while processes of earlier releases may still call it (a rolling upgrade);
--   a later release drops it in a numbered migration.
create or replace function core.settle_batch(p_queue text, p_acked_ids bigint[], p_released_ids bigint[], p_outbound jsonb)
returns void
language plpgsql as $$
begin
  if jsonb_array_length(p_outbound) > 0 then
    perform core.send_to_nodes(p_outbound);
  end if;
  if cardinality(p_acked_ids) > 0 then
    perform core.ack_messages(p_queue, p_acked_ids);
  end if;
  if cardinality(p_released_ids) > 0 then
    perform core.release_messages(p_queue, p_released_ids);
  end if;
end;
$$;
