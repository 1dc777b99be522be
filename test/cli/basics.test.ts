/**
 * The `nexus` command line itself: the command tree, exit codes of usage errors, the
 * database options, `status` and `migrate`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadMigrations } from "../../core/index.js";
import { buildProgram } from "../../cli/program.js";
import { createScratchDatabase, testDatabaseUrl, uniqueNamespace, type ScratchDatabase } from "../support/database.js";
import { ensureSchema, nexus, parseJson, runCli } from "../support/cli.js";

beforeAll(ensureSchema);

// Every test works in a namespace or database of its own: they run at once.
describe.concurrent("nexus", () => {
  describe("the command tree", () => {
    it("has every subcommand of the issue, and roles create (issue 11)", () => {
      const program = buildProgram();
      const tree = Object.fromEntries(program.commands.map((command) => [command.name(), command.commands.map((sub) => sub.name())]));
      expect(tree).toEqual({
        status: [],
        nodes: [],
        queues: [],
        events: ["tail", "replay"],
        dlq: ["list", "show", "retry", "purge"],
        schedules: ["list", "add", "pause", "resume", "remove"],
        migrate: [],
        sql: [],
        roles: ["create"],
      });
    });
  });

  describe("usage errors exit 2", () => {
    it.each([
      ["an unknown command", ["bogus"], /unknown command 'bogus'/],
      ["an unknown option", ["nodes", "--bogus"], /unknown option '--bogus'/],
      ["a missing argument", ["dlq", "show", "billing"], /missing required argument 'id'/],
      ["a missing required option", ["events", "replay", "--from", "2024-01-01", "--to", "2024-01-02"], /--group <group>' not specified/],
      ["a group outside the grammar", ["dlq", "list", "Not A Group"], /Invalid group "Not A Group"/],
      ["a bad number", ["dlq", "list", "billing", "--limit", "zero"], /expected a whole number from 1 to 1000/],
      ["a group command without its subcommand", ["dlq"], /Usage: nexus dlq/],
      ["no command, not at a terminal", [], /no command given \(the interactive menu needs a terminal\)/],
    ])("%s", async (_what, args, message) => {
      const run = await runCli(["--database-url", testDatabaseUrl(), ...args]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
      expect(run.stdout).toBe("");
    });

    it("without --database-url or CORE_DATABASE_URL, says so (and starts no embedded server)", async () => {
      const run = await runCli(["nodes"]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain("no database given: pass --database-url");
      expect(run.stderr).toContain("does not start an embedded one");
    });

    it("takes the database from CORE_DATABASE_URL and the namespace from CORE_NAMESPACE", async () => {
      const namespace = uniqueNamespace("cli-env");
      const run = await runCli(["status", "--json"], { env: { CORE_DATABASE_URL: testDatabaseUrl(), CORE_NAMESPACE: namespace } });
      expect(run.code).toBe(0);
      expect(parseJson<{ namespace: string }>(run).namespace).toBe(namespace);
    });

    it("help asked for exits 0", async () => {
      const [flag, command] = await Promise.all([runCli(["--help"]), runCli(["help", "dlq"])]);
      expect(flag.code).toBe(0);
      expect(flag.stdout).toContain("Exit codes: 0 ok, 1 the operation failed, 2 usage error.");
      expect(command.code).toBe(0);
      expect(command.stdout).toContain("Usage: nexus dlq");
    });
  });

  describe("status", () => {
    it("reports the database, the schema, the extensions and the namespace's counts", async () => {
      const namespace = uniqueNamespace("cli-status");
      const shipped = (await loadMigrations()).length;
      const [text, jsonRun] = await Promise.all([nexus(namespace, ["status"]), nexus(namespace, ["status", "--json"])]);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/database\s+postgres:\/\/\S+ reachable \(PostgreSQL \d+/);
      expect(text.stdout).toContain(`version ${shipped} of ${shipped} (current)`);
      expect(text.stdout).toMatch(/extensions\s+pg/);
      expect(text.stdout).toMatch(/nodes\s+0 alive, 0 stopped, 0 dead/);

      const json = parseJson<{ ok: boolean; schema: { state: string; applied: number }; extensions: { name: string }[]; counts: { queues: number; deadLetters: number } }>(jsonRun);
      expect(json.ok).toBe(true);
      expect(json.schema).toMatchObject({ state: "current", applied: shipped });
      expect(json.extensions.map((extension) => extension.name)).toEqual(["pgmq", "pg_cron", "pg_partman", "pg_stat_statements"]);
      expect(json.counts).toEqual({ nodes: { alive: 0, stopped: 0, dead: 0 }, queues: 0, deadLetters: 0 });
    });

    it("exits 1 for an unreachable database, without printing its password", async () => {
      const run = await runCli(["status", "--database-url", "postgres://nexus:s3cret-pw@127.0.0.1:1/core"]);
      expect(run.code).toBe(1);
      expect(run.stdout).toContain("unreachable");
      expect(run.stderr).toContain("error: the database at postgres://nexus:***@127.0.0.1:1/core is unreachable");
      expect(run.stdout + run.stderr).not.toContain("s3cret-pw");
      expect(run.stderr).not.toMatch(/\n\s+at /);
    });

    it("a command on an unreachable database prints the typed error without a stack, and the stack with --verbose", async () => {
      const url = "postgres://nexus:s3cret-pw@127.0.0.1:1/core";
      const [plain, verbose] = await Promise.all([runCli(["nodes", "--database-url", url]), runCli(["nodes", "--database-url", url, "--verbose"])]);
      expect(plain.code).toBe(1);
      expect(plain.stderr).toMatch(/^error: Could not .* is unreachable/);
      expect(plain.stderr).not.toMatch(/\n\s+at /);
      expect(verbose.code).toBe(1);
      expect(verbose.stderr).toMatch(/ConnectionError: .*\n\s+at /);
      expect(plain.stderr + verbose.stderr).not.toContain("s3cret-pw");
    });
  });

  describe("migrate", () => {
    let scratch: ScratchDatabase;
    beforeAll(async () => {
      scratch = await createScratchDatabase("cli_migrate");
    });
    afterAll(() => scratch.drop());

    it("applies the shipped migrations with progress, then finds nothing to do; commands refuse an unmigrated database", async () => {
      const shipped = (await loadMigrations()).length;
      const [before, status] = await Promise.all([runCli(["nodes", "--database-url", scratch.url]), runCli(["status", "--database-url", scratch.url])]);
      expect(before.code).toBe(1);
      expect(before.stderr).toContain("has no Nexus Core schema: run nexus migrate first");
      expect(status.code).toBe(1);
      expect(status.stdout).toMatch(/schema\s+none \(run nexus migrate\)/);

      const first = await runCli(["migrate", "--database-url", scratch.url]);
      expect(first.code).toBe(0);
      expect(first.stdout).toContain(`applied versions ${Array.from({ length: shipped }, (_, index) => index + 1).join(", ")}; schema at version ${shipped}`);
      expect(first.stderr).toContain(`applying ${shipped} migrations`);
      expect(first.stderr).toContain(`[${shipped}/${shipped}]`);

      const [again, after] = await Promise.all([runCli(["migrate", "--database-url", scratch.url, "--json"]), runCli(["status", "--database-url", scratch.url])]);
      expect(again.code).toBe(0);
      expect(parseJson(again)).toEqual({ applied: [], version: shipped });
      expect(after.code).toBe(0);
    });
  });
});
