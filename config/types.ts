/**
 * The validated, typed shape of a stack's configuration. Produced by `parseStackConfig`;
 * everything downstream (components, rendering, the lab) consumes these plain values.
 */

import { formatIp, parseIp } from "./cidr";

export type RegionRole = "hub" | "spoke";

/** A workload subnet, one per (name, zone) pair of `workloadSubnets`. */
export interface WorkloadSubnetSpec {
    /** The subnet's name in config, e.g. `fns`. */
    readonly name: string;
    /** The availability zone letter, e.g. `a`. */
    readonly zone: string;
    readonly cidr: string;
}

/**
 * One region of the network: a VPC with its gateway. Its `name` is the region name everywhere
 * (resource names, tunnel names, outputs); several regions may share an AWS region.
 */
export interface RegionSpec {
    /** The region name used everywhere (resource names, tunnel names, outputs), e.g. `virginia`. */
    readonly name: string;
    /** The AWS region code, e.g. `us-east-1`. */
    readonly awsRegion: string;
    readonly role: RegionRole;
    readonly vpcCidr: string;
    /** The public subnet that holds the gateway. */
    readonly vpnSubnet: string;
    /** Zone letter of the VPN subnet. */
    readonly vpnZone: string;
    /** The gateway's static private IP inside `vpnSubnet`. */
    readonly gatewayPrivateIp: string;
    readonly workloadSubnets: readonly WorkloadSubnetSpec[];
    /** A second gateway in another zone that takes over when the active one fails; absent: one gateway. */
    readonly standby?: StandbySpec;
}

/** The standby gateway of a site (`regions[].standby`). */
export interface StandbySpec {
    /** Its own public subnet, in another zone than `vpnSubnet`. */
    readonly vpnSubnet: string;
    /** Zone letter of that subnet; never the primary's. */
    readonly vpnZone: string;
    /** The standby's static private IP inside its `vpnSubnet`. */
    readonly gatewayPrivateIp: string;
}

/**
 * The site address of a gateway in a site with a standby: the next address after its private IP, a
 * secondary private IP of its network interface. The site's Elastic IP (the address peers know) is
 * associated with the active gateway's site address; each gateway's own Elastic IP stays on its
 * private IP for management (packages, SSM, EC2, CloudWatch), standby or not.
 */
export function siteIpOf(gatewayPrivateIp: string): string {
    const ip = parseIp(gatewayPrivateIp);
    if (ip === undefined) {
        throw new Error(`siteIpOf: "${gatewayPrivateIp}" is not an IPv4 address`);
    }
    return formatIp(ip + 1);
}

/** The gateways of a site by their names: the region name, then `<region name>-standby` if it has a standby. */
export function siteGatewayNames(r: Pick<RegionSpec, "name" | "standby">): string[] {
    return r.standby ? [r.name, `${r.name}-standby`] : [r.name];
}

/** A hub-spoke tunnel. Both ends use the same name, `<hub>-to-<spoke>`. */
export interface TunnelSpec {
    readonly name: string;
    readonly hub: string;
    readonly spoke: string;
}

/** A tunnel as one of its two gateways sees it. */
export interface PeerSpec {
    readonly tunnel: TunnelSpec;
    /** The region at the other end. */
    readonly peer: RegionSpec;
}

/** libreswan settings every tunnel shares. */
export interface TunnelSettings {
    /** IKE (phase 1) proposals, libreswan syntax, preferred first. */
    readonly ikeProposals: string;
    /** ESP (Child SA) proposals, libreswan syntax, preferred first. */
    readonly espProposals: string;
}

export interface StackSpec {
    /** All regions, hub first, then spokes in config order. */
    readonly regions: readonly RegionSpec[];
    readonly hub: RegionSpec;
    readonly spokes: readonly RegionSpec[];
    /** One per spoke; there are never spoke-to-spoke tunnels. */
    readonly tunnels: readonly TunnelSpec[];
    /** Per region name, its tunnels and who is at the other end: the hub's peers are the spokes, a spoke's only peer is the hub. */
    readonly peers: Readonly<Record<string, readonly PeerSpec[]>>;
    /** The AWS regions the stack uses, each once, hub's first: one AWS provider each. */
    readonly awsRegions: readonly string[];
    readonly tunnelSettings: TunnelSettings;
    /** The Amazon Linux 2023 release every gateway runs, e.g. `2023.9.20251208.0`: changing it replaces the gateways. */
    readonly gatewayAmiRelease: string;
    /** The kernel flavour of that release's image, e.g. `6.1`: changing it replaces the gateways. */
    readonly gatewayAmiKernel: string;
    /** EC2 instance type of every gateway. */
    readonly gatewayInstanceType: string;
    /** Key generation number: changing it rotates every pre-shared key in place. */
    readonly pskRotation: number;
    /** Days CloudWatch Logs keeps VPC flow logs. */
    readonly flowLogRetentionDays: number;
    /** Days CloudWatch Logs keeps each gateway's tunnel events. */
    readonly eventLogRetentionDays: number;
    /** Refuse API termination of gateway instances. */
    readonly gatewayTerminationProtection: boolean;
    /** Where tunnel alarms are e-mailed, if anywhere. */
    readonly alarmEmail?: string;
}

/** Each region's tunnels and peers, computed once. */
export function peersOf(regions: readonly RegionSpec[], tunnels: readonly TunnelSpec[]): Record<string, PeerSpec[]> {
    const byName = new Map(regions.map((r) => [r.name, r]));
    return Object.fromEntries(
        regions.map((r) => [
            r.name,
            tunnels
                .filter((t) => t.hub === r.name || t.spoke === r.name)
                .map((tunnel) => ({ tunnel, peer: byName.get(tunnel.hub === r.name ? tunnel.spoke : tunnel.hub)! })),
        ]),
    );
}

/** The name of the tunnel between a hub and a spoke. */
export function tunnelName(hub: string, spoke: string): string {
    return `${hub}-to-${spoke}`;
}
