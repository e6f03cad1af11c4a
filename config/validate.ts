/**
 * Turns raw stack configuration (as read from Pulumi config or a Pulumi.<stack>.yaml file) into a
 * typed `StackSpec`, or reports every problem at once. Pure: no Pulumi, no I/O.
 */

import { Region as AwsRegion } from "@pulumi/aws/types/enums";
import { EVENTS } from "../gateway/contract";
import { AL2023_KERNELS } from "./ami";
import { awsReservedAddresses, type Cidr, containsCidr, containsIp, formatIp, isPrivate, overlaps, parseCidr, parseIp } from "./cidr";
import {
    peersOf,
    type RegionRole,
    type RegionSpec,
    type StackSpec,
    type StandbySpec,
    siteIpOf,
    tunnelName,
    type WorkloadSubnetSpec,
} from "./types";

/** The Pulumi project name: stack config keys are `hubspoke-vpn:<key>`. */
export const PROJECT = "hubspoke-vpn";

export const DEFAULT_GATEWAY_INSTANCE_TYPE = "t3.small";

/** Availability zone letters a region may use; AWS regions have at most six zones (a-f). */
export const ZONE_LETTERS = ["a", "b", "c", "d", "e", "f"];

const REGION_KEYS = ["name", "awsRegion", "role", "vpcCidr", "vpnSubnet", "vpnZone", "gatewayPrivateIp", "workloadSubnets", "standby"];
const STANDBY_KEYS = ["vpnSubnet", "vpnZone", "gatewayPrivateIp"];
/** The keys of this project a stack may set. */
export const TOP_KEYS = [
    "regions",
    "gatewayInstanceType",
    "gatewayAmiRelease",
    "gatewayAmiKernel",
    "pskRotation",
    "flowLogRetentionDays",
    "eventLogRetentionDays",
    "gatewayTerminationProtection",
    "alarmEmail",
    "ikeProposals",
    "espProposals",
];

/**
 * The keys whose values are text (`type: string` in Pulumi.yaml): read as given, never as JSON, so
 * that a kernel flavour `6.10` stays `6.10` instead of becoming the number 6.1.
 */
export const STRING_KEYS: readonly string[] = [
    "gatewayInstanceType",
    "gatewayAmiRelease",
    "gatewayAmiKernel",
    "alarmEmail",
    "ikeProposals",
    "espProposals",
];

/**
 * The Amazon Linux 2023 release gateways run unless the stack names another. Updated on purpose, in a
 * commit of its own: a new release replaces every gateway (see README, Day two).
 */
export const DEFAULT_GATEWAY_AMI_RELEASE = "2023.9.20251208.0";

/** The kernel flavour of the image; changing it replaces the gateways, like a release. */
export const DEFAULT_GATEWAY_AMI_KERNEL = "6.1";

/**
 * Explicit proposals so both ends agree regardless of distribution defaults: AES-GCM first,
 * AES-CBC with SHA-2 as fallback, ECP-256 (group 19) for key exchange and PFS.
 */
export const DEFAULT_TUNNEL_SETTINGS = {
    ikeProposals: "aes_gcm256-sha2_256-dh19,aes256-sha2_256-dh19",
    espProposals: "aes_gcm256,aes256-sha2_256",
} as const;

/** Every AWS region code the AWS provider knows. */
export const AWS_REGIONS: readonly string[] = Object.values(AwsRegion);

/** The retention periods CloudWatch Logs accepts. */
export const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];
export const DEFAULT_FLOW_LOG_RETENTION_DAYS = 90;

export interface ConfigProblem {
    /** Full config key path, e.g. `hubspoke-vpn:regions[1].vpcCidr`. */
    readonly path: string;
    readonly message: string;
}

