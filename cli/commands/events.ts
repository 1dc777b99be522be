/**
 * `nexus events tail [pattern]`: prints the namespace's events as they are logged, until
 * Ctrl-C (or `--limit` events). `nexus events replay`: re-enqueues a time window of the
 * event log to one group (`system.replay`), with progress on stderr.
 */
import type { Command } from "commander";
import { assertSchemaCurrent, CliContext, readSchemaState } from "../context.js";
import { collect, groupName, isoTime, pattern, wholeNumber } from "../parsers.js";
import { EventTail, type TailedEvent } from "../tail.js";

interface ReplayCommandOptions {
  group: string;
  from: string;
  to: string;
  type?: string[];
  dryRun?: boolean;
  batchSize?: number;
}

export function registerEvents(program: Command): void {
  const events = program.command("events").description("the event log: follow it live, or replay a window of it to a group");

  events
    .command("tail")
    .description("print events as they are logged (LISTEN wakes it); with --json one JSON document per line. Stops on Ctrl-C")
    .argument("[pattern]", "only event types matching this pattern (* one segment, ** one or more)", pattern)
    .option("--limit <n>", "exit after this many events", wholeNumber(1, Number.MAX_SAFE_INTEGER))
    .action(async (typePattern: string | undefined, options: { limit?: number }, command: Command) => {
      await tail(CliContext.of(command), typePattern ?? null, options.limit);
    });

  events
    .command("replay")
    .description("re-enqueue the logged events of [from, to) to one group's queue (each copy marked with the nexus-replay header)")
    .requiredOption("--group <group>", "the consumer group that receives the copies", groupName)
    .requiredOption("--from <time>", "start of the window, inclusive (ISO 8601)", isoTime)
    .requiredOption("--to <time>", "end of the window, exclusive (ISO 8601)", isoTime)
    .option("--type <pattern>", "only this event type or pattern (repeatable)", collect(pattern))
    .option("--dry-run", "only count the events that would be replayed")
    .option("--batch-size <n>", "events per batch (1-5000)", wholeNumber(1, 5_000))
    .action(async (options: ReplayCommandOptions, command: Command) => {
      await replay(CliContext.of(command), options);
    });
}

async function tail(context: CliContext, typePattern: string | null, limit: number | undefined): Promise<void> {
  const { output } = context;
  await context.withPool(async (pool) => {
    assertSchemaCurrent(await readSchemaState(pool), context.displayUrl);
    const follower = new EventTail({ pool, connectionString: context.databaseUrl, namespace: context.namespace, pattern: typePattern, logger: context.logger });
    const stop = (): void => follower.stop();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    try {
      await follower.open();
      output.note(`following ${typePattern ?? "every"} event${typePattern ? "s" : ""} in namespace ${context.namespace} (Ctrl-C to stop)`);
      let printed = 0;
      await follower.run((event) => {
        printEvent(context, event);
        printed += 1;
        return limit === undefined || printed < limit;
      });
    } finally {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      await follower.close();
    }
  });
}

function printEvent(context: CliContext, event: TailedEvent): void {
  const { output } = context;
  if (context.json) {
    output.line(JSON.stringify(event));
    return;
  }
  output.line(`${output.style.dim(event.emittedAt)}  ${output.style.bold(event.type)}  ${event.id}  ${JSON.stringify(event.payload)}`);
}

async function replay(context: CliContext, options: ReplayCommandOptions): Promise<void> {
  const progress = context.progress();
  const stop = context.logSink.listen((record) => {
    if (record.msg === "replay started") progress.update(`replaying ${String(record.total)} events to group ${options.group}...`);
    if (record.msg === "replay batch sent") progress.update(`replayed ${String(record.count)} of ${String(record.total)} events`);
  });
  const result = await context
    .withSystem((system) =>
      system.replay({
        group: options.group,
        from: options.from,
        to: options.to,
        ...(options.type ? { types: options.type } : {}),
        dryRun: options.dryRun === true,
        ...(options.batchSize ? { batchSize: options.batchSize } : {}),
      }),
    )
    .finally(() => {
      stop();
      progress.done();
    });
  const dryRun = options.dryRun === true;
  if (context.json) return context.output.printJson({ ...result, group: options.group, dryRun });
  if (dryRun) context.output.line(`would replay ${result.count} event${result.count === 1 ? "" : "s"} to group ${options.group} (dry run: nothing sent)`);
  else context.output.line(`replayed ${result.count} event${result.count === 1 ? "" : "s"} to group ${options.group} (replay ${result.replayId})`);
}
