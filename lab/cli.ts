/**
 * npm run lab -- [--stack prod | --config FILE] [--vm] [--full] [--hold] [--json FILE]
 *
 * Renders the stack with its keys (into .lab/, never committed), brings the topology up in network
 * namespaces with one real pluto and the real agent per gateway, and reports each tunnel's IKE and
 * Child SA state and the layer proven. On this machine's kernel that is IKE only when it lacks ESP;
 * `--vm` runs the lab inside a QEMU VM booting Debian's full kernel, which proves Child SAs and traffic.
 * With ESP it also sends 5 MB from a spoke's host to the hub's with the gateways' MSS clamp and without.
 * A stack whose sites have a standby (`--stack prod-ha`) runs the failover scenario instead: the hub's
 * active gateway dies, then a spoke's, while a spoke's host pings the hub's (the traffic gap, with --vm);
 * the dead hub gateway returns as the standby; the link between the hub's two gateways is cut.
 *   --full   also kill and restart the hub's pluto (timing recovery), kill a spoke, rotate a key, try a
 *            wrong key, replace a spoke's gateway (no standby); then day two on a second lab: add a
 *            spoke, change a tunnel, remove the spoke
 *   --hold   keep the lab up until Ctrl-C (explore with `ip netns exec <id>-virginia-gw ipsec whack ...`)
 *   --json   write the report as JSON
 * Tears everything down on exit or Ctrl-C. Needs root. Exit status 0 when every check passed.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs as parseArgv } from "node:util";
import { ADDED_SPOKE, type DayTwoReport, runDayTwo } from "./dayTwo";
import { FailoverLab } from "./failoverLab";
import { type FailoverReport, failoverPassed, formatFailover, runFailoverScenario } from "./failoverScenario";
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
    /** Internal: the render after the day-two change (the spoke added). */
    dayTwo?: string;
    /** Internal: running inside the lab's VM. */
    inVm: boolean;
}

/** What `--json` writes: the scenario's report, and day two's when it ran. */
export type LabReport = ScenarioReport & { dayTwo?: DayTwoReport };

function parseArgs(argv: string[]): Args {
    const { values } = parseArgv({
        args: argv,
        options: {
            stack: { type: "string", default: "prod" },
            config: { type: "string" },
            vm: { type: "boolean", default: false },
            full: { type: "boolean", default: false },
            hold: { type: "boolean", default: false },
            json: { type: "string" },
            inside: { type: "string" },
            "day-two": { type: "string" },
            "in-vm": { type: "boolean", default: false },
        },
        strict: true,
        allowPositionals: false,
    });
    if (values.vm && values.hold) {
        throw new Error("--hold cannot be combined with --vm (the VM has no terminal)");
    }
    return {
        stack: values.stack!,
        configFile: values.config,
        vm: values.vm!,
        full: values.full!,
        hold: values.hold!,
        json: values.json === undefined ? undefined : path.resolve(values.json),
        inside: values.inside,
        dayTwo: values["day-two"],
        inVm: values["in-vm"]!,
    };
}

/**
 * Renders the stack with keys revealed, in-process (the Pulumi SDK is loaded only here, on the host);
 * with `addSpoke`, the stack with day two's spoke added (same Elastic IPs and keys for the rest).
 */
