/**
 * The libreswan lab: the rendered topology on this machine, in network namespaces, with one real
 * `pluto` per gateway running exactly the rendered files. Needs root, iproute2, iptables and libreswan.
 *
 * Everything lives in namespaces named `<id>-*` and in `workDir`; `down()` removes all of it.
 * Traffic stays inside those namespaces: the "internet" is a bridge in `<id>-inet`.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
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

function sh(
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

/** This directory, from source or from bin/lab (the fake AWS CLI lives here, not in bin/). */
const LAB_DIR = fs.existsSync(path.join(__dirname, "fake-aws")) ? __dirname : path.join(__dirname, "..", "..", "lab");

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

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
        ["ping", "iputils-ping"],
        ["certutil", "libnss3-tools"],
    ]) {
        if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
            return `${tool} is not installed (apt-get install -y ${pkg}; scripts/install-system-deps.sh does it)`;
        }
    }
    return undefined;
}

export class Lab {
    readonly topology: LabTopology;
    /** The key parameters of the render, by AWS region and name. */
    readonly parameters: readonly { readonly awsRegion: string; readonly name: string }[];
    private readonly plutos = new Map<string, ChildProcess>();
    private isUp = false;

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
    ) {
        const plan = JSON.parse(fs.readFileSync(path.join(renderDir, "plan.json"), "utf8")) as LabPlan & { secrets?: string };
        if (plan.secrets !== "revealed") {
            throw new Error(`lab: ${renderDir} was rendered with keys redacted; render with --reveal-secrets`);
        }
        this.topology = labTopology(plan, id);
        this.parameters = plan.parameters;
    }

    region(name: string): LabRegion {
        const r = this.topology.regions.find((x) => x.region === name);
        if (!r) {
            throw new Error(`lab: no region "${name}"`);
        }
        return r;
    }

    /** Builds the namespaces, links, routes and NAT, and prepares each gateway's files. */
    up(): void {
        this.down();
        this.isUp = true;
        try {
            fs.rmSync(this.ssmDir, { recursive: true, force: true });
            fs.cpSync(path.join(this.renderDir, "ssm"), this.ssmDir, { recursive: true });
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
            for (const r of this.topology.regions) {
                this.prepareGateway(r);
            }
        } catch (e) {
            this.down();
            throw e;
        }
        this.log(`lab ${this.topology.id}: ${this.topology.regions.length} regions up (namespaces ${this.topology.id}-*)`);
    }

    /** True when this kernel installs ESP SAs (a full kernel, or the lab's VM); false on kernels without ESP. */
    kernelHasEsp(): boolean {
        sh(["modprobe", "-q", "esp4"], { allowFail: true });
        const addState = (spi: string, algorithm: string[]) =>
            sh(
                [
                    "ip",
                    "netns",
                    "exec",
                    this.topology.inetNs,
                    ...`ip xfrm state add src 192.0.2.1 dst 192.0.2.2 proto esp spi ${spi}`.split(" "),
                    ...algorithm,
                ],
                { allowFail: true },
            );
        const probe = addState("0x100", ["enc", "cbc(aes)", `0x${"11".repeat(16)}`, "auth", "hmac(sha256)", `0x${"22".repeat(32)}`]);
        // Load the AEAD our first ESP proposal uses now, rather than during the first Child SA (slow under emulation).
        addState("0x101", ["aead", "rfc4106(gcm(aes))", `0x${"33".repeat(36)}`, "128"]);
        sh(["ip", "netns", "exec", this.topology.inetNs, "ip", "xfrm", "state", "flush"], { allowFail: true });
        return probe.ok;
    }

    private dir(r: LabRegion, ...parts: string[]): string {
        return path.join(this.workDir, r.region, ...parts);
    }

    /** The lab's SSM Parameter Store: a copy of the render's ssm/ tree, read by lab/fake-aws/aws. */
    private get ssmDir(): string {
        return path.join(this.workDir, "ssm");
    }

    /**
     * Copies the rendered files except the secrets, writes pluto's config around them, creates the
     * NSS db, applies the rendered sysctls, and runs the rendered boot script that fetches the keys.
     */
    private prepareGateway(r: LabRegion): void {
        fs.rmSync(this.dir(r), { recursive: true, force: true });
        for (const d of ["run", "nss", "ipsecdir"]) {
            fs.mkdirSync(this.dir(r, d), { recursive: true });
        }
        for (const d of ["etc", "usr"]) {
            fs.cpSync(path.join(this.renderDir, r.region, d), this.dir(r, d), { recursive: true });
        }
        // The secrets files are the boot script's job, as on the instance.
        for (const f of fs.readdirSync(this.dir(r, "etc/ipsec.d")).filter((f) => f.endsWith(".secrets"))) {
            fs.rmSync(this.dir(r, "etc/ipsec.d", f));
        }
        fs.writeFileSync(
            this.dir(r, "ipsec.conf"),
            // As /etc/ipsec.conf on Amazon Linux: `config setup`, then the rendered conns by include.
            `config setup\n    logfile=${this.dir(r, "pluto.log")}\n\ninclude ${this.dir(r, "etc/ipsec.d")}/*.conf\n`,
        );
        fs.writeFileSync(this.dir(r, "ipsec.secrets"), `include ${this.dir(r, "etc/ipsec.d")}/*.secrets\n`, { mode: 0o600 });
        sh(["certutil", "-N", "-d", `sql:${this.dir(r, "nss")}`, "--empty-password"]);
        sh(["ip", "netns", "exec", r.ns.gw, "sysctl", "-q", "-p", this.dir(r, "etc/sysctl.d/90-hubspoke-vpn.conf")]);
        this.fetchKeys(r.region);
    }

    /**
     * Runs the gateway's rendered `hubspoke-psk` (the boot script, or with `reload` the refresh timer's
     * run) against the lab's Parameter Store, with the lab's paths and pluto's control socket.
     */
    fetchKeys(region: string, reload = false): string {
        const r = this.region(region);
        const result = spawnSync(
            "ip",
            ["netns", "exec", r.ns.gw, this.dir(r, "usr/local/sbin/hubspoke-psk"), ...(reload ? ["--reload"] : [])],
            {
                encoding: "utf8",
                timeout: 60_000,
                env: {
                    ...process.env,
                    PATH: `${path.join(LAB_DIR, "fake-aws")}:${process.env.PATH}`,
                    LAB_SSM_DIR: this.ssmDir,
                    HUBSPOKE_TUNNELS: this.dir(r, "etc/hubspoke-vpn/tunnels"),
                    HUBSPOKE_IPSEC_D: this.dir(r, "etc/ipsec.d"),
                    HUBSPOKE_CTLSOCKET: this.dir(r, "run", "pluto.ctl"),
                    HUBSPOKE_MAX_ATTEMPTS: "3",
                    HUBSPOKE_BACKOFF_MAX: "1",
                    HUBSPOKE_STATE_DIR: this.dir(r, "state"),
                    // The lab runs both ends' refresh back to back, so the peer already has the key.
                    HUBSPOKE_REAUTH_DELAY: "0",
                },
            },
        );
        if (result.status !== 0) {
            throw new Error(`lab: hubspoke-psk on ${region} failed: ${result.stderr}`);
        }
        return result.stderr;
    }

    /**
     * Runs the gateway's rendered `hubspoke-health --dry-run` against its pluto: per tunnel, the
     * TunnelUp value it would send to CloudWatch, and the lines it printed.
     */
    health(region: string): { values: Record<string, number>; lines: string[] } {
        const r = this.region(region);
        const out = sh(["ip", "netns", "exec", r.ns.gw, this.dir(r, "usr/local/sbin/hubspoke-health"), "--dry-run"], {
            env: {
                HUBSPOKE_HEALTH_CONF: this.dir(r, "etc/hubspoke-vpn/health.conf"),
                HUBSPOKE_TUNNELS: this.dir(r, "etc/hubspoke-vpn/tunnels"),
                HUBSPOKE_CTLSOCKET: this.dir(r, "run", "pluto.ctl"),
            },
        }).out;
        const lines = out.split("\n").filter(Boolean);
        const values: Record<string, number> = {};
        for (const l of lines) {
            const m = /Tunnel=(\S+) ([01])$/.exec(l);
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

    /** Sets a tunnel's key in the lab's Parameter Store, in one region (rotation, or a wrong key). */
    setParameter(awsRegion: string, tunnel: string, key: string): void {
        const file = this.parameterFile(awsRegion, tunnel);
        fs.writeFileSync(file, key + "\n", { mode: 0o600 });
    }

    /** The file holding a tunnel's key parameter in one region of the lab's Parameter Store. */
    parameterFile(awsRegion: string, tunnel: string): string {
        const found = this.parameters.find((p) => p.awsRegion === awsRegion && p.name.includes(`/${tunnel}/`));
        if (!found) {
            throw new Error(`lab: no key parameter for ${tunnel} in ${awsRegion}`);
        }
        return path.join(this.ssmDir, found.awsRegion + found.name);
    }

    /** The secrets file a gateway's boot script wrote for a tunnel. */
    secretsOf(region: string, tunnel: string): string {
        return fs.readFileSync(this.dir(this.region(region), "etc/ipsec.d", `${tunnel}.secrets`), "utf8");
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
        const ctl = this.dir(r, "run", "pluto.ctl");
        if (!fs.existsSync(ctl)) {
            return "";
        }
        return sh(["ip", "netns", "exec", r.ns.gw, "ipsec", "whack", "--ctlsocket", ctl, ...args], { allowFail: true, timeoutMs: 5000 })
            .out;
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
        return sh(
            [
                "ip",
                "netns",
                "exec",
                this.region(from).ns.host,
                "ping",
                "-n",
                "-q",
                "-c",
                String(count),
                "-i",
                "0.2",
                "-W",
                "1",
                this.region(to).host.ip,
            ],
            {
                allowFail: true,
                timeoutMs: 15_000,
            },
        ).ok;
    }

    /**
     * Pings until replies come back or `withinSeconds` pass. Right after establishment both ends may
     * still be settling crossed initiations (each end starts the tunnel), and the VM is slow: a
     * working tunnel passes traffic within the window; a broken one never does.
     */
    async pingWithin(from: string, to: string, withinSeconds: number): Promise<boolean> {
        return (await this.waitFor(() => this.ping(from, to, 2), withinSeconds)) !== undefined;
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
        for (const child of this.plutos.values()) {
            if (child.exitCode === null && child.signalCode === null) {
                try {
                    child.kill("SIGKILL");
                } catch {
                    // already gone
                }
            }
        }
        this.plutos.clear();
        const prefix = `${this.topology.id}-`;
        const list = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? "";
        for (const ns of list
            .split("\n")
            .map((l) => l.split(" ")[0])
            .filter((n) => n.startsWith(prefix))) {
            // Anything still running inside (a pluto whose parent died) goes with it.
            const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout ?? "";
            for (const pid of pids.split("\n").filter(Boolean)) {
                try {
                    process.kill(Number(pid), "SIGKILL");
                } catch {
                    // already gone
                }
            }
            execFileSync("ip", ["netns", "del", ns]);
        }
        if (this.isUp) {
            this.log(`lab ${this.topology.id}: torn down`);
        }
        this.isUp = false;
    }
}
