-- Migration 14: repeatable function files, and the record of their checksums.
--
-- Until migration 13, a function's live body was wherever it was last written: migration
-- 12 redefined six functions of migrations 5, 6 and 8. From now on the body of every
-- core.* function lives in one file of sql/functions/ (NN_<capability>.sql), holding its
-- `create or replace function` and its header comment (arguments, result, errors raised,
-- locks taken). The runner (core/migrations.ts) applies those files after the numbered
-- migrations, under the same advisory lock and in the same transaction, in file-name
-- order, and records each with the sha256 of its text here. A file is applied again when
-- its checksum changed, or when the same run applied a numbered migration (which may have
-- replaced a function the file defines); an unchanged file is left alone.
--
-- Numbered migrations stay the only place for tables, types, policies, and for what
-- `create or replace` cannot do (dropping a function, changing its arguments or result):
-- such a migration drops or creates the function, and the function file is edited in the
-- same release.

create table core.function_files (
  name       text primary key,        -- file name in sql/functions/, e.g. 20_delivery.sql
  checksum   text not null,           -- sha256 of the file as applied
  applied_at timestamptz not null default now()
);

comment on table core.function_files is 'One row per applied file of sql/functions/; written only by the migration runner.';

-- Every role that connects reads it (the runner compares checksums on connect, as it reads
-- core.schema_migrations), namespace roles included: names and checksums of shipped files
-- are no secret, and a grant to public also covers the roles made before this migration.
grant select on core.function_files to public;
