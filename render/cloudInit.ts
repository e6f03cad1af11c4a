/**
 * The cloud-init user data of a gateway: installs libreswan, writes its tunnel files and kernel
 * settings, and starts `ipsec`. Plain values in, a `#cloud-config` document out.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { GATEWAY_PATHS, renderMssClamp } from "../gateway/contract";
import { connFileName, renderConn, renderSecrets, secretsFileName, type TunnelEnd } from "./libreswan";
import { renderSysctl, SYSCTL_PATH } from "./sysctl";
import { HEALTH_CONF_PATH, HEALTH_SCRIPT_PATH, PSK_SCRIPT_PATH, renderUnits, TUNNELS_PATH } from "./systemd";

/** CloudWatch namespace of the TunnelUp metric; the gateways' IAM condition names it too. */
export const METRIC_NAMESPACE = "HubspokeVpn";
export const METRIC_NAME = "TunnelUp";

/** Who a gateway is, for the metrics it reports. */
export interface GatewayIdentity {
    readonly stack: string;
    readonly regionName: string;
    readonly awsRegion: string;
}

/** A file as it lands on the gateway. */
export interface GatewayFile {
    readonly path: string;
    readonly permissions: "0600" | "0644" | "0755";
    readonly content: string;
}

/** Where a tunnel's pre-shared key lives: an SSM SecureString parameter in the gateway's own region. */
export interface KeyParameter {
    readonly awsRegion: string;
    readonly name: string;
}

export interface GatewayTunnel {
    readonly end: TunnelEnd;
    readonly keyParameter: KeyParameter;
}

export const IPSEC_DIR = "/etc/ipsec.d";

/** The key-fetching script, kept as a real file in the repository (gateway/) and tested there. */
export function pskScript(): string {
    return fs.readFileSync(repoFile("gateway/hubspoke-psk.sh"), "utf8");
}

/** The tunnel health script, kept as a real file in the repository (gateway/) and tested there. */
export function healthScript(): string {
    return fs.readFileSync(repoFile("gateway/hubspoke-health.sh"), "utf8");
}

export function renderHealthConf(id: GatewayIdentity): string {
    return [
        "# read by hubspoke-health",
        `STACK=${id.stack}`,
        `REGION_NAME=${id.regionName}`,
        `AWS_REGION=${id.awsRegion}`,
        `NAMESPACE=${METRIC_NAMESPACE}`,
        "",
    ].join("\n");
}

/** A file of this repository, found from here whether running from source (ts-node) or from bin/. */
function repoFile(relative: string): string {
    for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
        const candidate = path.join(dir, relative);
        if (fs.existsSync(candidate)) {
            return candidate;
        }
    }
    throw new Error(`hubspoke-vpn: ${relative} not found above ${__dirname}`);
}

const byTunnel = <T extends { end: TunnelEnd }>(tunnels: readonly T[]) =>
    [...tunnels].sort((a, b) => a.end.tunnel.localeCompare(b.end.tunnel));

/** The list `hubspoke-psk` reads: tunnel, region, parameter, local and peer Elastic IP. No key material. */
export function renderTunnelList(tunnels: readonly GatewayTunnel[]): string {
    return (
        "# tunnel region parameter local-elastic-ip peer-elastic-ip (read by hubspoke-psk)\n" +
        byTunnel(tunnels)
            .map((t) => [t.end.tunnel, t.keyParameter.awsRegion, t.keyParameter.name, t.end.localElasticIp, t.end.peerElasticIp].join(" "))
            .join("\n") +
        "\n"
    );
}

/**
 * Every file the gateway's user data writes, in a stable order. No key: the secrets files are
 * written at boot by `hubspoke-psk` from SSM Parameter Store (see `secretsFiles`).
 */
