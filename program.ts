/**
 * The program behind `index.ts`, as a function so that the tests and the offline `render`
 * command run exactly what `pulumi up` runs, from any stack file.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { HubSpokeVpn, type RegionOutputs } from "./components/hubSpokeVpn";
import type { RawConfig } from "./config/load";
import type { StackSpec } from "./config/types";
import { parseStackConfig } from "./config/validate";
import { stackParameterPrefix } from "./gateway/contract";

export interface ProgramResult {
    readonly spec: StackSpec;
    readonly vpn: HubSpokeVpn;
    /** Stack outputs, per region name. */
    readonly regions: Record<string, RegionOutputs>;
    /** Tunnel names, `<hub>-to-<spoke>`. */
    readonly tunnels: string[];
    /** The CloudWatch dashboard with every tunnel. */
    readonly dashboardName: pulumi.Output<string>;
}

export interface ProgramOptions {
    /** Where warnings go (Pulumi's log by default). */
    readonly warn?: (message: string) => void;
    /** Applied to every resource of the network (the offline harness records options with it). */
    readonly transformations?: pulumi.ResourceTransformation[];
}

/**
 * Validates the raw config (throwing `ConfigError` before any resource is registered), then
 * builds one AWS provider per AWS region and the HubSpokeVpn.
 */
export function hubSpokeProgram(raw: RawConfig, stack: string, options: ProgramOptions = {}): ProgramResult {
    const { spec, warnings } = parseStackConfig(raw);
    warnings.forEach(options.warn ?? ((m) => pulumi.log.warn(m)));
    const providers = Object.fromEntries(
        spec.awsRegions.map((awsRegion) => [
            awsRegion,
            new aws.Provider(
                awsRegion,
                {
                    region: awsRegion as aws.Region,
                    defaultTags: { tags: { Project: "hubspoke-vpn", Stack: stack, ManagedBy: "pulumi" } },
                },
                // Stacks deployed before regions could share an AWS region named the provider after the region
                // (`virginia`): the alias keeps them, so no resource of theirs is replaced.
                {
                    aliases: spec.regions.filter((r) => r.awsRegion === awsRegion).map((r) => ({ name: r.name })),
                    transformations: options.transformations,
                },
            ),
        ]),
    );
    const vpn = new HubSpokeVpn(
        "hubspoke",
        { spec, providers, parameterPrefix: stackParameterPrefix(stack), stack },
        { transformations: options.transformations },
    );
    return { spec, vpn, regions: vpn.regionOutputs, tunnels: spec.tunnels.map((t) => t.name), dashboardName: vpn.dashboard.dashboardName };
}
