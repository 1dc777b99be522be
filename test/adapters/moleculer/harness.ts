/** Child brokers and an in-process supervisor broker for the Moleculer scenario tests. */
import path from "node:path";
import { fileURLToPath } from "node:url";
import Moleculer from "moleculer";
import { FixtureProcess } from "../../support/fixture-process.js";
import { brokerOptions, type SerializerKind, type TransporterKind } from "./support.js";

const brokerScript = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures/broker.ts");

/** What a child broker reports. */
export interface BrokerReport {
  nodeID: string;
  kind: "ready" | "called" | "done" | "event" | "event-done";
  id?: number;
  service?: string;
  event?: string;
  params?: unknown;
  meta?: unknown;
  from?: string;
}

/** One scenario's setting: where the brokers meet and how they talk. */
export interface ScenarioSetting {
  namespace: string;
  transporter: TransporterKind;
  serializer: SerializerKind;
  disableBalancer: boolean;
  databaseUrl: string;
}

/** Starts a child broker and waits until it has started. */
export async function startChild(setting: ScenarioSetting, nodeID: string, extraEnv: Record<string, string> = {}): Promise<FixtureProcess<BrokerReport>> {
  const child = new FixtureProcess<BrokerReport>(brokerScript, {
    MOL_NODE_ID: nodeID,
    MOL_NAMESPACE: setting.namespace,
    MOL_TRANSPORTER: setting.transporter,
    MOL_SERIALIZER: setting.serializer,
    MOL_DISABLE_BALANCER: setting.disableBalancer ? "1" : "0",
    MOL_DATABASE_URL: setting.databaseUrl,
    ...extraEnv,
  });
  await child.waitForReport(`${nodeID} to start`, (report) => report.kind === "ready", 45_000);
  return child;
}

/** The supervisor broker of a scenario, in the test process. */
export function supervisor(setting: ScenarioSetting): Moleculer.ServiceBroker {
  return new Moleculer.ServiceBroker(brokerOptions({ ...setting, nodeID: `supervisor-${process.pid}` }));
}

/** Stops children gracefully (SIGTERM), killing those that do not exit in time. */
export async function stopChildren(children: FixtureProcess<BrokerReport>[]): Promise<void> {
  await Promise.all(
    children.map(async (child) => {
      if (!child.running) return;
      child.child.kill("SIGTERM");
      const exited = await Promise.race([child.exited.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 8_000))]);
      if (!exited) await child.kill();
    }),
  );
}

/** All reports of `kind` from `children`. */
export function reportsOf(children: FixtureProcess<BrokerReport>[], kind: BrokerReport["kind"]): BrokerReport[] {
  return children.flatMap((child) => child.reports.filter((report) => report.kind === kind));
}
