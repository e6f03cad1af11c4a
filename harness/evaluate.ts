/**
 * Runs the program offline under Pulumi's mock runtime: no AWS, no Pulumi CLI. Every resource
 * registration and invoke is recorded with the inputs `pulumi up` would send to AWS, by URN, with
 * the resource options that shape updates (ignoreChanges, deleteBeforeReplace, dependsOn, aliases).
 * Facts about the program (keys, Elastic IPs, which resource is whose) are asked of the program's
 * own objects, never rebuilt from resource names.
 *
 * The mocks refuse what they do not know: an invoke token without a handler throws, so a new
 * data source cannot slip in untested.
 */

import * as crypto from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import type { RawConfig } from "../config/load";
import { parseStackConfig } from "../config/validate";
import { hubSpokeProgram, type ProgramResult } from "../program";

/** The options of a registration that decide how an update is applied. */
export interface RecordedOptions {
    readonly ignoreChanges: string[];
    readonly deleteBeforeReplace: boolean;
    readonly replaceOnChanges: string[];
    readonly protect: boolean;
    /** URNs of the explicit dependencies. */
    readonly dependsOn: string[];
    /** Names this resource was known by before (`aliases: [{ name }]`). */
    readonly aliasNames: string[];
    /** Names of its `beforeDelete` resource hooks. */
    readonly beforeDeleteHooks: string[];
    /** Names of its `afterCreate` resource hooks. */
    readonly afterCreateHooks: string[];
    /** Names of its `beforeUpdate`, then its `afterUpdate` resource hooks. */
    readonly updateHooks: string[];
}

/** A resource as the program registered it. `inputs` keep secrets wrapped (see `isSecretValue`). */
export interface RecordedResource {
    readonly urn: string;
    readonly type: string;
    readonly name: string;
    readonly inputs: Record<string, any>;
    /** The AWS region of the provider the resource was registered with, if any. */
    readonly awsRegion?: string;
    readonly options: RecordedOptions;
    /** The id the mocks gave it: what other resources' inputs hold when they refer to it. */
    readonly id: string;
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
    readonly onRegister?: (resource: { type: string; name: string }) => void;
    /** The day AWS answers on (image deprecation depends on it); today by default. */
    readonly today?: Date;
}

