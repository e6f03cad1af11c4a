/**
 * The lab for a stack whose sites have a standby (Pulumi.prod-ha.yaml): per site a VPC router,
 * both gateways, each in its own subnet and namespace, and a workload host; the lab's AWS stand-in
 * with Parameter Store and a fake EC2 control plane (lab/fake-aws/endpoint.mjs --ec2-state), whose
 * AssociateAddress and ReplaceRoute rewrite the VPC router's 1:1 NAT and route tables after about
 * a second, as AWS does. Each gateway runs the rendered hubspoke-agent (boot run) and the rendered
 * hubspoke-failover, which starts and stops its pluto: nothing here decides who is active.
 *
 * Per site, namespaces `<id>-<site>-vpc` (router; route table k of the VPC is kernel table 101+k,
 * selected by source subnet as AWS's subnet associations do), `<id>-<site>-gw` (primary),
 * `<id>-<site>-sb` (standby) and `<id>-<site>-host`; one `<id>-inet` joins the routers' internet legs.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { HandoverClients, PairGateway } from "../components/gatewayHandover";
import { formatIp, parseCidr } from "../config/cidr";
import { drainParameterName, GATEWAY_PATHS } from "../gateway/contract";
import type { Plan, PlanGateway, PlanPairGateway } from "../harness/snapshot";
import { AWS_LAB, awsCliEnv, type FakeAws, LAB_JOURNALCTL, readEc2State, readLogEvents, readMetrics, startFakeAws } from "./fakeAws";
import { type CallerView, LAB_OPERATOR, LabIam, labAccessKey } from "./iam";
import {
    eventLogOf,
    type LabTunnelEvent,
    type PingRun,
    pingOnce,
    pingUntilStopped,
    prepareGatewayFiles,
    removeNamespaces,
    sh,
    sleep,
    startEventShipper,
    whackAt,
} from "./lab";
import { allEstablishedAt } from "./pluto-log";
import { LAB_MTU } from "./topology";

/**
 * The standbys' slow round in the lab (StandbyReady with its dry runs, ending stray negotiations):
 * half of an instance's minute (FAILOVER.metricIntervalSeconds), so that the scenario's wait for a
 * round is shorter; not shorter still, as each round's metric costs a Python start in the VM.
 */
export const LAB_STANDBY_ROUND_SECONDS = 30;

/** How long each of the lab's EC2 calls takes (the change applied first, then the answer), as about on AWS. */
export const LAB_EC2_LATENCY_MS = 1000;

/**
 * The operator's side (components/gatewayHandover: the AWS SDK's clients and Pulumi's SDK), loaded
 * when first asked for: only the planned handovers need it, and under the VM's emulation loading it
 * takes seconds (every lab run in the VM loads this module, the failover scenario or not).
 */
export function operatorSide(): Promise<typeof import("../components/gatewayHandover")> {
    operatorModule ??= import("../components/gatewayHandover");
    return operatorModule;
}
let operatorModule: Promise<typeof import("../components/gatewayHandover")> | undefined;

/** The interpreter aws-lite's #! line names. */
const SYSTEM_PYTHON = "/usr/bin/python3";

/** One gateway of a pair, placed in the lab. */
export interface LabPairGateway extends PlanPairGateway {
    readonly site: string;
    readonly ns: string;
    readonly prefix: number;
    readonly router: string;
    /** The router's interface towards it. */
    readonly routerPort: string;
}

export interface LabSite {
    readonly plan: PlanGateway;
    readonly name: string;
    readonly ns: { readonly vpc: string; readonly host: string };
    readonly host: { readonly ip: string; readonly prefix: number; readonly router: string; readonly onVpnSubnet: boolean };
    readonly gateways: readonly [LabPairGateway, LabPairGateway];
}

function cidr(text: string) {
    const c = parseCidr(text);
    if (typeof c === "string") {
        throw new Error(`lab: "${text}" ${c}`);
    }
    return c;
}

export class FailoverLab {
    readonly sites: LabSite[];
    readonly inetNs: string;
    readonly api: { ip: string; port: number };
    private readonly plan: Plan;
    private aws?: FakeAws;
    private readonly daemons = new Map<string, ChildProcess>();
    /** The gateways' hubspoke-events loops, once `startEventShippers` was called (and after each revive). */
    private readonly shippers = new Map<string, ChildProcess>();
    private shipping = false;
    /** Each gateway's rendered role policies: the lab's AWS endpoint authorizes its calls with them. */
    readonly iam: LabIam;

