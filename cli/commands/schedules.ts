/**
 * `nexus schedules list|add|pause|resume|remove`: the namespace's scheduled tasks,
 * through a short-lived node named `nexus-cli` (registered for the call, then stopped).
 */
import type { Command } from "commander";
import type { ScheduledTask, ScheduledTaskStatus } from "../../core/index.js";
import { CliContext } from "../context.js";
import { CliFailure } from "../errors.js";
import type { Column } from "../output.js";
import { eventType, headers, json, taskName } from "../parsers.js";

interface AddOptions {
  cron: string;
  event: string;
  payload?: unknown;
  headers?: Record<string, string>;
  timezone?: string;
}

export function registerSchedules(program: Command): void {
  const schedules = program.command("schedules").description("the namespace's scheduled tasks: list, add, pause, resume, remove");

  schedules
    .command("list")
    .description("every task with its next run and newest fire")
    .action(async (_options: unknown, command: Command) => {
      const context = CliContext.of(command);
      const tasks = await context.withNode((node) => node.listTasks());
      if (context.json) context.output.printJson(tasks);
      else context.output.printTable(taskColumns(), tasks, `(no scheduled tasks in namespace ${context.namespace})`);
    });

  schedules
    .command("add")
    .description("create a task, or replace the one of that name (keeping its id and paused state)")
    .argument("<name>", "task name, unique in the namespace", taskName)
    .requiredOption("--cron <expression>", "cron expression: 5 fields (UTC), 6 with leading seconds, or a nickname such as @hourly")
    .requiredOption("--event <type>", "type of the event emitted at each fire", eventType)
    .option("--payload <json>", "the event's JSON payload (default {})", json)
    .option("--headers <json>", "headers added to the event, a JSON object of strings", headers)
    .option("--timezone <zone>", "IANA time zone the expression is read in (default UTC)")
    .action(async (name: string, options: AddOptions, command: Command) => {
      const context = CliContext.of(command);
      const task = await context.withNode((node) =>
        node.scheduleTask({
          name,
          cronExpression: options.cron,
          eventType: options.event,
          ...(options.payload !== undefined ? { payload: options.payload } : {}),
          ...(options.headers ? { headers: options.headers } : {}),
          ...(options.timezone ? { timezone: options.timezone } : {}),
        }),
      );
      if (context.json) return context.output.printJson(task);
      context.output.line(`scheduled ${task.name}: ${task.expression} (${task.timezone}) emits ${task.eventType}; ${describeRunner(task)}`);
      context.output.line(`next run: ${task.paused ? "paused" : (task.nextRunAt?.toISOString() ?? "never")}`);
      if (task.runner === "scheduler") {
        context.output.note("note: without pg_cron for this task, it fires only while a started node of the namespace runs the fallback scheduler.");
      }
    });

  const change = (verb: "pause" | "resume" | "remove", description: string, done: string): void => {
    schedules
      .command(verb)
      .description(description)
      .argument("<name>", "task name", taskName)
      .action(async (name: string, _options: unknown, command: Command) => {
        const context = CliContext.of(command);
        const changed = await context.withNode((node) =>
          verb === "pause" ? node.pauseTask(name) : verb === "resume" ? node.resumeTask(name) : node.unscheduleTask(name),
        );
        if (!changed) throw new CliFailure(`namespace ${context.namespace} has no scheduled task named ${name}.`);
        if (context.json) context.output.printJson({ name, [verb === "remove" ? "removed" : verb === "pause" ? "paused" : "resumed"]: true });
        else context.output.line(`${done} ${name}`);
      });
  };
  change("pause", "pause a task (its pg_cron job too)", "paused");
  change("resume", "resume a paused task from now on (times missed while paused are not caught up)", "resumed");
  change("remove", "remove a task, its pg_cron job and its fire records", "removed");
}

function describeRunner(task: ScheduledTask): string {
  return task.runner === "pg_cron" ? `run by pg_cron (job ${task.cronJobId})` : "run by the fallback scheduler";
}

function taskColumns(): Column<ScheduledTaskStatus>[] {
  return [
    { head: "name", value: (task) => task.name },
    { head: "expression", value: (task) => (task.timezone === "UTC" ? task.expression : `${task.expression} (${task.timezone})`) },
    { head: "event", value: (task) => task.eventType },
    { head: "runner", value: (task) => task.runner },
    { head: "state", value: (task) => (task.paused ? "paused" : "active") },
    { head: "next run", value: (task) => task.nextRunAt },
    { head: "last fire", value: (task) => (task.lastFire ? `${task.lastFire.outcome} ${task.lastFire.scheduledFor.toISOString()}` : "") },
  ];
}
