/**
 * `@nexus-core/core/events`: a `node:events` EventEmitter whose events travel between
 * processes through PostgreSQL. See README.md in this folder.
 * @packageDocumentation
 */
export {
  PgEventEmitter,
  type PgEventEmitterOptions,
  type EmitterMode,
  type PublishOptions,
  type EmitterPublisher,
  type EmitterDelivery,
} from "./emitter.js";
export { PublishError, NodeStyleTypeError } from "./errors.js";
export { DELIVERED_LOCALLY_HEADER, LOCAL_EVENTS } from "./mapping.js";
export type { EventMap, DefaultEventMap } from "./types.js";
