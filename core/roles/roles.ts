/**
 * Namespace roles: PostgreSQL login roles confined to one namespace (migration 12,
 * `sql/000012_namespace_roles.sql`). A node connected with such a role emits and
 * consumes in its namespace; every read, write or admin call on another namespace's
 * queues or rows is refused with a {@link PermissionError}.
 */
import { createHmac, createHash, pbkdf2Sync, randomBytes } from "node:crypto";
import type { NamespaceContext } from "../model/context.js";
import { PermissionError, ValidationError } from "../model/errors.js";
import { assertNamespace } from "../model/names.js";
import { assertKnownKeys } from "../model/options.js";
import { createRole, rolePrivileges } from "./queries/create-role.js";

/** Options of `CoreSystem.createNamespaceRole`. */
export interface NamespaceRoleOptions {
  /** The role's password (stored as a SCRAM-SHA-256 verifier). Without one the role can log in only where pg_hba trusts it. */
  password?: string;
  /** The role's name (default `nexus_ns_<namespace>`, with '-' as '_'). Roles are global to the PostgreSQL cluster: pick a unique one per database. */
  roleName?: string;
}

/** A role made by `CoreSystem.createNamespaceRole`. */
export interface NamespaceRole {
  /** The PostgreSQL role name: put it in the tenant's connection string. */
  roleName: string;
  /** The namespace it is confined to. */
  namespace: string;
}

const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const SCRAM_ITERATIONS = 4096;

/** The default role name of a namespace: `nexus_ns_` and the namespace with '-' as '_'. */
export function defaultNamespaceRoleName(namespace: string): string {
  return `nexus_ns_${namespace.replace(/-/g, "_")}`;
}

/**
 * Creates the login role of `namespace` and grants it what a node of that namespace uses.
 * The connected role needs CREATEROLE (or superuser) and must own the schema (it runs the
 * grants); without CREATEROLE this throws a {@link PermissionError} naming the privilege.
 */
export async function createNamespaceRole(context: NamespaceContext, namespace: string, options: NamespaceRoleOptions = {}): Promise<NamespaceRole> {
  assertNamespace(namespace);
  assertKnownKeys("system.createNamespaceRole options", options ?? null, ["password", "roleName"]);
  const roleName = options.roleName ?? defaultNamespaceRoleName(namespace);
  if (typeof roleName !== "string" || !ROLE_NAME.test(roleName) || roleName.startsWith("pg_")) {
    throw new ValidationError("roleName", `Invalid roleName ${JSON.stringify(String(roleName).slice(0, 70))}: use 1-63 lowercase letters, digits and '_', starting with a letter or '_', not 'pg_'.`);
  }
  const password = options.password;
  if (password !== undefined && (typeof password !== "string" || password.length < 1 || password.length > 1024 || password.includes("\0"))) {
    throw new ValidationError("password", "password must be a string of 1-1024 characters without NUL.");
  }
  const client = await context.pool.connect();
  try {
    const privileges = await rolePrivileges(client);
    if (!privileges.canCreateRoles) {
      throw new PermissionError(
        `Could not create the role of namespace ${namespace}: role ${privileges.role} lacks the CREATEROLE privilege. ` +
          `Run it as a role with CREATEROLE (ALTER ROLE ${privileges.role} CREATEROLE, as a superuser), or create the role yourself ` +
          `and run select core.grant_namespace_role('<role>', '${namespace}') as the schema owner.`,
        { privilege: "CREATEROLE" },
      );
    }
    await createRole(client, roleName, namespace, password === undefined ? null : scramVerifier(password));
    return { roleName, namespace };
  } finally {
    client.release();
  }
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802/7677, as
 * `pg_authid.rolpassword` holds it), computed here so that the password is never sent.
 */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16)): string {
  const salted = pbkdf2Sync(password.normalize("NFKC"), salt, SCRAM_ITERATIONS, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  return `SCRAM-SHA-256$${SCRAM_ITERATIONS}:${salt.toString("base64")}$${storedKey.toString("base64")}:${serverKey.toString("base64")}`;
}
