/**
 * The lab's network, computed from a render's plan.json. Pure: addresses and names only.
 *
 * Per region, three network namespaces:
 *   <id>-<region>-vpc   the VPC router and the internet gateway: answers at the subnets' +1 address
 *                       (as AWS's VPC router does), routes the program's peer ranges to the gateway,
 *                       and does the Elastic IP's 1:1 NAT on its `wan` leg to the "internet"
 *   <id>-<region>-gw    the gateway host: the static private IP, default route via the VPC router; runs pluto
 *   <id>-<region>-host  a workload host in the first workload subnet (the VPN subnet if there is none)
 * plus one `<id>-inet` namespace, a bridge joining every region's `wan` leg (Elastic IPs are on one /24).
 *
 * MTUs as on AWS: every link inside a VPC runs at EC2's 9001 (jumbo frames), the "internet" beyond
 * the internet gateway at 1500. Each VPC router drops ICMP "fragmentation needed" headed to the
 * gateway, as the gateway's security group does (it admits only IKE, NAT-T and ESP from the peers):
 * path-MTU discovery cannot work across the tunnels, and only the gateways' TCP MSS clamp keeps
 * full-size segments from being black-holed.
 */
import { type Cidr, formatIp, parseCidr } from "../config/cidr";
import type { Plan } from "../harness/snapshot";

/**
 * The part of plan.json the lab reads. A type-only import: nothing of the Pulumi program is loaded
 * at run time, which keeps the lab light inside the VM.
 */
export type LabPlan = Pick<Plan, "gateways" | "tunnels" | "parameters">;

export interface LabRegion {
    readonly region: string;
    readonly awsRegion: string;
    readonly role: string;
    readonly vpcCidr: string;
    readonly elasticIp: string;
    readonly tunnels: readonly string[];
    readonly ns: { readonly vpc: string; readonly gw: string; readonly host: string };
    /** Gateway: its address and prefix in the VPN subnet, and its default router. */
    readonly gateway: { readonly ip: string; readonly prefix: number; readonly router: string };
    /** Workload host: its address and prefix, its default router, and which router bridge it sits on. */
    readonly host: { readonly ip: string; readonly prefix: number; readonly router: string; readonly onVpnSubnet: boolean };
    /** Peer ranges the VPC router sends to the gateway: the program's routes. */
    readonly routesToGateway: readonly string[];
    /** SSM path of the gateway's desired state. */
    readonly parameterPath: string;
}

/** MTUs of the lab's links: AWS's inside a VPC, and the internet's beyond the internet gateway. */
export const LAB_MTU = { vpc: 9001, internet: 1500 } as const;

export interface LabTopology {
    readonly id: string;
    readonly inetNs: string;
    /** Prefix length of the shared "internet" segment the Elastic IPs sit on. */
    readonly inetPrefix: number;
    /** Where the lab's AWS API (its Parameter Store) answers: an address on the "internet", as AWS's public endpoints are. */
    readonly api: { readonly ip: string; readonly port: number };
    readonly regions: readonly LabRegion[];
    readonly tunnels: LabPlan["tunnels"];
}

/** Host number `n` of a block (`n` = 1 is AWS's VPC router address). */
function nth(block: Cidr, n: number): string {
    return formatIp(block.network + n);
}

function cidr(text: string): Cidr {
    const c = parseCidr(text);
    if (typeof c === "string") {
        throw new Error(`lab: "${text}" ${c}`);
    }
    return c;
}

/**
 * Lays the lab out. `id` prefixes every namespace (short, so that several labs can coexist and a
 * stale one is easy to find: `ip netns list | grep ^<id>-`).
 */
export function labTopology(plan: LabPlan, id: string): LabTopology {
    if (!/^[a-z0-9]{1,8}$/.test(id)) {
        throw new Error(`lab: id "${id}" must be 1-8 lowercase letters or digits`);
    }
    const eips = plan.gateways.map((g) => g.elasticIp);
    const prefixes = eips.map((ip) => ip.split(".").slice(0, 3).join("."));
    if (new Set(prefixes).size !== 1) {
        // The lab's internet is one bridged /24; Elastic IPs spread wider would need a router there.
        throw new Error(`lab: Elastic IPs must share one /24 (render with the default addresses); got ${eips.join(", ")}`);
    }
    const regions = plan.gateways.map((g): LabRegion => {
        const vpn = cidr(g.vpnSubnet);
        const hostSubnet = cidr(g.workloadSubnets[0] ?? g.vpnSubnet);
        // .10 unless the gateway already has it (possible when the host shares the VPN subnet).
        const hostIp = nth(hostSubnet, 10) === g.privateIp ? nth(hostSubnet, 11) : nth(hostSubnet, 10);
        return {
            region: g.region,
            awsRegion: g.awsRegion,
            role: g.role,
            vpcCidr: g.vpcCidr,
            elasticIp: g.elasticIp,
            tunnels: g.tunnels,
            ns: { vpc: `${id}-${g.region}-vpc`, gw: `${id}-${g.region}-gw`, host: `${id}-${g.region}-host` },
            gateway: { ip: g.privateIp, prefix: vpn.prefix, router: nth(vpn, 1) },
            host: {
                ip: hostIp,
                prefix: hostSubnet.prefix,
                router: nth(hostSubnet, 1),
                onVpnSubnet: g.workloadSubnets.length === 0,
            },
            routesToGateway: g.routesToGateway,
            parameterPath: g.parameterPath,
        };
    });
    // The last address of the Elastic IPs' /24 (documentation addresses by default).
    const api = { ip: `${prefixes[0]}.254`, port: 8080 };
    return { id, inetNs: `${id}-inet`, inetPrefix: 24, api, regions, tunnels: plan.tunnels };
}

