/**
 * The interactive menu, driven through a real terminal: tmux runs `nexus` with no command
 * in a detached 120x40 session; the test presses keys and reads the screen.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoreSystem, type CoreNode } from "../../core/index.js";
import { testDatabaseUrl, uniqueNamespace } from "../support/database.js";
import { waitUntil } from "../support/wait.js";
import { REPO_ROOT } from "../support/cli.js";

const tmuxVersion = spawnSync("tmux", ["-V"], { encoding: "utf8" });
const tmuxMissing = tmuxVersion.error !== undefined || tmuxVersion.status !== 0;
if (tmuxMissing) console.warn("skipping the interactive menu test: tmux is not installed (apt-get install tmux)");

/** A tmux server of this test's own (its socket removed afterwards), so no other session is touched. */
const socket = path.join(os.tmpdir(), `nexus-cli-test-${randomBytes(4).toString("hex")}.tmux`);
const SESSION = "menu";

function tmux(...args: string[]): string {
  const result = spawnSync("tmux", ["-S", socket, ...args], { encoding: "utf8", cwd: REPO_ROOT });
  if (result.status !== 0) throw new Error(`tmux ${args.join(" ")} failed: ${result.stderr}`);
  return result.stdout;
}

function screen(): string {
  return tmux("capture-pane", "-p", "-t", SESSION);
}

async function waitForScreen(what: string, accept: (text: string) => boolean): Promise<string> {
  return waitUntil(what, screen, accept, 15_000).catch((error: Error) => {
    throw new Error(`${error.message}\nscreen:\n${screen()}`);
  });
}

/** Single-quotes a word for the shell tmux runs the command with. */
function quote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

const namespace = uniqueNamespace("cli-menu");
let system: CoreSystem;
let worker: CoreNode;

describe.skipIf(tmuxMissing)("the interactive menu (through tmux)", () => {
  beforeAll(async () => {
    system = await CoreSystem.connect({ connectionString: testDatabaseUrl(), namespace });
    worker = await system.registerNode({ displayName: "menu-worker" });
    await worker.onEvent("menu.*", () => {}, { group: "menu-group" });
    await worker.start();
  });
  afterAll(async () => {
    spawnSync("tmux", ["-S", socket, "kill-server"]);
    rmSync(socket, { force: true });
    await system.close();
  });

  it("selects View metrics, shows the queues and nodes summary, then quits with exit 0", async () => {
    const command = [process.execPath, "--import", "tsx", "cli/main.ts", "--database-url", testDatabaseUrl(), "--namespace", namespace].map(quote).join(" ");
    tmux("new-session", "-d", "-s", SESSION, "-x", "120", "-y", "40", "-c", REPO_ROOT, `${command}; echo "nexus exited $?"; sleep 60`);

    await waitForScreen("the menu", (text) => text.includes("What would you like to do?") && text.includes("View metrics"));
    expect(screen()).toContain(`namespace ${namespace}`);
    tmux("send-keys", "-t", SESSION, "Down", "Down", "Enter");

    const shown = await waitForScreen(
      "the metrics summary and the menu again",
      (text) => text.includes("Nodes of namespace") && /◆\s+What would you like to do\?/.test(text.slice(text.indexOf("Nodes of namespace"))),
    );
    expect(shown).toContain(`Queues of namespace ${namespace} (1)`);
    expect(shown).toMatch(/│ menu-group │ event │\s+0 │\s+0 │/);
    expect(shown).toContain(`Nodes of namespace ${namespace} (1)`);
    expect(shown).toMatch(new RegExp(`│ ${worker.nodeId} │ menu-worker │ alive\\s+│`));

    tmux("send-keys", "-t", SESSION, "Down", "Down", "Down", "Enter");
    const end = await waitForScreen("nexus to exit", (text) => text.includes("nexus exited"));
    expect(end).toContain("bye");
    expect(end).toContain("nexus exited 0");
  });
});
