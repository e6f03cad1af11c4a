/**
 * The VM tests' one way in: `npm run lab -- ... --vm --json FILE` (lab/cli.ts, lab/vm.sh), its output
 * printed under the test, its report read back. Without QEMU, a distribution kernel or the lab's other
 * prerequisites it skips with the reason, except under CI (CI=true), where it fails.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Context } from "mocha";
import { labUnavailable } from "../../lab/lab";
import { ciMustRun } from "../unit/fixtures";
import { indent } from "./labReport";

const REPO = path.join(__dirname, "..", "..");
/** lab/vm.sh's default NODE_COMPILE_CACHE. */
const VM_NODE_COMPILE_CACHE = "/var/cache/hubspoke-vpn-vm/node-compile-cache";

/** Runs the lab in the VM with `args` and returns its JSON report; `commands` are what the run needs besides QEMU and a kernel. */
export function runLabInVm<T>(ctx: Context, args: readonly string[], commands: readonly string[], timeoutMs: number): T {
    const needs = ["qemu-system-x86_64", ...commands];
    const why =
        labUnavailable() ??
        (spawnSync("sh", [
            "-c",
            `${needs.map((c) => `command -v ${c}`).join(" && ")} && ls /boot/vmlinuz-*-amd64 /boot/vmlinuz-*-generic 2>/dev/null | grep -q .`,
        ]).status !== 0
            ? `${needs.join(", ")} or a distribution kernel (linux-image-amd64) is not installed (scripts/install-system-deps.sh installs them)`
            : undefined);
    if (why) {
        ciMustRun(ctx, why);
    }
    const json = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-vm-")), "report.json");
    const started = Date.now();
    const run = spawnSync("npm", ["run", "-s", "lab", "--", ...args, "--vm", "--json", json], {
        cwd: REPO,
        encoding: "utf8",
        timeout: timeoutMs,
        // The VM's node compile cache (lab/vm.sh), filled here too: the host's node compiles the same
        // modules (node_modules) first, which under the VM's emulation takes several times as long.
        env: { ...process.env, NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? VM_NODE_COMPILE_CACHE },
    });
    console.log(indent(`${run.stdout}${run.stderr}`.trim()));
    console.log(`      (VM run took ${Math.round((Date.now() - started) / 1000)} s including boot)`);
    try {
        assert.ok(fs.existsSync(json), `the VM run wrote no report (exit ${run.status})`);
        return JSON.parse(fs.readFileSync(json, "utf8")) as T;
    } finally {
        fs.rmSync(path.dirname(json), { recursive: true, force: true });
    }
}
