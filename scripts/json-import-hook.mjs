// Lets Node 20 load JSON modules imported without `with { type: "json" }`, as the
// @actions/workflow-parser package (written for bundlers) does.
import { register } from "node:module";

register(
    "data:text/javascript," +
        encodeURIComponent(`
import { readFile } from "node:fs/promises";
export async function load(url, context, next) {
  if (url.endsWith(".json")) {
    return { format: "json", source: await readFile(new URL(url)), shortCircuit: true };
  }
  return next(url, context);
}`),
);
