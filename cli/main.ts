#!/usr/bin/env node
/**
 * The `nexus` bin. Every command closes what it opened, so the process ends on its own;
 * the unref'd timer only ends a process that something unexpected keeps alive.
 */
import { run } from "./program.js";

// A reader that stops early (`nexus events tail | head -1`) is not an error of ours.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw error;
});

run(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
  setTimeout(() => process.exit(code), 2_000).unref();
});