    constructor(
        readonly renderDir: string,
        readonly workDir: string,
        readonly id: string,
        private readonly log: (line: string) => void = () => undefined,
    ) {
        this.plan = JSON.parse(fs.readFileSync(path.join(renderDir, "plan.json"), "utf8")) as Plan;
        if (this.plan.secrets !== "revealed") {
            throw new Error(`lab: ${renderDir} was rendered with keys redacted; render with --reveal-secrets`);
        }
        if (!this.plan.gateways.every((g) => g.failover)) {
            throw new Error("lab: the failover lab needs a standby in every site (Pulumi.prod-ha.yaml)");
        }
        this.inetNs = `${id}-inet`;
        this.api = { ip: `${this.plan.gateways[0].elasticIp.split(".").slice(0, 3).join(".")}.254`, port: 8080 };
        this.sites = this.plan.gateways.map((g) => {
            const hostSubnet = cidr(g.workloadSubnets[0] ?? g.vpnSubnet);
            const gateways = g.failover!.gateways.map((p, i): LabPairGateway => {
                const subnet = cidr(p.subnet);
                return {
                    ...p,
                    site: g.region,
                    ns: `${id}-${g.region}-${i === 0 ? "gw" : "sb"}`,
                    prefix: subnet.prefix,
                    router: formatIp(subnet.network + 1),
                    routerPort: i === 0 ? "gwa" : "gwb",
                };
            }) as [LabPairGateway, LabPairGateway];
            return {
                plan: g,
                name: g.region,
                ns: { vpc: `${id}-${g.region}-vpc`, host: `${id}-${g.region}-host` },
                host: {
                    ip: formatIp(hostSubnet.network + 20),
                    prefix: hostSubnet.prefix,
                    router: formatIp(hostSubnet.network + 1),
                    onVpnSubnet: g.workloadSubnets.length === 0,
                },
                gateways,
            };
        });
        this.iam = new LabIam(
            workDir,
            this.sites.flatMap((s) =>
                s.gateways.map((g, i) => {
                    if (!g.iamPolicies) {
                        throw new Error(
                            `lab: ${renderDir}/plan.json has no iamPolicies for ${g.name} (rendered by an older version): render again`,
                        );
                    }
                    const view: CallerView = {
                        name: g.name,
                        kind: "pair",
                        parameterPath: g.parameterPath,
                        networkInterfaceId: g.networkInterfaceId,
                        partnerNetworkInterfaceId: s.gateways[1 - i].networkInterfaceId,
                        allocationId: s.plan.failover!.allocationId,
                        routeTableIds: s.plan.failover!.routeTables.map((t) => t.id),
                        layoutParameter: s.plan.failover!.layoutParameter,
                    };
                    return { name: g.name, policies: g.iamPolicies, view };
                }),
            ),
        );
    }

    site(name: string): LabSite {
        const s = this.sites.find((x) => x.name === name);
        if (!s) {
            throw new Error(`lab: no site "${name}"`);
        }
        return s;
    }

    gateway(name: string): LabPairGateway {
        const g = this.sites.flatMap((s) => s.gateways).find((x) => x.name === name);
        if (!g) {
            throw new Error(`lab: no gateway "${name}"`);
        }
        return g;
    }

    private dir(g: LabPairGateway, ...parts: string[]): string {
        return path.join(this.workDir, g.name, ...parts);
    }

    private get ec2StateFile(): string {
        return path.join(this.workDir, "ec2.json");
    }

    /** The endpoint's unix socket, for the operator's calls from outside the lab's namespaces. */
    private get apiSocket(): string {
        return path.join(this.workDir, "aws.sock");
    }

    private get ssmDir(): string {
        return path.join(this.workDir, "ssm");
    }

    /** Namespaces, links, router tables and NAT chains, the AWS stand-in, then every gateway's boot and failover script. */
    async up(): Promise<void> {
        this.down();
        fs.mkdirSync(this.workDir, { recursive: true });
        try {
            warmKernelModules();
            this.buildNetwork();
            fs.rmSync(this.ssmDir, { recursive: true, force: true });
            fs.cpSync(path.join(this.renderDir, "ssm"), this.ssmDir, { recursive: true });
            fs.writeFileSync(this.ec2StateFile, JSON.stringify(this.initialEc2State(), null, 2));
            this.iam.write();
            // The endpoint starts (seconds in the VM) while the gateways' files are written.
            const starting = startFakeAws(this.ssmDir, {
                iam: this.iam.file,
                netns: this.inetNs,
                host: this.api.ip,
                port: this.api.port,
                log: path.join(this.workDir, "aws-requests.log"),
                ec2State: this.ec2StateFile,
                ec2LatencyMs: LAB_EC2_LATENCY_MS,
                unixSocket: this.apiSocket,
            });
            starting.catch(() => undefined); // awaited below
            // The primaries first: the scenario waits for them.
            const all = [0, 1].flatMap((i) => this.sites.map((s) => s.gateways[i]));
            for (const g of all) {
                this.prepareGateway(g);
            }
            this.aws = await starting;
            if (this.aws.url !== this.awsUrl) {
                throw new Error(`lab: the AWS endpoint listens on ${this.aws.url}, not ${this.awsUrl}`);
            }
            // Each gateway's log stream, as the program creates it.
            for (const g of all) {
                const { group, stream } = this.eventLog(g);
                this.aws.logStream(this.site(g.site).plan.awsRegion, group, stream);
            }
            // Each gateway as its instance boots: the agent's boot run, ipsec.service (pluto, warm: conns
            // loaded, none started), then hubspoke-failover. All settled before a failure is thrown, so
            // that nothing starts after the teardown.
            const booted = await Promise.allSettled(
                all.map(async (g) => {
                    await this.bootAgent(g);
                    await this.startPluto(g);
                    this.startDaemon(g);
                }),
            );
            const failed = booted.find((b) => b.status === "rejected");
            if (failed) {
                throw failed.reason;
            }
        } catch (e) {
            this.down();
            throw e;
        }
        this.log(`lab ${this.id}: ${this.sites.length} sites with two gateways each (namespaces ${this.id}-*)`);
    }

