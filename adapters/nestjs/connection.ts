/**
 * The connection options `PgServer` and `PgClient` share: the core's own, or a
 * `CoreSystem` the application already has.
 */
import type { ConnectOptions, CoreSystem } from "../../core/index.js";
import { openSystem, type AdapterSystem } from "../../core/internal.js";
import { PgNestOptionsError } from "./errors.js";

/** Either the core's connection options, or `system`: an open `CoreSystem` to reuse (not closed by the adapter). */
export interface PgConnectionOptions extends Partial<ConnectOptions> {
  /** An open system to use instead of connecting; the adapter leaves closing it to its owner. */
  system?: CoreSystem;
}

/** Opens the system the options describe: the given `system`, or a new one from the connection options (see `openSystem` in core). */
export async function openConnection(options: PgConnectionOptions, who: string): Promise<AdapterSystem> {
  if (options.system) return openSystem(options.system);
  const { connectionString, namespace } = options;
  if (typeof connectionString !== "string" || typeof namespace !== "string") {
    throw new PgNestOptionsError(
      "options",
      `${who} needs either { system } (an open CoreSystem) or { connectionString, namespace } (the core's ConnectOptions).`,
    );
  }
  return openSystem({ ...options, connectionString, namespace });
}

/** Separates the connection options from the adapter's own, so only the core's reach `CoreSystem.connect`. */
export function connectionOf<T extends PgConnectionOptions>(options: T, own: readonly (keyof T)[]): PgConnectionOptions {
  const copy: Record<string, unknown> = { ...(options as Record<string, unknown>) };
  for (const key of own) delete copy[key as string];
  return copy as PgConnectionOptions;
}
