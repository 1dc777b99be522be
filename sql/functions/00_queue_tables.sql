-- Functions of queue naming: the one place that derives a pgmq queue's table name.
--
-- A repeatable file (see migration 14): the live definition of each function
-- below, applied by migrate() after the numbered migrations and again whenever this
-- file changes. Edit the function here; a new numbered migration is only for tables,
-- types, policies, and for dropping a function or changing its arguments or result.
-- First written here (release after migration 14). It sorts first: the SQL-language
-- functions of the later files that call it are checked against it when created.

-- core.queue_table(queue_name, prefix)
--   The name, unqualified and unquoted, of a queue's table in schema pgmq: prefix 'q'
--   (the default) for the queue, 'a' for its archive. It is pgmq.format_table_name,
--   which the pgmq extension and the compatible SQL of migration 3 both define with the
--   same rule (prefix || '_' || queue_name, lower-cased), so the name is the one pgmq
--   gave the table in either mode. Every core function that reaches a queue's table
--   names it through this function: format('pgmq.%I', core.queue_table(queue)).
--   Result: text; null for a null queue name.
--   Errors: P0001 (raised by pgmq.format_table_name) when the name holds '$', ';', '--'
--   or a single quote, which no queue name of the core does.
--   Locks: none.
create or replace function core.queue_table(p_queue text, p_prefix text default 'q') returns text
language sql stable as $$
  select pgmq.format_table_name(p_queue, p_prefix);
$$;
