/**
 * A snapshot of a stack, taken offline: what lands on each gateway (its user data and the files in
 * it, and the tunnel files its agent writes from the desired state), what the program publishes in
 * SSM Parameter Store, and a plan of gateways and tunnels. Deterministic for given Elastic IPs, with
 * keys redacted unless asked for, so two snapshots can be diffed in review. `npm run render` writes it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import type { RawConfig } from "../config/load";
import type { RegionSpec } from "../config/types";
import { GATEWAY_PATHS } from "../gateway/contract";
import { filesOfUserData, userDataOfPayload } from "../render/bootstrap";
import { type Evaluation, evaluateOffline, plain, type RecordedResource, resolve } from "./evaluate";

/** Stands in for every generated key unless `revealSecrets` is set. */
export const REDACTED = "<redacted>";

export interface SnapshotOptions {
    readonly stack: string;
    readonly elasticIps?: Readonly<Record<string, string>>;
    /** Write the generated keys instead of `<redacted>` (for the lab; never for review). */
    readonly revealSecrets?: boolean;
}

export interface SnapshotFile {
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
    /** SSM path of the gateway's desired state (its agent lists it). */
    readonly parameterPath: string;
    /** Bytes of its user data as EC2 receives it, gzip-compressed (EC2 accepts 16,384). */
    readonly userDataBytes: number;
}

export interface PlanTunnel {
    readonly name: string;
    readonly hub: string;
    readonly spoke: string;
}

/** A parameter in SSM Parameter Store; its value is written to `ssm/<awsRegion><name>`. */
export interface PlanParameter {
    readonly awsRegion: string;
    readonly name: string;
    readonly type: "String" | "SecureString";
}

export interface Plan {
    readonly stack: string;
    readonly secrets: "redacted" | "revealed";
    readonly gateways: readonly PlanGateway[];
    readonly tunnels: readonly PlanTunnel[];
    readonly parameters: readonly PlanParameter[];
}

export interface StackSnapshot {
    readonly plan: Plan;
    readonly files: readonly SnapshotFile[];
    readonly warnings: readonly string[];
}

type AddFile = (path: string, mode: number, content: string) => void;

/** Evaluates the program for `raw` and collects what lands on each gateway. Throws `ConfigError` on bad config. */
export async function snapshotStack(raw: RawConfig, options: SnapshotOptions): Promise<StackSnapshot> {
    const ev = await evaluateOffline(raw, { stack: options.stack, elasticIps: options.elasticIps });
    const { spec } = ev.result;
    const keys = Object.values(ev.keys);
    const redact = (text: string) => (options.revealSecrets ? text : keys.reduce((t, k) => t.split(k).join(REDACTED), text));
    const files: SnapshotFile[] = [];
    const add: AddFile = (p, mode, content) => files.push({ path: p, mode, content: redact(content) });

    const gateways: PlanGateway[] = [];
    for (const region of spec.regions) {
        gateways.push(await snapshotGateway(ev, region, add));
    }
    const parameters = snapshotParameterStore(ev, add);
    const plan: Plan = {
        stack: options.stack,
        secrets: options.revealSecrets ? "revealed" : "redacted",
        gateways,
        tunnels: spec.tunnels.map((t) => ({ name: t.name, hub: t.hub, spoke: t.spoke })),
        parameters,
    };
    add("plan.json", 0o644, JSON.stringify(plan, null, 2) + "\n");
    return { plan, files, warnings: ev.warnings };
}

