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

/**
 * Validates the raw config (throwing `ConfigError` before any resource is registered), then
 * builds one AWS provider per region and the HubSpokeVpn.
 */
export function hubSpokeProgram(raw: RawConfig, stack: string, warn: (message: string) => void = (m) => pulumi.log.warn(m)): ProgramResult {
    const { spec, warnings } = parseStackConfig(raw);
    warnings.forEach(warn);
    const providers = Object.fromEntries(
        spec.regions.map((r) => [
            r.name,
            new aws.Provider(r.name, {
                region: r.awsRegion as aws.Region,
                defaultTags: { tags: { Project: "hubspoke-vpn", Stack: stack, ManagedBy: "pulumi" } },
            }),
        ]),
    );
    const vpn = new HubSpokeVpn("hubspoke", {
        spec,
        providers,
        parameterPrefix: `/hubspoke-vpn/${stack}`,
        pskRotation: spec.pskRotation,
        stack,
        alarmEmail: spec.alarmEmail,
    });
    return { spec, vpn, regions: vpn.regionOutputs, tunnels: spec.tunnels.map((t) => t.name), dashboardName: vpn.dashboard.dashboardName };
}
