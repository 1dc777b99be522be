/**
 * `nexus nodes`: the namespace's nodes (alive ones, and those stopped or dead within the
 * last hour) from the library's metrics snapshot.
 */
import type { Command } from "commander";
import type { NodeMetrics } from "../../core/index.js";
import { CliContext } from "../context.js";
import { ago, type Column } from "../output.js";

export function registerNodes(program: Command): void {
  program
    .command("nodes")
    .description("the namespace's nodes: id, name, status, last heartbeat (stopped and dead ones for an hour)")
    .action(async (_options: unknown, command: Command) => {
      const context = CliContext.of(command);
      const { nodes } = await context.withSystem((system) => system.metrics());
      if (context.json) context.output.printJson(nodes);
      else context.output.printTable(nodeColumns(context), nodes, `(no nodes in namespace ${context.namespace})`);
    });
}

/** The columns of the nodes table (the interactive menu shows it too). */
export function nodeColumns(context: Pick<CliContext, "output">): Column<NodeMetrics>[] {
  const { style } = context.output;
  return [
    { head: "id", value: (node) => node.nodeId },
    { head: "name", value: (node) => node.displayName },
    { head: "status", value: (node) => (node.alive ? style.green("alive") : node.status === "alive" ? style.red("silent") : node.status) },
    { head: "last heartbeat", value: (node) => `${node.lastHeartbeatAt} (${ago(node.lastHeartbeatAt)})` },
  ];
}