/**
 * How to build the lab, grouped so that it takes few processes (each one is slow to start under
 * the VM's emulation): one `ip -batch` in the root namespace that creates every namespace and
 * veth pair, then per namespace one `ip -n NS -batch`, one `sysctl`, and one `iptables-restore`.
 */
export interface SetupPlan {
    /** `ip -batch` lines run in the root namespace. */
    readonly root: string[];
    /** Per namespace, `ip -batch` lines run inside it. */
    readonly ip: Record<string, string[]>;
    /** Per namespace, `sysctl -w` assignments. */
    readonly sysctl: Record<string, string[]>;
    /** Per namespace, `iptables-restore` input. */
    readonly iptables: Record<string, string>;
}

/**
 * A VPC router's `iptables-restore` input: the internet gateway's 1:1 NAT between the Elastic IP and the
 * gateway's private IP (stateful here: in this lab an address never moves; the failover lab's NAT,
 * whose addresses do, is the fake EC2's stateless one), and the gateway's security group dropping ICMP
 * "fragmentation needed".
 */
function routerRules(r: LabRegion): string {
    return [
        "*nat",
        `-A PREROUTING -i wan -d ${r.elasticIp} -j DNAT --to-destination ${r.gateway.ip}`,
        `-A POSTROUTING -o wan -s ${r.gateway.ip} -j SNAT --to-source ${r.elasticIp}`,
        "COMMIT",
        // No ICMP "fragmentation needed" reaches the gateway, neither the one this router sends when a
        // 9001-byte packet meets the 1500-byte internet (OUTPUT) nor any from the internet (FORWARD, after the NAT).
        "*filter",
        `-A OUTPUT -d ${r.gateway.ip} -p icmp --icmp-type fragmentation-needed -j DROP`,
        `-A FORWARD -d ${r.gateway.ip} -p icmp --icmp-type fragmentation-needed -j DROP`,
        "COMMIT",
        "",
    ].join("\n");
}

export function setupPlan(t: LabTopology): SetupPlan {
    const { vpc: jumbo, internet } = LAB_MTU;
    const root: string[] = [`netns add ${t.inetNs}`];
    const ip: Record<string, string[]> = {
        [t.inetNs]: [
            "link set lo up",
            `link add inet mtu ${internet} type bridge`,
            "link set inet up",
            `addr add ${t.api.ip}/${t.inetPrefix} dev inet`,
        ],
    };
    const sysctl: Record<string, string[]> = {};
    const iptables: Record<string, string> = {};
    t.regions.forEach((r, i) => {
        for (const ns of [r.ns.vpc, r.ns.gw, r.ns.host]) {
            root.push(`netns add ${ns}`);
            ip[ns] = ["link set lo up"];
        }
        const vpc = ip[r.ns.vpc];
        const gw = ip[r.ns.gw];
        const host = ip[r.ns.host];
        // The VPC router's internet leg, carrying the Elastic IP, plugged into the internet bridge.
        root.push(`link add wan netns ${r.ns.vpc} type veth peer name r${i} netns ${t.inetNs}`);
        ip[t.inetNs].push(`link set r${i} mtu ${internet} master inet up`);
        vpc.push(`addr add ${r.elasticIp}/${t.inetPrefix} dev wan`, `link set wan mtu ${internet} up`);
        // The VPN subnet: a bridge in the router namespace, with the VPC router's +1 address; the gateway on it.
        vpc.push(`link add vpn mtu ${jumbo} type bridge`, `addr add ${r.gateway.router}/${r.gateway.prefix} dev vpn`, "link set vpn up");
        root.push(`link add eth0 netns ${r.ns.gw} type veth peer name gw netns ${r.ns.vpc}`);
        vpc.push(`link set gw mtu ${jumbo} master vpn up`);
        gw.push(
            `addr add ${r.gateway.ip}/${r.gateway.prefix} dev eth0`,
            `link set eth0 mtu ${jumbo} up`,
            `route add default via ${r.gateway.router}`,
        );
        // The workload host: on its workload subnet's bridge, or on the VPN subnet's.
        if (!r.host.onVpnSubnet) {
            vpc.push(`link add wl mtu ${jumbo} type bridge`, `addr add ${r.host.router}/${r.host.prefix} dev wl`, "link set wl up");
        }
        root.push(`link add eth0 netns ${r.ns.host} type veth peer name host netns ${r.ns.vpc}`);
        vpc.push(`link set host mtu ${jumbo} master ${r.host.onVpnSubnet ? "vpn" : "wl"} up`);
        host.push(
            `addr add ${r.host.ip}/${r.host.prefix} dev eth0`,
            `link set eth0 mtu ${jumbo} up`,
            `route add default via ${r.host.router}`,
        );
        // The VPC route tables: the program's peer ranges go to the gateway.
        vpc.push(...r.routesToGateway.map((dest) => `route add ${dest} via ${r.gateway.ip}`));
        sysctl[r.ns.vpc] = ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0"];
        iptables[r.ns.vpc] = routerRules(r);
    });
    return { root, ip, sysctl, iptables };
}
