/**
 * `@nexus-core/core`: PostgreSQL as a message broker. Start with {@link CoreSystem.connect}.
 * @packageDocumentation
 */
export { CoreSystem, type ConnectOptions, type RegisterNodeOptions, type BroadcastHandler } from "./system.js";
export { CoreNode, type NodeTimings } from "./node.js";
export {
  NexusError,
  ValidationError,
  InvalidNameError,
  MigrationError,
  ConnectionError,
  DatabaseError,
  ClosedError,
  RequestTimeoutError,
  NoResponderError,
  RemoteError,
  HandlerTimeoutError,
  CancelledError,
  UnknownGroupError,
  PermissionError,
  ErrorCode,
  type NexusErrorOptions,
  type SerializedError,
} from "./errors.js";
export {
  assertNamespace,
  assertGroup,
  assertEventType,
  assertPattern,
  groupQueueName,
  requestQueueName,
  deadLetterQueueName,
  isUuid,
} from "./names.js";
export { defaultNamespaceRoleName, type NamespaceRole, type NamespaceRoleOptions } from "./roles.js";
export { migrate, loadMigrations, defaultMigrationsDir, type Migration, type MigrationReport } from "./migrations.js";
export { redactConnectionString, type Logger } from "./logger.js";
export { SqlState, type PoolOptions } from "./database.js";
export type { CoreEvent, HandlerContext, EventHandler, EmitOptions, BatchEvent, SubscribeOptions } from "./events.js";
export type { HandlerClient } from "./handler-client.js";
export type { BackoffOptions } from "./backoff.js";
export { DEFAULT_BACKOFF, backoffDelay } from "./backoff.js";
export { DEFAULT_MAX_PAYLOAD_BYTES, type EventHeaders } from "./payload.js";
export type { CoreRequest, RequestHandler } from "./dispatch.js";
export type { RequestOptions } from "./requester.js";
export type { RespondOptions } from "./subscriptions.js";
export { DEFAULT_EVENT_LOG_SETTINGS, type EventLogOptions, type EventLogSettings, type EventLogMaintenanceReport } from "./event-log.js";
export { REPLAY_HEADER, type ReplayOptions, type ReplayResult, type ReplayTime } from "./replay.js";
export type { ScheduleTaskOptions, ScheduledTask, ScheduledTaskStatus, TaskFire, SchedulerOptions } from "./scheduler.js";
export { assertTaskName, parseCronExpression, type CronExpression } from "./cron.js";
export type {
  DeadLetters,
  DeadLetter,
  DeadLetterSummary,
  DeadLetterError,
  DeadLetterPage,
  DeadLetterListOptions,
  DeadLetterFilter,
} from "./dead-letters.js";
export type {
  MetricsOptions,
  MetricsSnapshot,
  GroupMetrics,
  NodeMetrics,
  DurationHistogram,
  TopQueries,
  TopQuery,
} from "./metrics.js";