    private buildNetwork(): void {
        const root = [`netns add ${this.inetNs}`];
        const ip: Record<string, string[]> = {
            [this.inetNs]: [
                "link set lo up",
                `link add inet mtu ${LAB_MTU.internet} type bridge`,
                "link set inet up",
                `addr add ${this.api.ip}/24 dev inet`,
            ],
        };
        const iptables: Record<string, string> = {};
        for (const [i, s] of this.sites.entries()) {
            this.siteNetwork(s, i, root, ip, iptables);
        }
        // One shell runs it all: in the VM every process this one starts costs a few tenths of a second (the
        // lab's node is large to fork), a shell's own children much less (2.8 s for all of it, 7.7 s before).
        const script = [
            "set -e",
            ...heredoc("ip -batch -", root),
            ...Object.entries(ip).flatMap(([ns, lines]) => heredoc(`ip -n ${ns} -batch -`, lines)),
            ...this.sites.flatMap((s) => [
                `ip netns exec ${s.ns.vpc} sysctl -q -w net.ipv4.ip_forward=1`,
                // AWS's VPC router sends no ICMP redirect. A Linux router does, per interface (`all` alone does
                // not stop it): the hub's host, on the primary's subnet, would then send straight to the primary
                // for five minutes, and lose every packet once the primary is dead.
                `ip netns exec ${s.ns.vpc} sh -c 'for f in /proc/sys/net/ipv4/conf/*/send_redirects; do echo 0 >$f; done'`,
                ...heredoc(`ip netns exec ${s.ns.vpc} iptables-restore`, iptables[s.ns.vpc].trimEnd().split("\n")),
            ]),
        ];
        sh(["bash", "-c", script.join("\n")]);
    }

    /**
     * One site's part of the network: its namespaces, links and addresses (`root`, `ip`), the VPC's
     * route tables selected by source subnet, and the VPC router's filters (`iptables`).
     */
    private siteNetwork(s: LabSite, i: number, root: string[], ip: Record<string, string[]>, iptables: Record<string, string>): void {
        const jumbo = LAB_MTU.vpc;
        const [a, b] = s.gateways;
        for (const ns of [s.ns.vpc, s.ns.host, a.ns, b.ns]) {
            root.push(`netns add ${ns}`);
            ip[ns] = ["link set lo up"];
        }
        const vpc = ip[s.ns.vpc];
        root.push(`link add wan netns ${s.ns.vpc} type veth peer name r${i} netns ${this.inetNs}`);
        ip[this.inetNs].push(`link set r${i} mtu ${LAB_MTU.internet} master inet up`);
        vpc.push(`link set wan mtu ${LAB_MTU.internet} up`);
        for (const address of [s.plan.elasticIp, a.managementIp, b.managementIp]) {
            vpc.push(`addr add ${address}/24 dev wan`);
        }
        for (const [g, bridge] of [
            [a, "vpn"],
            [b, "vpn2"],
        ] as const) {
            vpc.push(
                `link add ${bridge} mtu ${jumbo} type bridge`,
                `addr add ${g.router}/${g.prefix} dev ${bridge}`,
                `link set ${bridge} up`,
            );
            root.push(`link add eth0 netns ${g.ns} type veth peer name ${g.routerPort} netns ${s.ns.vpc}`);
            vpc.push(`link set ${g.routerPort} mtu ${jumbo} master ${bridge} up`);
            ip[g.ns].push(
                `addr add ${g.privateIp}/${g.prefix} dev eth0`,
                `link set eth0 mtu ${jumbo} up`,
                `route add default via ${g.router}`,
            );
        }
        if (!s.host.onVpnSubnet) {
            vpc.push(`link add wl mtu ${jumbo} type bridge`, `addr add ${s.host.router}/${s.host.prefix} dev wl`, "link set wl up");
        }
        root.push(`link add eth0 netns ${s.ns.host} type veth peer name host netns ${s.ns.vpc}`);
        vpc.push(`link set host mtu ${jumbo} master ${s.host.onVpnSubnet ? "vpn" : "wl"} up`);
        ip[s.ns.host].push(
            `addr add ${s.host.ip}/${s.host.prefix} dev eth0`,
            `link set eth0 mtu ${jumbo} up`,
            `route add default via ${s.host.router}`,
        );
        // AWS's subnet associations: a packet from a subnet is routed by its table (kernel table 101+k);
        // what a table has no route for falls through to the VPC's local routes.
        s.plan.failover!.routeTables.forEach((t, k) => {
            for (const subnet of t.subnets) {
                vpc.push(`rule add from ${subnet} lookup ${101 + k} priority ${100 + k}`);
            }
        });
        iptables[s.ns.vpc] = this.routerFilters(s);
    }

