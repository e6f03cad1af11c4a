import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { type RegionSpec, type StackSpec, siteGatewayNames, siteIpOf } from "../config/types";
import { failoverParameterName, PSK } from "../gateway/contract";
import { dashboardBody, tunnelDownQuery } from "../render/awsDocuments";
import { gatewayHooks, type PairGateway, pairGateway } from "./gatewayHandover";
import { OpenSwanGateway } from "./openSwanGateway";
import { RegionalVpc } from "./regionalVpc";
import { siteAddressHook } from "./siteAddressHook";
import { SiteFailover } from "./siteFailover";

/** The generator settings of every pre-shared key: only characters safe inside the quoted PSK of an ipsec.secrets line. */
export const PSK_GENERATOR = {
    length: PSK.length,
    special: true,
    overrideSpecial: PSK.special,
    minLower: 4,
    minUpper: 4,
    minNumeric: 4,
} as const;

export interface HubSpokeVpnArgs {
    /** The validated stack config: one hub, its spokes, the tunnels between them, each region's peers. */
    readonly spec: StackSpec;
    /** One AWS provider per AWS region (`us-east-1`); regions that share an AWS region share its provider. */
    readonly providers: Readonly<Record<string, aws.Provider>>;
    /** Tags added to every resource, besides `Name` (providers' default tags apply as well). */
    readonly tags?: Record<string, string>;
    /** Path prefix of the desired-state parameters, e.g. `/hubspoke-vpn/prod`; each gateway's are under `<prefix>/<region>/tunnels`. */
    readonly parameterPrefix: string;
    /** The Pulumi stack: a dimension of the tunnel metrics, and part of the dashboard's name. */
    readonly stack: string;
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
    /** Sites with a standby only: the standby gateway, and the site's two redundancy alarms. */
    readonly standby?: {
        readonly privateIp: string;
        readonly instanceId: pulumi.Output<string>;
        readonly sessionCommand: pulumi.Output<string>;
        /** ALARM: the standby reports that it could not take over. */
        readonly redundancyAlarmName: pulumi.Output<string>;
        /** INSUFFICIENT_DATA (its page; it never enters ALARM): no standby has reported for STANDBY_SILENT_MINUTES. */
        readonly standbySilentAlarmName: pulumi.Output<string>;
    };
}

/**
 * The whole private network: per region a RegionalVpc and an OpenSwanGateway on its AWS region's
 * provider; per hub-spoke tunnel one generated pre-shared key shared by both ends; and routes for
 * each peer range in every route table, targeting the gateway's network interface.
 * Spokes reach the hub only: there is no spoke-to-spoke tunnel or route.
 */
export class HubSpokeVpn extends pulumi.ComponentResource {
    public readonly vpcs: Record<string, RegionalVpc> = {};
    /** Per region name, its gateway (in a site with a standby, the primary one). */
    public readonly gateways: Record<string, OpenSwanGateway> = {};
    /** Per region name of a site with a standby: the standby gateway, and what makes the pair fail over. */
    public readonly standbys: Record<string, { gateway: OpenSwanGateway; failover: SiteFailover }> = {};
    /** Per region name, the values the stack exports. */
    public readonly regionOutputs: Record<string, RegionOutputs> = {};
    /** One CloudWatch dashboard, in the hub's AWS region, with every tunnel end of the stack. */
    public readonly dashboard: aws.cloudwatch.Dashboard;
    /** Per tunnel name, its pre-shared key: a Pulumi secret. */
    public readonly keys: Readonly<Record<string, pulumi.Output<string>>>;
    /** Per instance resource name, each gateway of a site with a standby, as its hooks find it. */
    public readonly pairGateways = new Map<string, PairGateway>();
    /** Registered on every run, whatever the config: the engine calls them by name from the state. */
    private readonly gatewayHooks = gatewayHooks(this.pairGateways);

