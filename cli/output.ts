/**
 * What the CLI prints: tables (cli-table3) and key/value blocks for people, one JSON
 * document for machines (`--json`), colours only on a terminal and never with
 * `--no-color` or `NO_COLOR`. Results go to stdout; progress, warnings and errors to stderr.
 */
import Table from "cli-table3";

/** Longest text shown in a table cell; `--json` has the whole value. */
const MAX_CELL = 100;

/** ANSI styles, or identity functions when colour is off. */
export interface Styles {
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
}

function styles(enabled: boolean): Styles {
  const wrap = (open: number, close: number) => (text: string) => (enabled ? `\u001b[${open}m${text}\u001b[${close}m` : text);
  return { bold: wrap(1, 22), dim: wrap(2, 22), red: wrap(31, 39), green: wrap(32, 39), yellow: wrap(33, 39) };
}

/** A column of a table: its heading and how to read a row's cell. */
export interface Column<T> {
  head: string;
  value: (row: T) => unknown;
  align?: "left" | "right";
}

/** The CLI's stdout and stderr. */
export class Output {
  readonly json: boolean;
  readonly color: boolean;
  readonly style: Styles;
  readonly #stdout: NodeJS.WritableStream;
  readonly #stderr: NodeJS.WritableStream;

  constructor(options: { json: boolean; color: boolean; stdout?: NodeJS.WritableStream; stderr?: NodeJS.WritableStream }) {
    this.json = options.json;
    this.color = options.color;
    this.style = styles(options.color);
    this.#stdout = options.stdout ?? process.stdout;
    this.#stderr = options.stderr ?? process.stderr;
  }

  /** Writes one line to stdout. */
  line(text = ""): void {
    this.#stdout.write(`${text}\n`);
  }

  /** Writes one line to stderr (progress, notes, warnings). */
  note(text: string): void {
    this.#stderr.write(`${text}\n`);
  }

  /** Writes raw text to stderr (progress lines rewrite themselves with it). */
  rawErr(text: string): void {
    this.#stderr.write(text);
  }

  /** True when stderr is a terminal, where a progress line can rewrite itself. */
  get stderrIsTty(): boolean {
    return (this.#stderr as { isTTY?: boolean }).isTTY === true;
  }

  /** Prints `value` as one JSON document (Dates as ISO 8601, bigints as strings). */
  printJson(value: unknown): void {
    this.line(JSON.stringify(value, (_key, item: unknown) => (typeof item === "bigint" ? item.toString() : item), 2));
  }

  /** Prints rows as a table, or `empty` (dimmed) when there are none. */
  printTable<T>(columns: Column<T>[], rows: readonly T[], empty = "(none)"): void {
    if (rows.length === 0) {
      this.line(this.style.dim(empty));
      return;
    }
    this.line(renderTable(columns, rows, this.color));
  }

  /** Prints `label  value` lines, labels padded to one width; a value's further lines are indented under it. */
  printFields(fields: [string, unknown][]): void {
    const width = Math.max(...fields.map(([label]) => label.length));
    for (const [label, value] of fields) {
      const text = typeof value === "string" ? value : formatValue(value);
      this.line(`${this.style.bold(label.padEnd(width))}  ${text.split("\n").join(`\n${" ".repeat(width + 2)}`)}`);
    }
  }
}

/**
 * Renders rows as a cli-table3 table (the interactive menu prints these too). With
 * `maxWidth`, the widest columns are narrowed (their cells cut with "…") until the table
 * fits that many characters.
 */
export function renderTable<T>(columns: Column<T>[], rows: readonly T[], color: boolean, maxWidth?: number): string {
  const cells = rows.map((row) => columns.map((column) => cell(column.value(row))));
  const table = new Table({
    head: columns.map((column) => column.head),
    colAligns: columns.map((column) => column.align ?? "left"),
    // No rule between rows: one line per row.
    chars: { mid: "", "left-mid": "", "mid-mid": "", "right-mid": "" },
    style: { head: color ? ["cyan"] : [], border: color ? ["grey"] : [] },
    ...(maxWidth ? { colWidths: fitWidths(columns.map((column, index) => Math.max(column.head.length, ...cells.map((row) => visibleLength(row[index]!)))), maxWidth) } : {}),
  });
  table.push(...cells);
  return table.toString();
}

/** Column widths (with padding) that fit `maxWidth` with the borders, narrowing the widest first. */
function fitWidths(contentWidths: number[], maxWidth: number): number[] {
  const widths = contentWidths.map((width) => width + 2);
  const budget = maxWidth - (widths.length + 1);
  const minimum = 8;
  for (let total = sum(widths); total > budget; total = sum(widths)) {
    const widest = Math.max(...widths);
    if (widest <= minimum) break;
    const index = widths.indexOf(widest);
    widths[index] = Math.max(minimum, widest - (total - budget));
  }
  return widths;
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

/** Length without ANSI colour codes. */
function visibleLength(text: string): number {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, "").length;
}

/** One value as text: JSON for objects, ISO 8601 for dates, `null` for SQL NULL, `\\x...` for bytes. */
export function formatValue(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "";
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value)) return `\\x${value.toString("hex")}`;
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** One value as a table cell: on one line, cut at {@link MAX_CELL} characters. */
export function cell(value: unknown): string {
  const text = formatValue(value).replace(/\r?\n/g, "\\n");
  return text.length > MAX_CELL ? `${text.slice(0, MAX_CELL - 1)}…` : text;
}

/** How long ago `iso` was, e.g. `4s ago`, `3m ago`, `2h ago`. */
export function ago(iso: string | Date | null | undefined, now = Date.now()): string {
  if (!iso) return "";
  const seconds = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (seconds < 120) return `${seconds}s ago`;
  if (seconds < 7_200) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 172_800) return `${Math.round(seconds / 3_600)}h ago`;
  return `${Math.round(seconds / 86_400)}d ago`;
}

/** Whether to colour: a terminal on stdout, and neither `--no-color` nor `NO_COLOR`. */
export function colorWanted(flag: boolean, env: NodeJS.ProcessEnv = process.env, stdout: { isTTY?: boolean } = process.stdout): boolean {
  if (!flag || (env.NO_COLOR !== undefined && env.NO_COLOR !== "")) return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return true;
  return stdout.isTTY === true;
}