/** Thrown when the stack configuration is invalid; lists every problem found. */
export class ConfigError extends Error {
    constructor(readonly problems: readonly ConfigProblem[]) {
        super(
            `Invalid stack configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
                problems.map((p) => ` - ${p.path}: ${p.message}`).join("\n"),
        );
        this.name = "ConfigError";
    }
}

export interface ParsedConfig {
    readonly spec: StackSpec;
    /** Things that deploy but deserve attention, e.g. public address space used as a VPC range. */
    readonly warnings: readonly string[];
}

/**
 * Validates raw config values keyed by their short name (`regions`, `gatewayInstanceType`).
 * Throws `ConfigError` listing every problem; returns the typed spec and warnings otherwise.
 */
export function parseStackConfig(raw: Readonly<Record<string, unknown>>): ParsedConfig {
    const problems: ConfigProblem[] = [];
    const warnings: string[] = [];
    const fail: Fail = (path, message) => problems.push({ path, message });
    for (const k of Object.keys(raw)) {
        if (!TOP_KEYS.includes(k)) {
            fail(key(k), `unknown config key; expected one of ${TOP_KEYS.join(", ")}`);
        }
    }
    const settings = parseSettings(raw, fail);
    const regions = parseRegions(raw.regions, fail, warnings);
    if (problems.length > 0) {
        throw new ConfigError(problems);
    }
    const hub = regions.find((r) => r.role === "hub")!;
    const spokes = regions.filter((r) => r.role === "spoke");
    const ordered = [hub, ...spokes];
    const tunnels = spokes.map((s) => ({ name: tunnelName(hub.name, s.name), hub: hub.name, spoke: s.name }));
    return {
        spec: {
            ...settings,
            regions: ordered,
            hub,
            spokes,
            tunnels,
            peers: peersOf(ordered, tunnels),
            awsRegions: [...new Set(ordered.map((r) => r.awsRegion))],
        },
        warnings,
    };
}

type Fail = (path: string, message: string) => void;

/** `hubspoke-vpn:<k>`: how a key is named in problems. */
const key = (k: string) => `${PROJECT}:${k}`;

/** A value, or why it is refused (the message after the quoted value). */
type Checked<T> = { value: T } | { refused: string };

/** One top-level setting: its default when unset, the default (and a problem) when refused. */
function setting<T>(raw: Readonly<Record<string, unknown>>, k: string, fallback: T, check: (v: unknown) => Checked<T>, fail: Fail): T {
    const v = raw[k];
    if (v === undefined) {
        return fallback;
    }
    const checked = check(v);
    if ("refused" in checked) {
        fail(key(k), `${show(v)} ${checked.refused}`);
        return fallback;
    }
    return checked.value;
}

const matching =
    (pattern: RegExp, refused: string) =>
    (v: unknown): Checked<string> =>
        typeof v === "string" && pattern.test(v) ? { value: v } : { refused };

// libreswan's own parser judges the algorithms (the static checks); this keeps the value one token.
const PROPOSALS = /^[a-z0-9_]+(-[a-z0-9_]+)*(,[a-z0-9_]+(-[a-z0-9_]+)*)*$/;

function parseSettings(raw: Readonly<Record<string, unknown>>, fail: Fail) {
    return {
        gatewayInstanceType: setting(
            raw,
            "gatewayInstanceType",
            DEFAULT_GATEWAY_INSTANCE_TYPE,
            matching(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'is not an EC2 instance type (expected e.g. "t3.small")'),
            fail,
        ),
        gatewayAmiRelease: setting(
            raw,
            "gatewayAmiRelease",
            DEFAULT_GATEWAY_AMI_RELEASE,
            matching(/^2023\.\d+\.\d{8}\.\d+$/, `is not an Amazon Linux 2023 release (expected e.g. "${DEFAULT_GATEWAY_AMI_RELEASE}")`),
            fail,
        ),
        gatewayAmiKernel: setting(
            raw,
            "gatewayAmiKernel",
            DEFAULT_GATEWAY_AMI_KERNEL,
            (v: unknown): Checked<string> =>
                typeof v === "string" && (AL2023_KERNELS as readonly string[]).includes(v)
                    ? { value: v }
                    : {
                          refused:
                              typeof v === "number"
                                  ? `is a number; write the kernel flavour as a string, e.g. "6.12" (YAML reads 6.10 as 6.1)`
                                  : `is not a kernel flavour Amazon Linux 2023 publishes images for (expected one of ${AL2023_KERNELS.join(", ")})`,
                      },
            fail,
        ),
        tunnelSettings: {
            ikeProposals: setting(
                raw,
                "ikeProposals",
                DEFAULT_TUNNEL_SETTINGS.ikeProposals,
                matching(PROPOSALS, `is not a libreswan proposal list (expected e.g. "${DEFAULT_TUNNEL_SETTINGS.ikeProposals}")`),
                fail,
            ) as string,
            espProposals: setting(
                raw,
                "espProposals",
                DEFAULT_TUNNEL_SETTINGS.espProposals,
                matching(PROPOSALS, `is not a libreswan proposal list (expected e.g. "${DEFAULT_TUNNEL_SETTINGS.espProposals}")`),
                fail,
            ) as string,
        },
        pskRotation: setting(raw, "pskRotation", 0, checkRotation, fail),
        flowLogRetentionDays: setting(raw, "flowLogRetentionDays", DEFAULT_FLOW_LOG_RETENTION_DAYS, checkRetention, fail),
        eventLogRetentionDays: setting(raw, "eventLogRetentionDays", EVENTS.defaultRetentionDays, checkRetention, fail),
        gatewayTerminationProtection: setting(raw, "gatewayTerminationProtection", false, checkBoolean, fail),
        alarmEmail: raw.alarmEmail === "" ? undefined : setting<string | undefined>(raw, "alarmEmail", undefined, checkEmail, fail),
    };
}

function checkRotation(v: unknown): Checked<number> {
    const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
    return typeof n === "number" && Number.isSafeInteger(n) && n >= 0
        ? { value: n }
        : { refused: "is not a whole number >= 0 (increase it to rotate every key)" };
}

function checkRetention(v: unknown): Checked<number> {
    const n = Number(v);
    return LOG_RETENTION_DAYS.includes(n) && typeof v !== "boolean"
        ? { value: n }
        : { refused: `is not a retention CloudWatch Logs accepts; use one of ${LOG_RETENTION_DAYS.join(", ")}` };
}

function checkBoolean(v: unknown): Checked<boolean> {
    return v === true || v === "true"
        ? { value: true }
        : v === false || v === "false"
          ? { value: false }
          : { refused: "is not true or false" };
}

function checkEmail(v: unknown): Checked<string> {
    return typeof v === "string" && /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v) ? { value: v } : { refused: "is not an e-mail address" };
}

/** Every region, each checked alone and then against the others. */
function parseRegions(raw: unknown, fail: Fail, warnings: string[]): RegionSpec[] {
    if (raw === undefined) {
        fail(key("regions"), "is missing; set one hub and at least one spoke (see README, Configuration)");
        return [];
    }
    if (!Array.isArray(raw)) {
        fail(key("regions"), `${show(raw)} is not a list of regions`);
        return [];
    }
    const regions: RegionSpec[] = [];
    const parsedCidrs = new Map<RegionSpec, { vpc?: Cidr }>();
    raw.forEach((r, i) => {
        const region = parseRegion(r, `${key("regions")}[${i}]`, fail, warnings);
        if (region) {
            regions.push(region.spec);
            parsedCidrs.set(region.spec, { vpc: region.vpc });
        }
    });
    checkAcrossRegions(raw.length, regions, parsedCidrs, key("regions"), fail);
    return regions;
}

/** Reads one string field of a region, reporting it missing or mistyped. */
function stringField(raw: Record<string, unknown>, path: string, k: string, fail: Fail): string | undefined {
    const v = raw[k];
    if (v === undefined) {
        fail(`${path}.${k}`, "is missing");
        return undefined;
    }
    if (typeof v !== "string") {
        fail(`${path}.${k}`, `${show(v)} is not a string`);
        return undefined;
    }
    return v;
}

/** One region: each field checked by its own parser; undefined when a required field is unusable. */
function parseRegion(raw: unknown, path: string, fail: Fail, warnings: string[]): { spec: RegionSpec; vpc?: Cidr } | undefined {
    if (!isObject(raw)) {
        fail(path, `${show(raw)} is not a region (expected a map with ${REGION_KEYS.join(", ")})`);
        return undefined;
    }
    for (const k of Object.keys(raw)) {
        if (!REGION_KEYS.includes(k)) {
            fail(`${path}.${k}`, `unknown key; expected one of ${REGION_KEYS.join(", ")}`);
        }
    }
    const str = (k: string) => stringField(raw, path, k, fail);
    const name = parseName(str("name"), path, fail);
    const awsRegion = parseAwsRegion(str("awsRegion"), path, fail);
    const role = parseRole(str("role"), path, fail);
    const vpc = parseVpcRange(str("vpcCidr"), path, fail, warnings);
    const subnets: SubnetAt[] = [];
    const vpnSubnet = subnetIn(vpc, cidrAt(str("vpnSubnet"), `${path}.vpnSubnet`, fail), `${path}.vpnSubnet`, subnets, fail);
    const vpnZone = raw.vpnZone === undefined ? "a" : (zoneAt(raw.vpnZone, `${path}.vpnZone`, fail) ?? "a");
    const gatewayPrivateIp = parseGatewayIp(str("gatewayPrivateIp"), vpnSubnet, path, fail);
    const workloadSubnets = parseWorkloadSubnets(raw.workloadSubnets, vpc, path, subnets, fail);
    const standby = raw.standby === undefined ? undefined : parseStandby(raw.standby, `${path}.standby`, vpc, subnets, vpnZone, fail);
    checkSubnetsDisjoint(subnets, fail);
    if (raw.standby !== undefined && vpnSubnet && gatewayPrivateIp !== undefined) {
        checkSiteIp(gatewayPrivateIp, vpnSubnet, `${path}.gatewayPrivateIp`, fail);
    }

    if (name === undefined || awsRegion === undefined || role === undefined || !vpc || !vpnSubnet || gatewayPrivateIp === undefined) {
        return undefined;
    }
    if (raw.standby !== undefined && !standby) {
        return undefined;
    }
    return {
        spec: {
            name,
            awsRegion,
            role,
            vpcCidr: vpc.text,
            vpnSubnet: vpnSubnet.text,
            vpnZone,
            gatewayPrivateIp,
            workloadSubnets,
            ...(standby ? { standby } : {}),
        },
        vpc,
    };
}

/**
 * A site's standby gateway: its own VPN subnet in another zone (a subnet lives in one zone, and the
 * standby is there to survive its zone), and its static private IP there.
 */
function parseStandby(
    raw: unknown,
    path: string,
    vpc: Cidr | undefined,
    subnets: SubnetAt[],
    primaryZone: string,
    fail: Fail,
): StandbySpec | undefined {
    if (!isObject(raw)) {
        fail(path, `${show(raw)} is not a standby (expected a map with ${STANDBY_KEYS.join(", ")})`);
        return undefined;
    }
    for (const k of Object.keys(raw)) {
        if (!STANDBY_KEYS.includes(k)) {
            fail(`${path}.${k}`, `unknown key; expected one of ${STANDBY_KEYS.join(", ")}`);
        }
    }
    const str = (k: string) => stringField(raw, path, k, fail);
    const vpnSubnet = subnetIn(vpc, cidrAt(str("vpnSubnet"), `${path}.vpnSubnet`, fail), `${path}.vpnSubnet`, subnets, fail);
    const zone = str("vpnZone");
    const vpnZone = zone === undefined ? undefined : zoneAt(zone, `${path}.vpnZone`, fail);
    if (vpnZone !== undefined && vpnZone === primaryZone) {
        const other = ZONE_LETTERS.find((z) => z !== primaryZone);
        fail(
            `${path}.vpnZone`,
            `"${vpnZone}" is the zone of the primary gateway (vpnZone); a standby must be in another zone to survive it, e.g. "${other}"`,
        );
    }
    const gatewayPrivateIp = parseGatewayIp(str("gatewayPrivateIp"), vpnSubnet, path, fail);
    if (vpnSubnet && gatewayPrivateIp !== undefined && parseIp(gatewayPrivateIp) !== undefined) {
        checkSiteIp(gatewayPrivateIp, vpnSubnet, `${path}.gatewayPrivateIp`, fail);
    }
    if (!vpnSubnet || vpnZone === undefined || vpnZone === primaryZone || gatewayPrivateIp === undefined) {
        return undefined;
    }
    return { vpnSubnet: vpnSubnet.text, vpnZone, gatewayPrivateIp };
}

/**
 * In a site with a standby, each gateway's network interface also holds the next address after its
 * private IP: the site's Elastic IP moves there on failover (README, Failover). It must be usable too.
 */
function checkSiteIp(gatewayPrivateIp: string, subnet: Cidr, path: string, fail: Fail): void {
    const ip = parseIp(gatewayPrivateIp);
    if (ip === undefined || !containsIp(subnet, ip) || awsReservedAddresses(subnet).includes(ip)) {
        return; // reported by parseGatewayIp
    }
    const site = siteIpOf(gatewayPrivateIp);
    const siteIp = parseIp(site);
    if (siteIp === undefined || !containsIp(subnet, siteIp) || awsReservedAddresses(subnet).includes(siteIp)) {
        const usable = `${formatIp(subnet.network + 4)}-${formatIp(subnet.network + subnet.size - 3)}`;
        fail(
            path,
            `"${gatewayPrivateIp}": in a site with a standby, the next address (${site}) holds the site's Elastic IP ` +
                `and must be usable in ${subnet.text} too; use an address in ${usable}`,
        );
    }
}

