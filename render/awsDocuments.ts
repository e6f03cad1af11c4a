/**
 * The AWS documents the components hand to resources: IAM policies, alarm definitions, and the
 * dashboard body. Plain values in, plain values (JSON) out, so that each is table-tested directly.
 */
import { type RegionSpec, type StackSpec, siteGatewayNames } from "../config/types";
import { BOOTSTRAP, eventLogGroupName, METRIC, type TunnelEvent } from "../gateway/contract";

/**
 * What Session Manager needs on the instance, and nothing more (AmazonSSMManagedInstanceCore would
 * also grant ssm:GetParameter on every parameter of the account).
 */
export const SESSION_MANAGER_ACTIONS = [
    "ssm:UpdateInstanceInformation",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
];

/** A role that `service` (e.g. `ec2.amazonaws.com`) may assume. */
export function assumeRolePolicy(service: string): string {
    return JSON.stringify({
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Principal: { Service: service }, Action: "sts:AssumeRole" }],
    });
}

export interface GatewayPolicyArgs {
    readonly partition: string;
    readonly accountId: string;
    readonly awsRegion: string;
    /** The gateway's desired-state path, e.g. `/hubspoke-vpn/prod/virginia/tunnels`. */
    readonly parameterPath: string;
    /** Where the gateway's software versions live, e.g. `/hubspoke-vpn/prod/virginia/software`. */
    readonly softwareRoot: string;
    /** The gateway's tunnel-event log group and its stream in it (gateway/contract.ts, eventLogGroupName). */
    readonly eventLogGroup: string;
    readonly eventLogStream: string;
}

/**
 * A gateway's own permissions: Session Manager, reading exactly its own desired-state path (the list
 * and each parameter under it) and its own software, putting metrics in the tunnel namespace only, and
 * putting events in its own log stream only.
 */
export function gatewayPolicy(a: GatewayPolicyArgs): string {
    const pathArn = `arn:${a.partition}:ssm:${a.awsRegion}:${a.accountId}:parameter${a.parameterPath}`;
    return JSON.stringify({
        Version: "2012-10-17",
        Statement: [
            { Sid: "SessionManager", Effect: "Allow", Action: SESSION_MANAGER_ACTIONS, Resource: "*" },
            // GetParametersByPath is authorised on the path itself, GetParameter on each parameter below it.
            // SecureStrings under the AWS-managed aws/ssm key need no kms:Decrypt grant here.
            { Sid: "OwnDesiredStateList", Effect: "Allow", Action: "ssm:GetParametersByPath", Resource: pathArn },
            { Sid: "OwnDesiredState", Effect: "Allow", Action: "ssm:GetParameter", Resource: `${pathArn}/*` },
            // Its software, by version (`<root>/<digest>`): listed whole by hubspoke-bootstrap.
            {
                Sid: "OwnSoftware",
                Effect: "Allow",
                Action: "ssm:GetParametersByPath",
                Resource: `arn:${a.partition}:ssm:${a.awsRegion}:${a.accountId}:parameter${a.softwareRoot}/*`,
            },
            // PutMetricData has no resource ARN; the namespace condition is what limits it.
            {
                Sid: "TunnelMetrics",
                Effect: "Allow",
                Action: "cloudwatch:PutMetricData",
                Resource: "*",
                Condition: { StringEquals: { "cloudwatch:namespace": METRIC.namespace } },
            },
            // PutLogEvents is authorised on the stream (IAM's service authorization reference, CloudWatch
            // Logs); the program creates it, so the gateway needs no CreateLogStream.
            {
                Sid: "OwnTunnelEvents",
                Effect: "Allow",
                Action: "logs:PutLogEvents",
                Resource: eventLogStreamArn(a.partition, a.awsRegion, a.accountId, a.eventLogGroup, a.eventLogStream),
            },
        ],
    });
}

/** The ARN of a log stream, as IAM names it for PutLogEvents. */
export function eventLogStreamArn(partition: string, awsRegion: string, accountId: string, group: string, stream: string): string {
    return `arn:${partition}:logs:${awsRegion}:${accountId}:log-group:${group}:log-stream:${stream}`;
}

export interface FailoverPolicyArgs {
    readonly partition: string;
    readonly accountId: string;
    readonly awsRegion: string;
    /** The site's Elastic IP allocation, e.g. `eipalloc-0123`. */
    readonly allocationId: string;
    /** Both gateways' network interfaces: the Elastic IP moves between them. */
    readonly networkInterfaceIds: readonly string[];
    /** Every route table of the site's VPC. */
    readonly routeTableIds: readonly string[];
    /** SSM name of the site's failover layout. */
    readonly layoutParameter: string;
}

