// Loaded with `node --import` (through NODE_OPTIONS, set by vitest.config.ts) in the child
// brokers: makes `moleculer` resolve to this folder's 0.15 install, for the adapter too.
import { register } from "node:module";

register("./alias-hooks.mjs", import.meta.url);
