/** Percentiles, rates and the results table. */

/** The p-th percentile (0-100) of `values` by the nearest-rank method; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** p50/p95/p99/max of a sample, rounded to 0.01. */
export function summarise(values: readonly number[]): { p50: number; p95: number; p99: number; max: number; count: number } {
  const round = (value: number): number => Math.round(value * 100) / 100;
  return {
    p50: round(percentile(values, 50)),
    p95: round(percentile(values, 95)),
    p99: round(percentile(values, 99)),
    max: round(percentile(values, 100)),
    count: values.length,
  };
}

/** Items per second over `ms` milliseconds, rounded to a whole number. */
export function perSecond(items: number, ms: number): number {
  return ms > 0 ? Math.round((items * 1000) / ms) : 0;
}

/** 12345.6 -> "12,346". */
export function grouped(value: number): string {
  return Math.round(value).toLocaleString("en-US");
}

/** A plain-text table with a header row; numbers are right-aligned. */
export function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [header, ...rows].map((row) => row.map((cell) => String(cell)));
  const widths = header.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? "").length)));
  const numeric = header.map((_, column) => rows.every((row) => typeof row[column] === "number" || /^[\d.,x%-]+$/.test(String(row[column]))));
  const line = (row: readonly string[]): string =>
    row.map((cell, column) => (numeric[column] ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join("  ").trimEnd();
  return [line(cells[0]!), widths.map((width) => "-".repeat(width)).join("  "), ...cells.slice(1).map(line)].join("\n");
}
