/**
 * `npm start` from the repository with no CORE_DATABASE_URL: the embedded PostgreSQL in
 * `.nexus/pgdata`, the server and a worker in one process. It must serve `/readyz` 200
 * within 30 s, print a curl line whose event the worker logs, and stop cleanly on SIGTERM.
 * CORE_DOCKER=off keeps a machine with Docker on the embedded path this test is about.
 */
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { uniqueNamespace } from "../support/database.js";
import { sleep, waitUntil } from "../support/wait.js";

const READY_WITHIN_MS = 30_000;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

let child: ChildProcess | undefined;
let output = "";

afterAll(async () => {
  // Only if the test failed before stopping it: end the process group it leads.
  if (child?.pid && child.exitCode === null && child.signalCode === null) {
    process.kill(-child.pid, "SIGKILL");
    await sleep(200);
  }
});

/** Resolves when every process holding the child's stdout and stderr has exited. */
function allOutputClosed(process: ChildProcess): Promise<true> {
  return new Promise((resolve) => process.once("close", () => resolve(true)));
}

describe("npm start", () => {
  it("serves /readyz 200 within 30 s on the embedded server, prints a curl line the worker answers, stops on SIGTERM", { timeout: 120_000 }, async () => {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), CORE_NAMESPACE: uniqueNamespace("start"), CORE_DOCKER: "off", CORE_LOG_LEVEL: "info" };
    delete env.CORE_DATABASE_URL;
    delete env.CORE_NODE_ID;
    delete env.HOST;
    const started = Date.now();
    // Its own process group, so the test can stop npm, tsx, node and PostgreSQL together (as Ctrl-C does).
    child = spawn("npm", ["start"], { cwd: process.cwd(), env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));

    const base = `http://127.0.0.1:${port}`;
    const ready = await waitUntil(
      "GET /readyz 200",
      async () => {
        if (child!.exitCode !== null) throw new Error(`npm start exited with ${child!.exitCode}:\n${output}`);
        return fetch(`${base}/readyz`).then((response) => response.status, () => 0);
      },
      (status) => status === 200,
      READY_WITHIN_MS,
    ).catch((error: unknown) => {
      throw new Error(`${(error as Error).message}\noutput:\n${output}`);
    });
    expect(ready).toBe(200);
    expect(Date.now() - started).toBeLessThan(READY_WITHIN_MS);

    // The printed curl line, run as printed (through fetch), reaches the worker.
    const curl = await waitUntil("the curl line", () => /curl -X POST (\S+) -H 'content-type: application\/json' -d '([^']+)'/.exec(output), (match) => match !== null, 5_000);
    expect(curl![1]).toBe(`${base}/events`);
    const response = await fetch(curl![1]!, { method: "POST", headers: { "content-type": "application/json" }, body: curl![2] });
    expect(response.status).toBe(202);
    const { id } = (await response.json()) as { id: string };
    await waitUntil("the worker's log of the event", () => output, (text) => text.split("\n").some((line) => line.includes(id) && line.includes("event acknowledged")), 15_000);

    // As Ctrl-C does, the signal reaches npm, tsx, the app and PostgreSQL at once. npm
    // itself dies of it; the app must stop in order and say so before its output closes.
    process.kill(-child.pid!, "SIGTERM");
    const closed = await Promise.race([allOutputClosed(child), sleep(30_000).then(() => false)]);
    expect(closed, output.slice(-3_000)).toBe(true);
    const tail = output.slice(output.indexOf('"msg":"shutting down"'));
    // Missing means the app died mid-shutdown (e.g. SIGKILLed by the tsx CLI's signal relay,
    // which apps/server/runtime.ts avoids by running the app outside that CLI's child).
    expect(tail, "the app's last line after its final shutdown step").toContain('"msg":"stopped"');
    expect(tail).not.toContain("shutdown step");
  });
});
