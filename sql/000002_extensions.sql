-- Migration 2: the optional extensions, each created where the server offers it and the
-- role may create it, and skipped otherwise. Every feature that uses one has a fallback
-- (DESIGN.md, "Extensions, and what happens without them"), and the code decides at
-- connect time from pg_extension, so a database works the same in both columns.
--
--   pgmq               queues; without it migration 3 installs pgmq-compatible SQL
--   pg_cron            schedules; only in the database named by cron.database_name
--   pg_partman         event log partitions (in schema partman)
--   pg_stat_statements top queries in metrics and the CLI
--
-- Each attempt runs in its own subtransaction (a BEGIN ... EXCEPTION block), so a refusal
-- (no superuser, wrong database, library not preloaded) leaves nothing behind.

do $extensions$
begin
  if exists (select 1 from pg_available_extensions where name = 'pgmq') then
    begin
      create extension if not exists pgmq;
    exception when others then
      raise notice 'pgmq is available but could not be created (%): using the compatible SQL', sqlerrm;
    end;
  end if;

  if exists (select 1 from pg_available_extensions where name = 'pg_cron') then
    begin
      create extension if not exists pg_cron;
    exception when others then
      raise notice 'pg_cron not created here (%): the fallback scheduler runs schedules', sqlerrm;
    end;
  end if;

  if exists (select 1 from pg_available_extensions where name = 'pg_partman') then
    begin
      create schema if not exists partman;
      create extension if not exists pg_partman schema partman;
    exception when others then
      raise notice 'pg_partman not created here (%): the project manages partitions itself', sqlerrm;
    end;
  end if;

  if exists (select 1 from pg_available_extensions where name = 'pg_stat_statements') then
    begin
      create extension if not exists pg_stat_statements;
    exception when others then
      raise notice 'pg_stat_statements not created here (%)', sqlerrm;
    end;
  end if;
end
$extensions$;