function parseName(name: string | undefined, path: string, fail: Fail): string | undefined {
    if (name !== undefined && !/^[a-z][a-z0-9]{0,19}$/.test(name)) {
        fail(`${path}.name`, `"${name}" is not a valid region name (lowercase letters and digits, starting with a letter, at most 20)`);
    }
    return name;
}

function parseAwsRegion(awsRegion: string | undefined, path: string, fail: Fail): string | undefined {
    if (awsRegion !== undefined && !AWS_REGIONS.includes(awsRegion)) {
        const guess = closest(awsRegion, AWS_REGIONS);
        fail(
            `${path}.awsRegion`,
            `"${awsRegion}" is not an AWS region the AWS provider knows${guess ? `; did you mean "${guess}"?` : ' (expected e.g. "us-east-1")'}`,
        );
    }
    return awsRegion;
}

function parseRole(role: string | undefined, path: string, fail: Fail): RegionRole | undefined {
    if (role !== undefined && role !== "hub" && role !== "spoke") {
        fail(`${path}.role`, `"${role}" is not a role; expected "hub" or "spoke"`);
    }
    return role as RegionRole | undefined;
}

function parseVpcRange(text: string | undefined, path: string, fail: Fail, warnings: string[]): Cidr | undefined {
    const vpc = cidrAt(text, `${path}.vpcCidr`, fail);
    if (vpc && (vpc.prefix < 16 || vpc.prefix > 28)) {
        fail(`${path}.vpcCidr`, `"${vpc.text}" has prefix /${vpc.prefix}; AWS VPC ranges must be between /16 and /28`);
    }
    if (vpc && !isPrivate(vpc)) {
        warnings.push(
            `${path}.vpcCidr: "${vpc.text}" is outside the RFC 1918 private ranges; it deploys, but hosts in this ` +
                `network cannot reach the public owners of that address space. Prefer 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16.`,
        );
    }
    return vpc;
}

