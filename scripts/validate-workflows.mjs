// Validates GitHub Actions workflow files with GitHub's own parser (@actions/workflow-parser),
// so a typo fails here, not on GitHub. Usage: node --import ./scripts/json-import-hook.mjs
// scripts/validate-workflows.mjs [FILE ...] (default: every file in .github/workflows).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { convertWorkflowTemplate, NoOperationTraceWriter, parseWorkflow } from "@actions/workflow-parser";

const files = process.argv.slice(2).length
    ? process.argv.slice(2)
    : readdirSync(".github/workflows")
          .filter((f) => /\.ya?ml$/.test(f))
          .map((f) => join(".github/workflows", f));
let failed = 0;
for (const file of files) {
    const parsed = parseWorkflow({ name: file, content: readFileSync(file, "utf8") }, new NoOperationTraceWriter());
    const errors = parsed.context.errors.getErrors().map((e) => e.message);
    if (errors.length === 0 && parsed.value) {
        const template = await convertWorkflowTemplate(parsed.context, parsed.value);
        errors.push(...(template.errors ?? []).map((e) => e.Message ?? e.message ?? String(e)));
    }
    if (errors.length) {
        failed++;
        console.error(`${file}:\n${errors.map((e) => `  ${e}`).join("\n")}`);
    } else {
        console.log(`${file}: valid`);
    }
}
process.exit(failed ? 1 : 0);
