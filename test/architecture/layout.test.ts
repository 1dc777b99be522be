/**
 * The layout DESIGN.md promises, checked on the source: dependencies point one way
 * (adapters -> core's entry points -> capabilities), core has no import cycle (type-only
 * imports included), no adapter reaches into another, core imports no framework, and
 * nothing polls the connection state (adapters follow the system's `status` events).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");
const CORE_ENTRY_POINTS = new Set(["core/index.ts", "core/internal.ts"]);
const FRAMEWORKS = ["@nestjs/", "moleculer", "bullmq", "fastify", "rxjs", "ioredis", "nats"];

function sourceFiles(folder: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(path.join(ROOT, folder))) {
    const relative = `${folder}/${entry}`;
    if (statSync(path.join(ROOT, relative)).isDirectory()) files.push(...sourceFiles(relative));
    else if (entry.endsWith(".ts")) files.push(relative);
  }
  return files;
}

/** Every module a file imports or re-exports, values and types alike: relative ones resolved to repository paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), "utf8");
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/g)].map(([, target]) =>
    target!.startsWith(".") ? path.posix.normalize(path.posix.join(path.posix.dirname(file), target!)).replace(/\.js$/, ".ts") : target!,
  );
}

function cyclesIn(files: string[]): string[] {
  const graph = new Map(files.map((file) => [file, importsOf(file).filter((target) => target.startsWith("core/"))]));
  const cycles: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, "visiting");
    stack.push(file);
    for (const target of graph.get(file) ?? []) {
      if (state.get(target) === "visiting") cycles.push([...stack.slice(stack.indexOf(target)), target].join(" -> "));
      else if (!state.has(target)) visit(target);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return cycles;
}

describe("layout", () => {
  const core = sourceFiles("core");
  const adapters = sourceFiles("adapters");

  it("finds the source it checks", () => {
    expect(core).toContain("core/system.ts");
    expect(core.length).toBeGreaterThan(40);
    expect(adapters.length).toBeGreaterThan(20);
  });

  it("core has no import cycle, counting type-only imports", () => {
    expect(cyclesIn(core)).toEqual([]);
  });

  it("core keeps one folder per capability, with only the composition at its top", () => {
    const top = readdirSync(path.join(ROOT, "core")).filter((entry) => entry.endsWith(".ts")).sort();
    expect(top).toEqual(["index.ts", "internal.ts", "node.ts", "system.ts"]);
  });

  it("core imports no framework", () => {
    const offending = core.flatMap((file) => importsOf(file).filter((target) => FRAMEWORKS.some((name) => target.startsWith(name))).map((target) => `${file}: ${target}`));
    expect(offending).toEqual([]);
  });

  it("adapters, apps and the CLI import the core only through its entry points; no adapter imports another", () => {
    const offending = [...adapters, ...sourceFiles("apps"), ...sourceFiles("cli")].flatMap((file) => {
      const adapter = file.split("/")[1];
      return importsOf(file)
        .filter((target) => (target.startsWith("core/") && !CORE_ENTRY_POINTS.has(target)) || (file.startsWith("adapters/") && target.startsWith("adapters/") && target.split("/")[1] !== adapter))
        .map((target) => `${file}: ${target}`);
    });
    expect(offending).toEqual([]);
  });

  it("nothing polls the connection state", () => {
    const polling = [...adapters, ...sourceFiles("cli")].filter((file) => /\.listener\b|listener\.connected/.test(readFileSync(path.join(ROOT, file), "utf8")));
    expect(polling).toEqual([]);
  });
});
