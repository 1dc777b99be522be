/**
 * Structured logging with pino. The package logs through the caller's pino logger when
 * given one, and otherwise through its own, at `CORE_LOG_LEVEL` (default `info`;
 * `silent` under vitest). Secrets never reach a log line: see {@link redactConnectionString}.
 */
import { pino, type Logger } from "pino";

export type { Logger } from "pino";

/** Log keys whose values are always replaced, wherever they appear. */
const REDACTED_PATHS = [
  "connectionString",
  "listenConnectionString",
  "password",
  "*.connectionString",
  "*.listenConnectionString",
  "*.password",
];

/** Creates the package's default logger. */
export function createDefaultLogger(): Logger {
  const level = process.env.CORE_LOG_LEVEL ?? (process.env.VITEST ? "silent" : "info");
  return pino({ name: "nexus-core", level, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } });
}

/**
 * Returns the connection string with its password replaced by `***`, for messages and
 * logs. A string that is not a URL (a libpq keyword string) has any `password=` value
 * replaced instead.
 */
export function redactConnectionString(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    if (url.password) url.password = "***";
    url.searchParams.forEach((_value, key) => {
      if (key.toLowerCase() === "password") url.searchParams.set(key, "***");
    });
    return url.toString();
  } catch {
    return connectionString.replace(/(password\s*=\s*)('[^']*'|\S+)/gi, "$1***");
  }
}

/**
 * Removes `secret` from a message built by a lower layer (the driver may quote what it was
 * given), so that error messages can be shown and logged safely.
 */
export function scrubSecret(message: string, secret: string | undefined): string {
  if (!secret) return message;
  return message.split(secret).join("***");
}
