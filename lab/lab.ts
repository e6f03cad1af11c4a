/**
 * The libreswan lab: the rendered topology on this machine, in network namespaces, with one real
 * `pluto` per gateway running exactly the rendered files. Needs root, iproute2, iptables and libreswan.
 *
 * Everything lives in namespaces named `<id>-*` and in `workDir`; `down()` removes all of it.
 * Traffic stays inside those namespaces: the "internet" is a bridge in `<id>-inet`.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { EVENTS, GATEWAY_PATHS, tunnelParameterNames } from "../gateway/contract";
import { AWS_CLI, AWS_LITE, awsCliEnv, type FakeAws, LAB_JOURNALCTL, readLogEvents, readMetrics, startFakeAws } from "./fakeAws";
import { LabIam, labAccessKey } from "./iam";
import { type LabPlan, type LabRegion, type LabTopology, labTopology, setupPlan } from "./topology";

/** What libreswan reports of one tunnel on one gateway. */
export interface TunnelState {
    /** An IKE SA is established. */
    readonly ike: boolean;
    /** A Child SA is established (installed in the kernel). */
    readonly child: boolean;
    /** The established IKE SA runs on UDP 4500: NAT traversal was detected and used. */
    readonly natTraversal: boolean;
}

export type Layer = "none" | "IKE" | "Child SA" | "traffic";

/** A continuous ping between workload hosts (`Lab.startPing`), once stopped. */
export interface PingRun {
    /** Echo requests up to the last one answered (later ones may still have been in flight). */
    readonly sent: number;
    readonly received: number;
    readonly lost: number;
    /** The longest run of unanswered requests, in seconds of sending. */
    readonly longestGapSeconds: number;
    readonly intervalSeconds: number;
}

/** One TCP transfer between workload hosts (`Lab.transfer`). */
export interface TransferResult {
    /** The receiver got every byte and the sender got its acknowledgement before the deadline. */
    readonly completed: boolean;
    /** The connection was established (so a transfer that did not complete stalled, rather than never started). */
    readonly connected: boolean;
    /** From the sender's connect to the receiver's acknowledgement, or to the deadline. */
    readonly seconds: number;
    /** Bytes the receiving application got. */
    readonly bytes: number;
    /** Bytes the sender meant to send. */
    readonly sent: number;
    readonly deadlineSeconds: number;
    /** What went wrong, if anything (an error, or "deadline"). */
    readonly error?: string;
}

/**
 * The receiving end of `Lab.transfer`, run by node in the receiving host's namespace: accepts one
 * connection, counts its bytes, answers "done" once it has them all, and prints its count as JSON
 * when it is done or told to stop (SIGTERM). Prints "listening" first.
 */
const TRANSFER_SERVER = `
const net = require("node:net");
const [ip, port, total] = process.argv.slice(1);
let bytes = 0;
let reported = false;
const report = (completed) => {
    if (!reported) {
        reported = true;
        process.stdout.write(JSON.stringify({ completed, bytes }) + "\\n", () => process.exit(0));
    }
};
const server = net.createServer((socket) => {
    server.close();
    socket.on("data", (chunk) => {
        bytes += chunk.length;
        if (bytes >= Number(total)) {
            socket.end("done\\n", () => report(true));
        }
    });
    socket.on("error", () => report(false));
});
process.on("SIGTERM", () => report(false));
server.listen(Number(port), ip, () => process.stdout.write("listening\\n"));
`;

/**
 * The sending end of `Lab.transfer`: connects, sends `total` bytes, waits for the receiver's "done",
 * and prints the outcome as JSON, giving up at the deadline.
 */
const TRANSFER_CLIENT = `
const net = require("node:net");
const [ip, port, total, deadline] = process.argv.slice(1);
const start = process.hrtime.bigint();
let connected = false;
let finished = false;
const finish = (completed, error) => {
    if (finished) {
        return;
    }
    finished = true;
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    process.stdout.write(JSON.stringify({ completed, connected, seconds, error }) + "\\n", () => process.exit(0));
};
const socket = net.connect(Number(port), ip, () => {
    connected = true;
    socket.write(Buffer.alloc(Number(total), 0x78));
});
socket.setEncoding("utf8");
let reply = "";
socket.on("data", (text) => {
    reply += text;
    if (reply.includes("done")) {
        finish(true);
    }
});
socket.on("error", (e) => finish(false, e.message));
setTimeout(() => {
    // Reset rather than close: the kernel must not go on retransmitting what never got through.
    try {
        socket.resetAndDestroy();
    } catch {}
    finish(false, "deadline");
}, Number(deadline) * 1000);
`;

export function sh(
    argv: string[],
    opts: { allowFail?: boolean; timeoutMs?: number; input?: string; env?: Record<string, string> } = {},
): { ok: boolean; out: string } {
    const r = spawnSync(argv[0], argv.slice(1), {
        encoding: "utf8",
        timeout: opts.timeoutMs ?? 60_000,
        input: opts.input,
        env: opts.env ? { ...process.env, ...opts.env } : undefined,
    });
    const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
    if (r.status !== 0 && !opts.allowFail) {
        throw new Error(`lab: \`${argv.join(" ")}\` failed (${r.status ?? r.signal}): ${out.trim() || r.error}`);
    }
    return { ok: r.status === 0, out };
}

export const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/**
 * whack itself, not the `ipsec` wrapper script (a shell script that starts more processes): the labs
 * poll pluto often, and in the VM every process start costs.
 */
const WHACK = fs.existsSync("/usr/libexec/ipsec/whack") ? "/usr/libexec/ipsec/whack" : "whack";

/**
 * A gateway's hubspoke-events loop in its namespace, as hubspoke-events.service runs it (every
 * EVENTS.intervalSeconds), its errors appended to `events.err` in the gateway's lab directory `dir`.
 */
export function startEventShipper(netns: string, dir: string, env: Record<string, string>): ChildProcess {
    const loop = `while :; do bash ${path.join(dir, GATEWAY_PATHS.eventsScript)} 2>>${path.join(dir, "events.err")}; sleep ${EVENTS.intervalSeconds}; done`;
    return spawn("ip", ["netns", "exec", netns, "bash", "-c", loop], { env, stdio: "ignore" });
}

