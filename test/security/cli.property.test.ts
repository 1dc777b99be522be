/**
 * Hostile input at the CLI's arguments (issue 11, part 4), parsed in-process: the real
 * `nexus` program (buildProgram) with every command's action replaced by a recorder, so
 * that 1,000 generated command lines run in well under a second and touch no database.
 * Each command line is either parsed, with each positional argument arriving as given
 * (or, for numeric and JSON arguments, as the number or JSON it spells), or refused with
 * commander's typed CommanderError (exit 2 from `nexus`), never another error.
 */
import { CommanderError, type Command } from "commander";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildProgram } from "../../cli/program.js";
import { canonicalJson, hostileString, PROPERTY_RUNS, validPattern, validServiceName, validType } from "./arbitraries.js";

interface Recorded {
  path: string[];
  args: unknown[];
}

/** The program with recording actions, silent output, and its leaf commands by path. */
/** An option of a command: its flag, and whether a value follows it. */
interface Flag {
  flag: string;
  takesValue: boolean;
}

const flagsOf = (command: Command): Flag[] =>
  command.options.map((option) => ({ flag: option.long ?? option.short ?? "", takesValue: option.required || option.optional }));

function recordingProgram(): { program: Command; calls: Recorded[]; leaves: { path: string[]; arity: number; options: Flag[] }[] } {
  const program = buildProgram();
  const calls: Recorded[] = [];
  const leaves: { path: string[]; arity: number; options: Flag[] }[] = [];
  const silent = { writeOut: () => {}, writeErr: () => {}, outputError: () => {} };
  program.configureOutput(silent);
  const visit = (command: Command, path: string[]): void => {
    command.configureOutput(silent);
    command.exitOverride();
    if (command.commands.length === 0) {
      leaves.push({ path, arity: command.registeredArguments.length, options: [...flagsOf(command), ...flagsOf(program), { flag: "--bogus", takesValue: true }] });
      command.action((...args: unknown[]) => void calls.push({ path, args: args.slice(0, command.registeredArguments.length) }));
    }
    for (const sub of command.commands) visit(sub, [...path, sub.name()]);
  };
  for (const sub of program.commands) visit(sub, [sub.name()]);
  return { program, calls, leaves };
}

/** What a positional argument should arrive as: the same string, or the number or JSON it spells. */
function arrivedAsGiven(given: string, received: unknown): boolean {
  if (typeof received === "string") return received === given;
  if (typeof received === "number") return received === Number(given);
  try {
    return canonicalJson(received) === canonicalJson(JSON.parse(given));
  } catch {
    return false;
  }
}

describe("CLI arguments under hostile input", () => {
  it(`${PROPERTY_RUNS} generated command lines parse with their arguments intact or fail with a CommanderError`, async () => {
    const { leaves } = recordingProgram();
    expect(leaves.length).toBeGreaterThan(10);
    const word = fc.oneof(hostileString, validServiceName, validType, validPattern, fc.integer().map(String), fc.jsonValue().map((value) => JSON.stringify(value)));
    const commandLine = fc.constantFrom(...leaves).chain((leaf) =>
      fc.record({
        leaf: fc.constant(leaf),
        args: fc.array(word, { minLength: Math.max(0, leaf.arity - 1), maxLength: leaf.arity + 1 }),
        options: fc.array(fc.tuple(fc.constantFrom(...leaf.options), word), { maxLength: 2 }),
      }),
    );
    let parsed = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(commandLine, async ({ leaf, args, options }) => {
        // A fresh program per line: commander keeps option values between parses.
        const { program, calls } = recordingProgram();
        const argv = [...leaf.path, ...args, ...options.flatMap(([option, value]) => (option.takesValue ? [option.flag, value] : [option.flag]))];
        try {
          await program.parseAsync(argv, { from: "user" });
        } catch (error) {
          expect(error, argv.join(" ")).toBeInstanceOf(CommanderError);
          refused += 1;
          return;
        }
        parsed += 1;
        expect(calls, argv.join(" ")).toHaveLength(1);
        const call = calls[0]!;
        expect(call.path).toEqual(leaf.path);
        call.args.forEach((received, index) => {
          if (Array.isArray(received) && received.every((item) => typeof item === "string")) {
            // A variadic argument: the words from its position on, as given.
            const given = args.slice(index, index + received.length);
            if (given.every((item) => !item.startsWith("-"))) expect(received, `${argv.join(" ")}: argument ${index}...`).toEqual(given);
          } else if (received !== undefined && args[index] !== undefined && !args[index]!.startsWith("-")) {
            expect(arrivedAsGiven(args[index]!, received), `${argv.join(" ")}: argument ${index}`).toBe(true);
          }
        });
      }),
      { numRuns: PROPERTY_RUNS },
    );
    expect(parsed).toBeGreaterThan(PROPERTY_RUNS / 20);
    expect(refused).toBeGreaterThan(PROPERTY_RUNS / 20);
  });
});