    constructor(
        private readonly vpnName: string,
        private readonly args: HubSpokeVpnArgs,
        opts?: pulumi.ComponentResourceOptions,
    ) {
        super("hubspoke:network:HubSpokeVpn", vpnName, {}, opts);
        const { spec } = args;
        for (const r of spec.regions) {
            this.providerOf(r);
        }
        const eips = this.createVpcsAndAddresses();
        this.keys = this.createKeys();
        for (const r of spec.regions) {
            const gateway = this.createGateway(r, eips);
            this.gateways[r.name] = gateway;
            if (r.standby) {
                this.standbys[r.name] = this.createStandby(r, eips, gateway);
            }
            this.createRoutes(r, gateway);
            this.regionOutputs[r.name] = regionOutputs(
                r,
                this.vpcs[r.name],
                gateway,
                spec.peers[r.name].map((p) => p.tunnel.name),
                this.standbys[r.name],
            );
        }
        this.createTunnelQueries();
        this.dashboard = new aws.cloudwatch.Dashboard(
            `${vpnName}-${spec.hub.name}-dashboard`,
            { dashboardName: `hubspoke-vpn-${args.stack}`, dashboardBody: dashboardBody(spec, args.stack) },
            { parent: this, provider: this.providerOf(spec.hub) },
        );
        this.registerOutputs({ regions: this.regionOutputs, dashboardName: this.dashboard.dashboardName });
    }

    /**
     * Per tunnel end, the saved Logs Insights query "why is it down", in the end's AWS region, over its
     * site's event logs (both gateways of a pair): Logs Insights reads one region at a time.
     */
    private createTunnelQueries(): void {
        const { spec, stack } = this.args;
        for (const t of spec.tunnels) {
            for (const end of [t.hub, t.spoke]) {
                const r = spec.regions.find((x) => x.name === end)!;
                const site = [this.gateways[end], ...(this.standbys[end] ? [this.standbys[end].gateway] : [])];
                new aws.cloudwatch.QueryDefinition(
                    `${this.vpnName}-${end}-${t.name}-events-query`,
                    {
                        name: `hubspoke-vpn/${stack}/why-is-${t.name}-down-at-${end}`,
                        queryString: tunnelDownQuery(t.name),
                        logGroupNames: site.map((g) => g.eventLogGroup.name),
                    },
                    { parent: this, provider: this.providerOf(r) },
                );
            }
        }
    }

    private providerOf(r: RegionSpec): aws.Provider {
        const p = this.args.providers[r.awsRegion];
        if (!p) {
            throw new Error(`HubSpokeVpn ${this.vpnName}: no AWS provider given for AWS region ${r.awsRegion} (region "${r.name}")`);
        }
        return p;
    }

    /** Per region its VPC, and its gateway's Elastic IP: allocated apart from the gateway, so each peer's config can name it first. */
    private createVpcsAndAddresses(): Record<string, aws.ec2.Eip> {
        const { spec, tags } = this.args;
        // Registered on every run, whatever the config: the engine calls it by name for an address
        // whose site has been removed from the config.
        const addressHook = siteAddressHook();
        const eips: Record<string, aws.ec2.Eip> = {};
        for (const r of spec.regions) {
            this.vpcs[r.name] = new RegionalVpc(
                `${this.vpnName}-${r.name}`,
                { region: r, tags, flowLogRetentionDays: spec.flowLogRetentionDays },
                { parent: this, providers: { aws: this.providerOf(r) } },
            );
            eips[r.name] = new aws.ec2.Eip(
                `${this.vpnName}-${r.name}-eip`,
                { domain: "vpc", tags: { ...tags, Name: `${this.vpnName}-${r.name}-gateway` } },
                // A site's address may be associated outside Pulumi (its failover script): freed before release.
                { parent: this, provider: this.providerOf(r), hooks: { beforeDelete: [addressHook] } },
            );
        }
        return eips;
    }

