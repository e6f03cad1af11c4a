/**
 * Renders a stack offline: every gateway's files exactly as its user data writes them, the user
 * data itself, and a plan of gateways and tunnels. Deterministic for given Elastic IPs, and with
 * keys redacted unless asked for, so two renders can be diffed in review.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { RawConfig } from "../config/load";
import { filesOfUserData, parseTunnelList, secretsFiles } from "../render/cloudInit";
import { TUNNELS_PATH } from "../render/systemd";
import { type Evaluation, evaluateOffline, mockIdOf, plain } from "./evaluate";

/** Stands in for every generated key unless `revealSecrets` is set. */
export const REDACTED = "<redacted>";

export interface RenderOptions {
    readonly stack: string;
    readonly elasticIps?: Readonly<Record<string, string>>;
    /** Write the generated keys instead of `<redacted>` (for the lab; never for review). */
    readonly revealSecrets?: boolean;
}

export interface RenderedFile {
    /** Path under the output directory, e.g. `virginia/etc/ipsec.d/virginia-to-sydney.conf`. */
    readonly path: string;
    readonly mode: number;
    readonly content: string;
}

export interface PlanGateway {
    readonly region: string;
    readonly awsRegion: string;
    readonly role: string;
    readonly vpcCidr: string;
    readonly elasticIp: string;
    readonly privateIp: string;
    readonly vpnSubnet: string;
    readonly workloadSubnets: readonly string[];
    readonly tunnels: readonly string[];
    /** Destinations the VPC's route tables send to this gateway's network interface. */
    readonly routesToGateway: readonly string[];
}

export interface PlanTunnel {
    readonly name: string;
    readonly hub: string;
    readonly spoke: string;
}

/** A key parameter in SSM Parameter Store; its value is written to `ssm/<awsRegion><name>`. */
export interface PlanParameter {
    readonly awsRegion: string;
    readonly name: string;
}

export interface Plan {
    readonly stack: string;
    readonly secrets: "redacted" | "revealed";
    readonly gateways: readonly PlanGateway[];
    readonly tunnels: readonly PlanTunnel[];
    readonly parameters: readonly PlanParameter[];
}

export interface RenderedStack {
    readonly plan: Plan;
    readonly files: readonly RenderedFile[];
    readonly warnings: readonly string[];
}

/** Evaluates the program for `raw` and collects what lands on each gateway. Throws `ConfigError` on bad config. */
export async function renderStack(raw: RawConfig, options: RenderOptions): Promise<RenderedStack> {
    const ev = await evaluateOffline(raw, { stack: options.stack, elasticIps: options.elasticIps });
    const { spec } = ev.result;
    const keys = Object.values(ev.keys);
    const redact = (text: string) => (options.revealSecrets ? text : keys.reduce((t, k) => t.split(k).join(REDACTED), text));

    const files: RenderedFile[] = [];
    for (const region of spec.regions) {
        const instance = ev.resources.find(
            (r) => r.type === "aws:ec2/instance:Instance" && r.name === `hubspoke-${region.name}-gw-instance`,
        );
        if (!instance) {
            throw new Error(`render: the program registered no gateway instance for region ${region.name}`);
        }
        const userData: string = plain(instance.inputs.userData);
        files.push({ path: `${region.name}/user-data`, mode: 0o600, content: redact(userData) });
        const written = filesOfUserData(userData);
        // The secrets files are not in the user data: hubspoke-psk writes them at boot from SSM.
        const tunnelList = written.find((f) => f.path === TUNNELS_PATH);
        const atBoot = tunnelList ? secretsFiles(parseTunnelList(tunnelList.content), (t) => ev.keys[t]) : [];
        for (const f of [...written, ...atBoot]) {
            files.push({ path: `${region.name}${f.path}`, mode: parseInt(f.permissions, 8), content: redact(f.content) });
        }
    }

    // SSM Parameter Store as the program fills it: what the lab's stand-in for the AWS CLI reads.
    const parameters = ev.resources
        .filter((r) => r.type === "aws:ssm/parameter:Parameter")
        .map((r) => ({ awsRegion: r.awsRegion ?? "", name: r.inputs.name as string, value: plain(r.inputs.value) as string }))
        .sort((a, b) => `${a.awsRegion}${a.name}`.localeCompare(`${b.awsRegion}${b.name}`));
    for (const p of parameters) {
        files.push({ path: `ssm/${p.awsRegion}${p.name}`, mode: 0o600, content: redact(p.value) });
    }

    const plan: Plan = {
        stack: options.stack,
        secrets: options.revealSecrets ? "revealed" : "redacted",
        gateways: spec.regions.map((r) => ({
            region: r.name,
            awsRegion: r.awsRegion,
            role: r.role,
            vpcCidr: r.vpcCidr,
            elasticIp: ev.elasticIps[r.name],
            privateIp: r.gatewayPrivateIp,
            vpnSubnet: r.vpnSubnet,
            workloadSubnets: r.workloadSubnets.map((s) => s.cidr),
            tunnels: spec.tunnels.filter((t) => t.hub === r.name || t.spoke === r.name).map((t) => t.name),
            routesToGateway: routesToGateway(ev, r.name),
        })),
        tunnels: spec.tunnels.map((t) => ({ name: t.name, hub: t.hub, spoke: t.spoke })),
        parameters: parameters.map((p) => ({ awsRegion: p.awsRegion, name: p.name })),
    };
    files.push({ path: "plan.json", mode: 0o644, content: JSON.stringify(plan, null, 2) + "\n" });
    return { plan, files, warnings: ev.warnings };
}

/** The distinct destinations of the program's routes that target a region's gateway interface. */
function routesToGateway(ev: Evaluation, region: string): string[] {
    const eni = ev.resources.find((r) => r.type === "aws:ec2/networkInterface:NetworkInterface" && r.name === `hubspoke-${region}-gw-eni`);
    const routes = ev.resources.filter((r) => r.type === "aws:ec2/route:Route" && eni && r.inputs.networkInterfaceId === mockIdOf(eni));
    return [...new Set(routes.map((r) => r.inputs.destinationCidrBlock as string))].sort();
}

/**
 * Writes a rendered stack to `dir`, replacing an earlier render there. Refuses a directory that
 * holds anything but an earlier render, so a typo in `--out` cannot wipe unrelated files.
 */
export function writeRendered(rendered: RenderedStack, dir: string): void {
    const out = path.resolve(dir);
    if (fs.existsSync(out)) {
        const entries = fs.readdirSync(out);
        if (entries.length > 0 && !entries.includes("plan.json")) {
            throw new Error(`render: ${out} is not empty and holds no earlier render (no plan.json); choose another --out`);
        }
    }
    fs.mkdirSync(path.dirname(out), { recursive: true });
    // Write next to the target, then swap, so a failure leaves the earlier render intact.
    const staging = fs.mkdtempSync(`${out}.staging-`);
    try {
        for (const f of rendered.files) {
            const target = path.join(staging, f.path);
            fs.mkdirSync(path.dirname(target), { recursive: true });
            fs.writeFileSync(target, f.content, { mode: f.mode });
            fs.chmodSync(target, f.mode);
        }
        fs.rmSync(out, { recursive: true, force: true });
        fs.renameSync(staging, out);
    } catch (e) {
        fs.rmSync(staging, { recursive: true, force: true });
        throw e;
    }
}
