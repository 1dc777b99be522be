/**
 * The chaos suite's own PostgreSQL cluster (made by test/chaos/setup-cluster.sh), which
 * the scenarios may restart, and the child consumers and producer they run against it.
 * Nothing here imports vitest: bench/soak.ts uses it too.
 */
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import pg from "pg";
import { CoreSystem, type CoreNode } from "../../../core/index.js";
import { FixtureProcess } from "../../support/fixture-process.js";
import { createEffectTable } from "../../support/reconcile.js";

/** The chaos cluster's database: NEXUS_CHAOS_DATABASE_URL, default the one setup-cluster.sh creates. */
export function chaosDatabaseUrl(): string {
  return process.env.NEXUS_CHAOS_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5440/nexus_chaos";
}

/** `pg_ctlcluster` arguments of the chaos cluster (NEXUS_CHAOS_CLUSTER, default `15 chaos`). */
function clusterArgs(): string[] {
  return (process.env.NEXUS_CHAOS_CLUSTER ?? "15 chaos").split(" ");
}

/** Restarts the chaos cluster (fast shutdown: open transactions are rolled back, connections cut). */
export async function restartCluster(): Promise<void> {
  await promisify(execFile)("pg_ctlcluster", [...clusterArgs(), "restart", "-m", "fast"]);
}

/** Starts the chaos cluster unless it runs already (a test's cleanup after a failure). */
export function ensureClusterStarted(): void {
  try {
    execFileSync("pg_ctlcluster", [...clusterArgs(), "start"], { stdio: "pipe" });
  } catch {
    // Already running: pg_ctlcluster refuses to start a running cluster.
  }
}

/** Report lines of test/fixtures/chaos-consumer.ts. */
export interface ConsumerReport {
  ready?: boolean;
  pid?: number;
  handled?: number;
  rss?: number;
}

/** Settings of one consumer child (see test/fixtures/chaos-consumer.ts). */
export interface ConsumerSpec {
  databaseUrl: string;
  namespace: string;
  groups: readonly string[];
  table: string;
  concurrency?: number;
  prefetch?: number;
  timeoutMs?: number;
  maxAttempts?: number;
  visibilityMs?: number;
  handlerDelayMs?: number;
  poolMax?: number;
}

/** Starts a consumer child and waits until its node runs. */
export async function startConsumer(spec: ConsumerSpec, readyWithinMs = 60_000): Promise<FixtureProcess<ConsumerReport>> {
  const env: Record<string, string> = {
    CHAOS_DATABASE_URL: spec.databaseUrl,
    CHAOS_NAMESPACE: spec.namespace,
    CHAOS_GROUPS: spec.groups.join(","),
    CHAOS_TABLE: spec.table,
  };
  const optional: [string, number | undefined][] = [
    ["CHAOS_CONCURRENCY", spec.concurrency],
    ["CHAOS_PREFETCH", spec.prefetch],
    ["CHAOS_TIMEOUT_MS", spec.timeoutMs],
    ["CHAOS_MAX_ATTEMPTS", spec.maxAttempts],
    ["CHAOS_VISIBILITY_MS", spec.visibilityMs],
    ["CHAOS_HANDLER_DELAY_MS", spec.handlerDelayMs],
    ["CHAOS_POOL_MAX", spec.poolMax],
  ];
  for (const [name, value] of optional) if (value !== undefined) env[name] = String(value);
  const child = new FixtureProcess<ConsumerReport>("test/fixtures/chaos-consumer.ts", env);
  try {
    await child.waitForReport("the consumer to be ready", (report) => report.ready === true, readyWithinMs);
  } catch (error) {
    await child.kill();
    throw error;
  }
  return child;
}

/** SIGKILLs every child still running. */
export async function killAll(children: Iterable<FixtureProcess<ConsumerReport>>): Promise<void> {
  await Promise.all([...children].map((child) => child.kill()));
}

/** A scenario's namespace, producer node and effect table on the chaos cluster. */
export interface Scenario {
  system: CoreSystem;
  producer: CoreNode;
  table: string;
  close(): Promise<void>;
}

/**
 * Connects the scenario's system (its pool reconnects after restarts), registers the
 * producer node and creates the effect table. Start the consumers (they subscribe the
 * groups) before producing.
 */
export async function openScenario(databaseUrl: string, namespace: string, table: string): Promise<Scenario> {
  const system = await CoreSystem.connect({ connectionString: databaseUrl, namespace, applicationName: "nexus-chaos-producer", pool: { max: 6, connectionTimeoutMs: 5_000 } });
  await createEffectTable(system.pool, table);
  const producer = await system.registerNode({ displayName: "chaos-producer" });
  return {
    system,
    producer,
    table,
    close: async () => {
      await system.pool.query(`drop table if exists ${table}`).catch(() => {});
      await system.close();
    },
  };
}

/** Options of {@link produce}. */
export interface ProduceOptions {
  /** Events to emit. */
  total: number;
  /** Events per emitBatch (one transaction). */
  batchSize: number;
  /** Milliseconds between batches (0: as fast as the database takes them). */
  intervalMs?: number;
  /** The payload of event `index`. */
  payload?: (index: number) => unknown;
  /** Stops early when aborted. */
  signal?: AbortSignal;
  /** Gives up when a batch keeps failing this long (the scenario is broken, not faulty). */
  giveUpAfterMs?: number;
}

/** What {@link produce} did. */
export interface ProduceOutcome {
  /** Batches acknowledged by the database. */
  emitted: number;
  /** Batches that failed and were retried (a fault hit them). */
  retries: number;
}

/**
 * Emits `total` events in batches, retrying a failed batch until it succeeds. A batch
 * whose commit succeeded but whose answer was lost is emitted again: that makes more
 * events in the log, each reconciled on its own, which is what a real producer would do.
 */
export async function produce(node: CoreNode, options: ProduceOptions): Promise<ProduceOutcome> {
  const outcome: ProduceOutcome = { emitted: 0, retries: 0 };
  const giveUpAfterMs = options.giveUpAfterMs ?? 60_000;
  for (let start = 0; start < options.total && !options.signal?.aborted; start += options.batchSize) {
    const batch = Array.from({ length: Math.min(options.batchSize, options.total - start) }, (_, offset) => ({
      type: "chaos.event",
      payload: options.payload?.(start + offset) ?? { index: start + offset },
    }));
    const failingSince = Date.now();
    for (;;) {
      try {
        await node.emitBatch(batch);
        outcome.emitted += batch.length;
        break;
      } catch (error) {
        outcome.retries += 1;
        if (Date.now() - failingSince > giveUpAfterMs) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    if (options.intervalMs) await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
  }
  return outcome;
}

/** Messages waiting (visible or not) in the groups' queues, read straight from the database. */
export async function queueDepth(system: CoreSystem): Promise<number> {
  const snapshot = await system.metrics();
  return snapshot.groups.filter((group) => group.kind === "event").reduce((sum, group) => sum + (group.queueLength ?? 0), 0);
}

/** A plain pool on `url` for probes that must not share the scenario's pool. */
export function probePool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on("error", () => {}); // a restart kills idle probe connections; the next query reconnects
  return pool;
}
