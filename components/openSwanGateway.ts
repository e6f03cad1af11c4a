import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { al2023AmiParameter } from "../config/ami";
import type { RegionSpec } from "../config/types";
import { type GatewayTunnel, gatewayFiles, METRIC_NAME, METRIC_NAMESPACE, renderUserData } from "../render/cloudInit";

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

/** One tunnel this gateway terminates, as seen from this gateway. */
export interface GatewayTunnelArgs {
    /** Tunnel name, the same at both ends, e.g. `virginia-to-sydney`. */
    readonly tunnel: string;
    /** The peer gateway's Elastic IP. */
    readonly peerElasticIp: pulumi.Input<string>;
    /** The peer's VPC range. */
    readonly peerCidr: string;
    /** The SSM SecureString parameter, in this gateway's region, that holds the tunnel's pre-shared key. */
    readonly keyParameter: { readonly name: pulumi.Input<string>; readonly arn: pulumi.Input<string> };
}

export interface OpenSwanGatewayArgs {
    /** The region's validated config: VPC range and the gateway's static private IP. */
    readonly region: RegionSpec;
    readonly vpcId: pulumi.Input<string>;
    /** The VPN subnet: public, with a route to the internet gateway. */
    readonly subnetId: pulumi.Input<string>;
    /** The internet gateway the Elastic IP needs before it can be associated. */
    readonly internetGateway: aws.ec2.InternetGateway;
    /** The Elastic IP, allocated by the caller so peers can use its address before this gateway exists. */
    readonly elasticIp: aws.ec2.Eip;
    readonly instanceType: string;
    readonly tunnels: readonly GatewayTunnelArgs[];
    /** Refuse API termination of the instance (for production stacks). */
    readonly terminationProtection?: boolean;
    /** The Pulumi stack: a dimension of the tunnel metrics. */
    readonly stack: string;
    /** An e-mail address the region's alarm topic notifies, if any. */
    readonly alarmEmail?: string;
    /** Tags added to every resource, besides `Name`. */
    readonly tags?: Record<string, string>;
}

/** The ports a gateway accepts from its peers: IKE, NAT-T, and ESP (IP protocol 50). */
export const IPSEC_INGRESS = [
    { label: "ike", ipProtocol: "udp", fromPort: 500, toPort: 500 },
    { label: "natt", ipProtocol: "udp", fromPort: 4500, toPort: 4500 },
    { label: "esp", ipProtocol: "50", fromPort: undefined, toPort: undefined },
] as const;

/**
 * A libreswan IPsec gateway on EC2 (Amazon Linux 2023): a network interface with the static
 * private IP and source/destination check off (routes target it, so they survive instance
 * replacement), the Elastic IP associated to it, a security group open only to the peers,
 * and an instance whose user data writes one conn per tunnel and the boot script that fetches
 * the tunnels' keys from SSM Parameter Store into their secrets files before ipsec starts.
 */
export class OpenSwanGateway extends pulumi.ComponentResource {
    public readonly networkInterface: aws.ec2.NetworkInterface;
    public readonly networkInterfaceId: pulumi.Output<string>;
    public readonly securityGroup: aws.ec2.SecurityGroup;
    public readonly instance: aws.ec2.Instance;
    public readonly instanceId: pulumi.Output<string>;
    public readonly elasticIp: pulumi.Output<string>;
    public readonly privateIp: string;
    /** The region's alarm topic. */
    public readonly alarmTopic: aws.sns.Topic;
    /** One per tunnel end: TunnelUp below 1 for 3 minutes, missing data counted as down. */
    public readonly tunnelAlarms: aws.cloudwatch.MetricAlarm[];
    /** EC2 automatic recovery on a failed system status check. */
    public readonly recoveryAlarm: aws.cloudwatch.MetricAlarm;
    /** The full cloud-config. It holds no key (anyone with ec2:DescribeInstanceAttribute can read it). */
    public readonly userData: pulumi.Output<string>;

