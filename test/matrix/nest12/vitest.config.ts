import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/**
 * Runs the NestJS adapter's suites (test/adapters/nestjs) against @nestjs/* 12 installed in
 * this folder (ESM-only): the Nest packages and their peers are aliased to this folder's
 * copies for the test process. From the repository root:
 * `npx vitest run --config test/matrix/nest12/vitest.config.ts`.
 */
const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "../../..");
const local = (name: string): string => path.join(here, "node_modules", name);
const aliased = ["@nestjs/common", "@nestjs/core", "@nestjs/microservices", "rxjs", "reflect-metadata", "ioredis"];

export default defineConfig({
  root: repoRoot,
  resolve: {
    alias: aliased.map((name) => ({ find: new RegExp(`^${name.replace("/", "\\/")}(/.*)?$`), replacement: `${local(name)}$1` })),
  },
  test: {
    include: ["test/adapters/nestjs/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    env: { NEXUS_NEST_MAJOR: "12" },
  },
});
