/**
 * Catches unintended schema changes: the catalog of schemas `core` (and `pgmq` where the
 * compatible SQL is installed) after all migrations must equal the committed snapshot.
 * An intended change updates the snapshot with `npx vitest run -u test/core/schema-snapshot.test.ts`.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { CoreSystem } from "../../core/index.js";
import { createScratchDatabase, withClient, type ScratchDatabase } from "../support/database.js";

let database: ScratchDatabase;
beforeAll(async () => {
  database = await createScratchDatabase("snapshot");
  const system = await CoreSystem.connect({ connectionString: database.url, namespace: "snapshot" });
  await system.close();
});
afterAll(() => database.drop());

const CATALOG = `
  with target as (
    select nspname from pg_namespace
     where nspname = 'core'
        or (nspname = 'pgmq' and not exists (select 1 from pg_extension where extname = 'pgmq'))
  )
  select kind, line from (
    select 'relation' as kind,
           format('%s.%s %s', n.nspname, c.relname, c.relkind) as line
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname in (select nspname from target) and c.relkind in ('r', 'p', 'v', 'S', 'i', 'I')
       and c.relname not like 'q\\_%' and c.relname not like 'a\\_%' and not c.relispartition
    union all
    select 'column', format('%s.%s.%s %s%s%s', n.nspname, c.relname, a.attname,
                            format_type(a.atttypid, a.atttypmod),
                            case when a.attnotnull then ' not null' else '' end,
                            coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''))
      from pg_attribute a
      join pg_class c on c.oid = a.attrelid
      join pg_namespace n on n.oid = c.relnamespace
      left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
     where n.nspname in (select nspname from target) and c.relkind in ('r', 'p', 'v', 'c')
       and a.attnum > 0 and not a.attisdropped and not c.relispartition
    union all
    select 'constraint', format('%s.%s %s', n.nspname, c.relname, pg_get_constraintdef(k.oid))
      from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
     where n.nspname in (select nspname from target) and not c.relispartition
    union all
    select 'index', pg_get_indexdef(i.indexrelid)
      from pg_index i join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
     where n.nspname in (select nspname from target) and not c.relispartition
    union all
    select 'function', format('%s.%s(%s) returns %s', n.nspname, p.proname,
                              pg_get_function_arguments(p.oid), pg_get_function_result(p.oid))
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname in (select nspname from target)
  ) catalog
  order by kind, line`;

it("matches the committed snapshot of the schema", async () => {
  const lines = await withClient(database.url, async (client) => {
    const { rows } = await client.query<{ kind: string; line: string }>(CATALOG);
    return rows.map((row) => `${row.kind}: ${row.line}`);
  });
  expect(lines.length).toBeGreaterThan(20);
  await expect(`${lines.join("\n")}\n`).toMatchFileSnapshot("./__snapshots__/schema.txt");
});
