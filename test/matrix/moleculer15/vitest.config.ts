import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/**
 * Runs the Moleculer adapter's suites (test/adapters/moleculer) against moleculer 0.15
 * installed in this folder: `moleculer` is aliased here for the test process, and the child
 * brokers load register.mjs, which does the same for them. From the repository root:
 * `npx vitest run --config test/matrix/moleculer15/vitest.config.ts`.
 */
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "../../..");
const moleculer = createRequire(path.join(here, "package.json")).resolve("moleculer");

export default defineConfig({
  root: repoRoot,
  resolve: { alias: [{ find: /^moleculer$/, replacement: moleculer }] },
  test: {
    include: ["test/adapters/moleculer/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    env: { NEXUS_MOLECULER_PEERS: "1", NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${path.join(here, "register.mjs")}`.trim() },
  },
});