async function snapshotForLab(args: Args, dir: string, addSpoke = false): Promise<void> {
    const { readStackConfigFile, stackConfigPath } = await import("../config/load");
    const { snapshotStack, writeSnapshot } = await import("../harness/snapshot");
    const raw = readStackConfigFile(args.configFile ?? stackConfigPath(args.stack));
    if (addSpoke) {
        raw.regions = [...(raw.regions as unknown[]), ADDED_SPOKE];
    }
    writeSnapshot(await snapshotStack(raw, { stack: args.stack, revealSecrets: true }), dir);
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
    if (r.iam) {
        lines.push(`IAM: ${r.iam.allowed} calls authorized, ${r.iam.denied} denied (each gateway's rendered policies)`);
    }
    lines.push(
        `spoke to spoke: ${s2s.foreignConnsOnSpokes.length === 0 && s2s.attemptsInLogs.length === 0 ? "no SA, no attempt" : "FOUND " + JSON.stringify(s2s)}` +
            (Object.keys(s2s.pings).length ? `; pings ${Object.values(s2s.pings).some(Boolean) ? "PASSED (wrong)" : "refused"}` : ""),
    );
    if (r.mtu) {
        const m = r.mtu;
        const mb = m.withClamp.sent / (1024 * 1024);
        lines.push(
            `${mb} MB ${m.from}->${m.to} (spoke->hub) with MSS clamp ${m.clamp ?? "NONE"}: ` +
                `${m.withClamp.completed ? `${m.withClamp.seconds} s` : `NOT completed (${m.withClamp.bytes} bytes in ${m.withClamp.seconds} s)`}; ` +
                `without clamp: ${m.withoutClamp.completed ? `COMPLETED in ${m.withoutClamp.seconds} s (expected a stall)` : `stalled (${m.withoutClamp.bytes} bytes in ${m.withoutClamp.deadlineSeconds} s)`}`,
        );
    }
    lines.push(...recoveryLines(r));
    return lines.join("\n");
}

