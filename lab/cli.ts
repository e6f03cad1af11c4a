/**
 * npm run lab -- [--stack prod | --config FILE] [--vm] [--full] [--hold] [--json FILE]
 *
 * Renders the stack with its keys (into .lab/, never committed), brings the topology up in network
 * namespaces with one real pluto per gateway, and reports each tunnel's IKE and Child SA state and
 * the layer proven. On this machine's kernel that is IKE only when it lacks ESP; `--vm` runs the
 * lab inside a QEMU VM booting Debian's full kernel, which proves Child SAs and traffic.
 *   --full   also kill and restart the hub's pluto (timing recovery) and try a wrong key
 *   --hold   keep the lab up until Ctrl-C (explore with `ip netns exec <id>-virginia-gw ipsec whack ...`)
 *   --json   write the report as JSON
 * Tears everything down on exit or Ctrl-C. Needs root. Exit status 0 when every check passed.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Lab, labUnavailable } from "./lab";
import { runScenario, type ScenarioReport } from "./scenario";

const REPO = path.resolve(__dirname, path.basename(path.dirname(__dirname)) === "bin" ? "../.." : "..");

interface Args {
    stack: string;
    configFile?: string;
    vm: boolean;
    full: boolean;
    hold: boolean;
    json?: string;
    /** Internal: running inside the VM on an existing render. */
    inside?: string;
}

function parseArgs(argv: string[]): Args {
    const args: Args = { stack: "prod", vm: false, full: false, hold: false };
    for (let i = 0; i < argv.length; i++) {
        const value = () => {
            const v = argv[++i];
            if (v === undefined) {
                throw new Error(`${argv[i - 1]} needs a value`);
            }
            return v;
        };
        switch (argv[i]) {
            case "--stack":
                args.stack = value();
                break;
            case "--config":
                args.configFile = value();
                break;
            case "--vm":
                args.vm = true;
                break;
            case "--full":
                args.full = true;
                break;
            case "--hold":
                args.hold = true;
                break;
            case "--json":
                args.json = path.resolve(value());
                break;
            case "--inside":
                args.inside = value();
                break;
            default:
                throw new Error(`unknown argument "${argv[i]}"`);
        }
    }
    if (args.vm && args.hold) {
        throw new Error("--hold cannot be combined with --vm (the VM has no terminal)");
    }
    return args;
}

/** Renders the stack with keys revealed, in-process (the Pulumi SDK is loaded only here, on the host). */
async function render(args: Args, dir: string): Promise<void> {
    const { readStackConfigFile, stackConfigPath } = await import("../config/load");
    const { renderStack, writeRendered } = await import("../offline/render");
    const file = args.configFile ?? stackConfigPath(args.stack);
    writeRendered(await renderStack(readStackConfigFile(file), { stack: args.stack, revealSecrets: true }), dir);
    fs.chmodSync(dir, 0o700);
}

/** Compiles the lab (it runs as plain JavaScript in the VM, where TypeScript would be slow to load). */
function buildLab(): void {
    const tsc = spawnSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", path.join(REPO, "lab/tsconfig.json")], {
        encoding: "utf8",
        cwd: REPO,
    });
    if (tsc.status !== 0) {
        throw new Error(`lab: compiling the lab failed:\n${tsc.stdout}${tsc.stderr}`);
    }
}

export function formatReport(r: ScenarioReport): string {
    const lines = [
        `kernel: ${r.kernelHasEsp ? "installs ESP SAs (Child SA and traffic provable)" : "no ESP: IKE only (use --vm for Child SA and traffic)"}`,
        "tunnel                     IKE  Child SA  traffic  up after  proven",
    ];
    for (const [name, t] of Object.entries(r.tunnels)) {
        const traffic = t.pingHubToSpoke === undefined ? "n/a" : t.pingHubToSpoke && t.pingSpokeToHub ? "yes" : "NO";
        lines.push(
            `${name.padEnd(26)} ${(t.ike ? "yes" : "NO").padEnd(4)} ${(t.child ? "yes" : r.kernelHasEsp ? "NO" : "n/a").padEnd(9)} ${traffic.padEnd(8)} ` +
                `${(t.upSeconds === undefined ? "-" : `${t.upSeconds} s`).padEnd(9)} ${t.proven}`,
        );
    }
    const s2s = r.spokeToSpoke;
    lines.push(
        `spoke to spoke: ${s2s.foreignConnsOnSpokes.length === 0 && s2s.attemptsInLogs.length === 0 ? "no SA, no attempt" : "FOUND " + JSON.stringify(s2s)}` +
            (Object.keys(s2s.pings).length ? `; pings ${Object.values(s2s.pings).some(Boolean) ? "PASSED (wrong)" : "refused"}` : ""),
    );
    if (r.restart) {
        lines.push(
            `restart of ${r.restart.region}'s pluto: ${r.restart.seconds === undefined ? "tunnels NOT back" : `tunnels back after ${r.restart.seconds} s`}`,
        );
    }
    if (r.deadPeer?.skipped) {
        lines.push(`dead peer: not provable here (${r.deadPeer.skipped}); hub's TunnelUp ${r.deadPeer.health.before}`);
    } else if (r.deadPeer) {
        const d = r.deadPeer;
        lines.push(
            `dead peer ${d.region}: hub noticed after ${d.detectedSeconds ?? "NEVER (liveness needs a Child SA)"}${d.detectedSeconds === undefined ? "" : " s"}; ` +
                `tunnel back ${d.returnedSeconds === undefined ? "NEVER" : `${d.returnedSeconds} s`} after the peer returned; ` +
                `hub's TunnelUp ${d.health.before} -> ${d.health.whileDead} -> ${d.health.after}`,
        );
    }
    if (r.rotation) {
        const k = r.rotation;
        lines.push(
            `key rotation of ${k.tunnel}: ${k.seconds === undefined ? "NOT re-established" : `both ends rewrote the key and re-authenticated after ${k.seconds} s`}`,
        );
    }
    if (r.wrongKey) {
        const w = r.wrongKey;
        lines.push(
            `wrong key on ${w.region}: ${w.establishedWithin === undefined ? `rejected (${w.waitedSeconds} s)` : "ESTABLISHED (wrong)"}; ${w.reason ?? "no reason in the log"}`,
        );
    }
    return lines.join("\n");
}

