/**
 * `nexus dlq list|show|retry|purge`: a consumer group's dead letters, through
 * `system.deadLetters` (the same JSON shapes the library returns).
 */
import type { Command } from "commander";
import type { DeadLetter, DeadLetterFilter, DeadLetterSummary } from "../../core/index.js";
import { CliContext } from "../context.js";
import { CliFailure, UsageError } from "../errors.js";
import { ago, type Column } from "../output.js";
import { collect, groupName, isoTime, messageId, pattern, wholeNumber } from "../parsers.js";

export function registerDlq(program: Command): void {
  const dlq = program.command("dlq").description("a consumer group's dead letters: list, show, retry, purge");

  dlq
    .command("list")
    .description("one page of the group's dead letters, oldest first, without payloads")
    .argument("<group>", "consumer group", groupName)
    .option("--limit <n>", "dead letters per page (1-1000)", wholeNumber(1, 1000), 100)
    .option("--after <id>", "start after this dead-letter id (the previous page's next id)", messageId)
    .option("--type <pattern>", "only this event type or pattern", pattern)
    .action(async (group: string, options: { limit: number; after?: string; type?: string }, command: Command) => {
      const context = CliContext.of(command);
      const page = await context.withSystem((system) => system.deadLetters.list(group, options));
      if (context.json) return context.output.printJson(page);
      context.output.printTable(summaryColumns(), page.items, `(no dead letters in group ${group})`);
      if (page.nextAfter) context.output.note(`more: nexus dlq list ${group} --after ${page.nextAfter}`);
    });

  dlq
    .command("show")
    .description("one dead letter in full: payload, headers, error and stack")
    .argument("<group>", "consumer group", groupName)
    .argument("<id>", "dead-letter id", messageId)
    .action(async (group: string, id: string, _options: unknown, command: Command) => {
      const context = CliContext.of(command);
      const letter = await context.withSystem((system) => system.deadLetters.get(group, id));
      if (!letter) throw new CliFailure(`group ${group} has no dead letter ${id} in namespace ${context.namespace}.`);
      if (context.json) context.output.printJson(letter);
      else printDeadLetter(context, letter);
    });

  dlq
    .command("retry")
    .description("move dead letters back to the group's queue (handled again from attempt 1): the ids given, or those the filters select, or all")
    .argument("<group>", "consumer group", groupName)
    .argument("[ids...]", "dead-letter ids (default: every one the filters select)", collect(messageId))
    .option("--type <pattern>", "only this event type or pattern", pattern)
    .option("--before <time>", "only those dead-lettered before this ISO 8601 time", isoTime)
    .action(async (group: string, given: string[] | undefined, options: DeadLetterFilter, command: Command) => {
      const context = CliContext.of(command);
      const ids = given ?? [];
      if (ids.length > 0 && (options.type !== undefined || options.before !== undefined)) {
        throw new UsageError("give dead-letter ids or --type/--before filters, not both.");
      }
      const selection = ids.length > 0 ? ids : { ...options };
      const retried = await context.withSystem((system) => system.deadLetters.retry(group, selection));
      if (context.json) context.output.printJson({ group, retried });
      else context.output.line(`moved ${retried} dead letter${retried === 1 ? "" : "s"} back to group ${group}'s queue`);
    });

  dlq
    .command("purge")
    .description("delete every dead letter of the group")
    .argument("<group>", "consumer group", groupName)
    .option("-y, --yes", "do not ask for confirmation")
    .action(async (group: string, options: { yes?: boolean }, command: Command) => {
      const context = CliContext.of(command);
      if (!options.yes && !(await confirmed(context, `Delete every dead letter of group ${group} in namespace ${context.namespace}?`))) return;
      const purged = await context.withSystem((system) => system.deadLetters.purge(group));
      if (context.json) context.output.printJson({ group, purged });
      else context.output.line(`deleted ${purged} dead letter${purged === 1 ? "" : "s"} of group ${group}`);
    });
}

/** Asks on a terminal; elsewhere (a script) requires --yes. */
async function confirmed(context: CliContext, message: string): Promise<boolean> {
  if (!process.stdin.isTTY || !process.stdout.isTTY || context.json) {
    throw new UsageError("purge deletes dead letters for good: pass --yes to confirm when not at a terminal.");
  }
  // The prompt library loads only here: scripts never need it.
  const { confirm, isCancel } = await import("@clack/prompts");
  const answer = await confirm({ message, initialValue: false });
  if (isCancel(answer) || !answer) {
    context.output.note("nothing deleted");
    return false;
  }
  return true;
}

function summaryColumns(): Column<DeadLetterSummary>[] {
  return [
    { head: "id", value: (letter) => letter.id, align: "right" },
    { head: "type", value: (letter) => letter.type },
    { head: "attempts", value: (letter) => letter.attempts, align: "right" },
    { head: "error", value: (letter) => `${letter.error.name}: ${letter.error.message}` },
    { head: "dead-lettered", value: (letter) => `${letter.deadLetteredAt} (${ago(letter.deadLetteredAt)})` },
  ];
}

function printDeadLetter(context: CliContext, letter: DeadLetter): void {
  const { output } = context;
  output.printFields([
    ["id", letter.id],
    ["event id", letter.eventId],
    ["type", letter.type],
    ["emitted", letter.emittedAt],
    ["source node", letter.sourceNode],
    ["attempts", letter.attempts],
    ["first failed", letter.firstFailedAt],
    ["last failed", letter.lastFailedAt],
    ["dead-lettered", letter.deadLetteredAt],
    ["error", `${letter.error.name}: ${letter.error.message}${letter.error.code ? ` (${letter.error.code})` : ""}`],
  ]);
  output.line(output.style.bold("headers"));
  output.line(JSON.stringify(letter.headers, null, 2));
  output.line(output.style.bold("payload"));
  output.line(JSON.stringify(letter.payload, null, 2));
  if (letter.error.stack) {
    output.line(output.style.bold("stack"));
    output.line(output.style.dim(letter.error.stack));
  }
}
