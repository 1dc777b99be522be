-- Runs once, when the container initialises its data directory: the database `core`
-- with the extensions Nexus Core uses. The library's migrations would create them too
-- (where the role may); creating them here lets other clients (psql, the CLI) see them
-- before the first node connects.
create database core;
\connect core
create extension if not exists pgmq;
create extension if not exists pg_cron;
create schema if not exists partman;
create extension if not exists pg_partman schema partman;
create extension if not exists pg_stat_statements;