export function gatewayFiles(id: GatewayIdentity, tunnels: readonly GatewayTunnel[]): GatewayFile[] {
    return [
        ...byTunnel(tunnels).map(
            (t): GatewayFile => ({ path: `${IPSEC_DIR}/${connFileName(t.end.tunnel)}`, permissions: "0644", content: renderConn(t.end) }),
        ),
        { path: TUNNELS_PATH, permissions: "0644", content: renderTunnelList(tunnels) },
        { path: HEALTH_CONF_PATH, permissions: "0644", content: renderHealthConf(id) },
        { path: PSK_SCRIPT_PATH, permissions: "0755", content: pskScript() },
        { path: HEALTH_SCRIPT_PATH, permissions: "0755", content: healthScript() },
        ...renderUnits().map((u): GatewayFile => ({ path: u.path, permissions: "0644", content: u.content })),
        { path: SYSCTL_PATH, permissions: "0644", content: renderSysctl() },
        { path: GATEWAY_PATHS.mssClamp, permissions: "0644", content: renderMssClamp() },
    ];
}

/** One line of the tunnel list, read back. */
export interface TunnelListEntry {
    readonly tunnel: string;
    readonly awsRegion: string;
    readonly parameter: string;
    readonly localElasticIp: string;
    readonly peerElasticIp: string;
}

export function parseTunnelList(text: string): TunnelListEntry[] {
    return text
        .split("\n")
        .filter((l) => l.trim() && !l.startsWith("#"))
        .map((l) => {
            const [tunnel, awsRegion, parameter, localElasticIp, peerElasticIp] = l.trim().split(/\s+/);
            return { tunnel, awsRegion, parameter, localElasticIp, peerElasticIp };
        });
}

/**
 * The secrets files `hubspoke-psk` writes at boot, given the keys: for the offline render, and for
 * the tests that check the script writes exactly this.
 */
export function secretsFiles(entries: readonly TunnelListEntry[], keyOf: (tunnel: string) => string): GatewayFile[] {
    return [...entries]
        .sort((a, b) => a.tunnel.localeCompare(b.tunnel))
        .map((e) => ({
            path: `${IPSEC_DIR}/${secretsFileName(e.tunnel)}`,
            // Readable by root only.
            permissions: "0600",
            content: renderSecrets(e, keyOf(e.tunnel)),
        }));
}

/** The `#cloud-config` user data that makes an Amazon Linux 2023 instance a gateway. */
export function renderUserData(regionName: string, files: readonly GatewayFile[]): string {
    const doc = {
        // libreswan is OpenSwan's maintained successor, packaged by Amazon Linux 2023; the AWS CLI
        // (preinstalled on AL2023's images) fetches the keys.
        packages: ["libreswan", "awscli-2", "nftables"],
        write_files: files.map((f) => ({
            path: f.path,
            owner: "root:root",
            permissions: f.permissions,
            content: f.content,
        })),
        runcmd: [
            // Apply /etc/sysctl.d now; at later boots systemd-sysctl applies it before networking.
            ["sysctl", "--system"],
            ["systemctl", "daemon-reload"],
            // Enabled units come back at every boot: keys first, then ipsec, then the refresh timer.
            [
                "systemctl",
                "enable",
                "hubspoke-mss.service",
                "hubspoke-psk.service",
                "ipsec.service",
                "hubspoke-psk-refresh.timer",
                "hubspoke-health.timer",
            ],
            // --no-block: cloud-init must not wait while the keys are still being fetched.
            [
                "systemctl",
                "start",
                "--no-block",
                "hubspoke-mss.service",
                "ipsec.service",
                "hubspoke-psk-refresh.timer",
                "hubspoke-health.timer",
            ],
        ],
    };
    return `#cloud-config\n# hubspoke-vpn gateway for region ${regionName}\n` + YAML.stringify(doc, { lineWidth: 0 });
}

/** Reads the files back out of user data: what `render` writes and what tests inspect. */
export function filesOfUserData(userData: string): GatewayFile[] {
    const doc = YAML.parse(userData) as { write_files?: GatewayFile[] };
    return (doc.write_files ?? []).map((f) => ({ path: f.path, permissions: f.permissions, content: f.content }));
}
