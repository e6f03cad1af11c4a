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
}

/**
 * Explicit proposals so both ends agree regardless of distribution defaults: AES-GCM first,
 * AES-CBC with SHA-2 as fallback, ECP-256 (group 19) for key exchange and PFS.
 */
export const IKE_PROPOSALS = "aes_gcm256-sha2_256-dh19,aes256-sha2_256-dh19";
export const ESP_PROPOSALS = "aes_gcm256,aes256-sha2_256";

/**
 * Dead peer detection (IKEv2 liveness, which libreswan runs on the Child SA): a probe every 2 s
 * when no traffic arrives. pluto retransmits an unanswered exchange after 0.5, 1, 2 and 4 s and
 * checks the timeout only when the next retransmit is due, so a 7 s timeout gives up at 7.5 s (the
 * lab measured 10 s gave up at 15.5 s): a dead peer is noticed within about 10 s, and the connection
 * is then restarted and retried forever. A returning peer initiates on its own (auto=start), so the
 * tunnel is back after one exchange. The lab measures both (README, Operations).
 */
export const DPD = { delaySeconds: 2, retransmitTimeoutSeconds: 7 } as const;

export function connFileName(tunnel: string): string {
    return `${tunnel}.conf`;
}

export function secretsFileName(tunnel: string): string {
    return `${tunnel}.secrets`;
}

/** The `/etc/ipsec.d/<tunnel>.conf` file of one tunnel end. */
export function renderConn(end: TunnelEnd): string {
    return [
        `# ${end.tunnel}: managed by hubspoke-vpn (Pulumi); local changes are overwritten on replacement.`,
        `conn ${end.tunnel}`,
        "    type=tunnel",
        "    authby=secret",
        "    ikev2=yes",
        // The gateway sits behind AWS's 1:1 NAT: it binds its private address but
        // identifies itself by its Elastic IP, the address its peer knows.
        "    left=%defaultroute",
        `    leftid=${end.localElasticIp}`,
        `    leftsubnet=${end.localCidr}`,
        `    right=${end.peerElasticIp}`,
        `    rightid=${end.peerElasticIp}`,
        `    rightsubnet=${end.peerCidr}`,
        `    ike=${IKE_PROPOSALS}`,
        `    esp=${ESP_PROPOSALS}`,
        "    pfs=yes",
        "    ikelifetime=8h",
        "    salifetime=1h",
        `    dpddelay=${DPD.delaySeconds}s`,
        `    retransmit-timeout=${DPD.retransmitTimeoutSeconds}s`,
        "    dpdaction=restart",
        "    keyingtries=%forever",
        "    auto=start",
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

/** Characters allowed in a generated key besides letters and digits: safe inside a quoted PSK. */
export const PSK_SPECIAL_CHARACTERS = "-_.+=~";
export const PSK_MIN_LENGTH = 32;

export function assertPskSafe(psk: string, tunnel: string): void {
    const allowed = new RegExp(`^[A-Za-z0-9${PSK_SPECIAL_CHARACTERS.replace(/[-\\\]^]/g, "\\$&")}]+$`);
    if (psk.length < PSK_MIN_LENGTH || !allowed.test(psk)) {
        // Never echo the key itself.
        throw new Error(
            `pre-shared key of tunnel ${tunnel} is unusable: it needs at least ${PSK_MIN_LENGTH} characters ` +
                `from A-Z a-z 0-9 ${PSK_SPECIAL_CHARACTERS} (got ${psk.length} characters)`,
        );
    }
}
