/**
 * Captured logs and errors, for tests that prove no secret reaches either
 * (test/core/secrets.test.ts, test/security/secrets.test.ts).
 */
import { Writable } from "node:stream";
import { pino, type Logger } from "pino";

/** A pino logger at trace level whose every line lands in `lines`. */
export function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: pino({ level: "trace" }, sink), lines };
}

/** Every text reachable from an error: its message, stack and fields, and its causes'. */
export function everythingIn(error: unknown): string {
  const parts: string[] = [];
  for (let current: unknown = error; current; current = (current as { cause?: unknown }).cause) {
    parts.push(String(current), (current as Error).stack ?? "", JSON.stringify(current));
  }
  return parts.join("\n");
}
