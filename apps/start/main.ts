/**
 * `npm start`: the database (CORE_DATABASE_URL, else Docker, else an embedded PostgreSQL
 * in `.nexus/pgdata`), the HTTP ingest server and a worker, in this one process. Prints
 * the server's address and a `curl` line whose event the worker logs. Runs until
 * SIGINT/SIGTERM, then stops in order: HTTP (draining requests), the worker (finishing
 * its handlers), the system, the database.
 *
 * Every variable of apps/server and apps/worker applies (PORT, HOST,
 * CORE_ADMIN_TOKEN, CORE_WORKER_EVENT, CORE_WORKER_SCHEDULE, ...). CORE_NODE_ID, when set,
 * goes to the server; the worker gets a random id.
 */
import { randomUUID } from "node:crypto";
import { runApp } from "../server/runtime.js";
import { serveFromEnv } from "../server/serve.js";
import { workerFromEnv } from "../worker/from-env.js";

runApp("start", async ({ system, logger, database }) => {
  const worker = await workerFromEnv(system, logger.child({ app: "worker" }), randomUUID());
  const server = await serveFromEnv(system, logger.child({ app: "server" }));
  process.stdout.write(banner(server.url, worker.pattern, DATABASE_NOTES[database.source ?? "external"]));
  return [
    ["http server", () => server.close()],
    ["worker", () => worker.stop()],
  ];
});

const DATABASE_NOTES = {
  external: "",
  docker: " (PostgreSQL in a Docker container built from docker/)",
  embedded: " (embedded PostgreSQL in .nexus/pgdata)",
} as const;

function banner(url: string, pattern: string, databaseNote: string): string {
  const type = exampleType(pattern);
  const body = JSON.stringify({ type, payload: { hello: "world" } });
  return [
    "",
    `Nexus Core is running: server ${url}, worker consuming ${pattern}${databaseNote}.`,
    "Emit an event that the worker logs and records in table acknowledgements:",
    "",
    `  curl -X POST ${url}/events -H 'content-type: application/json' -d '${body}'`,
    "",
    `OpenAPI: ${url}/openapi.json   metrics: ${url}/metrics   readiness: ${url}/readyz`,
    "Stop with Ctrl-C.",
    "",
    "",
  ].join("\n");
}

/** An event type the worker's pattern matches: `*` and `**` segments become `hello`. */
function exampleType(pattern: string): string {
  return pattern
    .split(".")
    .map((segment) => (segment === "*" || segment === "**" ? "hello" : segment))
    .join(".");
}
