import type pg from "pg";
import type { Queryable } from "../../db/queryable.js";

/** What the connected role may do about roles: see {@link createNamespaceRole}. */
export interface RolePrivileges {
  /** The connected role's name. */
  role: string;
  /** True when it is a superuser or has CREATEROLE. */
  canCreateRoles: boolean;
}

/** The connected role and whether it may create roles. */
export async function rolePrivileges(db: Queryable): Promise<RolePrivileges> {
  const { rows } = await db.query<RolePrivileges>({
    name: "nexus_role_privileges",
    text: `select rolname as role, (rolsuper or rolcreaterole) as "canCreateRoles" from pg_roles where rolname = current_user`,
  });
  return rows[0] ?? { role: "", canCreateRoles: false };
}

/**
 * In one transaction: creates the login role (with the SCRAM verifier of its password, so
 * the password itself never reaches the server's statement log) and maps it to the
 * namespace with its grants (`core.grant_namespace_role`).
 */
export async function createRole(client: pg.ClientBase, roleName: string, namespace: string, passwordVerifier: string | null): Promise<void> {
  await client.query("begin");
  try {
    const password = passwordVerifier === null ? "" : ` password ${client.escapeLiteral(passwordVerifier)}`;
    await client.query(`create role ${client.escapeIdentifier(roleName)} login nosuperuser nocreatedb nocreaterole noinherit${password}`);
    await client.query({ text: "select core.grant_namespace_role($1::name, $2)", values: [roleName, namespace] });
    await client.query("commit");
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  }
}
