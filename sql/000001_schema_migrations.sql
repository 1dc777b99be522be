-- Migration 1: the schema `core` and the record of applied migrations.
--
-- The runner (core/migrations.ts) takes a transaction-level advisory lock, reads this
-- table when it exists, refuses a database whose applied migrations differ from the
-- shipped files or run past them, and applies what is missing in one transaction.
-- Files in sql/ are immutable once released: a change is a new numbered file.

create schema core;

comment on schema core is 'Nexus Core: namespaces, nodes, event log, subscriptions, schedules.';

create table core.schema_migrations (
  version    integer primary key,
  name       text not null,
  checksum   text not null,           -- sha256 of the file as shipped
  skipped    boolean not null default false, -- true when a directive said the file did not apply here
  applied_at timestamptz not null default now()
);

comment on table core.schema_migrations is 'One row per applied file of sql/; written only by the migration runner.';
