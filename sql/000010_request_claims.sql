-- Migration 10: claims of non-durable requests.
--
-- Request queues are read inside the responder's transaction (one round trip fewer). A
-- responder that dies mid-request rolls its read back, so the request is read again by
-- another instance: right for a durable request, wrong for a non-durable one, which must
-- run at most once. Before running a non-durable request, the responder claims its
-- correlation id here, in a commit of its own on another connection; a second claim of
-- the same id finds the row and the request is dropped (its caller times out).

create table core.request_claims (
  request_id uuid primary key,
  claimed_at timestamptz not null default now()
);

comment on table core.request_claims is 'Non-durable requests already started once; kept for an hour.';

-- core.claim_request(request_id)
--   Records that the request has started. Returns true for the first claim, false for any
--   later one. Asynchronous commit: a claim lost in a server crash is lost together with
--   the request's own read. Also deletes claims older than an hour. Locks: the claim row.
create function core.claim_request(p_request_id uuid) returns boolean
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
