/**
 * A gateway's bootstrap: the cloud-init user data that makes an Amazon Linux 2023 instance a
 * gateway, and the software it installs. The user data carries only the gateway's settings and
 * hubspoke-bootstrap with its unit (a few KB whatever the stack); the software (scripts, units,
 * settings files) travels in SSM Parameter Store (render/software.ts), pinned by its sha256 in the
 * user data. Both depend on the gateway's identity only (stack, region name, AWS region, where its
 * desired state lives), never on its tunnels: adding, changing or removing a tunnel reaches the
 * gateway through SSM Parameter Store and its agent, without touching the instance.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as pako from "pako";
import * as YAML from "yaml";
import {
    GATEWAY_PATHS,
    type GatewayIdentity,
    renderBootstrapEnv,
    renderGatewayEnv,
    renderMssClamp,
    type SoftwareRef,
    softwareParameterPath,
} from "../gateway/contract";
import { renderPairDefaults } from "./libreswan";
import { type PackedSoftware, packSoftware } from "./software";
import { renderSysctl } from "./sysctl";
import { ENABLED_UNITS, FAILOVER_ENABLED_UNITS, renderBootstrapUnit, renderFailoverUnits, renderUnits } from "./systemd";

/** A file as it lands on the gateway. */
export interface GatewayFile {
    readonly path: string;
    readonly permissions: "0600" | "0644" | "0755";
    readonly content: string;
}

/** EC2's limit on user data, before base64 (here: after gzip). */
export const USER_DATA_MAX_BYTES = 16_384;
/** This project's own budget for a gateway's user data (gzip): room stays for what comes next. */
export const USER_DATA_BUDGET_BYTES = 4096;

