/**
 * One fault scenario, start to end: consumer children subscribe the groups, the producer
 * emits while `fault` runs beside it, the queues drain, and the namespace is reconciled.
 * Every wait is bounded, so a stuck consumer fails the scenario instead of hanging it.
 */
import { randomBytes } from "node:crypto";
import type { FixtureProcess } from "../../support/fixture-process.js";
import { killAll, openScenario, produce, startConsumer, type ConsumerReport, type ConsumerSpec, type ProduceOptions, type ProduceOutcome, type Scenario } from "./cluster.js";
import { formatReconciliation, reconcileWhenDrained, type Reconciliation } from "../../support/reconcile.js";

/** What a fault gets: the scenario, the running children (it may replace them) and how to start one more. */
export interface FaultContext {
  scenario: Scenario;
  consumers: FixtureProcess<ConsumerReport>[];
  startConsumer(): Promise<FixtureProcess<ConsumerReport>>;
  /** Aborted when production has finished: a fault loop stops on it. */
  produced: AbortSignal;
}

/** Options of {@link runScenario}. */
export interface ScenarioOptions {
  label: string;
  /** Where the scenario's own system (producer, reconciliation) connects. */
  databaseUrl: string;
  /** Where the consumer children connect (a proxy in front of the server, or the server). Default `databaseUrl`. */
  consumerUrl?: string;
  groups: readonly string[];
  consumers: number;
  consumer?: Omit<ConsumerSpec, "databaseUrl" | "namespace" | "groups" | "table">;
  production: Omit<ProduceOptions, "signal">;
  /** The fault, run while the producer emits; resolves when it is done. */
  fault?: (context: FaultContext) => Promise<void>;
  /** Milliseconds to wait for the queues to drain after production and fault. */
  drainMs: number;
}

/** What {@link runScenario} saw. */
export interface ScenarioOutcome {
  result: Reconciliation;
  production: ProduceOutcome;
  /** Milliseconds from the first emit to the reconciliation. */
  durationMs: number;
  summary: string;
}

/** Runs one scenario in namespace `chaos-<label>-<hex>` and cleans up after it. */
export async function runScenario(options: ScenarioOptions): Promise<ScenarioOutcome> {
  const suffix = randomBytes(4).toString("hex");
  const namespace = `chaos-${options.label}-${suffix}`;
  const table = `chaos_effects_${suffix}`;
  const scenario = await openScenario(options.databaseUrl, namespace, table);
  const spec: ConsumerSpec = { ...options.consumer, databaseUrl: options.consumerUrl ?? options.databaseUrl, namespace, groups: options.groups, table };
  const consumers: FixtureProcess<ConsumerReport>[] = [];
  try {
    for (let index = 0; index < options.consumers; index += 1) consumers.push(await startConsumer(spec));
    const produced = new AbortController();
    const context: FaultContext = {
      scenario,
      consumers,
      produced: produced.signal,
      startConsumer: async () => {
        const child = await startConsumer(spec);
        consumers.push(child);
        return child;
      },
    };
    const startedAt = Date.now();
    const production = produce(scenario.producer, options.production).finally(() => produced.abort());
    const [outcome] = await Promise.all([production, options.fault?.(context)]);
    const result = await reconcileWhenDrained(scenario.system, table, options.groups, options.drainMs);
    const durationMs = Date.now() - startedAt;
    const summary = `${formatReconciliation(options.label, result)}\n  produced ${outcome.emitted} events (${outcome.retries} batch retries) in ${Math.round(durationMs / 100) / 10} s`;
    console.log(summary);
    return { result, production: outcome, durationMs, summary };
  } finally {
    await killAll(consumers);
    for (const group of options.groups) await scenario.system.dropGroup(group).catch(() => 0);
    await scenario.close();
  }
}
