-- Migration 15: whether a node hears its notifications.
--
-- A node LISTENs on its channel through its system's dedicated connection. Behind a
-- transaction-mode pooler (PgBouncer) without `listenConnectionString`, LISTEN lands on
-- some pooled server connection and notifications never come back: the node cannot hear.
-- A system finds that out at connect (it NOTIFYs itself and waits for it) and registers
-- its nodes with hears_notify false. Senders read the column: core.send_to_node and
-- core.send_direct put what they would have NOTIFYed to such a node into its queue, which
-- it polls.
--
-- core.register_node gains a last argument, p_hears_notify (default true, so callers of
-- the six-argument form keep working); `create or replace` cannot add an argument, so
-- the old form is dropped here and sql/functions/10_membership.sql defines the new one.

alter table core.nodes add column hears_notify boolean not null default true;

-- Senders ask about every message they would NOTIFY; nearly all nodes hear, so the index
-- holds only the deaf ones and a lookup in it is nearly free (issue 16: without it the
-- check doubled core.send_direct's server time).
create index nodes_deaf_idx on core.nodes (node_id) where not hears_notify;

comment on column core.nodes.hears_notify is
  'False when the node''s LISTEN connection did not hear its own NOTIFY at start (a transaction-mode pooler): send it everything through its queue.';

drop function core.register_node(uuid, text, text, jsonb, text, integer);
