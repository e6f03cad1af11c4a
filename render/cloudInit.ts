/**
 * The cloud-init user data of a gateway: installs libreswan, writes its tunnel files and kernel
 * settings, and starts `ipsec`. Plain values in, a `#cloud-config` document out.
 */
import * as YAML from "yaml";
import { connFileName, renderConn, renderSecrets, secretsFileName, TunnelEnd } from "./libreswan";
import { renderSysctl, SYSCTL_PATH } from "./sysctl";

/** A file as it lands on the gateway. */
export interface GatewayFile {
    readonly path: string;
    readonly permissions: "0600" | "0644";
    readonly content: string;
}

export interface GatewayTunnel {
    readonly end: TunnelEnd;
    readonly psk: string;
}

export const IPSEC_DIR = "/etc/ipsec.d";

/** Every file the gateway's user data writes, in a stable order. */
export function gatewayFiles(tunnels: readonly GatewayTunnel[]): GatewayFile[] {
    const sorted = [...tunnels].sort((a, b) => a.end.tunnel.localeCompare(b.end.tunnel));
    return [
        ...sorted.flatMap(({ end, psk }): GatewayFile[] => [
            { path: `${IPSEC_DIR}/${connFileName(end.tunnel)}`, permissions: "0644", content: renderConn(end) },
            // Readable by root only: pluto refuses nothing, but anyone else could read the key.
            { path: `${IPSEC_DIR}/${secretsFileName(end.tunnel)}`, permissions: "0600", content: renderSecrets(end, psk) },
        ]),
        { path: SYSCTL_PATH, permissions: "0644", content: renderSysctl() },
    ];
}

/** The `#cloud-config` user data that makes an Amazon Linux 2023 instance a gateway. */
export function renderUserData(regionName: string, files: readonly GatewayFile[]): string {
    const doc = {
        // libreswan is OpenSwan's maintained successor, packaged by Amazon Linux 2023.
        packages: ["libreswan"],
        write_files: files.map((f) => ({
            path: f.path,
            owner: "root:root",
            permissions: f.permissions,
            content: f.content,
        })),
        runcmd: [
            // Apply /etc/sysctl.d now; at later boots systemd-sysctl applies it before networking.
            ["sysctl", "--system"],
            ["systemctl", "enable", "--now", "ipsec"],
        ],
    };
    return `#cloud-config\n# hubspoke-vpn gateway for region ${regionName}\n` + YAML.stringify(doc, { lineWidth: 0 });
}

/** Reads the files back out of user data: what `render` writes and what tests inspect. */
export function filesOfUserData(userData: string): GatewayFile[] {
    const doc = YAML.parse(userData) as { write_files?: GatewayFile[] };
    return (doc.write_files ?? []).map((f) => ({ path: f.path, permissions: f.permissions, content: f.content }));
}
