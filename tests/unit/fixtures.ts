import type { Context } from "mocha";
import { type RawConfig, readStackConfigFile, stackConfigPath } from "../../config/load";
import { type Evaluation, evaluateOffline } from "../../harness/evaluate";
import { type StackSnapshot, snapshotStack } from "../../harness/snapshot";

/** A stack's raw config, read from Pulumi.<stack>.yaml as `pulumi up --stack <stack>` would. */
export function stackConfig(stack: string): RawConfig {
    return readStackConfigFile(stackConfigPath(stack));
}

/** The prod stack's raw config. */
export function prodConfig(): RawConfig {
    return stackConfig("prod");
}

/** A deep copy of the prod config with `change` applied to it. */
export function prodWith(change: (raw: any) => void): RawConfig {
    const raw = JSON.parse(JSON.stringify(prodConfig()));
    change(raw);
    return raw;
}

// One evaluation and one snapshot of the prod stack serve every test file that only reads them
// (each takes a second or two under the mock runtime).
let evaluation: Promise<Evaluation> | undefined;
let snapshot: Promise<StackSnapshot> | undefined;

/** The prod stack evaluated under the mock runtime, shared by the tests that only read it. */
export function prodEvaluation(): Promise<Evaluation> {
    evaluation ??= evaluateOffline(prodConfig(), { stack: "prod" });
    return evaluation;
}

/** The prod stack's snapshot with keys redacted, shared by the tests that only read it. */
export function prodSnapshot(): Promise<StackSnapshot> {
    snapshot ??= snapshotStack(prodConfig(), { stack: "prod" });
    return snapshot;
}

/**
 * A test whose prerequisite is missing skips on a developer's machine, with the reason printed, and
 * fails under CI (`CI=true`): a green CI must mean the test ran.
 */
export function ciMustRun(context: Context, why: string): void {
    if (process.env.CI === "true") {
        throw new Error(`required under CI: ${why}`);
    }
    console.log(`      skipped: ${why}`);
    context.skip();
}

/** AWS regions the generated stacks spread their sites over. */
const SPREAD_REGIONS = ["us-east-1", "eu-central-1", "ap-southeast-2", "us-west-2", "eu-west-1", "ap-northeast-1"];

/**
 * A stack of `sites` sites (the hub `site0`, spokes `site1`...), every second one with a standby
 * (`site0` too), each in its own /16 of 10.0.0.0/8, spread over several AWS regions: the scale tests'
 * stack. Based on prod's settings.
 */
export function manySitesConfig(sites: number): RawConfig {
    const base = prodConfig() as Record<string, unknown>;
    const regions = Array.from({ length: sites }, (_, i) => ({
        name: `site${i}`,
        awsRegion: SPREAD_REGIONS[i % SPREAD_REGIONS.length],
        role: i === 0 ? "hub" : "spoke",
        vpcCidr: `10.${100 + i}.0.0/16`,
        vpnSubnet: `10.${100 + i}.4.0/24`,
        vpnZone: "a",
        gatewayPrivateIp: `10.${100 + i}.4.5`,
        ...(i % 2 === 0 ? { standby: { vpnSubnet: `10.${100 + i}.5.0/24`, vpnZone: "b", gatewayPrivateIp: `10.${100 + i}.5.5` } } : {}),
    }));
    return { ...base, regions } as RawConfig;
}

let manySites: Promise<StackSnapshot> | undefined;
let prodHa: Promise<StackSnapshot> | undefined;

/** The 50-site stack's snapshot (about 10 s under the mock runtime), shared by the tests that only read it. */
export function manySitesSnapshot(): Promise<StackSnapshot> {
    manySites ??= snapshotStack(manySitesConfig(50), { stack: "fifty" });
    return manySites;
}

/** The prod-ha stack's snapshot with keys redacted, shared by the tests that only read it. */
export function prodHaSnapshot(): Promise<StackSnapshot> {
    prodHa ??= snapshotStack(stackConfig("prod-ha"), { stack: "prod-ha" });
    return prodHa;
}