    constructor(name: string, args: OpenSwanGatewayArgs, opts?: pulumi.ComponentResourceOptions) {
        super("hubspoke:gateway:OpenSwanGateway", name, {}, opts);
        const { region } = args;
        const tags = (suffix: string) => ({ ...args.tags, Name: `${name}-${suffix}` });
        const parent = { parent: this };

        this.securityGroup = new aws.ec2.SecurityGroup(
            `${name}-sg`,
            {
                vpcId: args.vpcId,
                description: `hubspoke-vpn gateway ${region.name}: IKE, NAT-T and ESP from peer gateways only`,
                tags: tags("sg"),
            },
            parent,
        );
        const sg = this.securityGroup.id;
        for (const t of args.tunnels) {
            const peer = pulumi.output(t.peerElasticIp).apply((ip) => `${ip}/32`);
            for (const rule of IPSEC_INGRESS) {
                new aws.vpc.SecurityGroupIngressRule(
                    `${name}-${t.tunnel}-${rule.label}-in`,
                    { securityGroupId: sg, cidrIpv4: peer, ipProtocol: rule.ipProtocol, fromPort: rule.fromPort, toPort: rule.toPort },
                    parent,
                );
                new aws.vpc.SecurityGroupEgressRule(
                    `${name}-${t.tunnel}-${rule.label}-out`,
                    { securityGroupId: sg, cidrIpv4: peer, ipProtocol: rule.ipProtocol, fromPort: rule.fromPort, toPort: rule.toPort },
                    parent,
                );
            }
        }
        // Traffic the gateway forwards: from its own VPC into the tunnels, and decrypted traffic back to it.
        new aws.vpc.SecurityGroupIngressRule(
            `${name}-vpc-in`,
            { securityGroupId: sg, cidrIpv4: region.vpcCidr, ipProtocol: "-1", description: "forwarded traffic from this VPC" },
            parent,
        );
        new aws.vpc.SecurityGroupEgressRule(
            `${name}-vpc-out`,
            { securityGroupId: sg, cidrIpv4: region.vpcCidr, ipProtocol: "-1", description: "decrypted traffic into this VPC" },
            parent,
        );
        // Package repositories and Session Manager are HTTPS endpoints with changing addresses.
        new aws.vpc.SecurityGroupEgressRule(
            `${name}-https-out`,
            {
                securityGroupId: sg,
                cidrIpv4: "0.0.0.0/0",
                ipProtocol: "tcp",
                fromPort: 443,
                toPort: 443,
                description: "HTTPS: packages, SSM",
            },
            parent,
        );

        this.networkInterface = new aws.ec2.NetworkInterface(
            `${name}-eni`,
            {
                subnetId: args.subnetId,
                privateIps: [region.gatewayPrivateIp],
                securityGroups: [sg],
                // The gateway forwards packets that are neither from nor to its own address.
                sourceDestCheck: false,
                description: `hubspoke-vpn gateway ${region.name}`,
                // The policy pack allows the source/destination check off only on tagged gateways.
                tags: { ...tags("eni"), Role: "vpn-gateway" },
            },
            parent,
        );
        this.networkInterfaceId = this.networkInterface.id;
        new aws.ec2.EipAssociation(
            `${name}-eip-assoc`,
            { allocationId: args.elasticIp.allocationId, networkInterfaceId: this.networkInterface.id },
            { parent: this, dependsOn: [args.internetGateway] },
        );

        // Session Manager instead of SSH: no inbound port, access governed by IAM and logged.
        const role = new aws.iam.Role(
            `${name}-role`,
            {
                description: `hubspoke-vpn gateway ${region.name}`,
                assumeRolePolicy: JSON.stringify({
                    Version: "2012-10-17",
                    Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
                }),
                tags: tags("role"),
            },
            parent,
        );
        // Least privilege: Session Manager, and reading exactly this gateway's own key parameters.
        new aws.iam.RolePolicy(
            `${name}-policy`,
            {
                role: role.name,
                policy: pulumi.all(args.tunnels.map((t) => t.keyParameter.arn)).apply((arns) =>
                    JSON.stringify({
                        Version: "2012-10-17",
                        Statement: [
                            { Sid: "SessionManager", Effect: "Allow", Action: SESSION_MANAGER_ACTIONS, Resource: "*" },
                            // SecureStrings under the AWS-managed aws/ssm key need no kms:Decrypt grant here.
                            { Sid: "OwnTunnelKeys", Effect: "Allow", Action: "ssm:GetParameter", Resource: [...arns].sort() },
                            // PutMetricData has no resource ARN; the namespace condition is what limits it.
                            {
                                Sid: "TunnelMetrics",
                                Effect: "Allow",
                                Action: "cloudwatch:PutMetricData",
                                Resource: "*",
                                Condition: { StringEquals: { "cloudwatch:namespace": METRIC_NAMESPACE } },
                            },
                        ],
                    }),
                ),
            },
            parent,
        );
        const profile = new aws.iam.InstanceProfile(`${name}-profile`, { role: role.name, tags: tags("profile") }, parent);

        const partition = aws.getPartitionOutput({}, parent).partition;
        const ami = aws.ssm.getParameterOutput({ name: al2023AmiParameter(args.instanceType) }, parent).value;

        const ends = args.tunnels.map((t) =>
            pulumi.all([args.elasticIp.publicIp, t.peerElasticIp, t.keyParameter.name]).apply(
                ([localElasticIp, peerElasticIp, parameterName]): GatewayTunnel => ({
                    end: { tunnel: t.tunnel, localElasticIp, localCidr: region.vpcCidr, peerElasticIp, peerCidr: t.peerCidr },
                    keyParameter: { awsRegion: region.awsRegion, name: parameterName },
                }),
            ),
        );
        // No key material: the gateway fetches its keys from SSM at boot (gateway/hubspoke-psk.sh).
        const identity = { stack: args.stack, regionName: region.name, awsRegion: region.awsRegion };
        this.userData = pulumi.all(ends).apply((tunnels) => renderUserData(region.name, gatewayFiles(identity, tunnels)));

        this.instance = new aws.ec2.Instance(
            `${name}-instance`,
            {
                ami,
                instanceType: args.instanceType,
                primaryNetworkInterface: { networkInterfaceId: this.networkInterface.id },
                iamInstanceProfile: profile.name,
                userData: this.userData,
                metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 },
                rootBlockDevice: { encrypted: true, volumeType: "gp3" },
                disableApiTermination: args.terminationProtection ?? false,
                // EC2 moves the instance to healthy hardware on a system status check failure
                // (keeping its ENI, so its private IP, Elastic IP and routes).
                maintenanceOptions: { autoRecovery: "default" },
                tags: { ...tags("instance"), Role: "vpn-gateway" },
                volumeTags: tags("root"),
            },
            {
                parent: this,
                // A newer AMI in the SSM parameter must not replace a running gateway on the next `pulumi up`;
                // take it on purpose with `pulumi up --replace <urn>`.
                ignoreChanges: ["ami"],
                // The network interface can be attached to one instance at a time.
                deleteBeforeReplace: true,
            },
        );
        this.instanceId = this.instance.id;
        this.elasticIp = args.elasticIp.publicIp;
        this.privateIp = region.gatewayPrivateIp;

