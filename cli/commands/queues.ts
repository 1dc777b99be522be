/**
 * `nexus queues`: per consumer group, the queue's length, visible length, oldest
 * message age and dead letters (from `system.metrics()`; the per-process counters of the
 * snapshot say nothing about other processes and are left out).
 */
import type { Command } from "commander";
import type { GroupMetrics } from "../../core/index.js";
import { CliContext } from "../context.js";
import type { Column } from "../output.js";

/** A group's queue figures, as `queues --json` prints them. */
export type QueueFigures = Pick<GroupMetrics, "group" | "kind" | "queue" | "queueLength" | "visibleLength" | "oldestMessageAgeSeconds" | "deadLetterLength">;

export function registerQueues(program: Command): void {
  program
    .command("queues")
    .description("per consumer group: queue length, visible messages, oldest message age, dead letters")
    .action(async (_options: unknown, command: Command) => {
      const context = CliContext.of(command);
      const { groups } = await context.withSystem((system) => system.metrics());
      const figures = groups.map(queueFigures);
      if (context.json) context.output.printJson(figures);
      else context.output.printTable(queueColumns(context), figures, `(no consumer groups in namespace ${context.namespace})`);
    });
}

export function queueFigures(group: GroupMetrics): QueueFigures {
  const { queueLength, visibleLength, oldestMessageAgeSeconds, deadLetterLength } = group;
  return { group: group.group, kind: group.kind, queue: group.queue, queueLength, visibleLength, oldestMessageAgeSeconds, deadLetterLength };
}

/** The columns of the queues table (the interactive menu shows it too). */
export function queueColumns(context: Pick<CliContext, "output">): Column<QueueFigures>[] {
  const { style } = context.output;
  return [
    { head: "group", value: (row) => row.group },
    { head: "kind", value: (row) => row.kind },
    { head: "length", value: (row) => row.queueLength ?? "", align: "right" },
    { head: "visible", value: (row) => row.visibleLength ?? "", align: "right" },
    { head: "oldest", value: (row) => (row.oldestMessageAgeSeconds === null ? "" : `${Math.round(row.oldestMessageAgeSeconds)}s`), align: "right" },
    { head: "dead letters", value: (row) => (row.deadLetterLength ? style.yellow(String(row.deadLetterLength)) : (row.deadLetterLength ?? "")), align: "right" },
  ];
}
