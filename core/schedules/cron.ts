/**
 * Cron expressions and task names, checked with croner before anything is written.
 *
 * A standard 5-field expression (minute hour day-of-month month day-of-week) runs in UTC
 * unless a time zone is given; a 6-field one adds a leading seconds field. Nicknames
 * (`@hourly`, `@daily`, ...) become their 5-field form. Whether pg_cron can run an
 * expression is decided here too: Debian's pg_cron 1.4 parses Vixie cron's grammar
 * (numbers, `*`, ranges, steps, lists, month and day names), minutes and up, in GMT.
 */
import { Cron } from "croner";
import { InvalidNameError, ValidationError, asError } from "../model/errors.js";

const TASK_NAME = /^[A-Za-z0-9_.:-]{1,200}$/;
const TASK_NAME_RULE = "1-200 characters of letters, digits, '_', '-', '.' and ':'";

const EXPRESSION_RULE =
  "use 5 fields 'minute hour day-of-month month day-of-week' (run in UTC, by pg_cron where it is installed) " +
  "or 6 with a leading seconds field (run by the package's scheduler), e.g. '*/5 * * * *' or '*/10 * * * * *'; " +
  "fields take numbers, '*', lists (1,15), ranges (1-5), steps (*/15) and names (JAN-DEC, SUN-SAT), " +
  "and croner's L, W, # and ?; nicknames @yearly, @monthly, @weekly, @daily and @hourly are accepted";

/** A field of Vixie cron: numbers (or 3-letter names where `names`), `*`, ranges, steps, lists. */
function vixieField(names: boolean): RegExp {
  const value = names ? "(?:\\d+|[A-Za-z]{3})" : "\\d+";
  const item = `(?:\\*|${value}(?:-${value})?)(?:/\\d+)?`;
  return new RegExp(`^${item}(?:,${item})*$`);
}
const VIXIE_FIELDS = [vixieField(false), vixieField(false), vixieField(false), vixieField(true), vixieField(true)];

/** A validated cron expression. */
export interface CronExpression {
  /** The expression with nicknames expanded and single spaces between its fields. */
  readonly expression: string;
  /** The IANA time zone its fields are read in (canonical, e.g. `UTC`, `Europe/Paris`). */
  readonly timezone: string;
  /** 5 (minutes) or 6 (seconds). */
  readonly fields: 5 | 6;
  /** True when pg_cron (1.4 and later) can run it: 5 Vixie cron fields, in UTC. */
  readonly pgCronCompatible: boolean;
  /** The croner schedule, for next fire times. */
  readonly cron: Cron;
}

/** Throws unless `value` is a valid task name. */
export function assertTaskName(value: unknown): asserts value is string {
  if (typeof value !== "string" || !TASK_NAME.test(value)) {
    const shown = typeof value === "string" ? JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value) : `a ${value === null ? "null" : typeof value}`;
    throw new InvalidNameError("name", `Invalid task name ${shown}: use ${TASK_NAME_RULE}.`);
  }
}

/** The canonical name of an IANA time zone (`utc` and `Etc/UTC` are `UTC`), or a ValidationError. */
export function canonicalTimezone(value: unknown): string {
  if (value === undefined) return "UTC";
  if (typeof value === "string" && value.length > 0 && value.length <= 100) {
    try {
      return new Intl.DateTimeFormat("en-US", { timeZone: value }).resolvedOptions().timeZone;
    } catch {
      // reported below
    }
  }
  throw new ValidationError(
    "timezone",
    `Invalid timezone ${JSON.stringify(value)}: use an IANA time zone name such as 'UTC' (the default) or 'Europe/Paris'.`,
  );
}

/**
 * Parses and checks a cron expression with croner. Throws a {@link ValidationError} that
 * names the expression, croner's reason and what is allowed, for anything croner refuses,
 * for 7 fields (years) and for an expression that never fires.
 */
export function parseCronExpression(value: unknown, timezone: unknown = "UTC"): CronExpression {
  const zone = canonicalTimezone(timezone);
  if (typeof value !== "string" || value.trim().length === 0 || value.length > 200) {
    const shown = typeof value === "string" ? JSON.stringify(value.slice(0, 60)) : `a ${value === null ? "null" : typeof value}`;
    throw new ValidationError("cronExpression", `Invalid cron expression ${shown}: ${EXPRESSION_RULE}.`);
  }
  let cron: Cron;
  try {
    cron = new Cron(value.trim(), { paused: true, mode: "5-or-6-parts", timezone: zone });
  } catch (error) {
    const reason = asError(error).message.replace(/^CronPattern: /, "");
    throw new ValidationError("cronExpression", `Invalid cron expression ${JSON.stringify(value)} (${reason}): ${EXPRESSION_RULE}.`);
  }
  const parts = (cron.getPattern() ?? value).trim().split(/\s+/);
  if (cron.nextRun() === null) {
    throw new ValidationError("cronExpression", `Cron expression ${JSON.stringify(value)} never fires (no such date from now on): ${EXPRESSION_RULE}.`);
  }
  const fields = parts.length === 6 ? 6 : 5;
  return {
    expression: parts.join(" "),
    timezone: zone,
    fields,
    pgCronCompatible: fields === 5 && zone === "UTC" && parts.every((part, index) => VIXIE_FIELDS[index]!.test(part)),
    cron,
  };
}
