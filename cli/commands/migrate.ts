/**
 * `nexus migrate`: applies the shipped migrations and function files (the library's
 * `migrate`, under its advisory lock, in one transaction) and prints the versions and
 * function files it applied. Each applied migration is reported on stderr as it goes.
 */
import type { Command } from "commander";
import { loadMigrations, migrate } from "../../core/index.js";
import { CliContext, readSchemaState } from "../context.js";

export function registerMigrate(program: Command): void {
  program
    .command("migrate")
    .description("apply the migrations this release ships; print the versions applied")
    .action(async (_options: unknown, command: Command) => {
      const context = CliContext.of(command);
      const migrations = await loadMigrations();
      const report = await context.withPool(async (pool) => {
        const before = await readSchemaState(pool);
        const pending = Math.max(0, migrations.length - before.applied);
        const progress = context.progress();
        if (pending > 0) progress.update(`applying ${pending} migration${pending === 1 ? "" : "s"} to ${context.displayUrl}...`);
        let done = 0;
        const stop = context.logSink.listen((record) => {
          if (record.msg !== "migration applied") return;
          done += 1;
          progress.update(`[${done}/${pending}] ${String(record.migration)}${record.skipped ? " (skipped: extension present)" : ""}`);
        });
        try {
          return await migrate(pool, { logger: context.logger, migrations });
        } finally {
          stop();
          progress.done();
        }
      });
      if (context.json) {
        // `functionFiles` appears only when some were applied, so the output of a run with nothing to do is unchanged.
        const { functionFiles, ...rest } = report;
        return context.output.printJson(functionFiles.length > 0 ? report : rest);
      }
      if (report.applied.length === 0 && report.functionFiles.length === 0) context.output.line(`schema already at version ${report.version}; nothing to apply`);
      else if (report.applied.length === 0) context.output.line(`schema at version ${report.version}`);
      else context.output.line(`applied version${report.applied.length === 1 ? "" : "s"} ${report.applied.join(", ")}; schema at version ${report.version}`);
      if (report.functionFiles.length > 0) context.output.line(`applied function files ${report.functionFiles.join(", ")}`);
    });
}