export interface Evaluation {
    readonly result: ProgramResult;
    /** In registration order. */
    readonly resources: RecordedResource[];
    readonly invokes: RecordedInvoke[];
    /** Generated pre-shared keys per tunnel name, as the program holds them. */
    readonly keys: Record<string, string>;
    /** Elastic IP per region name, as the program holds them. */
    readonly elasticIps: Record<string, string>;
    /** Warnings the program logged. */
    readonly warnings: string[];
    /** The resource hooks the program registered, by name: the engine runs them, so tests call them. */
    readonly hooks: Record<string, pulumi.ResourceHook>;
    /** The recorded registration of one of the program's resources. */
    recordOf(resource: pulumi.Resource): RecordedResource;
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

/** The zones each AWS region has, as `aws.getAvailabilityZones` would answer. */
export const MOCK_ZONES: Record<string, string[]> = {
    "us-east-1": ["a", "b", "c", "d", "e", "f"],
};
const DEFAULT_ZONE_LETTERS = ["a", "b", "c"];
/** The account id `aws.getCallerIdentity` answers. */
export const MOCK_ACCOUNT_ID = "123456789012";

/** Documentation addresses (RFC 5737, TEST-NET-1) for region number i. */
export function documentationElasticIp(i: number): string {
    return `192.0.2.${11 + i}`;
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/**
 * What random.RandomPassword would produce (its alphabet: letters, digits, `overrideSpecial`). The
 * same resource with the same inputs gets the same key in every evaluation, as a deployed stack
 * keeps its key in state until the inputs (a rotation's keepers) change.
 */
export function randomKey(seed: string, length: number, special: string): string {
    const chars = ALPHABET + special;
    const bytes = crypto.createHash("sha512").update(seed).digest();
    return Array.from(bytes.subarray(0, length), (b) => chars[b % chars.length]).join("");
}

/** Waits until an Output resolves, outside any apply. */
export function resolve<T>(o: pulumi.Input<T>): Promise<T> {
    return new Promise((done) => pulumi.output(o).apply((v) => done(v as T)));
}

function recordOptions(opts: pulumi.CustomResourceOptions & pulumi.ComponentResourceOptions): {
    options: Omit<RecordedOptions, "dependsOn">;
    dependsOn: pulumi.Resource[];
} {
    const dependsOn = opts.dependsOn === undefined ? [] : Array.isArray(opts.dependsOn) ? opts.dependsOn : [opts.dependsOn];
    return {
        options: {
            ignoreChanges: opts.ignoreChanges ?? [],
            deleteBeforeReplace: opts.deleteBeforeReplace ?? false,
            replaceOnChanges: opts.replaceOnChanges ?? [],
            protect: opts.protect ?? false,
            aliasNames: (opts.aliases ?? []).map((a) => (typeof a === "object" && "name" in a ? String(a.name) : String(a))),
            beforeDeleteHooks: (opts.hooks?.beforeDelete ?? []).map((h) => h.name),
            afterCreateHooks: (opts.hooks?.afterCreate ?? []).map((h) => h.name),
            updateHooks: [...(opts.hooks?.beforeUpdate ?? []), ...(opts.hooks?.afterUpdate ?? [])].map((h) => h.name),
        },
        dependsOn: dependsOn as pulumi.Resource[],
    };
}

type Registration = Omit<RecordedResource, "urn" | "options">;
type Seen = { resource: pulumi.Resource; key: string; options: ReturnType<typeof recordOptions> };

/**
 * Pulumi's mock runtime, recording every registration and invoke. `eipOf`: the address of an
 * Elastic IP, by its resource name (registration order is not stable across a program's changes).
 */
function recordingMocks(
    registered: Registration[],
    invokes: RecordedInvoke[],
    eipOf: (name: string) => string,
    today: Date,
    onRegister?: EvaluateOptions["onRegister"],
): pulumi.runtime.Mocks {
    const providerRegions = new Map<string, string>();
    // Provider references arrive as "<urn>::<id>"; our provider ids carry the region.
    const regionOf = (provider?: string) => (provider ? providerRegions.get(provider.split("::").pop()!) : undefined);
    return {
        newResource(args) {
            const awsRegion = regionOf(args.provider);
            const id = args.type === "pulumi:providers:aws" ? `provider-${args.inputs.region}` : `${args.name}-id`;
            registered.push({ type: args.type, name: args.name, inputs: args.inputs, awsRegion, id });
            onRegister?.({ type: args.type, name: args.name });
            switch (args.type) {
                case "pulumi:providers:aws":
                    providerRegions.set(id, args.inputs.region);
                    return { id, state: args.inputs };
                case "random:index/randomPassword:RandomPassword": {
                    const seed = `${args.name} ${JSON.stringify(args.inputs)}`;
                    return {
                        id,
                        state: { ...args.inputs, result: randomKey(seed, args.inputs.length, args.inputs.overrideSpecial ?? "") },
                    };
                }
                case "aws:ec2/eip:Eip": {
                    const ip = eipOf(args.name);
                    return { id, state: { ...args.inputs, publicIp: ip, allocationId: `${args.name}-alloc` } };
                }
                default:
                    // Stand-ins for what AWS computes: auto-names (as Pulumi's auto-naming would) and ARNs.
                    return { id, state: { name: args.name, ...args.inputs, arn: `arn:aws:mock:::${args.name}` } };
            }
        },
        call(args) {
            const awsRegion = regionOf(args.provider);
            invokes.push({ token: args.token, inputs: args.inputs, awsRegion });
            return mockInvoke(args.token, args.inputs, awsRegion, today);
        },
    };
}

/**
 * When AWS deprecates an Amazon Linux 2023 image, from its name: public images are deprecated two
 * years after creation at the latest (AWS docs, "Deprecate an AMI"), and a release is named after its
 * build day (`2023.9.20251208.0`). The latest date is taken: the mock must not hide what AWS does.
 */
export function al2023DeprecationTime(imageName: string): Date {
    const m = /^al2023-ami-2023\.\d+\.(\d{4})(\d{2})(\d{2})\.\d+-/.exec(imageName);
    if (!m) {
        throw new Error(`mock: ${imageName} is not an Amazon Linux 2023 image name`);
    }
    return new Date(Date.UTC(Number(m[1]) + 2, Number(m[2]) - 1, Number(m[3])));
}

/** What the provider's `getAmi` says when DescribeImages returns nothing (terraform-provider-aws, ec2_ami_data_source.go). */
export const AMI_NOT_FOUND = "Your query returned no results. Please change your search criteria and try again.";

/** What AWS answers to the data sources the program reads. */
export function mockInvoke(token: string, inputs: any, awsRegion: string | undefined, today: Date): Record<string, unknown> {
    switch (token) {
        case "aws:index/getAvailabilityZones:getAvailabilityZones": {
            const letters = MOCK_ZONES[awsRegion ?? ""] ?? DEFAULT_ZONE_LETTERS;
            return { names: letters.map((l) => `${awsRegion}${l}`), zoneIds: letters.map((_, i) => `az${i + 1}`) };
        }
        case "aws:ec2/getAmi:getAmi": {
            const name = inputs.filters.find((f: { name: string }) => f.name === "name").values[0];
            const deprecationTime = al2023DeprecationTime(name);
            // DescribeImages leaves deprecated images out unless IncludeDeprecated is set.
            if (deprecationTime <= today && inputs.includeDeprecated !== true) {
                throw new Error(AMI_NOT_FOUND);
            }
            const id = `ami-mock-${awsRegion}-${name}`;
            return { id, name, architecture: name.split("-").pop(), deprecationTime: deprecationTime.toISOString() };
        }
        case "aws:index/getPartition:getPartition":
            return { partition: "aws", dnsSuffix: "amazonaws.com", id: "aws" };
        case "aws:index/getCallerIdentity:getCallerIdentity":
            return { accountId: MOCK_ACCOUNT_ID, arn: `arn:aws:iam::${MOCK_ACCOUNT_ID}:user/mock`, userId: "mock", id: MOCK_ACCOUNT_ID };
        default:
            throw new Error(`offline evaluation: no mock for invoke ${token}; add one in harness/evaluate.ts`);
    }
}

/** The registrations joined to the program's objects: URN and options per resource. */
async function joinRecords(registered: Registration[], seen: Seen[]) {
    const urnOf = new Map<pulumi.Resource, string>();
    await Promise.all(seen.map(async (s) => urnOf.set(s.resource, await resolve(s.resource.urn))));
    // Type and name join the mock's registration to the program's object (a URN is unique by both).
    const seenByKey = new Map(seen.map((s) => [s.key, { urn: urnOf.get(s.resource)!, ...s.options }]));
    const noOptions = {
        ignoreChanges: [],
        deleteBeforeReplace: false,
        replaceOnChanges: [],
        protect: false,
        aliasNames: [],
        beforeDeleteHooks: [],
        afterCreateHooks: [],
        updateHooks: [],
    };
    const byUrn = new Map<string, RecordedResource>();
    const resources = registered.map((r) => {
        const o = seenByKey.get(`${r.type}::${r.name}`);
        const urn = o?.urn ?? `unrecorded::${r.type}::${r.name}`;
        const record: RecordedResource = {
            ...r,
            urn,
            options: { ...(o?.options ?? noOptions), dependsOn: (o?.dependsOn ?? []).map((d) => urnOf.get(d) ?? "unknown") },
        };
        byUrn.set(urn, record);
        return record;
    });
    const recordOf = (resource: pulumi.Resource) => {
        const found = byUrn.get(urnOf.get(resource) ?? "");
        if (!found) {
            throw new Error("offline evaluation: that resource was not registered by this evaluation");
        }
        return found;
    };
    return { resources, recordOf };
}

/** Each value of a record of outputs, resolved. */
async function resolveAll(outputs: Record<string, pulumi.Output<string>>): Promise<Record<string, string>> {
    const entries = await Promise.all(Object.entries(outputs).map(async ([k, v]) => [k, await resolve(v)] as const));
    return Object.fromEntries(entries);
}

/**
 * Evaluates the program for `raw` config. Throws what the program throws (a `ConfigError` for
 * bad config, before any registration).
 */
export async function evaluateOffline(raw: RawConfig, options: EvaluateOptions): Promise<Evaluation> {
    const registered: Registration[] = [];
    const invokes: RecordedInvoke[] = [];
    const warnings: string[] = [];
    const regions = parseStackConfig(raw).spec.regions;
    // Region i: its site's address documentationElasticIp(i) (or the given one); in a site with a
    // standby, each gateway's own address 100 + 2i (primary) and 101 + 2i (standby).
    const eipOf = (name: string): string => {
        const i = regions.findIndex((r) => name.endsWith(`-${r.name}-eip`));
        if (i >= 0) {
            return options.elasticIps?.[regions[i].name] ?? documentationElasticIp(i);
        }
        const m = regions.findIndex((r) => name.endsWith(`-${r.name}-gw-mgmt-eip`));
        if (m >= 0) {
            return documentationElasticIp(100 + 2 * m);
        }
        const b = regions.findIndex((r) => name.endsWith(`-${r.name}-standby-gw-mgmt-eip`));
        if (b >= 0) {
            return documentationElasticIp(101 + 2 * b);
        }
        throw new Error(`mock: no address for the Elastic IP ${name}`);
    };
    await pulumi.runtime.setMocks(
        recordingMocks(registered, invokes, eipOf, options.today ?? new Date(), options.onRegister),
        "hubspoke-vpn",
        options.stack,
        false,
    );
    // The SDK's mock monitor has no RegisterResourceHook (pulumi/pulumi#20874, open; mocks never run
    // hooks anyway: pulumi/docs#16461): without this, a resource with a hook waits for it forever.
    const hooks: Record<string, pulumi.ResourceHook> = {};
    const runtimeState: { getStore(): { callbacks?: unknown } } = require("@pulumi/pulumi/runtime/state");
    runtimeState.getStore().callbacks = {
        registerResourceHook: async (hook: pulumi.ResourceHook) => {
            if (hooks[hook.name]) {
                throw new Error(`mock: resource hook ${hook.name} registered twice`);
            }
            hooks[hook.name] = hook;
        },
        awaitStackRegistrations: async () => {},
    };
    // Pulumi records a stack trace for every promise it creates; with ts-node's source-map hook each
    // one costs a source-map lookup, which made an evaluation several times slower. V8's own stack
    // formatting is used meanwhile (stacks of errors raised here show compiled line numbers).
    // Capturing them at all is most of the rest (runtime/debuggable.js, `new Error().stack` in
    // debuggablePromise): with V8's default ten frames, 13.6 s for 50 sites; with three, 9.1 s. Three
    // still locate an error raised by the program.
    const prepare = Error.prepareStackTrace;
    const frames = Error.stackTraceLimit;
    (Error as { prepareStackTrace?: unknown }).prepareStackTrace = undefined;
    Error.stackTraceLimit = Math.min(frames, EVALUATION_STACK_FRAMES);
    try {
        // Every resource of the program, with its options, as it is constructed.
        const seen: Seen[] = [];
        const result = hubSpokeProgram(raw, options.stack, {
            warn: (m) => warnings.push(m),
            transformations: [
                (a) => {
                    seen.push({ resource: a.resource, key: `${a.type}::${a.name}`, options: recordOptions(a.opts) });
                    return undefined;
                },
            ],
        });
        await settle(registered, result);
        const { resources, recordOf } = await joinRecords(registered, seen);
        const keys = await resolveAll(result.vpn.keys);
        const elasticIps = await resolveAll(Object.fromEntries(Object.entries(result.vpn.gateways).map(([r, g]) => [r, g.elasticIp])));
        return { result, resources, invokes, keys, elasticIps, warnings, hooks, recordOf };
    } finally {
        Error.prepareStackTrace = prepare;
        Error.stackTraceLimit = frames;
    }
}

/** Stack frames an Error records while the program is evaluated under mocks (see evaluateOffline). */
const EVALUATION_STACK_FRAMES = 3;

/** Waits for every output the program exports and for registrations to stop arriving. */
async function settle(registered: unknown[], result: ProgramResult): Promise<void> {
    for (const r of Object.values(result.regions)) {
        await resolve(r.gatewayInstanceId);
        await resolve(r.gatewayElasticIp);
        await resolve(r.vpcId);
    }
    let last = -1;
    let quiet = 0;
    while (quiet < 3) {
        await new Promise((done) => setTimeout(done, 10));
        quiet = registered.length === last ? quiet + 1 : 0;
        last = registered.length;
    }
}
