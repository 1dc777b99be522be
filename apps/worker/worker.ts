/**
 * The example worker: consumes the events matching a pattern in one consumer group,
 * records an acknowledgement row for each in the handler's own transaction (so the row
 * and the message's acknowledgement commit together, exactly once), and logs it.
 * Optionally schedules a heartbeat task whose events it consumes too when the pattern
 * matches them.
 */
import type { CoreNode, CoreSystem, Logger } from "../../core/index.js";

/** Options of {@link startWorker}. */
export interface WorkerOptions {
  system: CoreSystem;
  /** Event type pattern to consume (default `demo.*`). */
  pattern?: string;
  /** Consumer group (default `worker`). */
  group?: string;
  /** Cron expression of the heartbeat task; none when unset. */
  schedule?: string;
  /** Event type the heartbeat task emits (default `demo.heartbeat`). */
  heartbeatType?: string;
  /** Handler transactions at once (default 1). */
  concurrency?: number;
  /** A stable node id (default CORE_NODE_ID, else random). */
  nodeId?: string;
  /** Where acknowledgements are logged (default: the system's logger). */
  logger?: Logger;
}

/** A running worker. */
export interface Worker {
  readonly node: CoreNode;
  readonly pattern: string;
  readonly group: string;
  /** Stops consuming after the running handlers finish (at most `graceMs`, default 10 s). */
  stop(options?: { graceMs?: number }): Promise<void>;
}

/** The worker's table; created at start when missing. */
export const ACKNOWLEDGEMENTS_TABLE = `create table if not exists acknowledgements (
  event_id uuid primary key,
  node_id uuid,
  msg_id bigint,
  type text,
  acknowledged_at timestamptz default now()
)`;

/** SQLSTATEs of two `create table if not exists` racing: both may think it is missing. */
const CREATE_RACE = new Set(["23505", "42P07"]);

export const HEARTBEAT_TASK = "worker-heartbeat";

/** Creates the acknowledgements table if missing, registers a node and starts consuming. */
export async function startWorker(options: WorkerOptions): Promise<Worker> {
  const { system } = options;
  const pattern = options.pattern ?? "demo.*";
  const group = options.group ?? "worker";
  const logger = options.logger ?? system.logger;
  await createAcknowledgementsTable(system);
  const node = await system.registerNode({ displayName: group, metadata: { role: "worker", pattern }, ...(options.nodeId ? { nodeId: options.nodeId } : {}) });
  await node.onEvent(
    pattern,
    async (event, { client, attempt }) => {
      await client.query(
        "insert into acknowledgements (event_id, node_id, msg_id, type) values ($1, $2, $3, $4) on conflict (event_id) do nothing",
        [event.id, node.nodeId, event.messageId, event.type],
      );
      logger.info({ eventId: event.id, type: event.type, messageId: event.messageId, attempt, group }, "event acknowledged");
    },
    { group, ...(options.concurrency ? { concurrency: options.concurrency } : {}) },
  );
  await node.start();
  if (options.schedule) {
    const task = await node.scheduleTask({
      name: HEARTBEAT_TASK,
      cronExpression: options.schedule,
      eventType: options.heartbeatType ?? "demo.heartbeat",
      payload: { from: group },
    });
    logger.info({ task: task.name, expression: task.expression, runner: task.runner, nextRunAt: task.nextRunAt }, "heartbeat task scheduled");
  }
  logger.info({ pattern, group, nodeId: node.nodeId }, "worker consuming");
  return { node, pattern, group, stop: (stopOptions) => node.stop(stopOptions) };
}

async function createAcknowledgementsTable(system: CoreSystem): Promise<void> {
  try {
    await system.pool.query(ACKNOWLEDGEMENTS_TABLE);
  } catch (error) {
    if (!CREATE_RACE.has((error as { code?: string }).code ?? "")) throw system.toError(error, "create the acknowledgements table");
  }
}
