/**
 * The validated, typed shape of a stack's configuration. Produced by `parseStackConfig`;
 * everything downstream (components, rendering, the lab) consumes these plain values.
 */

export type RegionRole = "hub" | "spoke";

/** A workload subnet, one per (name, zone) pair of `workloadSubnets`. */
export interface WorkloadSubnetSpec {
    /** The subnet's name in config, e.g. `fns`. */
    readonly name: string;
    /** The availability zone letter, e.g. `a`. */
    readonly zone: string;
    readonly cidr: string;
}

/** One VPC with its gateway. */
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
}

/** A hub-spoke tunnel. Both ends use the same name, `<hub>-to-<spoke>`. */
export interface TunnelSpec {
    readonly name: string;
    readonly hub: string;
    readonly spoke: string;
}

export interface StackSpec {
    /** All regions, hub first, then spokes in config order. */
    readonly regions: readonly RegionSpec[];
    readonly hub: RegionSpec;
    readonly spokes: readonly RegionSpec[];
    /** One per spoke; there are never spoke-to-spoke tunnels. */
    readonly tunnels: readonly TunnelSpec[];
    /** EC2 instance type of every gateway. */
    readonly gatewayInstanceType: string;
    /** Key generation number: changing it rotates every pre-shared key in place. */
    readonly pskRotation: number;
    /** Days CloudWatch Logs keeps VPC flow logs. */
    readonly flowLogRetentionDays: number;
    /** Refuse API termination of gateway instances. */
    readonly gatewayTerminationProtection: boolean;
    /** Where tunnel alarms are e-mailed, if anywhere. */
    readonly alarmEmail?: string;
}

/** The name of the tunnel between a hub and a spoke. */
export function tunnelName(hub: string, spoke: string): string {
    return `${hub}-to-${spoke}`;
}