    /** One key per tunnel; each end publishes it (inside its secrets line) in its own AWS region. */
    private createKeys(): Record<string, pulumi.Output<string>> {
        return Object.fromEntries(
            this.args.spec.tunnels.map((t) => {
                const key = new random.RandomPassword(
                    `${this.vpnName}-${t.name}-psk`,
                    // A new rotation number replaces the key; the parameters update in place.
                    { ...PSK_GENERATOR, keepers: { rotation: String(this.args.spec.pskRotation) } },
                    { parent: this },
                );
                return [t.name, pulumi.secret(key.result)];
            }),
        );
    }

    /**
     * The region's gateway; in a site with a standby, the primary of the pair (same name, so a site
     * that gains a standby keeps its gateway).
     */
    private createGateway(r: RegionSpec, eips: Record<string, aws.ec2.Eip>): OpenSwanGateway {
        const vpc = this.vpcs[r.name];
        const name = `${this.vpnName}-${r.name}-gw`;
        return this.newGateway(
            name,
            r,
            eips,
            vpc.vpnSubnet.id,
            r.standby ? this.failoverArgs(name, r, r.gatewayPrivateIp, true) : undefined,
        );
    }

    /** The standby of a site: its own subnet and zone, the same tunnel ends and keys. */
    private createStandby(
        r: RegionSpec,
        eips: Record<string, aws.ec2.Eip>,
        primary: OpenSwanGateway,
    ): { gateway: OpenSwanGateway; failover: SiteFailover } {
        const standby = r.standby!;
        const vpc = this.vpcs[r.name];
        const name = `${this.vpnName}-${r.name}-standby-gw`;
        const gateway = this.newGateway(
            name,
            r,
            eips,
            vpc.standbyVpnSubnet!.id,
            this.failoverArgs(name, r, standby.gatewayPrivateIp, primary),
        );
        const peers = this.args.spec.peers[r.name].map((p) => p.peer);
        const failover = new SiteFailover(
            `${this.vpnName}-${r.name}-failover`,
            {
                region: r,
                gateways: [primary, gateway],
                siteIps: [siteIpOf(r.gatewayPrivateIp), siteIpOf(standby.gatewayPrivateIp)],
                elasticIp: eips[r.name],
                routeTables: vpc.routeTables,
                peerCidrs: peers.map((p) => p.vpcCidr),
                probeTargets: peers.flatMap((p) => [p.gatewayPrivateIp, ...(p.standby ? [p.standby.gatewayPrivateIp] : [])]),
                layoutParameter: failoverParameterName(this.args.parameterPrefix, r.name),
                stack: this.args.stack,
                alarmTopic: primary.alarmTopic,
                tags: this.args.tags,
            },
            { parent: this, providers: { aws: this.providerOf(r) } },
        );
        return { gateway, failover };
    }

    private failoverArgs(name: string, r: RegionSpec, privateIp: string, primary: OpenSwanGateway | true) {
        const gateway = siteGatewayNames(r)[primary === true ? 0 : 1];
        this.pairGateways.set(`${name}-instance`, pairGateway(this.args.stack, this.args.parameterPrefix, r, gateway));
        return {
            gateway,
            privateIp,
            siteIp: siteIpOf(privateIp),
            managementElasticIp: new aws.ec2.Eip(
                `${name}-mgmt-eip`,
                { domain: "vpc", tags: { ...this.args.tags, Name: `${name}-mgmt` } },
                { parent: this, provider: this.providerOf(r) },
            ),
            layoutParameter: failoverParameterName(this.args.parameterPrefix, r.name),
            // The tunnel metrics are per site (whichever gateway is active reports them): one set of alarms.
            tunnelAlarms: primary === true,
            // Replaced one after the other, each replacement a planned handover (README, Day two).
            hooks: {
                beforeDelete: [this.gatewayHooks.handover],
                afterCreate: [this.gatewayHooks.ready],
                beforeUpdate: [this.gatewayHooks.handoverBeforeStop],
                afterUpdate: [this.gatewayHooks.readyAfterStart],
            },
            ...(primary === true ? {} : { replaceAfter: primary.instance }),
        };
    }

