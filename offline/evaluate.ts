/**
 * Runs the program offline under Pulumi's mock runtime: no AWS, no Pulumi CLI. Every resource
 * registration and invoke is recorded, so the tests and the `render` command see exactly the
 * inputs `pulumi up` would send to AWS.
 *
 * The mocks refuse what they do not know: an invoke token without a handler throws, so a new
 * data source cannot slip in untested.
 */

import * as crypto from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import type { RawConfig } from "../config/load";
import { hubSpokeProgram, type ProgramResult } from "../program";

/** A resource as the program registered it. `inputs` keep secrets wrapped (see `isSecretValue`). */
export interface RecordedResource {
    readonly type: string;
    readonly name: string;
    readonly inputs: Record<string, any>;
    /** The AWS region of the provider the resource was registered with, if any. */
    readonly awsRegion?: string;
}

export interface RecordedInvoke {
    readonly token: string;
    readonly inputs: Record<string, any>;
    readonly awsRegion?: string;
}

export interface EvaluateOptions {
    /** Stack name, as `pulumi up --stack`. */
    readonly stack: string;
    /** Elastic IP per region name; regions not listed get documentation addresses (RFC 5737). */
    readonly elasticIps?: Readonly<Record<string, string>>;
    /** Called on every registration as it happens, so a caller sees resources even when evaluation throws. */
    readonly onRegister?: (resource: RecordedResource) => void;
}

export interface Evaluation {
    readonly result: ProgramResult;
    readonly resources: RecordedResource[];
    readonly invokes: RecordedInvoke[];
    /** Generated pre-shared keys per tunnel name (what random.RandomPassword produced). */
    readonly keys: Record<string, string>;
    /** Elastic IP per region name. */
    readonly elasticIps: Record<string, string>;
    /** Warnings the program logged. */
    readonly warnings: string[];
}

// The secret marker Pulumi's serializer uses; recorded inputs keep it so tests can see what is secret.
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const SIG_KEY = "4dabf18193072939515e22adb298388d";

export function isSecretValue(v: unknown): v is { value: unknown } {
    return typeof v === "object" && v !== null && (v as any)[SIG_KEY] === SECRET_SIG;
}

/** Removes secret wrappers, for assertions on plain values. */
export function plain(v: any): any {
    if (isSecretValue(v)) {
        return plain(v.value);
    }
    if (Array.isArray(v)) {
        return v.map(plain);
    }
    if (typeof v === "object" && v !== null) {
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
    }
    return v;
}

/** The zones each region has, as `aws.getAvailabilityZones` would answer. */
export const MOCK_ZONES: Record<string, string[]> = {
    "us-east-1": ["a", "b", "c", "d", "e", "f"],
};
const DEFAULT_ZONE_LETTERS = ["a", "b", "c"];