/** A script of gateway/, kept as a real file in the repository and tested there. */
export function gatewayScript(
    name: "hubspoke-agent.sh" | "hubspoke-health.sh" | "hubspoke-events.sh" | "hubspoke-failover.sh" | "hubspoke-bootstrap.sh",
): string {
    return fs.readFileSync(repoFile(path.join("gateway", name)), "utf8");
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

/**
 * The gateway's software: every file hubspoke-bootstrap installs from SSM (its settings first), in a
 * stable order, the list of units it enables last. No key, and nothing per tunnel. A gateway of a
 * site with a standby also gets hubspoke-failover and its units.
 */
export function softwareFiles(id: GatewayIdentity): GatewayFile[] {
    const failover: GatewayFile[] = id.failover
        ? [
              { path: GATEWAY_PATHS.failoverScript, permissions: "0755", content: gatewayScript("hubspoke-failover.sh") },
              { path: GATEWAY_PATHS.pairDefaults, permissions: "0644", content: renderPairDefaults() },
              ...renderFailoverUnits().map((u): GatewayFile => ({ path: u.path, permissions: "0644", content: u.content })),
          ]
        : [];
    const units = id.failover ? [...ENABLED_UNITS, ...FAILOVER_ENABLED_UNITS] : ENABLED_UNITS;
    return [
        { path: GATEWAY_PATHS.env, permissions: "0644", content: renderGatewayEnv(id) },
        { path: GATEWAY_PATHS.agentScript, permissions: "0755", content: gatewayScript("hubspoke-agent.sh") },
        { path: GATEWAY_PATHS.healthScript, permissions: "0755", content: gatewayScript("hubspoke-health.sh") },
        { path: GATEWAY_PATHS.eventsScript, permissions: "0755", content: gatewayScript("hubspoke-events.sh") },
        ...renderUnits().map((u): GatewayFile => ({ path: u.path, permissions: "0644", content: u.content })),
        { path: GATEWAY_PATHS.sysctl, permissions: "0644", content: renderSysctl() },
        { path: GATEWAY_PATHS.mssClamp, permissions: "0644", content: renderMssClamp() },
        ...failover,
        // Enabled and started last, once every file is in place: the clamp and the first fetch, then ipsec, then the timers.
        { path: GATEWAY_PATHS.unitsFile, permissions: "0644", content: `${units.join(" ")}\n` },
    ];
}

/**
 * Every file the gateway's user data writes: hubspoke-bootstrap, its unit, and its settings (naming
 * the software's path and digest).
 */
export function bootstrapFiles(id: GatewayIdentity, software: SoftwareRef): GatewayFile[] {
    const unit = renderBootstrapUnit();
    return [
        { path: GATEWAY_PATHS.bootstrapEnv, permissions: "0644", content: renderBootstrapEnv(id, software) },
        { path: GATEWAY_PATHS.bootstrapScript, permissions: "0755", content: gatewayScript("hubspoke-bootstrap.sh") },
        { path: unit.path, permissions: "0644", content: unit.content },
    ];
}

/**
 * All a gateway gets, from its identity alone: its software (the files, and packed as SSM carries it,
 * under `<prefix>/<gateway>/software/<digest>`) and the files its user data writes, which name it.
 */
export function gatewayBootstrap(
    id: GatewayIdentity,
    prefix: string,
    gateway: string,
): { software: GatewayFile[]; packed: PackedSoftware; ref: SoftwareRef; userDataFiles: GatewayFile[] } {
    const software = softwareFiles(id);
    const packed = packSoftware(software);
    const ref = { gateway, path: softwareParameterPath(prefix, gateway, packed.sha256), sha256: packed.sha256 };
    return { software, packed, ref, userDataFiles: bootstrapFiles(id, ref) };
}

/** The `#cloud-config` user data of a gateway (plain text; see `userDataPayload` for what EC2 receives). */
export function renderUserData(regionName: string, files: readonly GatewayFile[]): string {
    const doc = {
        // No `packages`: cloud-init installs them once, and a failed dnf would never be retried.
        // hubspoke-bootstrap installs them, retrying until it has, at every boot until it has finished.
        write_files: files.map((f) => ({
            path: f.path,
            owner: "root:root",
            permissions: f.permissions,
            content: f.content,
        })),
        runcmd: [
            ["systemctl", "daemon-reload"],
            // Enabled: a reboot before it has finished starts it over. --no-block: cloud-init must not wait for it.
            ["systemctl", "enable", "hubspoke-bootstrap.service"],
            ["systemctl", "start", "--no-block", "hubspoke-bootstrap.service"],
        ],
    };
    return `#cloud-config\n# hubspoke-vpn gateway ${regionName}\n` + YAML.stringify(doc, { lineWidth: 0 });
}

/**
 * What EC2 receives: the user data gzip-compressed (cloud-init detects and inflates it), base64 for
 * `userDataBase64`. The same user data must give the same bytes on every machine that runs `pulumi up`,
 * or a deploy from another platform would replace every gateway: so not Node's zlib (its header names
 * the OS, and its deflate changed with Node upgrades) but pako, pinned in package.json (fixed header,
 * mtime 0). tests/unit/render.test.ts holds the prod payload's hash. Throws beyond EC2's limit.
 */
export function userDataPayload(regionName: string, userData: string): { base64: string; bytes: number } {
    const gzipped = Buffer.from(pako.gzip(Buffer.from(userData), { level: 9 }));
    if (gzipped.length > USER_DATA_MAX_BYTES) {
        throw new Error(
            `gateway ${regionName}: user data is ${gzipped.length} bytes gzip-compressed; EC2 accepts at most ${USER_DATA_MAX_BYTES}`,
        );
    }
    return { base64: gzipped.toString("base64"), bytes: gzipped.length };
}

/** The user data back from what EC2 receives. */
export function userDataOfPayload(base64: string): string {
    return Buffer.from(pako.ungzip(Buffer.from(base64, "base64"))).toString("utf8");
}

/** Reads the files back out of user data: what the offline render writes and what tests inspect. */
export function filesOfUserData(userData: string): GatewayFile[] {
    const doc = YAML.parse(userData) as { write_files?: GatewayFile[] };
    return (doc.write_files ?? []).map((f) => ({ path: f.path, permissions: f.permissions, content: f.content }));
}