type SubnetAt = { path: string; cidr: Cidr };

/** A subnet of the VPC: a size AWS allows, inside the VPC range; remembered for the overlap check. */
function subnetIn(vpc: Cidr | undefined, cidr: Cidr | undefined, at: string, subnets: SubnetAt[], fail: Fail): Cidr | undefined {
    if (!cidr) {
        return undefined;
    }
    if (cidr.prefix < 16 || cidr.prefix > 28) {
        fail(at, `"${cidr.text}" has prefix /${cidr.prefix}; AWS subnets must be between /16 and /28`);
    }
    if (vpc && !containsCidr(vpc, cidr)) {
        fail(at, `"${cidr.text}" is outside the VPC range ${vpc.text}`);
    }
    subnets.push({ path: at, cidr });
    return cidr;
}

/** A gateway's static private IP (`<path>.gatewayPrivateIp`): an address of its subnet that AWS does not reserve. */
function parseGatewayIp(text: string | undefined, vpnSubnet: Cidr | undefined, path: string, fail: Fail): string | undefined {
    if (text === undefined) {
        return undefined;
    }
    const ip = parseIp(text);
    if (ip === undefined) {
        fail(`${path}.gatewayPrivateIp`, `"${text}" is not an IPv4 address`);
    } else if (vpnSubnet && !containsIp(vpnSubnet, ip)) {
        fail(`${path}.gatewayPrivateIp`, `"${text}" is outside the VPN subnet ${vpnSubnet.text}`);
    } else if (vpnSubnet && awsReservedAddresses(vpnSubnet).includes(ip)) {
        const usable = `${formatIp(vpnSubnet.network + 4)}-${formatIp(vpnSubnet.network + vpnSubnet.size - 2)}`;
        fail(`${path}.gatewayPrivateIp`, `"${text}" is one of the five addresses AWS reserves in ${vpnSubnet.text}; use one in ${usable}`);
    }
    return text;
}

