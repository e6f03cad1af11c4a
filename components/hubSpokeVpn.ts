import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { RegionSpec, StackSpec } from "../config/types";
import { METRIC_NAME, METRIC_NAMESPACE } from "../render/cloudInit";
import { PSK_MIN_LENGTH, PSK_SPECIAL_CHARACTERS } from "../render/libreswan";
import { OpenSwanGateway } from "./openSwanGateway";
import { RegionalVpc } from "./regionalVpc";

/** Length of each generated pre-shared key: about 280 bits from a 66-character alphabet. */
export const PSK_LENGTH = Math.max(48, PSK_MIN_LENGTH);

export interface HubSpokeVpnArgs {
    /** The validated stack config: one hub, its spokes, and the tunnels between them. */
    readonly spec: StackSpec;
    /** One AWS provider per region, keyed by region name (`virginia`), each set to that region's AWS region. */
    readonly providers: Readonly<Record<string, aws.Provider>>;
    /** Tags added to every resource, besides `Name` (providers' default tags apply as well). */
    readonly tags?: Record<string, string>;
    /** Path prefix of the key parameters, e.g. `/hubspoke-vpn/prod`; each is `<prefix>/<tunnel>/psk`. */
    readonly parameterPrefix: string;
    /** Changing this number generates new keys (rotation) without replacing any instance. */
    readonly pskRotation?: number;
    /** The Pulumi stack: a dimension of the tunnel metrics, and part of the dashboard's name. */
    readonly stack: string;
    /** An e-mail address every region's alarm topic notifies, if any. */
    readonly alarmEmail?: string;
}

/** What a user needs of one region after `pulumi up`. */
export interface RegionOutputs {
    readonly awsRegion: string;
    readonly role: string;
    readonly vpcId: pulumi.Output<string>;
    readonly vpcCidr: string;
    readonly gatewayElasticIp: pulumi.Output<string>;
    readonly gatewayPrivateIp: string;
    readonly gatewayInstanceId: pulumi.Output<string>;
    readonly tunnels: string[];
    /** Opens a shell on the gateway through Session Manager. */
    readonly sessionCommand: pulumi.Output<string>;
    /** Shows the gateway's tunnels (libreswan's own view) through Session Manager. */
    readonly tunnelStatusCommand: pulumi.Output<string>;
    readonly alarmTopicArn: pulumi.Output<string>;
    /** The tunnel-down alarms of this gateway, one per tunnel. */
    readonly tunnelAlarmNames: pulumi.Output<string>[];
}

/**
 * The whole private network: per region a RegionalVpc and an OpenSwanGateway on that region's
 * provider; per hub-spoke tunnel one generated pre-shared key shared by both ends; and routes
 * for each peer range in every route table, targeting the gateway's network interface.
 * Spokes reach the hub only: there is no spoke-to-spoke tunnel or route.
 */
export class HubSpokeVpn extends pulumi.ComponentResource {
    public readonly vpcs: Record<string, RegionalVpc> = {};
    public readonly gateways: Record<string, OpenSwanGateway> = {};
    /** Per region name, the values the stack exports. */
    public readonly regionOutputs: Record<string, RegionOutputs> = {};
    /** One CloudWatch dashboard, in the hub's region, with every tunnel end of the stack. */
    public readonly dashboard: aws.cloudwatch.Dashboard;