/** Documentation addresses (RFC 5737, TEST-NET-1) for region number i. */
export function documentationElasticIp(i: number): string {
    return `192.0.2.${11 + i}`;
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

function randomKey(length: number, special: string): string {
    const chars = ALPHABET + special;
    const bytes = crypto.randomBytes(length);
    return Array.from(bytes, (b) => chars[b % chars.length]).join("");
}

/** The id the mocks give a resource: tests and the render use it to follow references between resources. */
export function mockIdOf(resource: Pick<RecordedResource, "name">): string {
    return `${resource.name}-id`;
}

/** Waits until an Output resolves, outside any apply. */
export function resolve<T>(o: pulumi.Input<T>): Promise<T> {
    return new Promise((done) => pulumi.output(o).apply((v) => done(v as T)));
}

/**
 * Evaluates the program for `raw` config. Throws what the program throws (a `ConfigError` for
 * bad config, before any registration).
 */
export async function evaluateOffline(raw: RawConfig, options: EvaluateOptions): Promise<Evaluation> {
    const resources: RecordedResource[] = [];
    const invokes: RecordedInvoke[] = [];
    const keys: Record<string, string> = {};
    const elasticIps: Record<string, string> = {};
    const warnings: string[] = [];
    const providerRegions = new Map<string, string>();
    let eipCount = 0;

    // Provider references arrive as "<urn>::<id>"; our provider ids carry the region.
    const regionOf = (provider?: string) => (provider ? providerRegions.get(provider.split("::").pop()!) : undefined);

    const mocks: pulumi.runtime.Mocks = {
        newResource(args) {
            const awsRegion = regionOf(args.provider);
            const recorded = { type: args.type, name: args.name, inputs: args.inputs, awsRegion };
            resources.push(recorded);
            options.onRegister?.(recorded);
            const id = mockIdOf(args);
            switch (args.type) {
                case "pulumi:providers:aws": {
                    const providerId = `provider-${args.inputs.region}`;
                    providerRegions.set(providerId, args.inputs.region);
                    return { id: providerId, state: args.inputs };
                }
                case "random:index/randomPassword:RandomPassword": {
                    const key = randomKey(args.inputs.length, args.inputs.overrideSpecial ?? "");
                    const tunnel = /-(\w+-to-\w+)-psk$/.exec(args.name)?.[1] ?? args.name;
                    keys[tunnel] = key;
                    return { id, state: { ...args.inputs, result: key } };
                }
                case "aws:ec2/eip:Eip": {
                    const region = /-(\w+)-eip$/.exec(args.name)?.[1] ?? args.name;
                    const ip = options.elasticIps?.[region] ?? documentationElasticIp(eipCount);
                    eipCount++;
                    elasticIps[region] = ip;
                    return { id: `eipalloc-${region}`, state: { ...args.inputs, publicIp: ip, allocationId: `eipalloc-${region}` } };
                }
                default:
                    // Stand-ins for what AWS computes: auto-names (as Pulumi's auto-naming would) and ARNs.
                    return { id, state: { name: args.name, ...args.inputs, arn: `arn:aws:mock:::${args.name}` } };
            }
        },
        call(args) {
            const awsRegion = regionOf(args.provider);
            invokes.push({ token: args.token, inputs: args.inputs, awsRegion });
            switch (args.token) {
                case "aws:index/getAvailabilityZones:getAvailabilityZones": {
                    const letters = MOCK_ZONES[awsRegion ?? ""] ?? DEFAULT_ZONE_LETTERS;
                    return { names: letters.map((l) => `${awsRegion}${l}`), zoneIds: letters.map((_, i) => `az${i + 1}`) };
                }
                case "aws:ssm/getParameter:getParameter":
                    return { name: args.inputs.name, type: "String", value: `ami-mock-${args.inputs.name.split("-").pop()}` };
                case "aws:index/getPartition:getPartition":
                    return { partition: "aws", dnsSuffix: "amazonaws.com", id: "aws" };
                default:
                    throw new Error(`offline evaluation: no mock for invoke ${args.token}; add one in offline/evaluate.ts`);
            }
        },
    };

    await pulumi.runtime.setMocks(mocks, "hubspoke-vpn", options.stack, false);
    // Pulumi records a stack trace for every promise it creates; with ts-node's source-map hook each
    // one costs a source-map lookup, which made an evaluation several times slower. V8's own stack
    // formatting is used meanwhile (stacks of errors raised here show compiled line numbers).
    const prepare = Error.prepareStackTrace;
    (Error as { prepareStackTrace?: unknown }).prepareStackTrace = undefined;
    try {
        const result = hubSpokeProgram(raw, options.stack, (m) => warnings.push(m));
        await settle(resources, result);
        return { result, resources, invokes, keys, elasticIps, warnings };
    } finally {
        Error.prepareStackTrace = prepare;
    }
}

/** Waits for every output the program exports and for registrations to stop arriving. */
async function settle(resources: RecordedResource[], result: ProgramResult): Promise<void> {
    for (const r of Object.values(result.regions)) {
        await resolve(r.gatewayInstanceId);
        await resolve(r.gatewayElasticIp);
        await resolve(r.vpcId);
    }
    let last = -1;
    let quiet = 0;
    while (quiet < 3) {
        await new Promise((done) => setTimeout(done, 10));
        quiet = resources.length === last ? quiet + 1 : 0;
        last = resources.length;
    }
}
