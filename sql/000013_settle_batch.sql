-- Migration 13: one statement to settle a consumer's batch.
--
-- A batch transaction used to end with up to three statements before its commit: the
-- follow-up messages (a request's replies), the acknowledgements and the release of
-- messages read but not started. Each is a round trip (about 0.25 ms on a 2-vCPU
-- machine), and a request's reply waits for all of them, so they are one call now.

-- core.settle_batch(queue, acked_ids, released_ids, outbound)
--   In the batch's transaction, in this order: sends `outbound` (a JSON array of
--   { node, message, viaQueue }, as core.send_to_nodes takes it), acknowledges
--   `acked_ids` (core.ack_messages) and makes `released_ids` visible again without
--   counting their read (core.release_messages). Empty arguments are skipped.
--   Locks: those of the three functions it calls.
create function core.settle_batch(p_queue text, p_acked_ids bigint[], p_released_ids bigint[], p_outbound jsonb)
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