/**
 * What a gateway of a site with a standby needs to take the site over, and nothing more: associate
 * exactly the site's Elastic IP with exactly one of the site's two interfaces, replace routes in
 * exactly the site's route tables, read the layout. AssociateAddress is authorised on the address
 * and on the interface; Describe* actions have no resource-level permissions in EC2 (read-only).
 */
export function failoverPolicy(a: FailoverPolicyArgs): string {
    const arn = (type: string, id: string) => `arn:${a.partition}:ec2:${a.awsRegion}:${a.accountId}:${type}/${id}`;
    return JSON.stringify({
        Version: "2012-10-17",
        Statement: [
            {
                Sid: "MoveSiteElasticIp",
                Effect: "Allow",
                Action: "ec2:AssociateAddress",
                Resource: [arn("elastic-ip", a.allocationId), ...a.networkInterfaceIds.map((id) => arn("network-interface", id))],
            },
            {
                Sid: "MoveSiteRoutes",
                Effect: "Allow",
                Action: "ec2:ReplaceRoute",
                Resource: a.routeTableIds.map((id) => arn("route-table", id)),
            },
            { Sid: "ReadSiteState", Effect: "Allow", Action: ["ec2:DescribeAddresses", "ec2:DescribeRouteTables"], Resource: "*" },
            {
                Sid: "ReadFailoverLayout",
                Effect: "Allow",
                Action: "ssm:GetParameter",
                Resource: `arn:${a.partition}:ssm:${a.awsRegion}:${a.accountId}:parameter${a.layoutParameter}`,
            },
        ],
    });
}

/** What VPC flow logs need to write to one log group. */
export function flowLogPolicy(logGroupArn: string): string {
    return JSON.stringify({
        Version: "2012-10-17",
        Statement: [
            {
                Effect: "Allow",
                Action: ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                Resource: [logGroupArn, `${logGroupArn}:*`],
            },
        ],
    });
}

/** Where an alarm notifies, per state it enters. */
export interface AlarmNotifications<T> {
    readonly alarmActions: T[];
    readonly okActions: T[];
    readonly insufficientDataActions: T[];
}

/**
 * A tunnel end's "down" alarm. Semantics (README, Operations):
 *   - ALARM when the gateway reports TunnelUp below 1 for 3 consecutive minutes: pages;
 *   - INSUFFICIENT_DATA when no data arrives for those 3 minutes: pages too when the alarm enters it
 *     from OK or ALARM (a gateway that stopped reporting), but not while a new alarm waits for its
 *     first data point: a new alarm starts in INSUFFICIENT_DATA, and CloudWatch acts on state changes
 *     only, so a fresh deploy does not page;
 *   - OK notifies too, so on-call sees the tunnel come back.
 */
export function tunnelAlarm<T>(stack: string, regionName: string, tunnel: string, topic: T) {
    return {
        alarmDescription: `hubspoke-vpn: tunnel ${tunnel} is down as seen from ${regionName} (no established IKE and Child SA for 3 minutes), or ${regionName} stopped reporting`,
        namespace: METRIC.namespace,
        metricName: METRIC.tunnelUp,
        dimensions: { Stack: stack, Region: regionName, Tunnel: tunnel },
        statistic: "Minimum",
        period: 60,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        threshold: 1,
        comparisonOperator: "LessThanThreshold",
        treatMissingData: "missing",
        ...notifyOnEveryChange(topic),
    };
}

function notifyOnEveryChange<T>(topic: T): AlarmNotifications<T> {
    return { alarmActions: [topic], okActions: [topic], insufficientDataActions: [topic] };
}

/** EC2's recover action on a failed system status check, and a notification. */
export function recoveryAlarm<T>(regionName: string, instanceId: T, recoverAction: T, topic: T) {
    return {
        alarmDescription: `hubspoke-vpn: gateway ${regionName} failed its system status check; EC2 recovers it onto healthy hardware`,
        namespace: "AWS/EC2",
        metricName: "StatusCheckFailed_System",
        dimensions: { InstanceId: instanceId },
        statistic: "Maximum",
        period: 60,
        evaluationPeriods: 2,
        threshold: 1,
        comparisonOperator: "GreaterThanOrEqualToThreshold",
        // AWS's advice for EC2 actions: act only in ALARM, let missing data be missing.
        treatMissingData: "missing",
        alarmActions: [recoverAction, topic],
    };
}