/** A gateway's log group and stream for its events, from its rendered env file. */
export function eventLogOf(envFile: string): { group: string; stream: string } {
    const env = fs.readFileSync(envFile, "utf8");
    const value = (key: string) => new RegExp(`^${key}='([^']*)'$`, "m").exec(env)?.[1] ?? "";
    return { group: value("HUBSPOKE_EVENTS_LOG_GROUP"), stream: value("HUBSPOKE_EVENTS_LOG_STREAM") };
}

/** The network namespaces `ip netns` knows, from its directory (no process to start, none to fail quietly). */
export function namespaces(prefix = ""): string[] {
    try {
        return fs.readdirSync(NETNS_DIR).filter((n) => n.startsWith(prefix));
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw e;
    }
}
const NETNS_DIR = "/run/netns";

/**
 * Removes every network namespace named `prefix*`, killing what still runs inside (a pluto whose
 * parent died, say). Throws, naming them, if any is left: a lab that leaks namespaces must say so
 * where it happened, not in a later test.
 */
export function removeNamespaces(prefix: string): void {
    const failures: string[] = [];
    for (const ns of namespaces(prefix)) {
        const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" });
        for (const pid of (pids.stdout ?? "").split("\n").filter(Boolean)) {
            try {
                process.kill(Number(pid), "SIGKILL");
            } catch {
                // already gone
            }
        }
        const del = spawnSync("ip", ["netns", "del", ns], { encoding: "utf8" });
        if (del.status !== 0) {
            failures.push(`${ns}: ${del.error?.message ?? del.stderr.trim()} (exit ${del.status})`);
        }
    }
    const left = namespaces(prefix);
    if (left.length > 0) {
        throw new Error(`lab: could not remove the namespaces ${left.join(", ")}${failures.length ? `: ${failures.join("; ")}` : ""}`);
    }
}

/**
 * Pings `ip` from `netns` every `intervalSeconds` until stopped. `-O` makes ping report each echo
 * still unanswered when it sends the next, so an outage that lasts until the end still counts: the
 * run covers every echo sent, answered or not.
 */