/** The full run's cases, a line each: recovery, the dead peer, the key's cases, the replacement without a standby. */
function recoveryLines(r: ScenarioReport): string[] {
    const lines: string[] = [];
    if (r.restart) {
        lines.push(
            `restart of ${r.restart.region}'s pluto: ${r.restart.seconds === undefined ? "tunnels NOT back" : `tunnels back after ${r.restart.seconds} s`}` +
                (r.kernelHasEsp
                    ? `; ${r.restart.settledSeconds === undefined ? "NOT settled" : `settled (no stale IKE SA left) after ${r.restart.settledSeconds} s`}`
                    : ""),
        );
    }
    if (r.deadPeer?.skipped) {
        lines.push(`dead peer: not provable here (${r.deadPeer.skipped}); hub's TunnelUp ${r.deadPeer.health.before}`);
    } else if (r.deadPeer) {
        const d = r.deadPeer;
        lines.push(
            `dead peer ${d.region}: hub noticed after ${d.detectedSeconds === undefined ? "NEVER (no liveness failure in its log)" : `${d.detectedSeconds} s (${d.detectedLine})`}; ` +
                `tunnel back ${d.returnedSeconds === undefined ? "NEVER" : `${d.returnedSeconds} s`} after the peer returned; ` +
                `hub's TunnelUp ${d.health.before} -> ${d.health.whileDead} -> ${d.health.after}`,
        );
    }
    if (r.rotation) {
        const k = r.rotation;
        lines.push(
            `key rotation of ${k.tunnel}: both ends rewrote the key; the running IKE SA ${k.saKeptUntilReauth ? "stayed up" : "did NOT stay up"} until the re-authentication was due; ` +
                `${k.seconds === undefined ? "NOT re-established" : `re-authenticated with it ${k.seconds} s after the change (the lab's delay included)`}`,
        );
    }
    if (r.wrongKey) {
        const w = r.wrongKey;
        lines.push(
            `wrong key on ${w.region}: ${w.establishedWithin === undefined ? `rejected (${w.waitedSeconds} s)` : "ESTABLISHED (wrong)"}; ${w.reason ?? "no reason in the log"}`,
        );
    }
    if (r.replacement) {
        const x = r.replacement;
        lines.push(
            `replacement of ${x.region}'s gateway (no standby), from its software installed: pluto with the agent's conns after ${x.plutoSeconds} s; ` +
                `${x.tunnel} ${x.upSeconds === undefined ? "NOT back" : `up after ${x.upSeconds} s`}` +
                (r.kernelHasEsp ? `; traffic ${x.trafficSeconds === undefined ? "NOT back" : `back after ${x.trafficSeconds} s`}` : ""),
        );
    }
    return lines;
}

/** Day two's report in a few lines. */
export function formatDayTwo(d: DayTwoReport): string {
    const same = (a: Record<string, number[]>, b: Record<string, number[]>) => JSON.stringify(a) === JSON.stringify(b);
    return [
        `day two (${d.target}): ${d.tunnel} added: up ${d.added.seconds ?? "NEVER"} s after its parameters appeared (the agents' runs included); ` +
            `untouched tunnels' IKE SAs ${same(d.added.serialsBefore, d.added.serialsAfter) ? "kept" : "CHANGED"} ${JSON.stringify(d.added.serialsBefore)}`,
        `day two: ${d.tunnel} changed at both ends: re-established after ${d.changed.seconds ?? "NEVER"} s (IKE SA ${d.changed.tunnelSerialsBefore} -> ${d.changed.tunnelSerialsAfter}); ` +
            `others ${same(d.added.serialsBefore, d.changed.serialsAfter) ? "kept" : "CHANGED"}`,
        `day two: ${d.tunnel} removed: hub ${d.removed.connLoaded ? "STILL LOADS it" : "no longer loads it"}, files left ${JSON.stringify(d.removed.filesLeft)}; ` +
            `others ${same(d.added.serialsBefore, d.removed.serialsAfter) ? "kept" : "CHANGED"}`,
        ...(d.ping
            ? [
                  `day two: ping across an untouched tunnel through all of it: ${d.ping.received}/${d.ping.sent} replies, ${d.ping.lost} lost, longest gap ${d.ping.longestGapSeconds} s`,
              ]
            : []),
    ].join("\n");
}

/** True when day two added, changed and removed the tunnel without touching any other. */
export function dayTwoPassed(d: DayTwoReport): boolean {
    const same = (a: Record<string, number[]>, b: Record<string, number[]>) => JSON.stringify(a) === JSON.stringify(b);
    return (
        d.added.seconds !== undefined &&
        d.changed.seconds !== undefined &&
        !d.removed.connLoaded &&
        d.removed.filesLeft.length === 0 &&
        [d.added.serialsAfter, d.changed.serialsAfter, d.removed.serialsAfter].every((s) => same(s, d.added.serialsBefore)) &&
        Object.values(d.added.serialsBefore).every((s) => s.length > 0) &&
        (d.ping === undefined || (d.ping.lost === 0 && d.ping.sent > 0))
    );
}

/** True when the report shows every check passing at the layer this kernel can prove. */
export function reportPassed(r: ScenarioReport, full: boolean): boolean {
    const want = r.kernelHasEsp ? "traffic" : "IKE";
    const tunnelsOk = Object.values(r.tunnels).every((t) => t.proven === want);
    const s2sOk =
        r.spokeToSpoke.foreignConnsOnSpokes.length === 0 &&
        r.spokeToSpoke.attemptsInLogs.length === 0 &&
        !Object.values(r.spokeToSpoke.pings).some(Boolean);
    // With ESP: the 5 MB transfer completes with the MSS clamp and stalls without it.
    const mtuOk =
        !r.kernelHasEsp ||
        (r.mtu?.withClamp.completed === true && !r.mtu.withoutClamp.completed && r.mtu.withoutClamp.connected && r.mtu.clampRestored);
    const fullOk =
        !full ||
        (r.restart?.seconds !== undefined &&
            (!r.kernelHasEsp || r.restart.settledSeconds !== undefined) &&
            (!r.kernelHasEsp || (r.deadPeer?.detectedSeconds !== undefined && r.deadPeer.returnedSeconds !== undefined)) &&
            // The key's cases are IKE's: proven on this machine's kernel, skipped in the VM.
            (r.kernelHasEsp ||
                (r.rotation?.seconds !== undefined &&
                    r.rotation.bothEndsRewritten &&
                    r.rotation.saKeptUntilReauth &&
                    r.wrongKey?.establishedWithin === undefined &&
                    !!r.wrongKey?.reason)));
    return tunnelsOk && s2sOk && mtuOk && fullOk;
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
        await snapshotForLab(args, renderDir);
        if (args.full) {
            args.dayTwo = path.join(REPO, ".lab", args.stack, "render-day-two");
            await snapshotForLab(args, args.dayTwo, true);
        }
        if (args.vm) {
            return runInVm(args, renderDir);
        }
        args.inside = renderDir;
    }
    return runHere(args, args.inside);
}

