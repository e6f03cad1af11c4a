import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { RegionSpec } from "../config/types";
import { failoverPolicy, redundancyAlarm, standbySilentAlarm } from "../render/awsDocuments";
import { type FailoverGateway, renderFailoverLayout } from "../render/failover";
import type { OpenSwanGateway } from "./openSwanGateway";

export interface SiteFailoverArgs {
    /** The site's validated config (it has a `standby`). */
    readonly region: RegionSpec;
    /** The primary gateway first, then the standby. */
    readonly gateways: readonly [OpenSwanGateway, OpenSwanGateway];
    /** Per gateway (same order), its site address. */
    readonly siteIps: readonly [string, string];
    /** The site's Elastic IP: what moves. */
    readonly elasticIp: aws.ec2.Eip;
    /** Every route table of the site's VPC. */
    readonly routeTables: readonly aws.ec2.RouteTable[];
    /** The peers' VPC ranges (the routes that move) and their gateways' private IPs (the probe targets). */
    readonly peerCidrs: readonly string[];
    readonly probeTargets: readonly string[];
    /** SSM name of the layout, e.g. `/hubspoke-vpn/prod-ha/virginia/failover`. */
    readonly layoutParameter: string;
    /** The Pulumi stack: a dimension of the site's metrics. */
    readonly stack: string;
    /** Where the redundancy alarm notifies. */
    readonly alarmTopic: aws.sns.Topic;
    readonly tags?: Record<string, string>;
}

/**
 * What turns two gateways into a site that survives either: the layout both gateways' failover
 * scripts read, each gateway's permission to move exactly this site's Elastic IP and routes, and the
 * alarm for a site without a healthy standby. The pair itself (instances, interfaces, addresses) is
 * two OpenSwanGateways; which of them is active is decided at run time, by them.
 */
export class SiteFailover extends pulumi.ComponentResource {
    public readonly layout: aws.ssm.Parameter;
    public readonly policies: aws.iam.RolePolicy[];
    /** ALARM when the site's standby reported not ready for 3 minutes. */
    public readonly redundancyAlarm: aws.cloudwatch.MetricAlarm;
    /** Pages on INSUFFICIENT_DATA (it never enters ALARM) when no standby of the site reported for STANDBY_SILENT_MINUTES. */
    public readonly standbySilentAlarm: aws.cloudwatch.MetricAlarm;

    constructor(name: string, args: SiteFailoverArgs, opts?: pulumi.ComponentResourceOptions) {
        super("hubspoke:gateway:SiteFailover", name, {}, opts);
        const { region, gateways } = args;
        const parent = { parent: this };
        const tableIds = pulumi.all(args.routeTables.map((t) => t.id));
        const eniIds = pulumi.all(gateways.map((g) => g.networkInterfaceId));
        const value = pulumi.all([args.elasticIp.allocationId, tableIds, eniIds]).apply(([allocationId, routeTables, enis]) =>
            renderFailoverLayout(region.name, {
                allocationId,
                routeTables,
                peerCidrs: args.peerCidrs,
                probeTargets: args.probeTargets,
                gateways: gateways.map(
                    (g, i): FailoverGateway => ({
                        name: g.gatewayId,
                        networkInterfaceId: enis[i],
                        privateIp: g.privateIp,
                        siteIp: args.siteIps[i],
                    }),
                ) as [FailoverGateway, FailoverGateway],
            }),
        );
        this.layout = new aws.ssm.Parameter(
            `${name}-layout`,
            {
                name: args.layoutParameter,
                type: "String",
                insecureValue: value,
                description: `hubspoke-vpn: site ${region.name}'s two gateways, its Elastic IP and route tables (read by hubspoke-failover)`,
                tags: args.tags,
            },
            parent,
        );
        const partition = aws.getPartitionOutput({}, parent).partition;
        const accountId = aws.getCallerIdentityOutput({}, parent).accountId;
        const document = pulumi
            .all([partition, accountId, args.elasticIp.allocationId, tableIds, eniIds])
            .apply(([p, a, allocationId, routeTableIds, networkInterfaceIds]) =>
                failoverPolicy({
                    partition: p,
                    accountId: a,
                    awsRegion: region.awsRegion,
                    allocationId,
                    networkInterfaceIds,
                    routeTableIds,
                    layoutParameter: args.layoutParameter,
                }),
            );
        this.policies = gateways.map(
            (g) => new aws.iam.RolePolicy(`${name}-${g.gatewayId}-policy`, { role: g.role.name, policy: document }, parent),
        );
        this.redundancyAlarm = new aws.cloudwatch.MetricAlarm(
            `${name}-redundancy`,
            { ...redundancyAlarm(args.stack, region.name, args.alarmTopic.arn), tags: { ...args.tags, Name: `${name}-redundancy` } },
            parent,
        );
        this.standbySilentAlarm = new aws.cloudwatch.MetricAlarm(
            `${name}-standby-silent`,
            { ...standbySilentAlarm(args.stack, region.name, args.alarmTopic.arn), tags: { ...args.tags, Name: `${name}-standby-silent` } },
            parent,
        );
        this.registerOutputs({
            layoutParameter: this.layout.name,
            redundancyAlarmName: this.redundancyAlarm.name,
            standbySilentAlarmName: this.standbySilentAlarm.name,
        });
    }
}
