// Module resolve hook: the bare specifier `moleculer` means this folder's install.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const target = pathToFileURL(createRequire(import.meta.url).resolve("moleculer")).href;

export async function resolve(specifier, context, next) {
  if (specifier === "moleculer") return { url: target, format: "commonjs", shortCircuit: true };
  return next(specifier, context);
}