/** Runs this command again inside the VM, on the renders made here (the VM's kernel proves Child SAs and traffic). */
function runInVm(args: Args, renderDir: string): number {
    buildLab();
    const inner = [process.execPath, path.join(REPO, "bin/lab/cli.js"), "--inside", renderDir, "--stack", args.stack, "--in-vm"];
    if (args.full) inner.push("--full", "--day-two", args.dayTwo!);
    if (args.json) inner.push("--json", args.json);
    say("lab: booting the VM (Debian kernel under QEMU; its output follows when it ends) ...");
    const vm = spawnSync("bash", [path.join(REPO, "lab/vm.sh"), "--timeout", "1500", "--", ...inner], { stdio: "inherit", cwd: REPO });
    return vm.status ?? 1;
}

/** Whether a render's sites have standbys (Pulumi.prod-ha.yaml): those run the failover scenario. */
function hasStandbys(renderDir: string): boolean {
    const plan = JSON.parse(fs.readFileSync(path.join(renderDir, "plan.json"), "utf8")) as { gateways: { failover?: unknown }[] };
    return plan.gateways.some((g) => g.failover);
}

/** The failover scenario (sites with standbys): kill the hub's active, a spoke's, bring one back, cut the pair's link. */
async function runFailoverHere(args: Args, renderDir: string): Promise<number> {
    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-lab-"));
    const lab = new FailoverLab(renderDir, workDir, `hf${process.pid % 100000}`, say);
    process.on("exit", () => {
        lab.down();
        // HUBSPOKE_LAB_KEEP=1 keeps each gateway's logs (failover.log, pluto.log) for a look afterwards.
        if (process.env.HUBSPOKE_LAB_KEEP) say(`lab: work directory kept: ${workDir}`);
        else fs.rmSync(workDir, { recursive: true, force: true });
    });
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
        process.on(signal, () => process.exit(130));
    }
    const report: FailoverReport = await runFailoverScenario(lab, say);
    console.log(formatFailover(report));
    if (args.json) {
        fs.writeFileSync(args.json, JSON.stringify(report, null, 2));
    }
    return failoverPassed(report) ? 0 : 1;
}

/** The scenario on this machine's kernel (or the VM's, when run inside it), then day two on a second lab. */
async function runHere(args: Args, renderDir: string): Promise<number> {
    if (hasStandbys(renderDir)) {
        return runFailoverHere(args, renderDir);
    }
    // pluto's sockets and NSS databases go on a local filesystem ($TMPDIR is a tmpfs in the VM).
    const workDir = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-lab-"));
    // In the VM the real AWS CLI takes over a minute to start (software emulation): the agents use aws-lite there.
    const awsCli = args.inVm ? "lite" : "real";
    const lab = new Lab(renderDir, workDir, `hs${process.pid % 100000}`, say, awsCli);
    process.on("exit", () => {
        lab.down();
        fs.rmSync(workDir, { recursive: true, force: true });
    });
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
        process.on(signal, () => {
            console.log(`\nlab: ${signal}, tearing down`);
            process.exit(130);
        });
    }
    const hold = async () => {
        console.log(`lab: up; namespaces ${lab.topology.id}-*; Ctrl-C tears it down`);
        await new Promise(() => undefined);
    };
    const report: LabReport = await runScenario(lab, { full: args.full, log: say, beforeTeardown: args.hold ? hold : undefined });
    console.log(formatReport(report));
    if (args.dayTwo) {
        const dayTwoWork = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-lab-"));
        const second = new Lab(args.dayTwo, dayTwoWork, `hd${process.pid % 100000}`, say, awsCli);
        try {
            report.dayTwo = await runDayTwo(second, { before: renderDir, log: say });
        } finally {
            second.down();
            fs.rmSync(dayTwoWork, { recursive: true, force: true });
        }
        console.log(formatDayTwo(report.dayTwo));
    }
    if (args.json) {
        fs.writeFileSync(args.json, JSON.stringify(report, null, 2));
    }
    return reportPassed(report, args.full) && (!report.dayTwo || dayTwoPassed(report.dayTwo)) ? 0 : 1;
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
