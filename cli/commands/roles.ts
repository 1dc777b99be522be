/**
 * `nexus roles create`: creates the PostgreSQL login role of the namespace, confined to it
 * (the library's `createNamespaceRole`, migration 12). The password is read from an
 * environment variable named by `--password-env`, never from the command line, where
 * `ps` and shell history would show it. Needs a connection with CREATEROLE.
 */
import { type Command, Option } from "commander";
import { CliContext } from "../context.js";
import { UsageError } from "../errors.js";

interface CreateOptions {
  role?: string;
  passwordEnv?: string;
}

export function registerRoles(program: Command): void {
  const roles = program.command("roles").description("namespace roles: PostgreSQL roles that can work only in one namespace");
  roles
    .command("create")
    .description("create the login role of the namespace (--namespace): it emits and consumes there and nowhere else")
    .addOption(new Option("--role <name>", "the role's name (default nexus_ns_<namespace>); roles are global to the PostgreSQL cluster"))
    .addOption(new Option("--password-env <variable>", "read the role's password from this environment variable (without it the role has no password)"))
    .action(async (options: CreateOptions, command: Command) => {
      const context = CliContext.of(command);
      const password = options.passwordEnv === undefined ? undefined : process.env[options.passwordEnv];
      if (options.passwordEnv !== undefined && !password) {
        throw new UsageError(`--password-env ${options.passwordEnv}: that environment variable is not set or is empty.`);
      }
      const role = await context.withSystem((system) =>
        system.createNamespaceRole(context.namespace, { ...(options.role === undefined ? {} : { roleName: options.role }), ...(password === undefined ? {} : { password }) }),
      );
      if (context.json) return context.output.printJson(role);
      context.output.line(
        `created role ${role.roleName} for namespace ${role.namespace}${password === undefined ? " (no password)" : ""}; connect its nodes with it and replies: "queue"`,
      );
    });
}
