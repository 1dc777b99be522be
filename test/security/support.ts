/**
 * What the security tests share: whether the test database's role may create roles (the
 * non-superuser CI mode may not), unique cluster-global role names and their removal,
 * connection strings for a role, the check that a call failed with a typed error, and
 * what the secrets tests need (a capturing logger, every text an error carries).
 */
import { randomBytes } from "node:crypto";
import type pg from "pg";
import { expect } from "vitest";
import { NexusError } from "../../core/index.js";
import { testDatabaseUrl, withClient } from "../support/database.js";

/** True when the test database's role is a superuser or has CREATEROLE. */
export async function canCreateRoles(url = testDatabaseUrl()): Promise<boolean> {
  return withClient(url, async (client) => {
    const { rows } = await client.query<{ can: boolean }>("select (rolsuper or rolcreaterole) as can from pg_roles where rolname = current_user");
    return rows[0]?.can === true;
  });
}

/** A role name no other test (or run) uses: roles are global to the cluster. */
export function uniqueRoleName(label: string): string {
  return `nexus_t_${label.replace(/[^a-z0-9_]/g, "_").slice(0, 20)}_${randomBytes(5).toString("hex")}`;
}

/** The test database's URL, logging in as `role` with `password`. */
export function urlAs(role: string, password: string, url = testDatabaseUrl()): string {
  const parsed = new URL(url);
  parsed.username = role;
  parsed.password = password;
  return parsed.toString();
}

/** Drops namespace roles made by a test: their grants, their mapping, then the roles. */
export async function dropRoles(roles: readonly string[], url = testDatabaseUrl()): Promise<void> {
  if (roles.length === 0) return;
  await withClient(url, async (client: pg.Client) => {
    for (const role of roles) {
      const exists = await client.query("select 1 from pg_roles where rolname = $1", [role]);
      if (exists.rowCount === 0) continue;
      const mapped = await client.query<{ exists: boolean }>("select to_regclass('core.namespace_roles') is not null as exists");
      if (mapped.rows[0]?.exists) await client.query("delete from core.namespace_roles where role_name = $1", [role]);
      // Terminate its sessions first: a role with open connections cannot be dropped.
      await client.query("select pg_terminate_backend(pid) from pg_stat_activity where usename = $1", [role]);
      await client.query(`drop owned by ${client.escapeIdentifier(role)}`);
      await client.query(`drop role ${client.escapeIdentifier(role)}`);
    }
  });
}

/** Awaits `call` and checks it failed with a typed NexusError of `code` (never a raw driver error). */
export async function expectNexusError(call: () => Promise<unknown>, code: string): Promise<NexusError> {
  const error = await call().then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, "the call should have failed").toBeInstanceOf(NexusError);
  expect((error as NexusError).code, (error as Error).message).toBe(code);
  return error as NexusError;
}