    /**
     * A site's VPC router's filters (its Elastic IPs' NAT is the fake EC2's, an nftables table): the chain where the lab
     * cuts the link between the two gateways, AWS's refusal of traffic from an address without an
     * Elastic IP, and the security groups' drop of ICMP "fragmentation needed" to the gateways.
     */
    private routerFilters(s: LabSite): string {
        const [a, b] = s.gateways;
        const gatewayAddresses = [a.privateIp, a.siteIp, b.privateIp, b.siteIp];
        return [
            "*filter",
            // Where the lab cuts the link between a site's two gateways.
            ":HUBSPOKE-CUT - [0:0]",
            "-A FORWARD -j HUBSPOKE-CUT",
            // As on AWS, a packet that left a VPC from an address without an Elastic IP gets no further.
            `-A FORWARD -i wan ! -s ${this.api.ip.replace(/\.254$/, ".0")}/24 -j DROP`,
            ...gatewayAddresses.flatMap((g) => [
                `-A OUTPUT -d ${g} -p icmp --icmp-type fragmentation-needed -j DROP`,
                `-A FORWARD -d ${g} -p icmp --icmp-type fragmentation-needed -j DROP`,
            ]),
            "COMMIT",
            "",
        ].join("\n");
    }

    /** As after `pulumi up`: each gateway's own Elastic IP on its private IP; the site's on no gateway yet; routes to the primary. */
    private initialEc2State() {
        return {
            addresses: this.sites.flatMap((s) => [
                {
                    allocationId: s.plan.failover!.allocationId,
                    publicIp: s.plan.elasticIp,
                    awsRegion: s.plan.awsRegion,
                    netns: s.ns.vpc,
                    networkInterfaceId: null,
                    privateIpAddress: null,
                    associationId: null,
                },
                ...s.gateways.map((g) => ({
                    allocationId: `${g.name}-mgmt-alloc`,
                    publicIp: g.managementIp,
                    awsRegion: s.plan.awsRegion,
                    netns: s.ns.vpc,
                    networkInterfaceId: g.networkInterfaceId,
                    privateIpAddress: g.privateIp,
                    associationId: `${g.name}-mgmt-assoc`,
                })),
            ]),
            networkInterfaces: this.sites.flatMap((s) =>
                s.gateways.map((g) => ({
                    networkInterfaceId: g.networkInterfaceId,
                    awsRegion: s.plan.awsRegion,
                    privateIpAddresses: [g.privateIp, g.siteIp],
                    nextHop: g.privateIp,
                })),
            ),
            routeTables: this.sites.flatMap((s) =>
                s.plan.failover!.routeTables.map((t, k) => ({
                    routeTableId: t.id,
                    awsRegion: s.plan.awsRegion,
                    netns: s.ns.vpc,
                    table: 101 + k,
                    routes: s.plan.routesToGateway.map((d) => ({
                        destinationCidrBlock: d,
                        networkInterfaceId: s.gateways[0].networkInterfaceId,
                    })),
                })),
            ),
        };
    }

    /** The URL of the lab's AWS endpoint, as it listens once started. */
    private get awsUrl(): string {
        return `http://${this.api.ip}:${this.api.port}`;
    }

    /** A gateway's files as its instance boots, and the lab's differences. */
    private prepareGateway(g: LabPairGateway): void {
        const conf = this.dir(g, "ipsec.conf");
        const ctl = this.dir(g, "run", "pluto.ctl");
        // The lab's ipsec.service: flush the kernel's IPsec state and start pluto, which loads the conns
        // of its config itself (auto=start ones initiate), as ipsec.service's pluto does.
        const start = [
            "#!/bin/bash",
            "ip xfrm policy flush; ip xfrm state flush",
            `rm -f ${ctl} ${this.dir(g, "run", "pluto.pid")}`,
            `ipsec pluto --config ${conf} --rundir ${this.dir(g, "run")} --nssdir ${this.dir(g, "nss")} --ipsecdir ${this.dir(g, "ipsecdir")} --secretsfile ${this.dir(g, "ipsec.secrets")} --logfile ${this.dir(g, "pluto.log")} || exit 1`,
            // Returns once pluto answers, as `systemctl start ipsec` does (Type=notify).
            `for i in $(seq 100); do [ -S ${ctl} ] && exit 0; sleep 0.1; done`,
            "exit 1",
            "",
        ];
        const stop = [
            "#!/bin/bash",
            `[ -S ${ctl} ] && timeout 5 ipsec whack --ctlsocket ${ctl} --shutdown >/dev/null 2>&1`,
            `pid=$(cat ${this.dir(g, "run", "pluto.pid")} 2>/dev/null) && kill -9 "$pid" 2>/dev/null`,
            "ip xfrm policy flush; ip xfrm state flush",
            "exit 0",
            "",
        ];
        prepareGatewayFiles({
            dir: this.dir(g),
            rendered: path.join(this.renderDir, g.name),
            netns: g.ns,
            awsUrl: this.awsUrl,
            env: [
                `HUBSPOKE_RUN_DIR='${this.dir(g, "run")}'`,
                `HUBSPOKE_PLUTO_PID='${this.dir(g, "run", "pluto.pid")}'`,
                `HUBSPOKE_IPSEC_START='${this.dir(g, "ipsec-start")}'`,
                `HUBSPOKE_IPSEC_STOP='${this.dir(g, "ipsec-stop")}'`,
                `HUBSPOKE_METRIC_INTERVAL='${LAB_STANDBY_ROUND_SECONDS}'`,
            ],
        });
        // The lab's `aws`: aws-lab (a takeover's two calls without a Python start), aws-lite for the rest.
        fs.symlinkSync(AWS_LAB, this.dir(g, "bin", "aws"));
        // aws-lab runs aws-lite with the PATH's python3: the system's, as aws-lite's own #! line names
        // it, not a version manager's shim (pyenv's is a shell script that starts a few more processes:
        // 4-6 s a call in the VM instead of 0.3-0.8 s, on every standby round's metric and every layout read).
        if (fs.existsSync(SYSTEM_PYTHON)) {
            fs.symlinkSync(SYSTEM_PYTHON, this.dir(g, "bin", "python3"));
        }
        fs.writeFileSync(this.dir(g, "ipsec-start"), start.join("\n"), { mode: 0o755 });
        fs.writeFileSync(this.dir(g, "ipsec-stop"), stop.join("\n"), { mode: 0o755 });
    }