/** True when the report shows every check passing at the layer this kernel can prove. */
export function reportPassed(r: ScenarioReport, full: boolean): boolean {
    const want = r.kernelHasEsp ? "traffic" : "IKE";
    const tunnelsOk = Object.values(r.tunnels).every((t) => t.proven === want);
    const s2sOk =
        r.spokeToSpoke.foreignConnsOnSpokes.length === 0 &&
        r.spokeToSpoke.attemptsInLogs.length === 0 &&
        !Object.values(r.spokeToSpoke.pings).some(Boolean);
    const fullOk =
        !full ||
        (r.restart?.seconds !== undefined &&
            (!r.kernelHasEsp || (r.deadPeer?.detectedSeconds !== undefined && r.deadPeer.returnedSeconds !== undefined)) &&
            r.rotation?.seconds !== undefined &&
            r.rotation.bothEndsRewritten &&
            r.wrongKey?.establishedWithin === undefined &&
            !!r.wrongKey?.reason);
    return tunnelsOk && s2sOk && fullOk;
}

const started = Date.now();
/** Log lines carry seconds since start, so slow steps (in the VM especially) show. */
const say = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${line}`);

async function main(): Promise<number> {
    const args = parseArgs(process.argv.slice(2));
    const why = labUnavailable();
    if (why) {
        console.error(`lab: ${why}`);
        return 2;
    }

    if (args.inside === undefined) {
        const renderDir = path.join(REPO, ".lab", args.stack, "render");
        await render(args, renderDir);
        if (args.vm) {
            buildLab();
            const inner = [process.execPath, path.join(REPO, "bin/lab/cli.js"), "--inside", renderDir, "--stack", args.stack];
            if (args.full) inner.push("--full");
            if (args.json) inner.push("--json", args.json);
            say("lab: booting the VM (Debian kernel under QEMU; its output follows when it ends) ...");
            const vm = spawnSync("bash", [path.join(REPO, "lab/vm.sh"), "--timeout", "900", "--", ...inner], {
                stdio: "inherit",
                cwd: REPO,
            });
            return vm.status ?? 1;
        }
        args.inside = renderDir;
    }

    // pluto's sockets and NSS databases go on a local filesystem ($TMPDIR is a tmpfs in the VM).
    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-lab-"));
    const lab = new Lab(args.inside, workDir, `hs${process.pid % 100000}`, say);
    const teardown = () => {
        lab.down();
        fs.rmSync(workDir, { recursive: true, force: true });
    };
    process.on("exit", teardown);
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
        process.on(signal, () => {
            console.log(`\nlab: ${signal}, tearing down`);
            process.exit(130);
        });
    }
    const report = await runScenario(lab, {
        full: args.full,
        log: say,
        beforeTeardown: args.hold
            ? async () => {
                  console.log(`lab: up; namespaces ${lab.topology.id}-*; Ctrl-C tears it down`);
                  await new Promise(() => undefined);
              }
            : undefined,
    });
    console.log(formatReport(report));
    if (args.json) {
        fs.writeFileSync(args.json, JSON.stringify(report, null, 2));
    }
    return reportPassed(report, args.full) ? 0 : 1;
}

if (require.main === module) {
    main().then(
        (code) => process.exit(code),
        (e) => {
            console.error(`lab: ${(e as Error).message}`);
            process.exit(1);
        },
    );
}