/**
 * A gateway whose first boot has not finished after BOOTSTRAP.reportAfterSeconds (packages, its
 * software, its units: retried by hubspoke-bootstrap until they succeed) reports
 * GatewayBootstrapPending 1 at each failed try, at least every few minutes (its retries are at most
 * 2 min apart, plus the try): ALARM at the first; it stays in ALARM while any of the last three
 * 5-minute periods had a 1, so a slow try does not flap it to OK; OK 15 minutes after the last 1
 * (it reports 0 on finishing). A healthy gateway never sends it: missing data is not breaching. A
 * gateway that cannot reach CloudWatch at all cannot report this either; its tunnel alarms page.
 */
export function bootstrapAlarm<T>(stack: string, gateway: string, topic: T) {
    return {
        alarmDescription: `hubspoke-vpn: gateway ${gateway} has not finished its first boot after ${BOOTSTRAP.reportAfterSeconds / 60} minutes (journalctl -u hubspoke-bootstrap says why)`,
        namespace: METRIC.namespace,
        metricName: METRIC.bootstrapPending,
        dimensions: { Stack: stack, Gateway: gateway },
        statistic: "Maximum",
        period: 300,
        evaluationPeriods: 3,
        datapointsToAlarm: 1,
        threshold: 1,
        comparisonOperator: "GreaterThanOrEqualToThreshold",
        treatMissingData: "notBreaching",
        alarmActions: [topic],
        okActions: [topic],
    };
}

/**
 * Minutes a site's standby may be silent before the site counts as without one: longer than a
 * gateway's boot to its first report (a fresh deploy, a replacement), short enough for a standby
 * that is gone for good, or a failed gateway that is not back after a failover.
 */
export const STANDBY_SILENT_MINUTES = 15;

/**
 * A site's "redundancy lost" alarm: its standby reports StandbyReady every minute, 1 while it could
 * take over. ALARM when it reported 0 for 3 minutes in a row: a standby that runs but could not take
 * over. Silence is not judged here: missing data keeps the state (`ignore`), so a standby that boots,
 * reboots or is being replaced neither pages nor sends an OK; `standbySilentAlarm` judges silence.
 */
export function redundancyAlarm<T>(stack: string, regionName: string, topic: T) {
    return {
        alarmDescription: `hubspoke-vpn: site ${regionName}'s standby gateway reports that it could not take over (a failure of its active gateway would stop its tunnels)`,
        namespace: METRIC.namespace,
        metricName: METRIC.standbyReady,
        dimensions: { Stack: stack, Region: regionName },
        statistic: "Maximum",
        period: 60,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        threshold: 1,
        comparisonOperator: "LessThanThreshold",
        treatMissingData: "ignore",
        alarmActions: [topic],
        okActions: [topic],
    };
}

/**
 * A site's "standby silent" alarm, a heartbeat: OK while a standby reports (any StandbyReady value),
 * and it notifies when it leaves OK for INSUFFICIENT_DATA, which CloudWatch does once every datapoint
 * of its evaluation range is missing (treatMissingData "missing"): a standby that had reported and
 * then said nothing for STANDBY_SILENT_MINUTES is gone, or the failed gateway is not back after a
 * failover. A new alarm starts in INSUFFICIENT_DATA and alarms act on state changes only, so a fresh
 * deploy pages nothing whenever its standby first reports; a replacement that reports within that
 * time never leaves OK. (A count of 1 or more never breaches "< 1": it never enters ALARM.)
 */
export function standbySilentAlarm<T>(stack: string, regionName: string, topic: T) {
    return {
        alarmDescription: `hubspoke-vpn: site ${regionName} has heard from no standby gateway for ${STANDBY_SILENT_MINUTES} minutes (INSUFFICIENT_DATA is the page: a failure of its active gateway would stop its tunnels)`,
        namespace: METRIC.namespace,
        metricName: METRIC.standbyReady,
        dimensions: { Stack: stack, Region: regionName },
        statistic: "SampleCount",
        period: 60,
        evaluationPeriods: STANDBY_SILENT_MINUTES,
        datapointsToAlarm: STANDBY_SILENT_MINUTES,
        threshold: 1,
        comparisonOperator: "LessThanThreshold",
        treatMissingData: "missing",
        insufficientDataActions: [topic],
        okActions: [topic],
    };
}

/** The site-wide events (no tunnel): every tunnel of the site went with them. */
const SITE_EVENTS: TunnelEvent[] = ["takeover", "step-down", "handover"];

/**
 * The saved Logs Insights query "why is tunnel X down", over the event logs of one end's site (both
 * gateways of a pair): the tunnel's events and the site's takeovers and handovers, newest first.
 */