    /** The agent's boot run (hubspoke-agent-boot.service). */
    private async bootAgent(g: LabPairGateway): Promise<void> {
        const out = await this.runInGateway(g, [this.dir(g, GATEWAY_PATHS.agentScript), "--boot"]);
        if (out.status !== 0) {
            throw new Error(`lab: hubspoke-agent --boot on ${g.name} failed (${out.status}): ${out.text}`);
        }
    }

    private env(g: LabPairGateway): Record<string, string> {
        return {
            ...awsCliEnv(this.aws!.url),
            AWS_ACCESS_KEY_ID: labAccessKey(g.name),
            PATH: `${this.dir(g, "bin")}:${process.env.PATH}`,
            HUBSPOKE_ENV: this.dir(g, GATEWAY_PATHS.env),
        };
    }

    private runInGateway(g: LabPairGateway, argv: string[]): Promise<{ status: number | null; text: string }> {
        const child = spawn("ip", ["netns", "exec", g.ns, "bash", ...argv], { env: this.env(g), stdio: ["ignore", "pipe", "pipe"] });
        let text = "";
        child.stdout.on("data", (d) => (text += d));
        child.stderr.on("data", (d) => (text += d));
        return new Promise((done) => child.on("close", (status) => done({ status, text })));
    }

    /** Starts the gateway's pluto as ipsec.service does at boot (the lab's stand-in for it). */
    private async startPluto(g: LabPairGateway): Promise<void> {
        const out = await this.runInGateway(g, [this.dir(g, "ipsec-start")]);
        if (out.status !== 0) {
            throw new Error(`lab: pluto of ${g.name} did not start (${out.status}): ${out.text}`);
        }
    }

    /** Starts the gateway's rendered hubspoke-failover, as hubspoke-failover.service does at boot. */
    private startDaemon(g: LabPairGateway): void {
        const log = fs.openSync(this.dir(g, "failover.log"), "a");
        const child = spawn("ip", ["netns", "exec", g.ns, "bash", this.dir(g, GATEWAY_PATHS.failoverScript)], {
            env: this.env(g),
            stdio: ["ignore", log, log],
        });
        fs.closeSync(log);
        this.daemons.set(g.name, child);
    }

    private eventLog(g: LabPairGateway): { group: string; stream: string } {
        return eventLogOf(this.dir(g, GATEWAY_PATHS.env));
    }

    /**
     * Starts every running gateway's hubspoke-events loop in its namespace, as hubspoke-events.service
     * runs it (every EVENTS.intervalSeconds), reading pluto's and the failover script's logs as its
     * journal (lab/fake-journal/journalctl); a revived gateway's starts again with it. On this
     * machine's kernel only: in the VM a loop per gateway would compete with what is measured there.
     */
    startEventShippers(): void {
        this.shipping = true;
        for (const s of this.sites) {
            for (const g of s.gateways) {
                if (this.isRunning(g.name)) this.startShipper(g);
            }
        }
    }

    private startShipper(g: LabPairGateway): void {
        const env = {
            ...this.env(g),
            HUBSPOKE_JOURNALCTL: LAB_JOURNALCTL,
            LAB_JOURNAL: `ipsec.service=${this.dir(g, "pluto.log")} hubspoke-failover.service=${this.dir(g, "failover.log")}`,
        };
        this.shippers.set(g.name, startEventShipper(g.ns, this.dir(g), env));
    }

    /** The events `name` has put to the lab's CloudWatch Logs, oldest first, with when CloudWatch took each. */
    events(name: string): LabTunnelEvent[] {
        const g = this.gateway(name);
        const { group, stream } = this.eventLog(g);
        return readLogEvents(this.ssmDir, this.site(g.site).plan.awsRegion, group, stream).map((e) => ({
            ...JSON.parse(e.message),
            ingestionTime: e.ingestionTime,
        }));
    }

    /** A gateway as the program's hooks and `npm run site` know it. */
    pairGateway(name: string): PairGateway {
        const g = this.gateway(name);
        const s = this.site(g.site);
        return {
            stack: this.plan.stack,
            site: s.name,
            awsRegion: s.plan.awsRegion,
            gateway: g.name,
            drainParameter: drainParameterName(g.parameterPath),
            layoutParameter: s.plan.failover!.layoutParameter,
        };
    }

    /** The operator's SDK clients (the user's machine: `npm run site`, the program's hooks) against the lab's endpoint. */
    async operatorClients(site: string): Promise<HandoverClients & { destroy(): void }> {
        const { handoverClients } = await operatorSide();
        return handoverClients(this.site(site).plan.awsRegion, {
            endpoint: this.aws!.url,
            credentials: { accessKeyId: labAccessKey(LAB_OPERATOR), secretAccessKey: "lab" },
            socketPath: this.apiSocket,
        });
    }