    private newGateway(
        name: string,
        r: RegionSpec,
        eips: Record<string, aws.ec2.Eip>,
        subnetId: pulumi.Input<string>,
        failover: ReturnType<HubSpokeVpn["failoverArgs"]> | undefined,
    ): OpenSwanGateway {
        const { spec } = this.args;
        const vpc = this.vpcs[r.name];
        return new OpenSwanGateway(
            name,
            {
                region: r,
                vpcId: vpc.vpcId,
                subnetId,
                internetGateway: vpc.internetGateway,
                elasticIp: eips[r.name],
                instanceType: spec.gatewayInstanceType,
                amiRelease: spec.gatewayAmiRelease,
                amiKernel: spec.gatewayAmiKernel,
                terminationProtection: spec.gatewayTerminationProtection,
                eventLogRetentionDays: spec.eventLogRetentionDays,
                stack: this.args.stack,
                alarmEmail: spec.alarmEmail,
                parameterPrefix: this.args.parameterPrefix,
                tunnelSettings: spec.tunnelSettings,
                tunnels: spec.peers[r.name].map(({ peer, tunnel }) => ({
                    tunnel: tunnel.name,
                    peerElasticIp: eips[peer.name].publicIp,
                    peerCidr: peer.vpcCidr,
                    psk: this.keys[tunnel.name],
                })),
                tags: this.args.tags,
                ...(failover ? { failover } : {}),
            },
            { parent: this, providers: { aws: this.providerOf(r) } },
        );
    }

    /**
     * Every table of the VPC sends each peer range to the gateway's interface (not the instance id,
     * which the provider deprecates, and which would change when the instance is replaced). In a site
     * with a standby they start on the primary, and then belong to whichever gateway is active: the
     * program never moves them back (that would be an automatic fail-back on the next `pulumi up`).
     */
    private createRoutes(r: RegionSpec, gateway: OpenSwanGateway): void {
        this.vpcs[r.name].routeTables.forEach((table, i) => {
            for (const { peer } of this.args.spec.peers[r.name]) {
                new aws.ec2.Route(
                    `${this.vpnName}-${r.name}-rt${i}-to-${peer.name}`,
                    { routeTableId: table.id, destinationCidrBlock: peer.vpcCidr, networkInterfaceId: gateway.networkInterfaceId },
                    { parent: this, provider: this.providerOf(r), ...(r.standby ? { ignoreChanges: ["networkInterfaceId"] } : {}) },
                );
            }
        });
    }
}

function regionOutputs(
    r: RegionSpec,
    vpc: RegionalVpc,
    gateway: OpenSwanGateway,
    tunnels: string[],
    standby?: { gateway: OpenSwanGateway; failover: SiteFailover },
): RegionOutputs {
    const session = pulumi.interpolate`aws ssm start-session --region ${r.awsRegion} --target ${gateway.instanceId}`;
    return {
        awsRegion: r.awsRegion,
        role: r.role,
        vpcId: vpc.vpcId,
        vpcCidr: r.vpcCidr,
        gatewayElasticIp: gateway.elasticIp,
        gatewayPrivateIp: gateway.privateIp,
        gatewayInstanceId: gateway.instanceId,
        tunnels,
        sessionCommand: session,
        tunnelStatusCommand: pulumi.interpolate`${session} --document-name AWS-StartInteractiveCommand --parameters command="sudo ipsec trafficstatus; sudo ipsec whack --showstates"`,
        alarmTopicArn: gateway.alarmTopic.arn,
        tunnelAlarmNames: gateway.tunnelAlarms.map((a) => a.name),
        ...(standby
            ? {
                  standby: {
                      privateIp: standby.gateway.privateIp,
                      instanceId: standby.gateway.instanceId,
                      sessionCommand: pulumi.interpolate`aws ssm start-session --region ${r.awsRegion} --target ${standby.gateway.instanceId}`,
                      redundancyAlarmName: standby.failover.redundancyAlarm.name,
                      standbySilentAlarmName: standby.failover.standbySilentAlarm.name,
                  },
              }
            : {}),
    };
}