function parseWorkloadSubnets(ws: unknown, vpc: Cidr | undefined, path: string, subnets: SubnetAt[], fail: Fail): WorkloadSubnetSpec[] {
    const workloadSubnets: WorkloadSubnetSpec[] = [];
    if (ws === undefined || ws === null) {
        return workloadSubnets;
    }
    if (!isObject(ws)) {
        fail(`${path}.workloadSubnets`, `${show(ws)} is not a map of subnet name to {zone letter: CIDR}`);
        return workloadSubnets;
    }
    for (const [subnetName, zones] of Object.entries(ws)) {
        const at = `${path}.workloadSubnets.${subnetName}`;
        if (!/^[a-z][a-z0-9]{0,19}$/.test(subnetName)) {
            fail(at, `"${subnetName}" is not a valid subnet name (lowercase letters and digits, starting with a letter)`);
        }
        if (!isObject(zones) || Object.keys(zones).length === 0) {
            fail(at, `${show(zones)} is not a map of zone letter to CIDR (e.g. {a: 10.0.6.0/24, b: 10.0.7.0/24})`);
            continue;
        }
        for (const [zone, cidrText] of Object.entries(zones)) {
            const zat = `${at}.${zone}`;
            if (zoneAt(zone, zat, fail) === undefined) {
                continue;
            }
            const cidr = subnetIn(
                vpc,
                cidrAt(typeof cidrText === "string" ? cidrText : undefined, zat, fail, cidrText),
                zat,
                subnets,
                fail,
            );
            if (cidr) {
                workloadSubnets.push({ name: subnetName, zone, cidr: cidr.text });
            }
        }
    }
    return workloadSubnets;
}

