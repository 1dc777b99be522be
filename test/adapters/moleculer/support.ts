/** Broker settings shared by the scenario suite's supervisor and its child brokers. */
import type { Readable } from "node:stream";
import Moleculer from "moleculer";
import { PgTransporter } from "../../../adapters/moleculer/index.js";

/** The transporters the scenarios run on: PgTransporter with its default (direct) targeted packets, and with `delivery: "queue"`. */
export type TransporterKind = "nats" | "redis" | "pg" | "pg-queue";
/** The serializers the scenarios run with (one text, one binary at least). */
export type SerializerKind = "JSON" | "MsgPack" | "Notepack";

/** The Moleculer version in use (0.14 from the root, 0.15 in test/matrix/moleculer15). */
export const moleculerVersion: string = (Moleculer.ServiceBroker as unknown as { MOLECULER_VERSION: string }).MOLECULER_VERSION;

/**
 * Transporters to run. PgTransporter always; the peers (the same scenarios on NATS and
 * Redis, proving the port is Moleculer's contract) with NEXUS_MOLECULER_PEERS=1, which
 * the 0.15 matrix config sets and CI sets for 0.14 (0.14.36 speaks the nats 2.x client;
 * 0.14.6 and older spoke only nats 1.x).
 */
export function transportersUnderTest(): TransporterKind[] {
  if (process.env.NEXUS_MOLECULER_PEERS !== "1") return ["pg", "pg-queue"];
  return ["nats", "redis", "pg", "pg-queue"];
}

/** The broker options for one node of a scenario. */
export function brokerOptions(options: {
  nodeID: string;
  namespace: string;
  transporter: TransporterKind;
  serializer: SerializerKind;
  disableBalancer: boolean;
  databaseUrl: string;
  pg?: ConstructorParameters<typeof PgTransporter>[0];
}): Moleculer.BrokerOptions {
  const transporter =
    options.transporter === "nats"
      ? { type: "NATS", options: { url: "nats://127.0.0.1:4222" } }
      : options.transporter === "redis"
        ? { type: "Redis", options: { host: "127.0.0.1", port: 6379, enableReadyCheck: false } }
        : new PgTransporter({
            connectionString: options.databaseUrl,
            ...(options.transporter === "pg-queue" ? { delivery: "queue" as const } : {}),
            ...(typeof options.pg === "object" ? options.pg : {}),
          });
  return {
    nodeID: options.nodeID,
    namespace: options.namespace,
    transporter,
    serializer: options.serializer,
    disableBalancer: options.disableBalancer,
    logLevel: "warn",
    heartbeatInterval: 2,
    heartbeatTimeout: 6,
  };
}

/** Calls `action` with a request stream, the way this Moleculer version takes one (0.14: as the params; 0.15: the `stream` option). */
export function callWithStream<TReply>(broker: Moleculer.ServiceBroker, action: string, stream: Readable): Promise<TReply> {
  if (moleculerVersion.startsWith("0.14.")) return broker.call<TReply, Readable>(action, stream);
  return broker.call<TReply, null>(action, null, { stream } as Moleculer.CallingOptions);
}

/** Whether balanced packets go through the transporter's own balancing: Moleculer keeps its balancer on for transporters without one (Redis). */
export function usesTransporterBalancer(transporter: TransporterKind, disableBalancer: boolean): boolean {
  return disableBalancer && transporter !== "redis";
}