/** One gateway: its user data and the files in it, and the tunnel files its agent writes from the desired state. */
async function snapshotGateway(ev: Evaluation, region: RegionSpec, add: AddFile): Promise<PlanGateway> {
    const gateway = ev.result.vpn.gateways[region.name];
    const sent: string = plain(ev.recordOf(gateway.instance).inputs.userDataBase64);
    const userData = userDataOfPayload(sent);
    add(`${region.name}/user-data`, 0o600, userData);
    for (const f of filesOfUserData(userData)) {
        add(`${region.name}${f.path}`, parseInt(f.permissions, 8), f.content);
    }
    // What the agent writes from the desired state: each tunnel end's conn and secrets, verbatim.
    for (const [tunnel, p] of Object.entries(gateway.tunnelParameters).sort(([a], [b]) => a.localeCompare(b))) {
        add(`${region.name}${GATEWAY_PATHS.ipsecDir}/${tunnel}.conf`, 0o644, parameterValue(ev.recordOf(p.conf)));
        add(`${region.name}${GATEWAY_PATHS.ipsecDir}/${tunnel}.secrets`, 0o600, parameterValue(ev.recordOf(p.secrets)));
    }
    return {
        region: region.name,
        awsRegion: region.awsRegion,
        role: region.role,
        vpcCidr: region.vpcCidr,
        elasticIp: ev.elasticIps[region.name],
        privateIp: region.gatewayPrivateIp,
        vpnSubnet: region.vpnSubnet,
        workloadSubnets: region.workloadSubnets.map((s) => s.cidr),
        tunnels: ev.result.spec.peers[region.name].map((p) => p.tunnel.name),
        routesToGateway: await routesTo(ev, gateway.networkInterfaceId),
        parameterPath: gateway.parameterPath,
        userDataBytes: Buffer.from(sent, "base64").length,
    };
}

/** SSM Parameter Store as the program fills it (`ssm/<awsRegion><name>`, types in `ssm/.types.json`): what the lab serves. */
function snapshotParameterStore(ev: Evaluation, add: AddFile): PlanParameter[] {
    const parameters = ev.resources
        .filter((r) => r.type === "aws:ssm/parameter:Parameter")
        .map((r) => ({ awsRegion: r.awsRegion ?? "", name: r.inputs.name as string, type: r.inputs.type, value: parameterValue(r) }))
        .sort((a, b) => `${a.awsRegion}${a.name}`.localeCompare(`${b.awsRegion}${b.name}`));
    for (const p of parameters) {
        add(`ssm/${p.awsRegion}${p.name}`, 0o600, p.value);
    }
    const types = Object.fromEntries(parameters.map((p) => [`${p.awsRegion}${p.name}`, p.type]));
    add("ssm/.types.json", 0o644, JSON.stringify(types, null, 2) + "\n");
    return parameters.map((p) => ({ awsRegion: p.awsRegion, name: p.name, type: p.type }));
}

/** A parameter's value as the program set it (`insecureValue` for the ones without secrets). */
export function parameterValue(r: RecordedResource): string {
    return plain(r.inputs.insecureValue ?? r.inputs.value);
}

/** The distinct destinations of the program's routes that target a gateway's network interface. */
async function routesTo(ev: Evaluation, networkInterfaceId: pulumi.Output<string>): Promise<string[]> {
    const eni = await resolve(networkInterfaceId);
    const routes = ev.resources.filter((r) => r.type === "aws:ec2/route:Route" && r.inputs.networkInterfaceId === eni);
    return [...new Set(routes.map((r) => r.inputs.destinationCidrBlock as string))].sort();
}

/**
 * Writes a snapshot to `dir`, replacing an earlier one there. Refuses a directory that holds
 * anything but an earlier snapshot, so a typo in `--out` cannot wipe unrelated files.
 */
export function writeSnapshot(snapshot: StackSnapshot, dir: string): void {
    const out = path.resolve(dir);
    if (fs.existsSync(out)) {
        const entries = fs.readdirSync(out);
        if (entries.length > 0 && !entries.includes("plan.json")) {
            throw new Error(`render: ${out} is not empty and holds no earlier render (no plan.json); choose another --out`);
        }
    }
    fs.mkdirSync(path.dirname(out), { recursive: true });
    // Write next to the target, then swap, so a failure leaves the earlier snapshot intact.
    const staging = fs.mkdtempSync(`${out}.staging-`);
    try {
        for (const f of snapshot.files) {
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