function checkSubnetsDisjoint(subnets: readonly SubnetAt[], fail: Fail): void {
    for (let i = 0; i < subnets.length; i++) {
        for (let j = i + 1; j < subnets.length; j++) {
            if (overlaps(subnets[i].cidr, subnets[j].cidr)) {
                fail(subnets[j].path, `"${subnets[j].cidr.text}" overlaps ${subnets[i].path} (${subnets[i].cidr.text})`);
            }
        }
    }
}

function checkAcrossRegions(count: number, regions: RegionSpec[], cidrs: Map<RegionSpec, { vpc?: Cidr }>, path: string, fail: Fail): void {
    const hubs = regions.filter((r) => r.role === "hub");
    const spokes = regions.filter((r) => r.role === "spoke");
    // Only judge the roles when every region parsed, so one typo does not cause a second, confusing error.
    if (regions.length === count) {
        if (hubs.length === 0) {
            fail(path, 'has no hub; exactly one region must have role: "hub"');
        } else if (hubs.length > 1) {
            fail(path, `has ${hubs.length} hubs (${hubs.map((h) => h.name).join(", ")}); exactly one region must have role: "hub"`);
        }
        if (spokes.length === 0) {
            fail(path, 'has no spoke; add at least one region with role: "spoke"');
        }
    }
    const seen = (field: "name") => {
        const first = new Map<string, number>();
        regions.forEach((r, i) => {
            const prior = first.get(r[field]);
            if (prior !== undefined) {
                fail(`${path}[${i}].${field}`, `"${r[field]}" is already used by ${path}[${prior}]; each region needs its own`);
            } else {
                first.set(r[field], i);
            }
        });
    };
    // Several regions may share an AWS region (one VPC each); names must differ.
    seen("name");
    for (let i = 0; i < regions.length; i++) {
        for (let j = i + 1; j < regions.length; j++) {
            const a = cidrs.get(regions[i])?.vpc;
            const b = cidrs.get(regions[j])?.vpc;
            if (a && b && overlaps(a, b)) {
                fail(
                    `${path}[${j}].vpcCidr`,
                    `"${b.text}" overlaps ${path}[${i}].vpcCidr (${a.text}, region ${regions[i].name}); routed VPC ranges must be disjoint`,
                );
            }
        }
    }
}