        // Operations: one topic per region that every alarm here notifies.
        this.alarmTopic = new aws.sns.Topic(`${name}-alarms`, { tags: tags("alarms") }, parent);
        if (args.alarmEmail) {
            new aws.sns.TopicSubscription(
                `${name}-alarms-email`,
                { topic: this.alarmTopic.arn, protocol: "email", endpoint: args.alarmEmail },
                parent,
            );
        }
        const actions = [this.alarmTopic.arn];
        // Per tunnel end: down for 3 consecutive minutes; no data (the gateway or its timer is gone) counts as down.
        this.tunnelAlarms = args.tunnels.map(
            (t) =>
                new aws.cloudwatch.MetricAlarm(
                    `${name}-${t.tunnel}-down`,
                    {
                        alarmDescription: `hubspoke-vpn: tunnel ${t.tunnel} is down as seen from ${region.name} (no established IKE and Child SA for 3 minutes)`,
                        namespace: METRIC_NAMESPACE,
                        metricName: METRIC_NAME,
                        dimensions: { Stack: args.stack, Region: region.name, Tunnel: t.tunnel },
                        statistic: "Minimum",
                        period: 60,
                        evaluationPeriods: 3,
                        datapointsToAlarm: 3,
                        threshold: 1,
                        comparisonOperator: "LessThanThreshold",
                        treatMissingData: "breaching",
                        alarmActions: actions,
                        okActions: actions,
                        tags: tags(`${t.tunnel}-down`),
                    },
                    parent,
                ),
        );
        // The host itself: EC2's recover action on a failed system status check.
        this.recoveryAlarm = new aws.cloudwatch.MetricAlarm(
            `${name}-recover`,
            {
                alarmDescription: `hubspoke-vpn: gateway ${region.name} failed its system status check; EC2 recovers it onto healthy hardware`,
                namespace: "AWS/EC2",
                metricName: "StatusCheckFailed_System",
                dimensions: { InstanceId: this.instance.id },
                statistic: "Maximum",
                period: 60,
                evaluationPeriods: 2,
                threshold: 1,
                comparisonOperator: "GreaterThanOrEqualToThreshold",
                alarmActions: [pulumi.interpolate`arn:${partition}:automate:${region.awsRegion}:ec2:recover`, this.alarmTopic.arn],
                tags: tags("recover"),
            },
            parent,
        );

        this.registerOutputs({
            instanceId: this.instanceId,
            networkInterfaceId: this.networkInterfaceId,
            elasticIp: this.elasticIp,
            privateIp: this.privateIp,
            alarmTopicArn: this.alarmTopic.arn,
            alarmNames: this.tunnelAlarms.map((a) => a.name),
        });
    }
}
