/**
 * Plain structured progress lines on stderr (`[bench] key=value ...`), so stdout carries
 * only the results: the table and one JSON line for machines.
 */

type Field = string | number | boolean | undefined;

function format(value: Field): string {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(1);
  const text = String(value);
  return /[\s"=]/.test(text) ? JSON.stringify(text) : text;
}

/** Writes one line: a message and its fields. */
export function log(message: string, fields: Record<string, Field> = {}): void {
  const parts = Object.entries(fields)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${format(value)}`);
  process.stderr.write(`[bench] ${message}${parts.length > 0 ? " " + parts.join(" ") : ""}\n`);
}