function cidrAt(text: string | undefined, path: string, fail: Fail, original?: unknown): Cidr | undefined {
    if (text === undefined) {
        if (original !== undefined) {
            fail(path, `${show(original)} is not a CIDR string`);
        }
        return undefined;
    }
    const parsed = parseCidr(text);
    if (typeof parsed === "string") {
        fail(path, `"${text}" ${parsed}`);
        return undefined;
    }
    return parsed;
}

function zoneAt(value: unknown, path: string, fail: Fail): string | undefined {
    if (typeof value !== "string" || !ZONE_LETTERS.includes(value)) {
        fail(path, `${show(value)} is not a zone letter; expected one of ${ZONE_LETTERS.join(", ")}`);
        return undefined;
    }
    return value;
}

/** The candidate nearest to `text` by edit distance, if it is near enough to be a likely typo. */
export function closest(text: string, candidates: readonly string[]): string | undefined {
    let best: { c: string; d: number } | undefined;
    for (const c of candidates) {
        const d = editDistance(text, c);
        if (!best || d < best.d) {
            best = { c, d };
        }
    }
    return best && best.d <= Math.max(2, Math.floor(text.length / 4)) ? best.c : undefined;
}

function editDistance(a: string, b: string): number {
    let row = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        const next = [i];
        for (let j = 1; j <= b.length; j++) {
            next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
        }
        row = next;
    }
    return row[b.length];
}

function isObject(v: unknown): v is Record<string, unknown> {
    return typeof v === "object" && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
    return JSON.stringify(v) ?? String(v);
}
