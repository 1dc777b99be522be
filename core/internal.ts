/**
 * `core/internal.ts`: what the package's adapters, apps and CLI use of the core beyond its
 * public entry point `core/index.ts`. Not a public subpath export: these may change in
 * any release. Adapters import only `core/index.ts` and this file.
 */
export { openSystem, isCoreSystem, type AdapterSystem } from "./system.js";
export { assertBackoff } from "./model/backoff.js";
export type { Queryable } from "./db/queryable.js";
export { toNexusError } from "./db/database.js";
export { NotificationListener } from "./db/listener.js";
export { inspectSchema, loadFunctionFiles, defaultFunctionsDir, type FunctionFile, type SchemaInspection } from "./db/migrations.js";