    constructor(name: string, args: HubSpokeVpnArgs, opts?: pulumi.ComponentResourceOptions) {
        super("hubspoke:network:HubSpokeVpn", name, {}, opts);
        const { spec } = args;

        const providerOf = (r: RegionSpec) => {
            const p = args.providers[r.name];
            if (!p) {
                throw new Error(`HubSpokeVpn ${name}: no AWS provider given for region "${r.name}" (${r.awsRegion})`);
            }
            return p;
        };
        for (const r of spec.regions) {
            providerOf(r);
        }

        const byName = new Map(spec.regions.map((r) => [r.name, r]));
        const eips: Record<string, aws.ec2.Eip> = {};
        for (const r of spec.regions) {
            const inRegion = { parent: this, providers: { aws: providerOf(r) } };
            this.vpcs[r.name] = new RegionalVpc(
                `${name}-${r.name}`,
                { region: r, tags: args.tags, flowLogRetentionDays: spec.flowLogRetentionDays },
                inRegion,
            );
            // Allocated apart from the instance, so each peer's config can name it before any instance exists.
            eips[r.name] = new aws.ec2.Eip(
                `${name}-${r.name}-eip`,
                { domain: "vpc", tags: { ...args.tags, Name: `${name}-${r.name}-gateway` } },
                { parent: this, provider: providerOf(r) },
            );
        }

        // One key per tunnel, stored as a SecureString in each of the two regions that use it
        // (parameters are regional).
        const keyParameters: Record<string, Record<string, aws.ssm.Parameter>> = {};
        for (const t of spec.tunnels) {
            const key = new random.RandomPassword(
                `${name}-${t.name}-psk`,
                {
                    length: PSK_LENGTH,
                    // Only characters that are safe inside the quoted PSK of an ipsec.secrets line.
                    special: true,
                    overrideSpecial: PSK_SPECIAL_CHARACTERS,
                    minLower: 4,
                    minUpper: 4,
                    minNumeric: 4,
                    // A new rotation number replaces the key; the parameters update in place.
                    keepers: { rotation: String(args.pskRotation ?? 0) },
                },
                { parent: this },
            );
            const psk = pulumi.secret(key.result);
            keyParameters[t.name] = {};
            for (const regionName of [t.hub, t.spoke]) {
                keyParameters[t.name][regionName] = new aws.ssm.Parameter(
                    `${name}-${regionName}-${t.name}-psk`,
                    {
                        name: `${args.parameterPrefix}/${t.name}/psk`,
                        type: "SecureString",
                        value: psk,
                        description: `hubspoke-vpn pre-shared key of tunnel ${t.name}`,
                        tags: { ...args.tags, Tunnel: t.name },
                    },
                    { parent: this, provider: providerOf(byName.get(regionName)!) },
                );
            }
        }

        // The hub's peers are all spokes; a spoke's only peer is the hub.
        const peersOf = (r: RegionSpec) =>
            spec.tunnels
                .filter((t) => t.hub === r.name || t.spoke === r.name)
                .map((tunnel) => ({ tunnel, peer: byName.get(tunnel.hub === r.name ? tunnel.spoke : tunnel.hub)! }));

        for (const r of spec.regions) {
            const vpc = this.vpcs[r.name];
            const peers = peersOf(r);
            const gateway = new OpenSwanGateway(
                `${name}-${r.name}-gw`,
                {
                    region: r,
                    vpcId: vpc.vpcId,
                    subnetId: vpc.vpnSubnet.id,
                    internetGateway: vpc.internetGateway,
                    elasticIp: eips[r.name],
                    instanceType: spec.gatewayInstanceType,
                    terminationProtection: spec.gatewayTerminationProtection,
                    stack: args.stack,
                    alarmEmail: args.alarmEmail,
                    tunnels: peers.map(({ peer, tunnel }) => ({
                        tunnel: tunnel.name,
                        peerElasticIp: eips[peer.name].publicIp,
                        peerCidr: peer.vpcCidr,
                        keyParameter: keyParameters[tunnel.name][r.name],
                    })),
                    tags: args.tags,
                },
                { parent: this, providers: { aws: providerOf(r) } },
            );
            this.gateways[r.name] = gateway;

            // Every table of the VPC sends each peer range to the gateway's interface (not the instance id,
            // which the provider deprecates, and which would change when the instance is replaced).
            vpc.routeTables.forEach((table, i) => {
                for (const { peer } of peers) {
                    new aws.ec2.Route(
                        `${name}-${r.name}-rt${i}-to-${peer.name}`,
                        { routeTableId: table.id, destinationCidrBlock: peer.vpcCidr, networkInterfaceId: gateway.networkInterfaceId },
                        { parent: this, provider: providerOf(r) },
                    );
                }
            });

            this.regionOutputs[r.name] = {
                awsRegion: r.awsRegion,
                role: r.role,
                vpcId: vpc.vpcId,
                vpcCidr: r.vpcCidr,
                gatewayElasticIp: gateway.elasticIp,
                gatewayPrivateIp: gateway.privateIp,
                gatewayInstanceId: gateway.instanceId,
                tunnels: peers.map((p) => p.tunnel.name),
                sessionCommand: pulumi.interpolate`aws ssm start-session --region ${r.awsRegion} --target ${gateway.instanceId}`,
                tunnelStatusCommand: pulumi.interpolate`aws ssm start-session --region ${r.awsRegion} --target ${gateway.instanceId} --document-name AWS-StartInteractiveCommand --parameters command="sudo ipsec trafficstatus; sudo ipsec whack --showstates"`,
                alarmTopicArn: gateway.alarmTopic.arn,
                tunnelAlarmNames: gateway.tunnelAlarms.map((a) => a.name),
            };
        }

        this.dashboard = new aws.cloudwatch.Dashboard(
            `${name}-${spec.hub.name}-dashboard`,
            { dashboardName: `hubspoke-vpn-${args.stack}`, dashboardBody: JSON.stringify(dashboardBody(spec, args.stack)) },
            { parent: this, provider: providerOf(spec.hub) },
        );

        this.registerOutputs({ regions: this.regionOutputs, dashboardName: this.dashboard.dashboardName });
    }
}

/** One graph per tunnel with both ends' TunnelUp (each end reports in its own region). */
export function dashboardBody(spec: StackSpec, stack: string): object {
    return {
        widgets: spec.tunnels.map((t, i) => ({
            type: "metric",
            x: (i % 2) * 12,
            y: Math.floor(i / 2) * 6,
            width: 12,
            height: 6,
            properties: {
                title: `${t.name} (1 = IKE and Child SA established)`,
                view: "timeSeries",
                stat: "Minimum",
                period: 60,
                region: spec.hub.awsRegion,
                yAxis: { left: { min: 0, max: 1 } },
                metrics: [t.hub, t.spoke].map((end) => [
                    METRIC_NAMESPACE,
                    METRIC_NAME,
                    "Stack",
                    stack,
                    "Region",
                    end,
                    "Tunnel",
                    t.name,
                    { region: spec.regions.find((r) => r.name === end)!.awsRegion, label: `seen from ${end}` },
                ]),
            },
        })),
    };
}
