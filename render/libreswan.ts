import type { TunnelSettings } from "../config/types";
import { GATEWAY_PATHS, isUsablePsk, MANAGED_MARKER, PSK, SSM_STANDARD_MAX_BYTES } from "../gateway/contract";

/**
 * libreswan configuration for one end of a tunnel. Plain values in, file contents out.
 *
 * The output targets libreswan 4.x (Amazon Linux 2023 ships 4.x): the seed's `nat_traversal=yes`
 * and `oe=off` are syntax errors there, NAT traversal is automatic, and IKEv2 is the default.
 */

/** One end of a hub-spoke tunnel, seen from the gateway that runs it ("left" is always local). */
export interface TunnelEnd {
    /** Tunnel name, the same at both ends, e.g. `virginia-to-sydney`; also the conn name. */
    readonly tunnel: string;
    /** This gateway's Elastic IP: its IKE identity. */
    readonly localElasticIp: string;
    /** This gateway's VPC range. */
    readonly localCidr: string;
    /** The peer gateway's Elastic IP: where IKE is sent, and the peer's identity. */
    readonly peerElasticIp: string;
    /** The peer's VPC range. */
    readonly peerCidr: string;
    /** IKE and ESP proposals (the stack's `ikeProposals`, `espProposals`). */
    readonly settings: TunnelSettings;
    /**
     * The private address IKE and ESP leave from, behind the Elastic IP's 1:1 NAT. Default
     * `%defaultroute`, the interface's primary address. A gateway of a site with a standby names its
     * site address, the one the site's Elastic IP moves to (libreswan 4 resolves `%defaultroute` to
     * the primary address whatever the route's source says: measured, see README, Failover).
     */
    readonly localAddress?: string;
    /**
     * `start` (default): pluto initiates the tunnel as soon as it loads it. `add`: it loads it and only
     * responds; a site with a standby runs pluto warm on both gateways, and hubspoke-failover
     * initiates on whichever is active (the standby has no use for a tunnel from an address that is
     * not the site's).
     */
    readonly auto?: "start" | "add";
}

/**
 * Dead peer detection (IKEv2 liveness, which libreswan runs on the Child SA): a probe every 2 s
 * when no traffic arrives. pluto retransmits an unanswered exchange after 0.5, 1, 2 and 4 s and
 * checks the timeout only when the next retransmit is due, so a 7 s timeout gives up at 7.5 s (the
 * lab measured 10 s gave up at 15.5 s): a dead peer is noticed within about 10 s, and the connection
 * is then restarted and retried forever. A returning peer initiates on its own (auto=start), so the
 * tunnel is back after one exchange. The lab measures both (README, Operations).
 */
export const DPD = { delaySeconds: 2, retransmitTimeoutSeconds: 7 } as const;

/** The `/etc/ipsec.d/<tunnel>.conf` file of one tunnel end. */
export function renderConn(end: TunnelEnd): string {
    return [
        `# ${end.tunnel}: ${MANAGED_MARKER} (Pulumi); published in SSM Parameter Store and written here by hubspoke-agent; local changes are overwritten.`,
        `conn ${end.tunnel}`,
        "    type=tunnel",
        "    authby=secret",
        "    ikev2=yes",
        // The gateway sits behind AWS's 1:1 NAT: it binds its private address but
        // identifies itself by its Elastic IP, the address its peer knows.
        `    left=${end.localAddress ?? "%defaultroute"}`,
        `    leftid=${end.localElasticIp}`,
        `    leftsubnet=${end.localCidr}`,
        `    right=${end.peerElasticIp}`,
        `    rightid=${end.peerElasticIp}`,
        `    rightsubnet=${end.peerCidr}`,
        `    ike=${end.settings.ikeProposals}`,
        `    esp=${end.settings.espProposals}`,
        "    pfs=yes",
        "    ikelifetime=8h",
        "    salifetime=1h",
        `    dpddelay=${DPD.delaySeconds}s`,
        `    retransmit-timeout=${DPD.retransmitTimeoutSeconds}s`,
        "    dpdaction=restart",
        "    keyingtries=%forever",
        `    auto=${end.auto ?? "start"}`,
        "",
    ].join("\n");
}

/**
 * `GATEWAY_PATHS.pairDefaults`: what every conn of a gateway of a pair inherits. No updown script:
 * it does nothing for these conns (no sourceip, no MTU, no VTI; the kernel's policy alone carries the
 * traffic), but pluto runs it three times for every Child SA, synchronously, and a takeover brings
 * every tunnel of the site up at once. A file of its own rather than a conn key: the agent accepts no
 * `leftupdown=` from Parameter Store (write access to a parameter must not run code on the gateway),
 * and single gateways keep their conns byte for byte (a changed conn is re-established).
 */
export function renderPairDefaults(): string {
    return [
        `# ${GATEWAY_PATHS.pairDefaults}: written by the gateway's bootstrap (hubspoke-vpn); applies to every conn included after it.`,
        "conn %default",
        "    leftupdown=%disabled",
        "",
    ].join("\n");
}

/**
 * The `/etc/ipsec.d/<tunnel>.secrets` file: the pre-shared key, selected by both identities.
 * The key must not contain `"` or `\`; `assertPskSafe` enforces that.
 */
export function renderSecrets(end: Pick<TunnelEnd, "tunnel" | "localElasticIp" | "peerElasticIp">, psk: string): string {
    assertPskSafe(psk, end.tunnel);
    return `${end.localElasticIp} ${end.peerElasticIp} : PSK "${psk}"\n`;
}

/** The two SSM parameter values of one tunnel end, as its gateway's agent writes them to disk. */
export interface TunnelEndState {
    /** `<tunnel>.conf`: the conn. */
    readonly conf: string;
    /** `<tunnel>.secrets`: the secrets line, with the key. */
    readonly secrets: string;
}

/** What the program publishes for one tunnel end. Throws when a value would not fit a standard SSM parameter. */
export function tunnelEndState(end: TunnelEnd, psk: string): TunnelEndState {
    return { conf: tunnelEndConf(end), secrets: tunnelEndSecrets(end, psk) };
}

/** The conn parameter's value (no key: it stays out of secrets, so that it shows in diffs). */
export function tunnelEndConf(end: TunnelEnd): string {
    return fitsParameter(end.tunnel, "conf", renderConn(end));
}

/** The secrets parameter's value. */
export function tunnelEndSecrets(end: Pick<TunnelEnd, "tunnel" | "localElasticIp" | "peerElasticIp">, psk: string): string {
    return fitsParameter(end.tunnel, "secrets", renderSecrets(end, psk));
}

function fitsParameter(tunnel: string, kind: string, value: string): string {
    const bytes = Buffer.byteLength(value);
    if (bytes > SSM_STANDARD_MAX_BYTES) {
        throw new Error(`tunnel ${tunnel}: its ${kind} is ${bytes} bytes; a standard SSM parameter holds ${SSM_STANDARD_MAX_BYTES}`);
    }
    return value;
}

export function assertPskSafe(psk: string, tunnel: string): void {
    if (!isUsablePsk(psk)) {
        // Never echo the key itself.
        throw new Error(
            `pre-shared key of tunnel ${tunnel} is unusable: it needs at least ${PSK.minLength} characters ` +
                `from A-Z a-z 0-9 ${PSK.special} (got ${psk.length} characters)`,
        );
    }
}