export function tunnelDownQuery(tunnel: string): string {
    return [
        "fields @timestamp, gateway, event, ikeState, childState, peer, repeats, detail",
        `| filter tunnel = "${tunnel}" or event in [${SITE_EVENTS.map((e) => `"${e}"`).join(", ")}]`,
        "| sort @timestamp desc",
        "| limit 50",
    ].join("\n");
}

/** The event log groups of the sites in `regions` (each site's gateways), for queries and widgets. */
export function eventLogGroupsOf(stack: string, regions: readonly Pick<RegionSpec, "name" | "standby">[]): string[] {
    return regions.flatMap((r) => siteGatewayNames(r).map((g) => eventLogGroupName(stack, g)));
}

/**
 * One graph per tunnel with both ends' TunnelUp (each end reports in its own AWS region); then, if
 * any site has a standby, one graph of StandbyReady and one of Failovers across those sites.
 */
export function dashboardBody(spec: Pick<StackSpec, "tunnels" | "regions" | "hub">, stack: string): string {
    const awsRegionOf = (regionName: string) => spec.regions.find((r) => r.name === regionName)!.awsRegion;
    const sites = spec.regions.filter((r) => r.standby);
    // One tunnel end's metric, graphed from the hub's region with the end's own region.
    const tunnelEndMetric = (metric: string, tunnel: string, end: string, label: string) => [
        METRIC.namespace,
        metric,
        "Stack",
        stack,
        "Region",
        end,
        "Tunnel",
        tunnel,
        { region: awsRegionOf(end), label },
    ];
    const row = Math.ceil(spec.tunnels.length / 2) * 6;
    const siteGraph = (x: number, title: string, metric: string, stat: string) => ({
        type: "metric",
        x,
        y: row,
        width: 12,
        height: 6,
        properties: {
            title,
            view: "timeSeries",
            stat,
            period: 60,
            region: spec.hub.awsRegion,
            yAxis: { left: { min: 0 } },
            metrics: sites.map((r) => [METRIC.namespace, metric, "Stack", stack, "Region", r.name, { region: r.awsRegion, label: r.name }]),
        },
    });
    const redundancy =
        sites.length === 0
            ? []
            : [
                  siteGraph(0, "Standby ready (1 = the site survives its active gateway)", METRIC.standbyReady, "Maximum"),
                  siteGraph(12, "Failovers (standby took over the site)", METRIC.failovers, "Sum"),
              ];
    // Below the tunnels' state and the sites' graphs: each tunnel's bytes, both ends, in and out.
    const bytesRow = row + (redundancy.length ? 6 : 0);
    // Last, the latest events per AWS region (a log widget reads the groups of one region).
    const eventsRow = bytesRow + Math.ceil(spec.tunnels.length / 2) * 6;
    const awsRegions = [...new Set(spec.regions.map((r) => r.awsRegion))];
    const events = awsRegions.map((awsRegion, i) => ({
        type: "log",
        x: 0,
        y: eventsRow + i * 6,
        width: 24,
        height: 6,
        properties: {
            title: `Tunnel events in ${awsRegion} (${spec.regions
                .filter((r) => r.awsRegion === awsRegion)
                .map((r) => r.name)
                .join(", ")}), newest first`,
            region: awsRegion,
            view: "table",
            query: [
                ...eventLogGroupsOf(
                    stack,
                    spec.regions.filter((r) => r.awsRegion === awsRegion),
                ).map((g) => `SOURCE '${g}'`),
                "fields @timestamp, gateway, tunnel, event, ikeState, childState, repeats, detail",
                "sort @timestamp desc",
                "limit 50",
            ].join(" | "),
        },
    }));
    const bytes = spec.tunnels.map((t, i) => ({
        type: "metric",
        x: (i % 2) * 12,
        y: bytesRow + Math.floor(i / 2) * 6,
        width: 12,
        height: 6,
        properties: {
            title: `${t.name}: bytes a minute (in = received and decrypted, out = sent)`,
            view: "timeSeries",
            stat: "Sum",
            period: 60,
            region: spec.hub.awsRegion,
            yAxis: { left: { min: 0 } },
            metrics: [t.hub, t.spoke].flatMap((end) =>
                [METRIC.tunnelDataIn, METRIC.tunnelDataOut].map((metric) =>
                    tunnelEndMetric(metric, t.name, end, `${end} ${metric === METRIC.tunnelDataIn ? "in" : "out"}`),
                ),
            ),
        },
    }));
    return JSON.stringify({
        widgets: [
            ...spec.tunnels.map((t, i) => ({
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
                    metrics: [t.hub, t.spoke].map((end) => tunnelEndMetric(METRIC.tunnelUp, t.name, end, `seen from ${end}`)),
                },
            })),
            ...redundancy,
            ...bytes,
            ...events,
        ],
    });
}
