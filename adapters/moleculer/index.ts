/**
 * `@nexus-core/core/moleculer`: a Moleculer transporter on PostgreSQL. Importing it
 * registers the transporter as `"Postgres"`, so `transporter: "Postgres"` (connection from
 * `CORE_DATABASE_URL`) works too. See README.md in this folder.
 * @packageDocumentation
 */
import Moleculer from "moleculer";
import { PgTransporter } from "./transporter.js";

export { PgTransporter, type PgTransporterOptions, type PgBalancedOptions } from "./transporter.js";
export { PgTransporterConfigError } from "./errors.js";

/** The name {@link PgTransporter} is registered under on import. */
export const PG_TRANSPORTER_NAME = "Postgres";

/**
 * Registers {@link PgTransporter} under `name` in Moleculer's transporter registry, so that
 * `transporter: name` and `transporter: { type: name, options }` resolve to it. Uses
 * `Transporters.register` where Moleculer has it (0.15) and adds the entry directly on 0.14,
 * whose resolver looks names up in the same object.
 */
export function registerPgTransporter(name: string = PG_TRANSPORTER_NAME): void {
  const registry = Moleculer.Transporters as unknown as Record<string, unknown> & { register?: (name: string, value: unknown) => void };
  if (typeof registry.register === "function") registry.register(name, PgTransporter);
  else registry[name] = PgTransporter;
}

registerPgTransporter();
