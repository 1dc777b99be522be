import { defineConfig } from "tsup";

// One entry per public subpath export; adapters join as they land.
export default defineConfig({
  entry: {
    index: "core/index.ts",
    events: "adapters/events/index.ts",
    nestjs: "adapters/nestjs/index.ts",
    moleculer: "adapters/moleculer/index.ts",
    bullmq: "adapters/bullmq/index.ts",
    cli: "cli/main.ts",
  },
  format: ["esm", "cjs"],
  dts: true,
  sourcemap: true,
  clean: true,
  target: "node20",
  // import.meta.url is shimmed in the CommonJS build, so the SQL folder is found from both.
  shims: true,
  // Shared chunks: every entry (the core, adapters, the CLI) uses one copy of the core, so
  // `instanceof` on its classes and errors holds across subpath imports.
  splitting: true,
});
