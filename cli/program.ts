/**
 * The `nexus` command: global options, the subcommands (one module each in
 * `cli/commands/`), the interactive menu when no command is given at a terminal, and the
 * exit code of a run (0 ok, 1 failure, 2 usage error).
 */
import { Command, CommanderError, Option } from "commander";
import packageJson from "../package.json" with { type: "json" };
import { registerDlq } from "./commands/dlq.js";
import { registerEvents } from "./commands/events.js";
import { registerMigrate } from "./commands/migrate.js";
import { registerNodes } from "./commands/nodes.js";
import { registerQueues } from "./commands/queues.js";
import { registerRoles } from "./commands/roles.js";
import { registerSchedules } from "./commands/schedules.js";
import { registerSql } from "./commands/sql.js";
import { registerStatus } from "./commands/status.js";
import { CliContext } from "./context.js";
import { ExitCode, reportError } from "./errors.js";
import { Output } from "./output.js";

const FOOTER = `
Environment:
  CORE_DATABASE_URL  the database, when --database-url is not given
  CORE_NAMESPACE     the namespace, when --namespace is not given (default demo)
  NO_COLOR           no colours

With no command at a terminal, nexus opens an interactive menu (browse tables, run a
read-only query, view metrics).

Exit codes: 0 ok, 1 the operation failed, 2 usage error.`;

/** Builds the program; parse errors throw CommanderError (see {@link run}). */
export function buildProgram(): Command {
  const program = new Command("nexus")
    .description("Operate a Nexus Core database: nodes, queues, events, dead letters, schedules, migrations, SQL.")
    .version(packageJson.version, "-V, --version")
    .addOption(new Option("--database-url <url>", "PostgreSQL connection string (default: $CORE_DATABASE_URL)"))
    .addOption(new Option("--namespace <name>", "namespace to work in (default: $CORE_NAMESPACE, else demo)"))
    .option("--json", "print one JSON document (a stream prints one per line)")
    .option("--no-color", "no colours")
    .option("--verbose", "stack traces with errors, and the library's log records on stderr")
    .exitOverride()
    .showHelpAfterError("(run nexus --help for usage)")
    .addHelpText("after", FOOTER);

  registerStatus(program);
  registerNodes(program);
  registerQueues(program);
  registerEvents(program);
  registerDlq(program);
  registerSchedules(program);
  registerMigrate(program);
  registerRoles(program);
  registerSql(program);
  // Only the program itself takes any word, to report it as an unknown command (set after
  // the subcommands, which inherit the settings of the moment they are added).
  program.allowExcessArguments();
  // A program with an action of its own gets no implicit `help` command: ask for it.
  program.helpCommand(true);

  program.action(async (_options: unknown, command: Command) => {
    const [unknown] = command.args;
    if (unknown !== undefined) {
      command.error(`error: unknown command '${unknown}'`, { code: "commander.unknownCommand", exitCode: ExitCode.usage });
    }
    if (process.stdin.isTTY && process.stdout.isTTY) {
      // The menu and its prompt library load only here: scripts never need them.
      const { interactive } = await import("./interactive.js");
      await interactive(CliContext.of(command));
      return;
    }
    command.outputHelp({ error: true });
    process.stderr.write("\nerror: no command given (the interactive menu needs a terminal)\n");
    throw new CommanderError(ExitCode.usage, "nexus.noCommand", "no command given");
  });
  return program;
}

/** Runs `nexus` with `argv` (the arguments after the script) and returns the exit code. */
export async function run(argv: string[]): Promise<ExitCode> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return ExitCode.ok;
  } catch (error) {
    const verbose = argv.includes("--verbose");
    return reportError(error, new Output({ json: false, color: false }), verbose);
  }
}
