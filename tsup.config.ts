import { defineConfig } from "tsup";

// One entry per public subpath export; adapters join as they land.
export default defineConfig({
  entry: { index: "core/index.ts" },
  format: ["esm", "cjs"],
  dts: true,
  sourcemap: true,
  clean: true,
  target: "node20",
  // import.meta.url is shimmed in the CommonJS build, so the SQL folder is found from both.
  shims: true,
  splitting: false,
});
