/**
 * The logger the CLI hands to the library. The library reports the progress of long
 * operations (migrations applied, replay batches sent) as pino records; the CLI turns
 * those into progress lines on stderr and shows other records only as warnings, unless
 * `--verbose` asks for every record as JSON. Nothing reaches stdout, which carries results.
 */
import { pino, type Logger } from "pino";

/** One pino record, as parsed from its JSON line. */
export interface LogRecord {
  level: number;
  msg?: string;
  [key: string]: unknown;
}

const WARN = 40;
/** The library's own redaction, for records shown with --verbose. */
const REDACT = ["connectionString", "listenConnectionString", "password", "*.connectionString", "*.listenConnectionString", "*.password"];

/** Receives the logger's lines: forwards them to stderr and to progress listeners. */
export class LogSink {
  readonly #listeners = new Set<(record: LogRecord) => void>();
  readonly #write: (text: string) => void;
  readonly #verbose: boolean;

  constructor(write: (text: string) => void, verbose: boolean) {
    this.#write = write;
    this.#verbose = verbose;
  }

  /** pino's destination: called once per record, synchronously. */
  write(line: string): void {
    let record: LogRecord;
    try {
      record = JSON.parse(line) as LogRecord;
    } catch {
      this.#write(line);
      return;
    }
    for (const listener of this.#listeners) listener(record);
    if (this.#verbose) this.#write(line.endsWith("\n") ? line : `${line}\n`);
    else if (record.level >= WARN) this.#write(`warning: ${describe(record)}\n`);
  }

  /** Calls `listener` with every record until the returned function is called. */
  listen(listener: (record: LogRecord) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }
}

/** A record's message with the error it carries, if any. */
function describe(record: LogRecord): string {
  const error = (record.err ?? record.error) as { message?: unknown } | undefined;
  const reason = typeof error?.message === "string" ? `: ${error.message}` : "";
  return `${record.msg ?? "(no message)"}${reason}`;
}

/** A pino logger writing to `sink`: info and up (progress needs info), debug with --verbose. */
export function createCliLogger(sink: LogSink, verbose: boolean): Logger {
  return pino({ name: "nexus-cli", level: verbose ? "debug" : "info", redact: { paths: REDACT, censor: "[redacted]" } }, sink);
}

/** A line of progress on stderr: rewritten in place on a terminal, one line per update elsewhere. */
export class Progress {
  readonly #write: (text: string) => void;
  readonly #tty: boolean;
  #open = false;

  constructor(write: (text: string) => void, tty: boolean) {
    this.#write = write;
    this.#tty = tty;
  }

  update(text: string): void {
    if (this.#tty) {
      this.#write(`\r\u001b[2K${text}`);
      this.#open = true;
    } else {
      this.#write(`${text}\n`);
    }
  }

  /** Ends the progress line (the final line stays on screen). */
  done(text?: string): void {
    if (text !== undefined) this.update(text);
    if (this.#open) this.#write("\n");
    this.#open = false;
  }
}
