/**
 * A snapshot of a stack, taken offline: what lands on each gateway (its user data and the files in
 * it, and the tunnel files its agent writes from the desired state), what the program publishes in
 * SSM Parameter Store, and a plan of gateways and tunnels. Deterministic for given Elastic IPs, with
 * keys redacted unless asked for, so two snapshots can be diffed in review. `npm run render` writes it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type * as aws from "@pulumi/aws";
import type * as pulumi from "@pulumi/pulumi";
import type { OpenSwanGateway } from "../components/openSwanGateway";
import type { RawConfig } from "../config/load";
import { type RegionSpec, siteIpOf } from "../config/types";
import { GATEWAY_PATHS } from "../gateway/contract";
import { filesOfUserData, type GatewayFile, userDataOfPayload } from "../render/bootstrap";
import { unpackSoftware } from "../render/software";
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
    /** The inline policies of its instance role, as the program renders them (the mocks' account and partition). */
    readonly iamPolicies: readonly PlanPolicy[];
    /** Sites with a standby only: both gateways and what moves between them. */
    readonly failover?: PlanFailover;
}

/** A site with a standby, as its failover scripts and the lab see it. */
export interface PlanFailover {
    /** SSM name of the site's failover layout. */
    readonly layoutParameter: string;
    /** The site's Elastic IP allocation (its address is the gateway's `elasticIp`). */
    readonly allocationId: string;
    /** Every route table of the VPC, with the subnets associated with it. */
    readonly routeTables: readonly { readonly id: string; readonly subnets: readonly string[] }[];
    /** The primary first, then the standby. Each one's files are under `<name>/` in the render. */
    readonly gateways: readonly PlanPairGateway[];
}

export interface PlanPairGateway {
    /** `virginia`, `virginia-standby`. */
    readonly name: string;
    readonly privateIp: string;
    /** The secondary private IP the site's Elastic IP is associated with while this gateway is active. */
    readonly siteIp: string;
    readonly subnet: string;
    /** Its own Elastic IP (management). */
    readonly managementIp: string;
    readonly networkInterfaceId: string;
    readonly parameterPath: string;
    readonly userDataBytes: number;
    readonly iamPolicies: readonly PlanPolicy[];
}