    /** One run of the gateway's agent, as its timer starts it about every minute. */
    async runAgent(name: string): Promise<void> {
        const g = this.gateway(name);
        const out = await this.runInGateway(g, [this.dir(g, GATEWAY_PATHS.agentScript)]);
        if (out.status !== 0) {
            throw new Error(`lab: hubspoke-agent on ${name} failed (${out.status}): ${out.text}`);
        }
    }

    /** `hubspoke-failover handover`, as hubspoke-handover.service's ExecStop runs it when the instance shuts down. */
    handoverOnShutdown(name: string): Promise<{ status: number | null; text: string }> {
        const g = this.gateway(name);
        return this.runInGateway(g, [this.dir(g, GATEWAY_PATHS.failoverScript), "handover"]);
    }

    /** The parameter is in the lab's Parameter Store (in the site's AWS region). */
    parameterExists(site: string, name: string): boolean {
        return fs.existsSync(path.join(this.ssmDir, this.site(site).plan.awsRegion + name));
    }

    /** The gateway's failover script runs (it was not killed, or it was revived). */
    isRunning(name: string): boolean {
        return this.daemons.has(name);
    }

    /** The gateway's failover script holds it ready to take the site (its last standby check passed). */
    isReady(name: string): boolean {
        return fs.existsSync(this.dir(this.gateway(name), "run", "ready"));
    }

    /** pluto's pid on the gateway, or "" when it has none. */
    plutoPid(name: string): string {
        const file = this.dir(this.gateway(name), "run", "pluto.pid");
        return fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : "";
    }

    /** pluto's log of the gateway, from byte `from` on. */
    plutoLog(name: string, from = 0): string {
        const file = this.dir(this.gateway(name), "pluto.log");
        if (!fs.existsSync(file)) {
            return "";
        }
        const fd = fs.openSync(file, "r");
        try {
            const size = fs.fstatSync(fd).size;
            const buffer = Buffer.alloc(Math.max(0, size - from));
            fs.readSync(fd, buffer, 0, buffer.length, Math.min(from, size));
            return buffer.toString("utf8");
        } finally {
            fs.closeSync(fd);
        }
    }

    /** The size of pluto's log now: where a later read can start. */
    plutoLogSize(name: string): number {
        const file = this.dir(this.gateway(name), "pluto.log");
        return fs.existsSync(file) ? fs.statSync(file).size : 0;
    }

    failoverLog(name: string): string {
        const file = this.dir(this.gateway(name), "failover.log");
        return fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    }

    /** The gateway that holds the site's Elastic IP in the fake EC2, if any. */
    owner(site: string): string | undefined {
        const s = this.site(site);
        const address = readEc2State(this.ec2StateFile).addresses.find((a) => a.allocationId === s.plan.failover!.allocationId);
        return s.gateways.find((g) => g.networkInterfaceId === address?.networkInterfaceId)?.name;
    }

    /**
     * When (ms since the epoch) the lab's EC2 answered, after `sinceMs`, the first AssociateAddress of
     * the site's Elastic IP to `gateway`, and the last ReplaceRoute to it (from its request log).
     */
    ec2Answers(site: string, gateway: string, sinceMs: number): { associated?: number; firstRouted?: number; routed?: number } {
        const file = path.join(this.workDir, "aws-requests.log");
        const s = this.site(site);
        const eni = this.gateway(gateway).networkInterfaceId;
        const out: { associated?: number; firstRouted?: number; routed?: number } = {};
        for (const line of (fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "").split("\n")) {
            const [at, , op, subject, status] = line.split(" ");
            const t = Date.parse(at);
            if (!(t >= sinceMs) || status !== "200" || (!subject?.endsWith(`->${eni}`) && !subject?.includes(`->${eni}/`))) {
                continue;
            }
            if (op === "AssociateAddress" && subject.startsWith(`${s.plan.failover!.allocationId}->`)) {
                out.associated ??= t;
            } else if (op === "ReplaceRoute") {
                out.firstRouted ??= t;
                out.routed = t;
            }
        }
        return out;
    }

    /** Per route table of the site, the gateways its routes to the peers target. */
    routeTargets(site: string): string[] {
        const s = this.site(site);
        const ids = new Set(s.plan.failover!.routeTables.map((t) => t.id));
        return readEc2State(this.ec2StateFile)
            .routeTables.filter((t) => ids.has(t.routeTableId))
            .flatMap((t) => t.routes.map((r) => s.gateways.find((g) => g.networkInterfaceId === r.networkInterfaceId)?.name ?? "?"));
    }

    /** Whether the gateway's failover script holds the site (its `active` file), as it believes. */
    believesActive(name: string): boolean {
        return fs.existsSync(this.dir(this.gateway(name), "run", "active"));
    }

    /**
     * Whether the site is whole: the Elastic IP, every route and the failover scripts' own belief all
     * on one gateway (the other does not think it is active).
     */
    siteConsistent(site: string): { owner?: string; routes: string[]; believers: string[]; consistent: boolean } {
        const owner = this.owner(site);
        const routes = this.routeTargets(site);
        const believers = this.site(site)
            .gateways.filter((g) => this.believesActive(g.name))
            .map((g) => g.name);
        const consistent = owner !== undefined && routes.every((r) => r === owner) && believers.length === 1 && believers[0] === owner;
        return { owner, routes, believers, consistent };
    }

