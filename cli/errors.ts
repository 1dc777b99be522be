/**
 * Exit codes and how a failure is reported. 0: done; 1: the operation failed (a library
 * error, a database error, nothing found); 2: the command line was wrong (commander's
 * parse errors, or a check the CLI makes before doing anything).
 */
import { CommanderError } from "commander";
import { NexusError, asError } from "../core/index.js";
import type { Output } from "./output.js";

export const ExitCode = { ok: 0, failure: 1, usage: 2 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The command line asks for something the CLI cannot do as given (exit 2). */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** The operation ran and failed, with a message that says all (exit 1, never a stack). */
export class CliFailure extends Error {
  override readonly name = "CliFailure";
}

/**
 * Reports `error` on stderr and returns the exit code. Commander has already printed its
 * own message for parse errors; help and version requests are successes.
 */
export function reportError(error: unknown, output: Pick<Output, "note">, verbose: boolean): ExitCode {
  if (error instanceof CommanderError) {
    // Help asked for (--help, `nexus help`) and --version end with exit code 0; help shown
    // because a command was incomplete (`nexus dlq`) and every parse error, with 1.
    return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  }
  if (error instanceof UsageError) {
    output.note(`error: ${error.message}`);
    output.note("(run nexus --help for usage)");
    return ExitCode.usage;
  }
  const message = asError(error).message;
  output.note(`error: ${message}`);
  // Typed library errors and the CLI's own failures carry a full message; anything else
  // is unexpected, and --verbose shows where it came from.
  if (verbose && error instanceof Error && error.stack) {
    output.note(error.stack);
    if (error.cause instanceof Error && error.cause.stack) output.note(`caused by: ${error.cause.stack}`);
  } else if (!(error instanceof NexusError) && !(error instanceof CliFailure)) {
    output.note("(run with --verbose for details)");
  }
  return ExitCode.failure;
}
