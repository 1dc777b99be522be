/**
 * `nexus sql`: one statement, read-only unless --write; table and JSON output.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testDatabaseUrl, uniqueNamespace, withClient } from "../support/database.js";
import { ensureSchema, nexus, parseJson } from "../support/cli.js";

const namespace = uniqueNamespace("cli-sql");
const suffix = randomBytes(4).toString("hex");
/** Tables of this file (each test its own: they run concurrently), dropped afterwards. */
const refused = `cli_sql_refused_${suffix}`;
const written = `cli_sql_written_${suffix}`;

beforeAll(ensureSchema);
afterAll(() => withClient(testDatabaseUrl(), (client) => client.query(`drop table if exists public.${refused}, public.${written}`)));

describe.concurrent("sql", () => {
  it("prints rows as a table, and as JSON with --json", async () => {
    const [text, jsonRun] = await Promise.all([
      nexus(namespace, ["sql", "select 1 as one, 'two' as two, null::int as nothing"]),
      nexus(namespace, ["sql", "select version from core.schema_migrations where version <= 2 order by version", "--json"]),
    ]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/│ one │ two │ nothing │/);
    expect(text.stdout).toMatch(/│ 1\s+│ two │ null\s+│/);
    expect(text.stdout).toContain("(1 row)");

    expect(parseJson(jsonRun)).toEqual({ command: "SELECT", rowCount: 2, fields: ["version"], rows: [{ version: 1 }, { version: 2 }] });
  });

  it("refuses writes without --write: a read-only transaction error, exit 1", async () => {
    const run = await nexus(namespace, ["sql", `create table public.${refused} (id int)`]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("error: cannot execute CREATE TABLE in a read-only transaction");
    expect(run.stderr).toContain("pass --write to allow writes");
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it("runs one statement only, so a COMMIT cannot end the read-only transaction", async () => {
    const run = await nexus(namespace, ["sql", `commit; create table public.${refused} (id int)`]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("runs one statement at a time");
    const exists = await withClient(testDatabaseUrl(), (client) => client.query("select to_regclass($1) as t", [`public.${refused}`]));
    expect(exists.rows[0].t).toBeNull();
  });

  it("writes and commits with --write", async () => {
    expect((await nexus(namespace, ["sql", `create table public.${written} (id int)`, "--write"])).stdout).toBe("CREATE\n");
    const insert = await nexus(namespace, ["sql", `insert into public.${written} values (1), (2)`, "--write", "--json"]);
    expect(insert.code).toBe(0);
    expect(parseJson(insert)).toMatchObject({ command: "INSERT", rowCount: 2, rows: [] });
    const count = parseJson<{ rows: { n: string }[] }>(await nexus(namespace, ["sql", `select count(*) as n from public.${written}`, "--json"]));
    expect(count.rows).toEqual([{ n: "2" }]);
  });

  it("reports a failing statement with its SQLSTATE, exit 1", async () => {
    const run = await nexus(namespace, ["sql", "select * from no_such_table"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: relation "no_such_table" does not exist \(SQLSTATE 42P01/);
  });
});
