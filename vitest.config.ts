import { defineConfig } from "vitest/config";

/**
 * `npm test` runs the default suite (under 10 minutes). Long suites run as their own CI
 * steps: `npm run test:slow` (real pg_cron fires, minute-long waits) and, later,
 * `npm run test:chaos` (server restarts; run serially).
 */
const suite = process.env.NEXUS_TEST_SUITE ?? "default";
const suites: Record<string, { include: string[]; exclude: string[] }> = {
  default: { include: ["test/**/*.test.ts"], exclude: ["test/slow/**", "test/chaos/**"] },
  slow: { include: ["test/slow/**/*.test.ts"], exclude: [] },
  chaos: { include: ["test/chaos/**/*.test.ts"], exclude: [] },
};
const selected = suites[suite];
if (!selected) throw new Error(`Unknown NEXUS_TEST_SUITE ${suite}: use one of ${Object.keys(suites).join(", ")}`);

export default defineConfig({
  test: {
    include: selected.include,
    exclude: [...selected.exclude, "node_modules/**"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Every test file works in its own namespace or database, so files run in parallel,
    // except the chaos suite, which restarts the database.
    fileParallelism: suite !== "chaos",
  },
});