    /** Failovers and StandbyReady values the gateways put to the lab's CloudWatch. */
    metrics(metricName: string, site: string): number[] {
        return readMetrics(this.ssmDir)
            .filter((m) => m.metricName === metricName && m.dimensions.Region === site)
            .map((m) => m.value);
    }

    private showStates(name: string): string {
        const g = this.gateway(name);
        return whackAt(g.ns, this.dir(g, "run", "pluto.ctl"), "--showstates");
    }

    /**
     * What a failed run needs to be understood: the gateway's SAs and policies as pluto and the kernel
     * see them (with counters), and its site's router: NAT rules, connection tracking, route tables.
     */
    diagnose(name: string): string {
        const g = this.gateway(name);
        const s = this.site(g.site);
        const run = (ns: string, argv: string[]) =>
            `$ ${argv.join(" ")}\n${sh(["ip", "netns", "exec", ns, ...argv], { allowFail: true, timeoutMs: 10_000 }).out.trim()}`;
        const ctl = this.dir(g, "run", "pluto.ctl");
        return [
            `--- ${name} (${g.ns})`,
            fs.existsSync(ctl) ? `$ whack --trafficstatus\n${whackAt(g.ns, ctl, "--trafficstatus").trim()}` : "(no pluto)",
            this.showStates(name).trim(),
            run(g.ns, ["ip", "-s", "xfrm", "state"]),
            run(g.ns, ["ip", "xfrm", "policy"]),
            run(g.ns, ["ip", "-4", "addr", "show", "dev", "eth0"]),
            `--- router of ${s.name} (${s.ns.vpc})`,
            run(s.ns.vpc, ["nft", "list", "table", "ip", "hubspoke_eip"]),
            run(s.ns.vpc, ["ip", "rule"]),
            ...s.plan.failover!.routeTables.map((_, k) => run(s.ns.vpc, ["ip", "route", "show", "table", String(101 + k)])),
        ].join("\n");
    }

    /** True when the gateway's pluto has an established SA of this layer for the tunnel. */
    established(name: string, tunnel: string, layer: "IKE" | "Child SA"): boolean {
        return this.allEstablished(name, [tunnel], layer);
    }

    /** True when the gateway's pluto has an established IKE SA, and one of `layer`, for every tunnel (one whack call). */
    allEstablished(name: string, tunnels: readonly string[], layer: "IKE" | "Child SA"): boolean {
        const states = this.showStates(name);
        const has = (tunnel: string, state: string) => new RegExp(`"${tunnel}"[^ ]* ${state}`).test(states);
        return tunnels.every((t) => has(t, "STATE_V2_ESTABLISHED_IKE_SA") && (layer === "IKE" || has(t, "STATE_V2_ESTABLISHED_CHILD_SA")));
    }

    /**
     * When (ms since the epoch, by pluto's own log) the gateway's pluto had established, after `sinceMs`,
     * an IKE SA and one of `layer` for every tunnel (`allEstablishedAt`), reading its log from byte
     * `fromByte`: polling it starts no process in the VM it measures.
     */
    establishedSince(
        name: string,
        tunnels: readonly string[],
        layer: "IKE" | "Child SA",
        sinceMs: number,
        fromByte = 0,
    ): number | undefined {
        return allEstablishedAt(this.plutoLog(name, fromByte), tunnels, layer, sinceMs);
    }

