/**
 * A site's failover layout: what both of its gateways' hubspoke-failover read from SSM Parameter
 * Store (`failoverParameterName`) to know the site. Plain values in, JSON out.
 */
import { SSM_STANDARD_MAX_BYTES } from "../gateway/contract";

/** One gateway of the pair, as the other one and the EC2 API know it. */
export interface FailoverGateway {
    /** Its name in the site: `virginia` (the primary, first), `virginia-standby`. */
    readonly name: string;
    readonly networkInterfaceId: string;
    /** Its private IP: probed by the other gateway; carries its own Elastic IP. */
    readonly privateIp: string;
    /** Its site address: the site's Elastic IP is associated with it while it is active. */
    readonly siteIp: string;
}

export interface FailoverLayout {
    /** The site's Elastic IP allocation: the address the peers know, moved to the active gateway. */
    readonly allocationId: string;
    /** Every route table of the VPC: each one's routes to the peers target the active gateway. */
    readonly routeTables: readonly string[];
    /** The peers' VPC ranges: the routes that move. */
    readonly peerCidrs: readonly string[];
    /** Peer gateways' private IPs: the standby pings them through the tunnels (via the active). */
    readonly probeTargets: readonly string[];
    /** The primary first (it claims an unowned Elastic IP at once), then the standby. */
    readonly gateways: readonly [FailoverGateway, FailoverGateway];
}

/** The layout parameter's value; throws if it would not fit a standard parameter. */
export function renderFailoverLayout(site: string, layout: FailoverLayout): string {
    const value = JSON.stringify(
        {
            allocationId: layout.allocationId,
            routeTables: layout.routeTables,
            peerCidrs: layout.peerCidrs,
            probeTargets: layout.probeTargets,
            gateways: layout.gateways.map((g) => ({
                name: g.name,
                networkInterfaceId: g.networkInterfaceId,
                privateIp: g.privateIp,
                siteIp: g.siteIp,
            })),
        },
        null,
        2,
    );
    const bytes = Buffer.byteLength(value);
    if (bytes > SSM_STANDARD_MAX_BYTES) {
        throw new Error(`site ${site}: its failover layout is ${bytes} bytes; a standard SSM parameter holds ${SSM_STANDARD_MAX_BYTES}`);
    }
    return value;
}