/** An inline policy of a gateway's role: what the lab's AWS endpoint authorizes that gateway's calls with. */
export interface PlanPolicy {
    /** The RolePolicy's logical name, e.g. `virginia-policy`. */
    readonly name: string;
    readonly document: { readonly Version: string; readonly Statement: readonly Record<string, unknown>[] };
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
        const standby = ev.result.vpn.standbys[region.name];
        const primary = await snapshotGateway(ev, region, ev.result.vpn.gateways[region.name], add);
        if (!standby || !region.standby) {
            gateways.push(primary);
            continue;
        }
        const second = await snapshotGateway(ev, region, standby.gateway, add);
        const pair = await Promise.all(
            [ev.result.vpn.gateways[region.name], standby.gateway].map(async (g, i) => ({
                name: g.gatewayId,
                privateIp: g.privateIp,
                siteIp: siteIpOf(g.privateIp),
                subnet: i === 0 ? region.vpnSubnet : region.standby!.vpnSubnet,
                managementIp: await resolve(g.managementIp),
                networkInterfaceId: await resolve(g.networkInterfaceId),
                parameterPath: g.parameterPath,
                userDataBytes: [primary, second][i].userDataBytes,
                iamPolicies: [primary, second][i].iamPolicies,
            })),
        );
        gateways.push({
            ...primary,
            failover: {
                layoutParameter: plain(ev.recordOf(standby.failover.layout).inputs.name),
                allocationId: await siteAllocation(ev, region.name),
                routeTables: await routeTablesOf(ev, ev.result.vpn.vpcs[region.name].routeTables),
                gateways: pair,
            },
        });
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

/**
 * One gateway: its user data and the files in it, and the tunnel files its agent writes from the
 * desired state, under `<gateway name>/` (the region name; `<region>-standby` for a standby).
 */
async function snapshotGateway(ev: Evaluation, region: RegionSpec, gateway: OpenSwanGateway, add: AddFile): Promise<PlanGateway> {
    const dir = gateway.gatewayId;
    const sent: string = plain(ev.recordOf(gateway.instance).inputs.userDataBase64);
    const userData = userDataOfPayload(sent);
    add(`${dir}/user-data`, 0o600, userData);
    const written = filesOfUserData(userData);
    for (const f of [...written, ...softwareOf(ev, written)]) {
        add(`${dir}${f.path}`, parseInt(f.permissions, 8), f.content);
    }
    // What the agent writes from the desired state: each tunnel end's conn and secrets, verbatim.
    for (const [tunnel, p] of Object.entries(gateway.tunnelParameters).sort(([a], [b]) => a.localeCompare(b))) {
        add(`${dir}${GATEWAY_PATHS.ipsecDir}/${tunnel}.conf`, 0o644, parameterValue(ev.recordOf(p.conf)));
        add(`${dir}${GATEWAY_PATHS.ipsecDir}/${tunnel}.secrets`, 0o600, parameterValue(ev.recordOf(p.secrets)));
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
        iamPolicies: await rolePolicies(ev, gateway),
    };
}

/** Every inline policy attached to the gateway's role (its own, and a pair's failover policy), by name. */
async function rolePolicies(ev: Evaluation, gateway: OpenSwanGateway): Promise<PlanPolicy[]> {
    const role = await resolve(gateway.role.name);
    return ev.resources
        .filter((r) => r.type === "aws:iam/rolePolicy:RolePolicy" && r.inputs.role === role)
        .map((r) => ({ name: r.name, document: JSON.parse(plain(r.inputs.policy)) }))
        .sort((a, b) => a.name.localeCompare(b.name));
}

/** Every file a gateway gets: what its user data writes, then the software that names (from the program's SSM parameters). */
export function filesOfGateway(ev: Evaluation, instance: RecordedResource): GatewayFile[] {
    const written = filesOfUserData(userDataOfPayload(plain(instance.inputs.userDataBase64)));
    return [...written, ...softwareOf(ev, written)];
}

/** The software the user data names (its settings give the path and digest), from the program's SSM parameters. */
function softwareOf(ev: Evaluation, written: readonly GatewayFile[]): GatewayFile[] {
    const env = written.find((f) => f.path === GATEWAY_PATHS.bootstrapEnv)?.content ?? "";
    const setting = (key: string) => new RegExp(`^${key}='([^']*)'$`, "m").exec(env)?.[1];
    const softwarePath = setting("HUBSPOKE_SOFTWARE_PATH");
    const sha256 = setting("HUBSPOKE_SOFTWARE_SHA256");
    if (!softwarePath || !sha256) {
        throw new Error(`snapshot: the gateway's settings name no software:\n${env}`);
    }
    const parts = ev.resources
        .filter((r) => r.type === "aws:ssm/parameter:Parameter" && String(r.inputs.name).startsWith(`${softwarePath}/`))
        .sort((a, b) => String(a.inputs.name).localeCompare(String(b.inputs.name)))
        .map(parameterValue);
    return unpackSoftware(parts, sha256);
}

/** The allocation id of a region's site Elastic IP (the mocks' stand-in for `eipalloc-...`). */
async function siteAllocation(ev: Evaluation, regionName: string): Promise<string> {
    const layout = ev.result.vpn.standbys[regionName].failover.layout;
    return JSON.parse(plain(ev.recordOf(layout).inputs.insecureValue)).allocationId;
}

/** Route tables by id, each with the CIDRs of the subnets associated with it. */
async function routeTablesOf(ev: Evaluation, tables: readonly aws.ec2.RouteTable[]): Promise<{ id: string; subnets: string[] }[]> {
    const cidrOf = new Map(ev.resources.filter((r) => r.type === "aws:ec2/subnet:Subnet").map((r) => [r.id, r.inputs.cidrBlock as string]));
    const associations = ev.resources.filter((r) => r.type === "aws:ec2/routeTableAssociation:RouteTableAssociation");
    return Promise.all(
        tables.map(async (t) => {
            const id = await resolve(t.id);
            const subnets = associations.filter((a) => a.inputs.routeTableId === id).map((a) => cidrOf.get(a.inputs.subnetId) ?? "");
            return { id, subnets: subnets.sort() };
        }),
    );
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
