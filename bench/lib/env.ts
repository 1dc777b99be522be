/**
 * Benchmark knobs from the environment: whole numbers with a default and bounds, so a
 * typo (`BENCH_TOTAL=2e4x`) stops the run with a message instead of measuring nonsense.
 */

/** Reads a whole-number knob: `name` from the environment, else `fallback`. */
export function intFromEnv(name: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw.replace(/_/g, ""));
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`${name}=${JSON.stringify(raw)} is not a whole number from ${min} to ${max}.`);
  }
  return value;
}

/** Reads a yes/no knob: `1`, `true`, `yes` are yes. */
export function flagFromEnv(name: string, fallback = false): boolean {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  return /^(1|true|yes|on)$/i.test(raw.trim());
}
