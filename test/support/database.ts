/**
 * Databases for tests. Most tests share the run's database and keep apart by namespace
 * ({@link uniqueNamespace}); tests of migrations and of the bare queue SQL take a scratch
 * database of their own ({@link createScratchDatabase}).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { CoreSystem } from "../../core/index.js";
import { inject } from "vitest";

/** Connection string of the database the whole test run shares. */
export function testDatabaseUrl(): string {
  return inject("databaseUrl");
}

/** A namespace name no other test uses: `label` plus random hex, within the 40-character limit. */
export function uniqueNamespace(label = "t"): string {
  return `${label.slice(0, 28)}-${randomBytes(5).toString("hex")}`;
}

/** An empty database of its own for one test file, and how to drop it. */
export interface ScratchDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

/** Creates an empty database on the test server, named after `label`. */
export async function createScratchDatabase(label: string): Promise<ScratchDatabase> {
  const name = `nexus_t_${label.replace(/[^a-z0-9_]/g, "_").slice(0, 30)}_${randomBytes(4).toString("hex")}`;
  const baseUrl = testDatabaseUrl();
  await withClient(baseUrl, (client) => client.query(`create database "${name}"`));
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () => withClient(baseUrl, (client) => client.query(`drop database if exists "${name}" with (force)`)).then(() => {}),
  };
}

/** Runs `work` with a connected client of `url`, then ends the client. */
export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/**
 * Drops what a test left in the shared database for `namespace`: its groups (their queues
 * included), its nodes' own queues and its large broadcast payloads.
 */
export async function dropNamespaceLeftovers(admin: pg.Pool, namespace: string): Promise<void> {
  const { rows: groups } = await admin.query<{ group_name: string }>("select distinct group_name from core.subscriptions where namespace = $1", [namespace]);
  if (groups.length > 0) {
    const cleaner = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace });
    try {
      for (const { group_name } of groups) await cleaner.dropGroup(group_name);
    } finally {
      await cleaner.close();
    }
  }
  await admin.query(
    `select pgmq.drop_queue(m.queue_name)
       from core.nodes n
       join pgmq.meta m on m.queue_name in (core.node_queue(n.node_id), core.node_queue(n.node_id) || '_dlq')
      where n.namespace = $1`,
    [namespace],
  );
  await admin.query("delete from core.broadcast_payloads where namespace = $1", [namespace]);
}
