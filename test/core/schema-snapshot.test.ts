/**
 * Catches unintended schema changes: the catalog of schema `core` after all migrations and
 * function files must equal the committed snapshot. An intended change updates the
 * snapshot with `npx vitest run -u test/core/schema-snapshot.test.ts`.
 *
 * The snapshot holds whether pgmq is the extension or the compatible SQL of migration 3:
 *   * `core` is taken in full (relations, columns, constraints, indexes, policies, and
 *     every function with its attributes and an md5 of its body); nothing in it depends
 *     on the pgmq mode;
 *   * of `pgmq`, only the calls the core makes are listed, each with the result of the
 *     function that a call with those argument types reaches (trailing defaulted
 *     arguments allowed, as pgmq adds some between releases). The queue tables, types and
 *     other functions of pgmq are the extension's business, or, for the compatible SQL,
 *     that of test/pgmq/compat.test.ts.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { CoreSystem } from "../../core/index.js";
import { createScratchDatabase, withClient, type ScratchDatabase } from "../support/database.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The pgmq calls of the core (in sql/functions/ and core/), by argument types as the core passes them. */
const PGMQ_CALLS: ReadonlyArray<{ name: string; args: string[] }> = [
  { name: "create", args: ["text"] },
  { name: "delete", args: ["text", "bigint"] },
  { name: "delete", args: ["text", "bigint[]"] },
  { name: "drop_queue", args: ["text"] },
  { name: "format_table_name", args: ["text", "text"] },
  { name: "metrics", args: ["text"] },
  { name: "read", args: ["text", "integer", "integer"] },
  { name: "send", args: ["text", "jsonb", "integer"] },
  { name: "send_batch", args: ["text", "jsonb[]", "integer"] },
  { name: "set_vt", args: ["text", "bigint", "integer"] },
];

let database: ScratchDatabase;
beforeAll(async () => {
  database = await createScratchDatabase("snapshot");
  const system = await CoreSystem.connect({ connectionString: database.url, namespace: "snapshot" });
  await system.close();
});
afterAll(() => database.drop());

const CORE_CATALOG = `
  select kind, line from (
    select 'relation' as kind, format('%s %s', c.relname, c.relkind) as line
      from pg_class c
     where c.relnamespace = 'core'::regnamespace and c.relkind in ('r', 'p', 'v', 'S', 'i', 'I') and not c.relispartition
    union all
    select 'column', format('%s.%s %s%s%s', c.relname, a.attname,
                            format_type(a.atttypid, a.atttypmod),
                            case when a.attnotnull then ' not null' else '' end,
                            coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''))
      from pg_attribute a
      join pg_class c on c.oid = a.attrelid
      left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
     where c.relnamespace = 'core'::regnamespace and c.relkind in ('r', 'p', 'v', 'c')
       and a.attnum > 0 and not a.attisdropped and not c.relispartition
    union all
    select 'constraint', format('%s %s', c.relname, pg_get_constraintdef(k.oid))
      from pg_constraint k join pg_class c on c.oid = k.conrelid
     where c.relnamespace = 'core'::regnamespace and not c.relispartition
    union all
    select 'index', pg_get_indexdef(i.indexrelid)
      from pg_index i join pg_class c on c.oid = i.indrelid
     where c.relnamespace = 'core'::regnamespace and not c.relispartition
    union all
    select 'policy', format('%s %s %s using (%s) check (%s)', tablename, policyname, cmd, qual, with_check)
      from pg_policies where schemaname = 'core'
    union all
    select 'rls', format('%s %s', c.relname, c.relrowsecurity)
      from pg_class c where c.relnamespace = 'core'::regnamespace and c.relkind in ('r', 'p') and not c.relispartition
    union all
    select 'function', format('%s(%s) returns %s; %s %s%s%s%s; public execute %s; body md5 %s',
                              p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
                              l.lanname,
                              case p.provolatile when 'i' then 'immutable' when 's' then 'stable' else 'volatile' end,
                              case when p.proisstrict then ' strict' else '' end,
                              case when p.prosecdef then ' security definer' else '' end,
                              coalesce(' set ' || array_to_string(p.proconfig, ', '), ''),
                              case when has_function_privilege('public', p.oid, 'execute') then 'yes' else 'no' end,
                              md5(p.prosrc))
      from pg_proc p join pg_language l on l.oid = p.prolang
     where p.pronamespace = 'core'::regnamespace
  ) catalog
  order by kind, line`;

const PGMQ_CALL_RESULTS = `
  select f.name, f.args, (
    select string_agg(distinct pg_get_function_result(p.oid), ' | ')
      from pg_proc p
     where p.pronamespace = 'pgmq'::regnamespace and p.proname = f.name
       and p.pronargs >= cardinality(f.args) and p.pronargs - p.pronargdefaults <= cardinality(f.args)
       and (select coalesce(array_agg(format_type(u.type, null) order by u.position), '{}')
              from unnest(p.proargtypes::oid[]) with ordinality as u(type, position)
             where u.position <= cardinality(f.args)) = f.args
  ) as result
  from jsonb_to_recordset($1::jsonb) as f(name text, args text[])`;

it("matches the committed snapshot of the schema", async () => {
  const lines = await withClient(database.url, async (client) => {
    const core = await client.query<{ kind: string; line: string }>(CORE_CATALOG);
    const pgmq = await client.query<{ name: string; args: string[]; result: string | null }>(PGMQ_CALL_RESULTS, [JSON.stringify(PGMQ_CALLS)]);
    return [
      ...core.rows.map((row) => `${row.kind}: core.${row.line}`),
      ...pgmq.rows.map((row) => `pgmq call: pgmq.${row.name}(${row.args.join(", ")}) -> ${row.result ?? "MISSING"}`),
    ];
  });
  expect(lines.length).toBeGreaterThan(20);
  expect(lines.filter((line) => line.endsWith("MISSING"))).toEqual([]);
  await expect(`${lines.join("\n")}\n`).toMatchFileSnapshot("./__snapshots__/schema.txt");
});

it("lists every pgmq function the core calls", async () => {
  const called = new Set<string>();
  for (const file of await sourceFiles()) {
    const text = (await readFile(file, "utf8")).replace(/--.*$/gm, "").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
    for (const match of text.matchAll(/\bpgmq\.([a-z_]+)\s*\(/g)) called.add(match[1]!);
  }
  expect([...called].sort()).toEqual([...new Set(PGMQ_CALLS.map((call) => call.name))].sort());
});

/** The function files and the TypeScript of core/, wherever core's modules live. */
async function sourceFiles(): Promise<string[]> {
  const functionsDir = path.join(ROOT, "sql/functions");
  const sql = (await readdir(functionsDir)).filter((name) => name.endsWith(".sql")).map((name) => path.join(functionsDir, name));
  const core = (await readdir(path.join(ROOT, "core"), { recursive: true }))
    .filter((name) => name.endsWith(".ts"))
    .map((name) => path.join(ROOT, "core", name));
  return [...sql, ...core];
}