    /** Serial numbers of the gateway's established IKE SAs of a tunnel (a new IKE SA gets a new one). */
    ikeSerials(name: string, tunnel: string): number[] {
        return [...this.showStates(name).matchAll(/#(\d+): "([^"]+)"[^ ]* STATE_V2_ESTABLISHED_IKE_SA/g)]
            .filter((m) => m[2] === tunnel)
            .map((m) => Number(m[1]));
    }

    /** Whether the gateway's pluto has any state (a negotiation, or an SA) of `tunnel`. */
    hasStates(name: string, tunnel: string): boolean {
        return this.showStates(name).includes(`"${tunnel}"`);
    }

    /** Starts a negotiation of `tunnel` on the gateway, as its agent does when it adds or re-keys a tunnel. */
    initiate(name: string, tunnel: string): void {
        const g = this.gateway(name);
        whackAt(g.ns, this.dir(g, "run", "pluto.ctl"), "--name", tunnel, "--initiate", "--asynchronous");
    }

    /** Polls `check` every `intervalMs`; seconds it took, or undefined after `timeoutSeconds`. */
    async waitFor(check: () => boolean, timeoutSeconds: number, intervalMs = 200): Promise<number | undefined> {
        const start = Date.now();
        while (Date.now() - start < timeoutSeconds * 1000) {
            if (check()) {
                return (Date.now() - start) / 1000;
            }
            await sleep(intervalMs);
        }
        return undefined;
    }

    /** Pings the host of `to` from the host of `from` every `intervalSeconds` until stopped (lab.ts pingUntilStopped). */
    startPing(from: string, to: string, intervalSeconds = 0.2): { stop(): Promise<PingRun> } {
        return pingUntilStopped(this.site(from).ns.host, this.site(to).host.ip, intervalSeconds);
    }

    ping(from: string, to: string, count = 2): boolean {
        return pingOnce(this.site(from).ns.host, this.site(to).host.ip, count);
    }

    /** The gateway dies as a host dies: its link goes down, and pluto and hubspoke-failover are gone at once. */
    kill(name: string): void {
        const g = this.gateway(name);
        // The link first; then its processes, killed and listed again until none is left: a process the
        // failover script forked after a listing (a prober, an API call) would outlive the "instance", holding
        // its lock, and its successor would not start.
        const pids = sh([
            "sh",
            "-c",
            'ip -n "$1" link set eth0 down || exit; for i in 1 2 3 4 5 6 7 8 9 10; do p=$(ip netns pids "$1"); [ -n "$p" ] || exit 0; kill -9 $p 2>/dev/null; sleep 0.05; done; ip netns pids "$1"',
            "sh",
            g.ns,
        ]).out.trim();
        if (pids) this.log(`lab: ${name}: processes still running after ten rounds of SIGKILL: ${pids.replace(/\n/g, " ")}`);
        const daemon = this.daemons.get(name);
        daemon?.kill("SIGKILL");
        this.daemons.delete(name);
        this.shippers.get(name)?.kill("SIGKILL");
        this.shippers.delete(name);
        this.log(`lab: gateway ${name} killed (link down, pluto and hubspoke-failover gone)`);
    }

    /** The gateway comes back as after a reboot: link up, no IPsec state, /run empty, pluto (warm) and its failover script started. */
    async revive(name: string): Promise<void> {
        const g = this.gateway(name);
        // A reboot forgets the kernel's IPsec state, the site address the failover script added, and the
        // runtime directory. One shell for the commands (every process the lab starts costs in the VM).
        // /run is empty after a reboot: a `ready` left from the old instance would make it look ready at once.
        fs.rmSync(this.dir(g, "run"), { recursive: true, force: true });
        fs.mkdirSync(this.dir(g, "run"), { recursive: true });
        sh([
            "sh",
            "-c",
            'ip -n "$1" xfrm policy flush; ip -n "$1" xfrm state flush; ip -n "$1" addr del "$2" dev eth0 2>/dev/null; ' +
                'ip -n "$1" link set eth0 up && ip -n "$1" route replace default via "$3"',
            "sh",
            g.ns,
            `${g.siteIp}/${g.prefix}`,
            g.router,
        ]);
        await this.startPluto(g);
        this.startDaemon(g);
        if (this.shipping) this.startShipper(g);
        this.log(`lab: gateway ${name} back (booting as standby until it has checked)`);
    }

    /** Cuts (or restores) only the path between a site's two gateways, in both directions; both stay up. */
    cut(site: string, on: boolean): void {
        const s = this.site(site);
        const [a, b] = s.gateways;
        const rules = on
            ? [
                  `-A HUBSPOKE-CUT -s ${a.privateIp} -d ${b.privateIp} -j DROP`,
                  `-A HUBSPOKE-CUT -s ${a.siteIp} -d ${b.privateIp} -j DROP`,
                  `-A HUBSPOKE-CUT -s ${b.privateIp} -d ${a.privateIp} -j DROP`,
                  `-A HUBSPOKE-CUT -s ${b.siteIp} -d ${a.privateIp} -j DROP`,
              ]
            : [];
        sh(["ip", "netns", "exec", s.ns.vpc, "iptables-restore", "--noflush"], {
            input: ["*filter", ":HUBSPOKE-CUT - [0:0]", ...rules, "COMMIT", ""].join("\n"),
        });
        this.log(`lab: link between ${a.name} and ${b.name} ${on ? "cut" : "restored"}`);
    }

    /** Stops everything and removes every namespace of this lab. Idempotent. */
    down(): void {
        for (const d of [...this.daemons.values(), ...this.shippers.values()]) {
            try {
                d.kill("SIGKILL");
            } catch {
                // already gone
            }
        }
        this.daemons.clear();
        this.shippers.clear();
        this.shipping = false;
        this.aws?.stop?.();
        this.aws = undefined;
        removeNamespaces(`${this.id}-`);
    }
}

/**
 * Kernel modules that the lab's network and the ESP check (lab.ts kernelHasEsp) load on first use,
 * a few seconds' worth under the VM's emulation: loaded in the background, two groups at once, while
 * the network is built. Only a head start: a module missing here loads when used, as before.
 */
const WARM_MODULES = [
    ["veth", "bridge", "nf_tables", "nft_compat", "nft_chain_nat", "nf_nat", "nf_conntrack", "ip_tables"],
    ["esp4", "xfrm_user", "authenc", "echainiv", "seqiv", "gcm", "ghash_clmulni_intel", "ctr", "drbg", "jitterentropy_rng"],
];

function warmKernelModules(): void {
    for (const modules of WARM_MODULES) {
        spawn("modprobe", ["-q", "-a", ...modules], { stdio: "ignore" })
            .on("error", () => undefined)
            .unref();
    }
}

/** Lines of a shell script that run `command` with `lines` on its standard input. */
function heredoc(command: string, lines: readonly string[]): string[] {
    return [`${command} <<'HUBSPOKE_LAB_EOF'`, ...lines, "HUBSPOKE_LAB_EOF"];
}
