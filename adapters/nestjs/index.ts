/**
 * `@nexus-core/core/nestjs`: a NestJS transport strategy (`PgServer`) and client proxy
 * (`PgClient`) on the core. See README.md in this folder.
 * @packageDocumentation
 */
export { PgServer, type PgServerOptions, type PgServerEvents } from "./server.js";
export { PgClient, type PgClientOptions, type PgClientEvents, NO_MESSAGE_HANDLER, DEFAULT_SEND_TIMEOUT_MS } from "./client.js";
export { PgContext, type PgContextArgs } from "./context.js";
export { PgRecord, PgRecordBuilder, type PgRecordOptions } from "./record-builder.js";
export { NestErrorCode, NestEventHandlerError, NestRpcError, PgNestOptionsError } from "./errors.js";
export { coreTypeOf, NEST_PACKET_HEADER } from "./mapping.js";
export type { PgConnectionOptions } from "./connection.js";
export type { PgStatus } from "./status.js";
