/**
 * `@nexus-core/core`: PostgreSQL as a message broker. Start with {@link CoreSystem.connect}.
 * @packageDocumentation
 */
export { CoreSystem, CONNECT_OPTION_KEYS, type ConnectOptions, type RegisterNodeOptions, type BroadcastHandler, type SystemStatus, type CoreSystemEvents } from "./system.js";
export { CoreNode, type SendToOptions } from "./node.js";
export { assertDelivery, type Delivery } from "./requests/delivery.js";
export type { NodeTimings } from "./membership/registry.js";
export type { Schedules } from "./schedules/tasks.js";
export type { EventLog } from "./event-log/event-log.js";
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
  ResponderGoneError,
  RemoteError,
  HandlerTimeoutError,
  CancelledError,
  UnknownGroupError,
  PermissionError,
  NoHandlerError,
  InvalidStateError,
  NonError,
  asError,
  ErrorCode,
  type NexusErrorOptions,
  type SerializedError,
} from "./model/errors.js";
export {
  assertNamespace,
  assertGroup,
  assertEventType,
  isEventType,
  assertPattern,
  groupQueueName,
  requestQueueName,
  deadLetterQueueName,
  isUuid,
} from "./model/names.js";
export { defaultNamespaceRoleName, type NamespaceRole, type NamespaceRoleOptions } from "./roles/roles.js";
export { migrate, loadMigrations, defaultMigrationsDir, type Migration, type MigrationReport } from "./db/migrations.js";
export { redactConnectionString, type Logger } from "./model/logger.js";
export { SqlState, type PoolOptions } from "./db/database.js";
export type { CoreEvent, HandlerContext, EventHandler, EmitOptions, BatchEvent, SubscribeOptions } from "./model/events.js";
export type { HandlerClient } from "./delivery/handler-client.js";
export type { BackoffOptions } from "./model/backoff.js";
export { DEFAULT_BACKOFF, backoffDelay } from "./model/backoff.js";
export { DEFAULT_MAX_PAYLOAD_BYTES, type EventHeaders } from "./model/payload.js";
export type { CoreRequest, RequestHandler } from "./requests/dispatch.js";
export type { RequestOptions } from "./requests/requester.js";
export { SUBSCRIBE_OPTION_KEYS, RESPOND_OPTION_KEYS, type RespondOptions } from "./delivery/subscriptions.js";
export { assertKnownKeys, assertWholeNumber, closestKey, optionKeys, unknownKeyMessage, unknownKeyOf, type Unit, type WholeNumberRange } from "./model/options.js";
export { DEFAULT_EVENT_LOG_SETTINGS, type EventLogOptions, type EventLogSettings, type EventLogMaintenanceReport } from "./event-log/event-log.js";
export { REPLAY_HEADER, type ReplayOptions, type ReplayResult, type ReplayTime } from "./event-log/replay.js";
export type { ScheduleTaskOptions, ScheduledTask, ScheduledTaskStatus, TaskFire } from "./schedules/tasks.js";
export type { SchedulerOptions } from "./schedules/scheduler.js";
export { assertTaskName, parseCronExpression, type CronExpression } from "./schedules/cron.js";
export type {
  DeadLetters,
  DeadLetter,
  DeadLetterSummary,
  DeadLetterError,
  DeadLetterPage,
  DeadLetterListOptions,
  DeadLetterFilter,
} from "./dead-letters/dead-letters.js";
export type {
  MetricsOptions,
  MetricsSnapshot,
  GroupMetrics,
  NodeMetrics,
  DurationHistogram,
  TopQueries,
  TopQuery,
} from "./metrics/metrics.js";
