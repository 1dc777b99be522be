/**
 * `core/internal.ts`: what the package's adapters (and apps) use of the core beyond its
 * public entry point `core/index.ts`. Not a public subpath export: these may change in
 * any release. Adapters import only `core/index.ts` and this file.
 */
export { openSystem, isCoreSystem, type AdapterSystem } from "./system.js";
export { assertBackoff } from "./model/backoff.js";
export type { Queryable } from "./db/queryable.js";