export function pingUntilStopped(netns: string, ip: string, intervalSeconds: number): { stop(): Promise<PingRun> } {
    const child = spawn("ip", ["netns", "exec", netns, "ping", "-n", "-O", "-i", String(intervalSeconds), "-W", "1", ip], {
        stdio: ["ignore", "pipe", "ignore"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    return {
        stop: async () => {
            child.kill("SIGINT");
            await new Promise((done) => child.on("close", done));
            const answered = [...out.matchAll(/^\d+ bytes from .*icmp_seq=(\d+) /gm)].map((m) => Number(m[1]));
            const unanswered = [...out.matchAll(/^no answer yet for icmp_seq=(\d+)$/gm)].map((m) => Number(m[1]));
            return pingRun(answered, intervalSeconds, Math.max(0, ...answered, ...unanswered));
        },
    };
}

/** `count` pings from `netns` to `ip`, 0.2 s apart, each waiting 1 s: true when replies came back. */
export function pingOnce(netns: string, ip: string, count: number): boolean {
    const argv = ["ip", "netns", "exec", netns, "ping", "-n", "-q", "-c", String(count), "-i", "0.2", "-W", "1", ip];
    return sh(argv, { allowFail: true, timeoutMs: 15_000 }).ok;
}

/** What pluto behind `ctl`, in `netns`, answers to whack `args`; "" when it is not running. */
export function whackAt(netns: string, ctl: string, ...args: string[]): string {
    if (!fs.existsSync(ctl)) {
        return "";
    }
    return sh(["ip", "netns", "exec", netns, WHACK, "--ctlsocket", ctl, ...args], { allowFail: true, timeoutMs: 5000 }).out;
}

/**
 * A gateway's files as its instance has them before the agent's boot run, in `dir` (both labs):
 * the rendered etc/ and usr/ (without the tunnels' files, the agent's job; a pair's defaults file
 * stays), pluto's config around them, its NSS db, the rendered sysctls and MSS clamp applied in
 * `netns`, and the rendered settings followed by the lab's differences (its paths, the local AWS
 * endpoint, a short re-authentication delay as the lab runs both ends' agents back to back) and `env`.
 */
export function prepareGatewayFiles(g: { dir: string; rendered: string; netns: string; awsUrl: string; env?: string[] }): void {
    const at = (...parts: string[]) => path.join(g.dir, ...parts);
    fs.rmSync(g.dir, { recursive: true, force: true });
    for (const d of ["run", "nss", "ipsecdir", "state", "bin"]) {
        fs.mkdirSync(at(d), { recursive: true });
    }
    for (const d of ["etc", "usr"]) {
        fs.cpSync(path.join(g.rendered, d), at(d), { recursive: true });
    }
    fs.mkdirSync(at(GATEWAY_PATHS.ipsecDir), { recursive: true });
    for (const f of fs.readdirSync(at(GATEWAY_PATHS.ipsecDir))) {
        if (path.join(GATEWAY_PATHS.ipsecDir, f) !== GATEWAY_PATHS.pairDefaults) {
            fs.rmSync(at(GATEWAY_PATHS.ipsecDir, f), { recursive: true, force: true });
        }
    }
    // As /etc/ipsec.conf on Amazon Linux: `config setup`, then the agent's conns by include.
    fs.writeFileSync(at("ipsec.conf"), `config setup\n    logfile=${at("pluto.log")}\n\ninclude ${at(GATEWAY_PATHS.ipsecDir)}/*.conf\n`);
    fs.writeFileSync(at("ipsec.secrets"), `include ${at(GATEWAY_PATHS.ipsecDir)}/*.secrets\n`, { mode: 0o600 });
    fs.appendFileSync(
        at(GATEWAY_PATHS.env),
        [
            "# the lab's differences",
            `HUBSPOKE_IPSEC_D='${at(GATEWAY_PATHS.ipsecDir)}'`,
            `HUBSPOKE_IPSEC_CONF='${at("ipsec.conf")}'`,
            `HUBSPOKE_STATE_DIR='${at("state")}'`,
            `HUBSPOKE_CTLSOCKET='${at("run", "pluto.ctl")}'`,
            `HUBSPOKE_AWS_ARGS='--endpoint-url ${g.awsUrl}'`,
            `HUBSPOKE_REAUTH_DELAY='${LAB_REAUTH_DELAY_SECONDS}'`,
            "HUBSPOKE_BOOT_ATTEMPTS='2'",
            // The lab reports every tunnel at once (on AWS a new one is quiet while its peer boots).
            "HUBSPOKE_NEW_TUNNEL_GRACE='0'",
            ...(g.env ?? []),
            "",
        ].join("\n"),
    );
    sh(["certutil", "-N", "-d", `sql:${at("nss")}`, "--empty-password"]);
    sh(["ip", "netns", "exec", g.netns, "sysctl", "-q", "-p", at(GATEWAY_PATHS.sysctl)]);
    // hubspoke-mss.service: the rendered TCP MSS clamp, loaded before ipsec.
    sh(["ip", "netns", "exec", g.netns, "nft", "-f", at(GATEWAY_PATHS.mssClamp)]);
}

/** Why the lab cannot run here, or undefined when it can. */
export function labUnavailable(): string | undefined {
    if (process.platform !== "linux") {
        return "the lab needs Linux network namespaces";
    }
    if (process.getuid?.() !== 0) {
        return "the lab needs root (network namespaces, iptables, pluto)";
    }
    for (const [tool, pkg] of [
        ["ipsec", "libreswan"],
        ["ip", "iproute2"],
        ["iptables", "iptables"],
        ["nft", "nftables"],
        ["ping", "iputils-ping"],
        ["certutil", "libnss3-tools"],
        [AWS_CLI, "awscli"],
        ["jq", "jq"],
        ["nft", "nftables"],
    ]) {
        if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
            return `${tool} is not installed (apt-get install -y ${pkg}; scripts/install-system-deps.sh does it)`;
        }
    }
    return undefined;
}

/**
 * Whether this kernel installs ESP SAs (a full kernel, or the lab's VM): a test SA in a namespace of its
 * own (`<id>-esp`), tried twice (under the VM's emulation the first use of an algorithm is slow). It also
 * loads the AEAD of the first ESP proposal now, rather than during the first Child SA.
 */
export function kernelHasEsp(id: string): boolean {
    sh(["modprobe", "-q", "esp4"], { allowFail: true });
    const ns = `${id}-esp`;
    sh(["ip", "netns", "add", ns], { allowFail: true });
    try {
        const add = (spi: string, algorithm: string[]) =>
            sh(
                ["ip", "netns", "exec", ns, ..."ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi".split(" "), spi, ...algorithm],
                {
                    allowFail: true,
                    timeoutMs: 120_000,
                },
            ).ok;
        const cbc = ["enc", "cbc(aes)", `0x${"11".repeat(16)}`, "auth", "hmac(sha256)", `0x${"22".repeat(32)}`];
        const ok = add("0x100", cbc) || add("0x102", cbc);
        add("0x101", ["aead", "rfc4106(gcm(aes))", `0x${"33".repeat(36)}`, "128"]);
        return ok;
    } finally {
        sh(["ip", "netns", "del", ns], { allowFail: true });
    }
}

/**
 * What a ping run's answered sequence numbers say (exported for its unit test). `sent`: the highest
 * sequence number sent, when known (ping -O); else the highest answered one.
 */
export function pingRun(answered: readonly number[], intervalSeconds: number, sentUpTo?: number): PingRun {
    const got = new Set(answered);
    const sent = Math.max(sentUpTo ?? 0, answered.length === 0 ? 0 : Math.max(...answered));
    let longest = 0;
    let run = 0;
    for (let seq = 1; seq <= sent; seq++) {
        run = got.has(seq) ? 0 : run + 1;
        longest = Math.max(longest, run);
    }
    return {
        sent,
        received: got.size,
        lost: sent - got.size,
        longestGapSeconds: Math.round(longest * intervalSeconds * 10) / 10,
        intervalSeconds,
    };
}

/** One tunnel event as a gateway put it to CloudWatch Logs (gateway/hubspoke-events.sh), and when CloudWatch took it (ms). */
export interface LabTunnelEvent {
    readonly time: string;
    readonly gateway: string;
    readonly tunnel: string | null;
    readonly peer: string | null;
    readonly event: string;
    readonly ikeState: string | null;
    readonly childState: string | null;
    readonly repeats: number;
    readonly detail: string;
    readonly ingestionTime: number;
}

/** The agents' re-authentication delay in the lab: long enough to see the old IKE SA stay up, short enough to wait out. */
export const LAB_REAUTH_DELAY_SECONDS = 4;

export class Lab {
    readonly topology: LabTopology;
    private readonly plutos = new Map<string, ChildProcess>();
    /** Each gateway's hubspoke-events loop, as hubspoke-events.service runs it. */
    private readonly shippers = new Map<string, ChildProcess>();
    /** The lab's SSM Parameter Store, serving the render's ssm/ tree on the "internet" (as AWS's public endpoint). */
    private aws?: FakeAws;
    /** Transfers run so far: each uses a port of its own. */
    private transfers = 0;
    private isUp = false;
    /** Each gateway's rendered role policies: the lab's AWS endpoint authorizes its calls with them. */
    readonly iam: LabIam;

    /**
     * @param renderDir output of `npm run render -- --reveal-secrets` (plan.json and per-region files)
     * @param workDir   per-gateway run dirs, NSS dbs, logs and copies of the rendered files
     * @param id        prefix of every namespace this lab creates
     */
    constructor(
        readonly renderDir: string,
        readonly workDir: string,
        id: string,
        private readonly log: (line: string) => void = () => undefined,
        /** The AWS CLI the agents run: the real one, or (in the VM, where it is too slow) lab/fake-aws/aws-lite. */
        private readonly awsCli: "real" | "lite" = "real",
    ) {
        const plan = JSON.parse(fs.readFileSync(path.join(renderDir, "plan.json"), "utf8")) as LabPlan & { secrets?: string };
        if (plan.secrets !== "revealed") {
            throw new Error(`lab: ${renderDir} was rendered with keys redacted; render with --reveal-secrets`);
        }
        this.topology = labTopology(plan, id);
        this.iam = new LabIam(
            workDir,
            plan.gateways.map((g) => {
                if (!g.iamPolicies) {
                    throw new Error(
                        `lab: ${renderDir}/plan.json has no iamPolicies for ${g.region} (rendered by an older version): render again`,
                    );
                }
                return {
                    name: g.region,
                    policies: g.iamPolicies,
                    view: { name: g.region, kind: "single", parameterPath: g.parameterPath },
                };
            }),
        );
    }

    region(name: string): LabRegion {
        const r = this.topology.regions.find((x) => x.region === name);
        if (!r) {
            throw new Error(`lab: no region "${name}"`);
        }
        return r;
    }

    /**
     * Builds the namespaces, links, routes and NAT, starts the Parameter Store, and boots each gateway
     * (its files, and its agent's boot run). `parameters`: a render whose ssm/ tree the Parameter Store
     * starts with (by default this lab's own), e.g. the stack before a change.
     */
    async up(options: { parameters?: string } = {}): Promise<void> {
        this.down();
        this.isUp = true;
        try {
            fs.rmSync(this.ssmDir, { recursive: true, force: true });
            fs.cpSync(path.join(options.parameters ?? this.renderDir, "ssm"), this.ssmDir, { recursive: true });
            const plan = setupPlan(this.topology);
            sh(["ip", "-batch", "-"], { input: plan.root.join("\n") + "\n" });
            for (const [ns, lines] of Object.entries(plan.ip)) {
                sh(["ip", "-n", ns, "-batch", "-"], { input: lines.join("\n") + "\n" });
            }
            for (const [ns, settings] of Object.entries(plan.sysctl)) {
                sh(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", ...settings]);
            }
            for (const [ns, rules] of Object.entries(plan.iptables)) {
                sh(["ip", "netns", "exec", ns, "iptables-restore"], { input: rules });
            }
            const api = this.topology.api;
            this.iam.write();
            this.aws = await startFakeAws(this.ssmDir, {
                netns: this.topology.inetNs,
                host: api.ip,
                port: api.port,
                log: path.join(this.workDir, "ssm-requests.log"),
                iam: this.iam.file,
            });
            await Promise.all(this.topology.regions.map((r) => this.prepareGateway(r)));
            // The program's resources: each gateway's log group and stream.
            for (const r of this.topology.regions) {
                const { group, stream } = this.eventLog(r);
                this.aws!.logStream(r.awsRegion, group, stream);
            }
        } catch (e) {
            this.down();
            throw e;
        }
        this.log(`lab ${this.topology.id}: ${this.topology.regions.length} regions up (namespaces ${this.topology.id}-*)`);
    }

    /** True when this kernel installs ESP SAs (a full kernel, or the lab's VM); false on kernels without ESP. */
    kernelHasEsp(): boolean {
        return kernelHasEsp(this.topology.id);
    }

    private dir(r: LabRegion, ...parts: string[]): string {
        return path.join(this.workDir, r.region, ...parts);
    }

    /** The lab's SSM Parameter Store: a copy of a render's ssm/ tree, served by lab/fake-aws/endpoint.mjs. */
    private get ssmDir(): string {
        return path.join(this.workDir, "ssm");
    }

    /**
     * Boots a gateway as its instance boots: the rendered files (the tunnel files are the agent's job),
     * pluto's config around them, the NSS db, the rendered sysctls and MSS clamp, then the agent's boot run.
     */
    private async prepareGateway(r: LabRegion): Promise<void> {
        prepareGatewayFiles({ dir: this.dir(r), rendered: path.join(this.renderDir, r.region), netns: r.ns.gw, awsUrl: this.aws!.url });
        await this.runAgent(r.region, { boot: true });
    }

    /** Loads the gateway's rendered MSS clamp (`nft -f`), as hubspoke-mss.service does on the instance. Idempotent. */
    applyMssClamp(region: string): void {
        const r = this.region(region);
        sh(["ip", "netns", "exec", r.ns.gw, "nft", "-f", this.dir(r, GATEWAY_PATHS.mssClamp)]);
    }

    /** Removes the gateway's MSS clamp (the table the rendered file creates), to show what it prevents. */
    removeMssClamp(region: string): void {
        const r = this.region(region);
        sh(["ip", "netns", "exec", r.ns.gw, "nft", "delete", "table", "inet", "hubspoke_mss"]);
    }

    /**
     * The ESP packets `region`'s gateway sent to `peer`'s (`"out"`) or received from it (`"in"`), and
     * their bytes (outer IPv4 included), as a lab-only nft counter sees them on the wire: each packet
     * once, after the kernel has cut TCP's large segments to the MTU (a count of the inner packets on
     * the forward hook sees those unsegmented), TCP's retransmissions included. ESP in UDP only: IKE
     * on port 4500 starts with a zero "non-ESP marker" where ESP has its SPI. The ground truth that
     * the gateways' TunnelDataIn/Out are checked against. Added on first use; it only grows.
     */
    espPackets(region: string, peer: string, direction: "in" | "out"): { packets: number; bytes: number } {
        const r = this.region(region);
        const tag = `esp-${direction}-${peer}`;
        const table = "ip hubspoke_lab_count";
        const [hook, match] =
            direction === "out"
                ? ["postrouting", `ip daddr ${this.region(peer).elasticIp}`]
                : ["prerouting", `ip saddr ${this.region(peer).elasticIp}`];
        // One shell: add the counter unless it is there, then list them (processes cost in the VM).
        const out = sh([
            "ip",
            "netns",
            "exec",
            r.ns.gw,
            "sh",
            "-c",
            `nft list table ${table} 2>/dev/null | grep -q '"${tag}"' || nft -f - <<'EOF'\n` +
                `table ${table} {\n chain ${hook} { type filter hook ${hook} priority -400; policy accept; }\n}\n` +
                `add rule ${table} ${hook} ${match} udp dport 4500 @th,64,32 != 0 counter comment "${tag}"\nEOF\n` +
                `nft list table ${table}`,
        ]).out;
        const m = new RegExp(`counter packets (\\d+) bytes (\\d+) comment "${tag}"`).exec(out);
        if (!m) {
            throw new Error(`lab: no ESP counter ${tag} on ${region}'s gateway: ${out.trim()}`);
        }
        return { packets: Number(m[1]), bytes: Number(m[2]) };
    }

    /** The MSS the gateway's kernel clamps forwarded SYNs to, read from its live ruleset; undefined when none. */
    mssClamp(region: string): number | undefined {
        const r = this.region(region);
        const out = sh(["ip", "netns", "exec", r.ns.gw, "nft", "list", "table", "inet", "hubspoke_mss"], { allowFail: true });
        const m = out.ok ? /tcp option maxseg size set (\d+)/.exec(out.out) : null;
        return m ? Number(m[1]) : undefined;
    }

    /**
     * Makes a workload host forget any path MTU it learned (routing exceptions and TCP metrics), so
     * that the next connection starts from the link's MTU.
     */
    forgetPathMtu(region: string): void {
        const r = this.region(region);
        sh(["ip", "-n", r.ns.host, "route", "flush", "cache"]);
        sh(["ip", "-n", r.ns.host, "tcp_metrics", "flush", "all"], { allowFail: true });
    }

    /**
     * Sends `bytes` over one fresh TCP connection from the workload host of `from` to that of `to`
     * (node at both ends, in the hosts' namespaces), giving up after `deadlineSeconds`.
     */
    async transfer(from: string, to: string, bytes: number, deadlineSeconds: number): Promise<TransferResult> {
        const sender = this.region(from);
        const receiver = this.region(to);
        const port = String(5201 + this.transfers++);
        const run = (ns: string, script: string, args: string[]) => {
            const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", script, ...args], {
                stdio: ["ignore", "pipe", "pipe"],
            });
            let out = "";
            child.stdout.setEncoding("utf8").on("data", (text: string) => {
                out += text;
            });
            child.stderr.setEncoding("utf8").on("data", (text: string) => {
                out += text;
            });
            const exited = new Promise<void>((done) => child.on("close", () => done()));
            return { child, output: () => out, exited };
        };
        /** The last JSON line a side printed. */
        const result = (text: string): Record<string, unknown> => {
            const line = text
                .split("\n")
                .reverse()
                .find((l) => l.startsWith("{"));
            return line ? JSON.parse(line) : {};
        };
        const server = run(receiver.ns.host, TRANSFER_SERVER, [receiver.host.ip, port, String(bytes)]);
        try {
            // node starts slowly under the VM's emulation: wait for the receiver to listen.
            const listening = await this.waitFor(() => server.output().includes("listening") || server.child.exitCode !== null, 60);
            if (listening === undefined || !server.output().includes("listening")) {
                throw new Error(`lab: the transfer's receiver in ${receiver.ns.host} did not start: ${server.output().trim()}`);
            }
            const client = run(sender.ns.host, TRANSFER_CLIENT, [receiver.host.ip, port, String(bytes), String(deadlineSeconds)]);
            const kill = setTimeout(() => client.child.kill("SIGKILL"), (deadlineSeconds + 60) * 1000);
            await client.exited;
            clearTimeout(kill);
            if (server.child.exitCode === null) {
                server.child.kill("SIGTERM");
            }
            await Promise.race([server.exited, sleep(10_000)]);
            const c = result(client.output());
            const s = result(server.output());
            if (c.seconds === undefined) {
                throw new Error(`lab: the transfer's sender in ${sender.ns.host} failed: ${client.output().trim()}`);
            }
            return {
                completed: c.completed === true && s.completed === true,
                connected: c.connected === true,
                seconds: Math.round(Number(c.seconds) * 100) / 100,
                bytes: Number(s.bytes ?? 0),
                sent: bytes,
                deadlineSeconds,
                error: typeof c.error === "string" ? c.error : undefined,
            };
        } finally {
            if (server.child.exitCode === null && server.child.signalCode === null) {
                server.child.kill("SIGKILL");
            }
        }
    }

    /**
     * Runs the gateway's rendered agent in its namespace, as its units do (`boot`: the boot run, before
     * pluto; otherwise the timer's run), with the real AWS CLI against the lab's Parameter Store, which
     * it reaches through its VPC router and the Elastic IP's NAT, as on AWS. Returns what it logged.
     */
    async runAgent(region: string, options: { boot?: boolean; allowFail?: boolean } = {}): Promise<string> {
        const r = this.region(region);
        const child = spawn(
            "ip",
            ["netns", "exec", r.ns.gw, "bash", this.dir(r, GATEWAY_PATHS.agentScript), ...(options.boot ? ["--boot"] : [])],
            { env: this.gatewayEnv(r), stdio: ["ignore", "pipe", "pipe"] },
        );
        let out = "";
        child.stdout.on("data", (d) => (out += d));
        child.stderr.on("data", (d) => (out += d));
        const status = await new Promise<number | null>((done) => child.on("close", done));
        // Its journal, as journald keeps a unit's output: what hubspoke-events reads.
        fs.appendFileSync(this.dir(r, "agent.log"), out);
        if (status !== 0 && !options.allowFail) {
            throw new Error(`lab: hubspoke-agent${options.boot ? " --boot" : ""} on ${region} failed (${status}): ${out}`);
        }
        return out.trim();
    }

    /**
     * A gateway's scripts' environment: the lab's `aws` first on the PATH, talking to the lab's
     * endpoint only, with this gateway's own access key (its role, as the endpoint authorizes it).
     */
    private gatewayEnv(r: LabRegion): Record<string, string> {
        const bin = this.dir(r, "bin");
        if (!fs.existsSync(path.join(bin, "aws"))) {
            fs.mkdirSync(bin, { recursive: true });
            fs.symlinkSync(this.awsCli === "lite" ? AWS_LITE : AWS_CLI, path.join(bin, "aws"));
        }
        return {
            ...awsCliEnv(this.aws!.url),
            AWS_ACCESS_KEY_ID: labAccessKey(r.region),
            PATH: `${bin}:${process.env.PATH}`,
            HUBSPOKE_ENV: this.dir(r, GATEWAY_PATHS.env),
        };
    }

    /** Where a gateway's tunnel events go: its log group and stream, from its rendered settings. */
    private eventLog(r: LabRegion): { group: string; stream: string } {
        return eventLogOf(this.dir(r, GATEWAY_PATHS.env));
    }

    /** What hubspoke-events runs with in the lab: pluto's and the agent's logs as its journal (lab/fake-journal/journalctl). */
    private eventsEnv(r: LabRegion): Record<string, string> {
        return {
            ...this.gatewayEnv(r),
            HUBSPOKE_JOURNALCTL: LAB_JOURNALCTL,
            LAB_JOURNAL: `ipsec.service=${this.dir(r, "pluto.log")} hubspoke-agent.service=${this.dir(r, "agent.log")}`,
        };
    }

    /**
     * A gateway's instance replaced, in a site without a standby: the old one gone (pluto killed, its
     * events loop stopped, every file of it removed), then the new one from where its bootstrap leaves
     * it (the software installed: the rendered files, an empty NSS db, the sysctls and the MSS clamp),
     * its agent's boot run, and pluto with the conns the agent wrote. The network namespace (the
     * interface, its addresses and the Elastic IP's NAT) stays, as the network interface does on AWS.
     * Resolves once pluto runs; the caller times the tunnels.
     */
    async replaceGateway(region: string): Promise<void> {
        const r = this.region(region);
        await this.killPluto(region);
        const shipper = this.shippers.get(region);
        shipper?.kill("SIGKILL");
        await this.prepareGateway(r);
        await this.startPluto(region);
        if (shipper) this.shippers.set(region, startEventShipper(r.ns.gw, this.dir(r), this.eventsEnv(r)));
        this.log(`lab: gateway of ${region} replaced (new files, agent's boot run, pluto)`);
    }

    /**
     * Starts every gateway's hubspoke-events loop in its namespace, as hubspoke-events.service runs it
     * (every EVENTS.intervalSeconds). Without it, `shipEvents` runs it once when asked.
     */
    startEventShippers(): void {
        for (const r of this.topology.regions) {
            this.shippers.set(r.region, startEventShipper(r.ns.gw, this.dir(r), this.eventsEnv(r)));
        }
    }

    /** True while the gateways' hubspoke-events loops run (`startEventShippers`). */
    get shippingEvents(): boolean {
        return this.shippers.size > 0;
    }

    /** Runs `region`'s hubspoke-events once, as one turn of its loop. */
    shipEvents(region: string): void {
        const r = this.region(region);
        spawnSync("ip", ["netns", "exec", r.ns.gw, "bash", this.dir(r, GATEWAY_PATHS.eventsScript)], {
            env: this.eventsEnv(r),
            stdio: ["ignore", "ignore", fs.openSync(this.dir(r, "events.err"), "a")],
        });
    }

    /** The tunnel events `region`'s gateway has put to the lab's CloudWatch Logs, oldest first, with when CloudWatch took each. */
    events(region: string): LabTunnelEvent[] {
        const r = this.region(region);
        const { group, stream } = this.eventLog(r);
        return readLogEvents(this.ssmDir, r.awsRegion, group, stream).map((e) => ({
            ...JSON.parse(e.message),
            ingestionTime: e.ingestionTime,
        }));
    }

    /** The last value of `metric` that `region`'s gateway sent for `tunnel` to the lab's CloudWatch. */
    lastMetric(region: string, tunnel: string, metric: string): number | undefined {
        const sent = readMetrics(this.ssmDir).filter(
            (m) => m.metricName === metric && m.dimensions.Region === region && m.dimensions.Tunnel === tunnel,
        );
        return sent[sent.length - 1]?.value;
    }

    /** Runs the gateway's rendered `hubspoke-health` as its timer does: TunnelUp sent to the lab's CloudWatch. */
    sendHealth(region: string): void {
        const r = this.region(region);
        sh(["ip", "netns", "exec", r.ns.gw, "bash", this.dir(r, GATEWAY_PATHS.healthScript)], { env: this.gatewayEnv(r) });
    }

    /**
     * Runs the gateway's rendered `hubspoke-health --dry-run` against its pluto: per tunnel, the
     * TunnelUp value it would send to CloudWatch, and the lines it printed.
     */
    health(region: string): { values: Record<string, number>; lines: string[] } {
        const r = this.region(region);
        const out = sh(["ip", "netns", "exec", r.ns.gw, this.dir(r, GATEWAY_PATHS.healthScript), "--dry-run"], {
            env: { HUBSPOKE_ENV: this.dir(r, GATEWAY_PATHS.env) },
        }).out;
        const lines = out.split("\n").filter(Boolean);
        const values: Record<string, number> = {};
        for (const l of lines) {
            const m = / TunnelUp \S*Tunnel=(\S+) ([01])$/.exec(l);
            if (m) {
                values[m[1]] = Number(m[2]);
            }
        }
        return { values, lines };
    }

    /**
     * Cuts a region off the internet (its VPC router drops everything crossing its `wan` leg), as
     * when a gateway host dies; `false` reconnects it.
     */
    isolate(region: string, cut: boolean): void {
        const r = this.region(region);
        for (const dir of ["-i", "-o"]) {
            sh(["ip", "netns", "exec", r.ns.vpc, "iptables", cut ? "-I" : "-D", "FORWARD", dir, "wan", "-j", "DROP"]);
        }
    }

    /** The file of one of a gateway's desired-state parameters in the lab's Parameter Store. */
    parameterFile(region: string, tunnel: string, kind: "conf" | "secrets"): string {
        const g = this.region(region);
        return path.join(this.ssmDir, g.awsRegion + tunnelParameterNames(g.parameterPath, tunnel)[kind]);
    }

    /** Changes a parameter in place, as `pulumi up` would (the Parameter Store gives it a new version). */
    editParameter(region: string, tunnel: string, kind: "conf" | "secrets", edit: (value: string) => string): void {
        const file = this.parameterFile(region, tunnel, kind);
        fs.writeFileSync(file, edit(fs.readFileSync(file, "utf8")), { mode: 0o600 });
    }

    /** A tunnel's key in one gateway's secrets parameter. */
    key(region: string, tunnel: string): string {
        const value = fs.readFileSync(this.parameterFile(region, tunnel, "secrets"), "utf8");
        const m = /PSK "([^"]*)"/.exec(value);
        if (!m) throw new Error(`lab: no PSK in ${region}'s secrets parameter of ${tunnel}`);
        return m[1];
    }

    /** Sets a tunnel's key in one gateway's secrets parameter (a rotation, or a wrong key). */
    setKey(region: string, tunnel: string, key: string): void {
        this.editParameter(region, tunnel, "secrets", (line) => line.replace(/PSK "[^"]*"/, `PSK "${key}"`));
    }

    /**
     * Makes the Parameter Store hold exactly a render's parameters, as a `pulumi up` of that stack
     * leaves it: new ones appear, changed ones get new versions, removed ones disappear.
     */
    publish(renderDir: string = this.renderDir): void {
        const source = path.join(renderDir, "ssm");
        const files = (dir: string): string[] =>
            fs.existsSync(dir)
                ? (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => fs.statSync(path.join(dir, f)).isFile())
                : [];
        const wanted = new Set(files(source).filter((f) => !path.basename(f).startsWith(".")));
        for (const f of files(this.ssmDir).filter((f) => !path.basename(f).startsWith(".") && !wanted.has(f))) {
            fs.rmSync(path.join(this.ssmDir, f));
        }
        for (const f of [...wanted, ".types.json"]) {
            const to = path.join(this.ssmDir, f);
            const content = fs.readFileSync(path.join(source, f));
            if (!fs.existsSync(to) || !fs.readFileSync(to).equals(content)) {
                fs.mkdirSync(path.dirname(to), { recursive: true });
                fs.writeFileSync(to, content, { mode: 0o600 });
            }
        }
    }

    /** The secrets file a gateway's agent wrote for a tunnel. */
    secretsOf(region: string, tunnel: string): string {
        return fs.readFileSync(this.dir(this.region(region), GATEWAY_PATHS.ipsecDir, `${tunnel}.secrets`), "utf8");
    }

    /** The files in a gateway's ipsec.d (what its agent keeps there). */
    tunnelFiles(region: string): string[] {
        return fs.readdirSync(this.dir(this.region(region), GATEWAY_PATHS.ipsecDir)).sort();
    }

    /** The conns a gateway's pluto has loaded (`ipsec whack --status`). */
    conns(region: string): string[] {
        const out = this.whack(this.region(region), "--status");
        return [...new Set([...out.matchAll(/"([^"]+)":/g)].map((m) => m[1]))].sort();
    }

    /** Per tunnel, the serial numbers of its established IKE SAs on a gateway: a new IKE SA has a new one. */
    ikeSerials(region: string, tunnels: readonly string[]): Record<string, number[]> {
        const out = this.whack(this.region(region), "--showstates");
        const serials: Record<string, number[]> = Object.fromEntries(tunnels.map((t) => [t, []]));
        for (const m of out.matchAll(/#(\d+): "([^"]+)"\S* STATE_V2_ESTABLISHED_IKE_SA/g)) {
            serials[m[2]]?.push(Number(m[1]));
        }
        return serials;
    }

    /**
     * Starts pluto in the gateway's namespace as `ipsec.service` does: flush stale kernel state,
     * check the config, start pluto, then load every conn (auto=start ones initiate).
     */
    async startPluto(region: string): Promise<void> {
        const r = this.region(region);
        const ns = ["ip", "netns", "exec", r.ns.gw];
        this.flushKernelState(r);
        sh(["ipsec", "addconn", "--config", this.dir(r, "ipsec.conf"), "--checkconfig"]);
        for (const f of ["pluto.ctl", "pluto.pid"]) {
            fs.rmSync(this.dir(r, "run", f), { force: true });
        }
        const out = fs.openSync(this.dir(r, "pluto.stderr"), "a");
        const child = spawn(
            "ip",
            [
                ...ns.slice(1),
                "ipsec",
                "pluto",
                "--nofork",
                "--config",
                this.dir(r, "ipsec.conf"),
                "--rundir",
                this.dir(r, "run"),
                "--nssdir",
                this.dir(r, "nss"),
                "--ipsecdir",
                this.dir(r, "ipsecdir"),
                "--secretsfile",
                this.dir(r, "ipsec.secrets"),
                "--logfile",
                this.dir(r, "pluto.log"),
            ],
            { stdio: ["ignore", out, out] },
        );
        fs.closeSync(out);
        this.plutos.set(region, child);
        const ctl = this.dir(r, "run", "pluto.ctl");
        for (let i = 0; i < 100 && !fs.existsSync(ctl); i++) {
            if (child.exitCode !== null) {
                throw new Error(`lab: pluto of ${region} exited (${child.exitCode}): ${this.logTail(region)}`);
            }
            await sleep(100);
        }
        if (!fs.existsSync(ctl)) {
            throw new Error(`lab: pluto of ${region} did not open its control socket within 10 s`);
        }
        sh([...ns, "ipsec", "addconn", "--ctlsocket", ctl, "--config", this.dir(r, "ipsec.conf"), "--autoall"]);
        this.log(`lab: pluto of ${region} started (pid ${child.pid})`);
    }

    /** Clears the gateway's IPsec policies and SAs from the kernel, as ipsec.service does around pluto. */
    private flushKernelState(r: LabRegion): void {
        for (const table of ["policy", "state"]) {
            sh(["ip", "netns", "exec", r.ns.gw, "ip", "xfrm", table, "flush"], { allowFail: true });
        }
    }

    /** Kills a gateway's pluto with SIGKILL, as a crash would, and cleans up as systemd's ExecStopPost does. */
    async killPluto(region: string): Promise<void> {
        const child = this.plutos.get(region);
        if (!child || child.exitCode !== null) {
            return;
        }
        const r = this.region(region);
        // `ip netns exec` execs pluto in place, so the spawned pid is pluto's own.
        process.kill(child.pid!, "SIGKILL");
        for (let i = 0; i < 50 && child.exitCode === null && child.signalCode === null; i++) {
            await sleep(100);
        }
        this.flushKernelState(r);
        this.log(`lab: pluto of ${region} killed`);
    }

    private whack(r: LabRegion, ...args: string[]): string {
        return whackAt(r.ns.gw, this.dir(r, "run", "pluto.ctl"), ...args);
    }

    /** Asks `region`'s pluto to rekey `tunnel`'s Child SA now (`whack --rekey-ipsec`): a new SA, counters from 0. */
    rekeyChild(region: string, tunnel: string): void {
        this.whack(this.region(region), "--rekey-ipsec", "--name", tunnel);
    }

    /** The serials of `tunnel`'s established Child SAs on `region`'s pluto. */
    childSerials(region: string, tunnel: string): number[] {
        const out = this.whack(this.region(region), "--showstates");
        return [...out.matchAll(/#(\d+): "([^"]+)"\S* STATE_V2_ESTABLISHED_CHILD_SA/g)]
            .filter((m) => m[2] === tunnel)
            .map((m) => Number(m[1]));
    }

    /** Per conn name, what pluto on this gateway reports (`ipsec whack --showstates`). */
    states(region: string): Record<string, TunnelState> {
        const out = this.whack(this.region(region), "--showstates");
        const states: Record<string, { ike: boolean; child: boolean; natTraversal: boolean }> = {};
        for (const m of out.matchAll(/#\d+: "([^"]+)"(:\d+)? (STATE_\w+)/g)) {
            states[m[1]] ??= { ike: false, child: false, natTraversal: false };
            const s = states[m[1]];
            s.ike ||= m[3] === "STATE_V2_ESTABLISHED_IKE_SA";
            s.natTraversal ||= m[3] === "STATE_V2_ESTABLISHED_IKE_SA" && m[2] === ":4500";
            s.child ||= m[3] === "STATE_V2_ESTABLISHED_CHILD_SA";
        }
        return states;
    }

    /** Bytes through each tunnel's Child SA (`ipsec whack --trafficstatus`). */
    traffic(region: string): Record<string, { inBytes: number; outBytes: number }> {
        const out = this.whack(this.region(region), "--trafficstatus");
        const result: Record<string, { inBytes: number; outBytes: number }> = {};
        for (const m of out.matchAll(/"([^"]+)"\S*, type=ESP.*?inBytes=(\d+), outBytes=(\d+)/g)) {
            result[m[1]] ??= { inBytes: 0, outBytes: 0 };
            const t = result[m[1]];
            t.inBytes += Number(m[2]);
            t.outBytes += Number(m[3]);
        }
        return result;
    }

    /** Is the tunnel established at both ends, at the given layer? */
    established(tunnel: string, layer: "IKE" | "Child SA"): boolean {
        const t = this.topology.tunnels.find((x) => x.name === tunnel);
        if (!t) {
            throw new Error(`lab: no tunnel "${tunnel}"`);
        }
        return [t.hub, t.spoke].every((region) => {
            const s = this.states(region)[tunnel];
            return s !== undefined && (layer === "IKE" ? s.ike : s.ike && s.child);
        });
    }

    /**
     * Waits until the tunnel has settled: established at both ends (IKE and Child SA), and neither
     * pluto has logged a word about it for two liveness intervals (`dpddelay`) and 2 s more. When both
     * ends initiate at once, or after a pluto restarts, one end may drop an IKE SA without telling the
     * other; if that is the other end's newest, its liveness probe goes unanswered (logged as
     * retransmissions within a liveness interval and a half), and when retransmit-timeout runs out
     * pluto restarts every conn shared with that peer, the working one included. A quiet tunnel has
     * no such probe pending. Returns the seconds from now until the quiet began (0 if it already had),
     * or undefined on timeout.
     */
    async waitSettled(tunnel: string, timeoutSeconds: number): Promise<number | undefined> {
        const t = this.topology.tunnels.find((x) => x.name === tunnel);
        if (!t) {
            throw new Error(`lab: no tunnel "${tunnel}"`);
        }
        const conf = fs.readFileSync(this.dir(this.region(t.hub), "etc/ipsec.d", `${tunnel}.conf`), "utf8");
        const dpdDelay = Number(/^\s*dpddelay=(\d+)s?\s*$/m.exec(conf)?.[1] ?? 0);
        const quietMs = (2 * dpdDelay + 2) * 1000;
        const start = Date.now();
        /** When either pluto last logged a line about the tunnel (by its clock, this machine's). */
        const lastWord = () =>
            Math.max(
                ...[t.hub, t.spoke].map((region) => {
                    const line = this.logOf(region)
                        .split("\n")
                        .reverse()
                        .find((l) => l.includes(`"${tunnel}"`));
                    return (line && Lab.logTime(line)) || 0;
                }),
            );
        let quietSince = 0;
        const settled = await this.waitFor(() => {
            quietSince = lastWord();
            return Date.now() - quietSince >= quietMs && this.established(tunnel, "Child SA");
        }, timeoutSeconds);
        return settled === undefined ? undefined : Math.max(0, Math.round((quietSince - start) / 100) / 10);
    }

    /** Waits until `check` holds; returns the seconds it took, or undefined on timeout. */
    async waitFor(check: () => boolean, timeoutSeconds: number): Promise<number | undefined> {
        const start = process.hrtime.bigint();
        const elapsed = () => Number(process.hrtime.bigint() - start) / 1e9;
        while (elapsed() < timeoutSeconds) {
            if (check()) {
                return Math.round(elapsed() * 10) / 10;
            }
            await sleep(250);
        }
        return undefined;
    }

    /** Pings the workload host of `to` from the workload host of `from`. True when replies came back. */
    ping(from: string, to: string, count = 3): boolean {
        return pingOnce(this.region(from).ns.host, this.region(to).host.ip, count);
    }

    /**
     * Pings until replies come back or `withinSeconds` pass. Right after establishment both ends may
     * still be settling crossed initiations (each end starts the tunnel), and the VM is slow: a
     * working tunnel passes traffic within the window; a broken one never does.
     */
    async pingWithin(from: string, to: string, withinSeconds: number): Promise<boolean> {
        return (await this.waitFor(() => this.ping(from, to, 2), withinSeconds)) !== undefined;
    }

    /**
     * Starts pinging the workload host of `to` from the workload host of `from` every `intervalSeconds`
     * until stopped: a way to see whether traffic across a tunnel ever paused.
     */
    startPing(from: string, to: string, intervalSeconds = 0.2): { stop(): Promise<PingRun> } {
        return pingUntilStopped(this.region(from).ns.host, this.region(to).host.ip, intervalSeconds);
    }

    /** pluto's log of a gateway. */
    logOf(region: string): string {
        const file = this.dir(this.region(region), "pluto.log");
        return fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    }

    /**
     * When pluto logged a line (its log has no year: this year is assumed), in ms since the epoch.
     * Lets the scenario time what pluto did, not how fast the lab polled it.
     */
    static logTime(line: string): number | undefined {
        const m = /^([A-Z][a-z]{2}) +(\d+) (\d\d):(\d\d):(\d\d)\.(\d+)/.exec(line);
        if (!m) {
            return undefined;
        }
        const month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].indexOf(m[1]);
        const ms = Number(m[6].padEnd(6, "0").slice(0, 6)) / 1000;
        return new Date(new Date().getFullYear(), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), ms).getTime();
    }

    logTail(region: string, lines = 15): string {
        return this.logOf(region).split("\n").slice(-lines).join("\n");
    }

    /** Stops every pluto and removes every namespace of this lab (also ones a crashed run left). Idempotent. */
    down(): void {
        for (const child of [...this.plutos.values(), ...this.shippers.values()]) {
            if (child.exitCode === null && child.signalCode === null) {
                try {
                    child.kill("SIGKILL");
                } catch {
                    // already gone
                }
            }
        }
        this.plutos.clear();
        this.shippers.clear();
        removeNamespaces(`${this.topology.id}-`);
        if (this.isUp) {
            this.log(`lab ${this.topology.id}: torn down`);
        }
        this.isUp = false;
    }
}
