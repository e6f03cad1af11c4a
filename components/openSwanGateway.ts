import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { al2023AmiName, architectureOf } from "../config/ami";
import type { RegionSpec, TunnelSettings } from "../config/types";
import {
    eventLogGroupName,
    eventLogStreamName,
    GATEWAY_TAG,
    type GatewayIdentity,
    gatewayParameterPath,
    type SoftwareRef,
    softwareParameterRoot,
    tunnelParameterNames,
} from "../gateway/contract";
import { assumeRolePolicy, bootstrapAlarm, gatewayPolicy, recoveryAlarm, tunnelAlarm } from "../render/awsDocuments";
import { gatewayBootstrap, renderUserData, userDataPayload } from "../render/bootstrap";
import { tunnelEndConf, tunnelEndSecrets } from "../render/libreswan";
import { type PackedSoftware, softwarePartName } from "../render/software";

/** Tag of everything that forwards traffic; the policy pack allows the source/destination check off only there. */
const GATEWAY_ROLE_TAG = { [GATEWAY_TAG.key]: GATEWAY_TAG.value };

/** One tunnel this gateway terminates, as seen from this gateway. */
export interface GatewayTunnelArgs {
    /** Tunnel name, the same at both ends, e.g. `virginia-to-sydney`. */
    readonly tunnel: string;
    /** The peer gateway's Elastic IP. */
    readonly peerElasticIp: pulumi.Input<string>;
    /** The peer's VPC range. */
    readonly peerCidr: string;
    /** The tunnel's pre-shared key, a Pulumi secret. */
    readonly psk: pulumi.Output<string>;
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
    /** The pinned Amazon Linux 2023 release, e.g. `2023.9.20251208.0`. */
    readonly amiRelease: string;
    /** Its kernel flavour, e.g. `6.1`. */
    readonly amiKernel: string;
    readonly tunnels: readonly GatewayTunnelArgs[];
    readonly tunnelSettings: TunnelSettings;
    /** Path prefix of the stack's parameters, e.g. `/hubspoke-vpn/prod`. */
    readonly parameterPrefix: string;
    /** Days CloudWatch Logs keeps the gateway's tunnel events. */
    readonly eventLogRetentionDays: number;
    /** Refuse API termination of the instance outside Pulumi (for production stacks). */
    readonly terminationProtection?: boolean;
    /** The Pulumi stack: a dimension of the tunnel metrics. */
    readonly stack: string;
    /** An e-mail address the region's alarm topic notifies, if any. */
    readonly alarmEmail?: string;
    /** Tags added to every resource, besides `Name`. */
    readonly tags?: Record<string, string>;
    /** Only in a site with a standby: this gateway's part in the pair (README, Failover). */
    readonly failover?: GatewayFailoverArgs;
}

/**
 * One of the two gateways of a site with a standby. Its network interface holds its private IP and
 * its site address; the site's `elasticIp` (the peers' address and the IKE identity) is not
 * associated here but by whichever gateway is active (hubspoke-failover), while the gateway's own
 * management Elastic IP stays on its private IP, so it reaches AWS's APIs as standby too.
 */
export interface GatewayFailoverArgs {
    /** The gateway's name in the site: the region name for the primary, `<region>-standby` for the standby. */
    readonly gateway: string;
    /** Its static private IP (in the subnet `subnetId`). */
    readonly privateIp: string;
    /** Its site address: the secondary private IP the site's Elastic IP is associated with while it is active. */
    readonly siteIp: string;
    /** Its own Elastic IP, for management traffic. */
    readonly managementElasticIp: aws.ec2.Eip;
    /** SSM name of the site's failover layout, which both gateways read. */
    readonly layoutParameter: string;
    /** Whether this gateway raises the site's tunnel alarms: the metrics are per site, so one of the two does. */
    readonly tunnelAlarms: boolean;
    /**
     * The standby only: the primary's instance. Its own instance `dependsOn` it (and on nothing of it
     * by property, which would cascade a replacement), so the engine replaces it only once the
     * primary's replacement has passed its ready hook (docs/lifecycle.md).
     */
    readonly replaceAfter?: aws.ec2.Instance;
    /** The instance's hooks: hand the site over before a delete, wait until ready after a create. */
    readonly hooks?: pulumi.ResourceHookBinding;
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
 * replacement), the Elastic IP associated to it, a security group open only to the peers, its
 * desired state (one conn and one secrets line per tunnel end) in SSM Parameter Store, and an
 * instance whose user data depends on nothing but the gateway itself: its agent fetches the
 * desired state and converges libreswan on it, at boot and about every minute.
 */
export class OpenSwanGateway extends pulumi.ComponentResource {
    public readonly networkInterface: aws.ec2.NetworkInterface;
    public readonly networkInterfaceId: pulumi.Output<string>;
    public readonly securityGroup: aws.ec2.SecurityGroup;
    public readonly instance: aws.ec2.Instance;
    public readonly instanceId: pulumi.Output<string>;
    /** The site's Elastic IP: the peers' address and this gateway's IKE identity. */
    public readonly elasticIp: pulumi.Output<string>;
    /** In a site with a standby, this gateway's own Elastic IP (management); else the site's. */
    public readonly managementIp: pulumi.Output<string>;
    public readonly privateIp: string;
    /** The gateway's name in its site: the region name, or `<region>-standby`. */
    public readonly gatewayId: string;
    /** SSM path of this gateway's desired state, e.g. `/hubspoke-vpn/prod/virginia/tunnels`. */
    public readonly parameterPath: string;
    /** Per tunnel name, its conn (String) and secrets (SecureString) parameters. */
    public readonly tunnelParameters: Record<string, { conf: aws.ssm.Parameter; secrets: aws.ssm.Parameter }> = {};
    /** The region's alarm topic. */
    public readonly alarmTopic: aws.sns.Topic;
    /** One per tunnel end: TunnelUp below 1 for 3 minutes, or the gateway stopped reporting. */
    public readonly tunnelAlarms: aws.cloudwatch.MetricAlarm[];
    /** EC2 automatic recovery on a failed system status check. */
    public readonly recoveryAlarm: aws.cloudwatch.MetricAlarm;
    /** Pages while the gateway's first boot is still retrying after 10 minutes. */
    public readonly bootstrapAlarm: aws.cloudwatch.MetricAlarm;
    /** The full cloud-config (EC2 receives it gzip-compressed): no key, and nothing per tunnel. */
    public readonly userData: string;
    /** Its tunnel events (gateway/hubspoke-events.sh writes to its own stream in it). */
    public readonly eventLogGroup: aws.cloudwatch.LogGroup;
    public readonly eventLogStream: aws.cloudwatch.LogStream;
    /** The instance's role (a site's failover policy is attached to it). */
    public readonly role: aws.iam.Role;

    constructor(
        private readonly gatewayName: string,
        private readonly args: OpenSwanGatewayArgs,
        opts?: pulumi.ComponentResourceOptions,
    ) {
        super("hubspoke:gateway:OpenSwanGateway", gatewayName, {}, opts);
        const { region, failover } = args;
        this.gatewayId = failover?.gateway ?? region.name;
        this.privateIp = failover?.privateIp ?? region.gatewayPrivateIp;
        this.elasticIp = args.elasticIp.publicIp;
        this.managementIp = (failover?.managementElasticIp ?? args.elasticIp).publicIp;
        this.parameterPath = gatewayParameterPath(args.parameterPrefix, this.gatewayId);

        [this.eventLogGroup, this.eventLogStream] = this.createEventLog();
        this.securityGroup = this.createSecurityGroup();
        this.networkInterface = this.createNetworkInterface();
        this.networkInterfaceId = this.networkInterface.id;
        const parameters = this.publishDesiredState();
        const identity = this.createIdentity();
        this.role = identity.role;
        const id: GatewayIdentity = {
            stack: args.stack,
            regionName: region.name,
            awsRegion: region.awsRegion,
            parameterPath: this.parameterPath,
            ...(failover ? { failover: { gateway: failover.gateway, parameter: failover.layoutParameter } } : {}),
        };
        const bootstrap = gatewayBootstrap(id, args.parameterPrefix, this.gatewayId);
        this.userData = renderUserData(this.gatewayId, bootstrap.userDataFiles);
        this.instance = this.createInstance(identity, [...parameters, ...this.publishSoftware(bootstrap.packed, bootstrap.ref)]);
        this.instanceId = this.instance.id;
        this.alarmTopic = this.createAlarmTopic();
        this.tunnelAlarms = (failover?.tunnelAlarms ?? true) ? args.tunnels.map((t) => this.createTunnelAlarm(t.tunnel)) : [];
        this.recoveryAlarm = this.createRecoveryAlarm();
        this.bootstrapAlarm = new aws.cloudwatch.MetricAlarm(
            `${this.gatewayName}-bootstrap`,
            { ...bootstrapAlarm(args.stack, this.gatewayId, this.alarmTopic.arn), tags: this.tags("bootstrap") },
            { parent: this },
        );

        this.registerOutputs({
            instanceId: this.instanceId,
            networkInterfaceId: this.networkInterfaceId,
            elasticIp: this.elasticIp,
            managementIp: this.managementIp,
            privateIp: this.privateIp,
            parameterPath: this.parameterPath,
            eventLogGroupName: this.eventLogGroup.name,
            alarmTopicArn: this.alarmTopic.arn,
            alarmNames: this.tunnelAlarms.map((a) => a.name),
        });
    }

    private tags(suffix: string): Record<string, string> {
        return { ...this.args.tags, Name: `${this.gatewayName}-${suffix}` };
    }

    /**
     * The gateway's tunnel-event log, with the stack's retention: a group per gateway, so that IAM can
     * limit the gateway to its own stream and a removed gateway takes its group with it.
     */
    private createEventLog(): [aws.cloudwatch.LogGroup, aws.cloudwatch.LogStream] {
        const parent = { parent: this };
        const group = new aws.cloudwatch.LogGroup(
            `${this.gatewayName}-events`,
            {
                name: eventLogGroupName(this.args.stack, this.gatewayId),
                retentionInDays: this.args.eventLogRetentionDays,
                tags: this.tags("events"),
            },
            parent,
        );
        const stream = new aws.cloudwatch.LogStream(
            `${this.gatewayName}-events-stream`,
            { name: eventLogStreamName(this.gatewayId), logGroupName: group.name },
            parent,
        );
        return [group, stream];
    }

    /** IKE, NAT-T and ESP with each peer's Elastic IP only; what the gateway forwards in its VPC; HTTPS out. */
    private createSecurityGroup(): aws.ec2.SecurityGroup {
        const { region } = this.args;
        const name = this.gatewayName;
        const parent = { parent: this };
        const group = new aws.ec2.SecurityGroup(
            `${name}-sg`,
            {
                vpcId: this.args.vpcId,
                description: `hubspoke-vpn gateway ${this.gatewayId}: IKE, NAT-T and ESP from peer gateways only`,
                tags: this.tags("sg"),
            },
            parent,
        );
        const sg = group.id;
        for (const t of this.args.tunnels) {
            const peer = pulumi.output(t.peerElasticIp).apply((ip) => `${ip}/32`);
            for (const rule of IPSEC_INGRESS) {
                const ruleArgs = {
                    securityGroupId: sg,
                    cidrIpv4: peer,
                    ipProtocol: rule.ipProtocol,
                    fromPort: rule.fromPort,
                    toPort: rule.toPort,
                };
                new aws.vpc.SecurityGroupIngressRule(`${name}-${t.tunnel}-${rule.label}-in`, ruleArgs, parent);
                new aws.vpc.SecurityGroupEgressRule(`${name}-${t.tunnel}-${rule.label}-out`, ruleArgs, parent);
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
        // A pair's standby probes the peers' gateways through the tunnels (via the active); security groups
        // filter by address whatever the route, so the probes and their targets need their own rules.
        if (this.args.failover) {
            for (const t of this.args.tunnels) {
                const probe = { securityGroupId: sg, cidrIpv4: t.peerCidr, ipProtocol: "icmp", fromPort: -1, toPort: -1 };
                new aws.vpc.SecurityGroupEgressRule(
                    `${name}-${t.tunnel}-probe-out`,
                    { ...probe, description: "failover probes through the tunnel" },
                    parent,
                );
                new aws.vpc.SecurityGroupIngressRule(
                    `${name}-${t.tunnel}-probe-in`,
                    { ...probe, description: "failover probes from the peer's standby" },
                    parent,
                );
            }
        }
        // Package repositories, SSM and CloudWatch are HTTPS endpoints with changing addresses.
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
        return group;
    }

    /**
     * The static private IP with the source/destination check off, and the Elastic IP on it: both
     * outlive any instance. In a site with a standby: the private IP first (primary), then the site
     * address, in that order (`privateIpLists`); the gateway's own Elastic IP on the private IP, and
     * the site's left to hubspoke-failover (an association here would move it back on every refresh).
     */
    private createNetworkInterface(): aws.ec2.NetworkInterface {
        const { failover } = this.args;
        const addresses = failover
            ? { privateIpListEnabled: true, privateIpLists: [failover.privateIp, failover.siteIp] }
            : { privateIps: [this.privateIp] };
        const eni = new aws.ec2.NetworkInterface(
            `${this.gatewayName}-eni`,
            {
                subnetId: this.args.subnetId,
                ...addresses,
                securityGroups: [this.securityGroup.id],
                // The gateway forwards packets that are neither from nor to its own address.
                sourceDestCheck: false,
                description: `hubspoke-vpn gateway ${this.gatewayId}`,
                tags: { ...this.tags("eni"), ...GATEWAY_ROLE_TAG },
            },
            { parent: this },
        );
        if (failover) {
            new aws.ec2.EipAssociation(
                `${this.gatewayName}-mgmt-eip-assoc`,
                {
                    allocationId: failover.managementElasticIp.allocationId,
                    networkInterfaceId: eni.id,
                    privateIpAddress: failover.privateIp,
                },
                { parent: this, dependsOn: [this.args.internetGateway] },
            );
            return eni;
        }
        new aws.ec2.EipAssociation(
            `${this.gatewayName}-eip-assoc`,
            { allocationId: this.args.elasticIp.allocationId, networkInterfaceId: eni.id },
            { parent: this, dependsOn: [this.args.internetGateway] },
        );
        return eni;
    }

    /**
     * One conn (String) and one secrets line (SecureString) per tunnel end, under this gateway's own
     * path in its own region: what its agent fetches. Rendered here, by the program's one renderer.
     */
    private publishDesiredState(): aws.ssm.Parameter[] {
        const { region, tunnelSettings } = this.args;
        const all: aws.ssm.Parameter[] = [];
        for (const t of this.args.tunnels) {
            const end = pulumi.all([this.elasticIp, t.peerElasticIp]).apply(([localElasticIp, peerElasticIp]) => ({
                tunnel: t.tunnel,
                localElasticIp,
                localCidr: region.vpcCidr,
                peerElasticIp,
                peerCidr: t.peerCidr,
                settings: tunnelSettings,
                ...(this.args.failover ? { localAddress: this.args.failover.siteIp, auto: "add" as const } : {}),
            }));
            const names = tunnelParameterNames(this.parameterPath, t.tunnel);
            // The conn holds no key: `insecureValue` keeps it readable in `pulumi preview --diff`.
            const description = `hubspoke-vpn: tunnel ${t.tunnel} as gateway ${this.gatewayId} runs it (read by hubspoke-agent)`;
            const conf = new aws.ssm.Parameter(
                `${this.gatewayName}-${t.tunnel}-conf`,
                {
                    name: names.conf,
                    type: "String",
                    insecureValue: end.apply(tunnelEndConf),
                    description,
                    tags: { ...this.args.tags, Tunnel: t.tunnel },
                },
                { parent: this },
            );
            const secrets = new aws.ssm.Parameter(
                `${this.gatewayName}-${t.tunnel}-secrets`,
                {
                    name: names.secrets,
                    type: "SecureString",
                    value: pulumi.secret(pulumi.all([end, t.psk]).apply(([e, psk]) => tunnelEndSecrets(e, psk))),
                    description,
                    tags: { ...this.args.tags, Tunnel: t.tunnel },
                },
                { parent: this },
            );
            this.tunnelParameters[t.tunnel] = { conf, secrets };
            all.push(conf, secrets);
        }
        return all;
    }

    /** The instance's role: Session Manager, its own desired state, its own metrics (render/awsDocuments.ts). */
    private createIdentity(): { role: aws.iam.Role; profile: aws.iam.InstanceProfile; policy: aws.iam.RolePolicy } {
        const { region } = this.args;
        const parent = { parent: this };
        const role = new aws.iam.Role(
            `${this.gatewayName}-role`,
            {
                description: `hubspoke-vpn gateway ${this.gatewayId}`,
                assumeRolePolicy: assumeRolePolicy("ec2.amazonaws.com"),
                tags: this.tags("role"),
            },
            parent,
        );
        const partition = aws.getPartitionOutput({}, parent).partition;
        const accountId = aws.getCallerIdentityOutput({}, parent).accountId;
        const policy = new aws.iam.RolePolicy(
            `${this.gatewayName}-policy`,
            {
                role: role.name,
                policy: pulumi.all([partition, accountId]).apply(([p, a]) =>
                    gatewayPolicy({
                        partition: p,
                        accountId: a,
                        awsRegion: region.awsRegion,
                        parameterPath: this.parameterPath,
                        softwareRoot: softwareParameterRoot(this.args.parameterPrefix, this.gatewayId),
                        eventLogGroup: eventLogGroupName(this.args.stack, this.gatewayId),
                        eventLogStream: eventLogStreamName(this.gatewayId),
                    }),
                ),
            },
            parent,
        );
        const profile = new aws.iam.InstanceProfile(`${this.gatewayName}-profile`, { role: role.name, tags: this.tags("profile") }, parent);
        return { role, profile, policy };
    }

    /**
     * The instance. Its inputs depend on the gateway alone, so tunnel changes never touch it. What does:
     *   - a bootstrap (user data) change or a new image (`gatewayAmiRelease`, or another architecture)
     *     replaces it (the network interface, with its private IP, Elastic IP and routes, survives);
     *   - a same-architecture instance type change stops and starts it (EC2 cannot resize a running instance).
     */
    private createInstance(identity: { profile: aws.iam.InstanceProfile; policy: aws.iam.RolePolicy }, parameters: aws.ssm.Parameter[]) {
        const image = aws.ec2.getAmiOutput(
            {
                owners: ["amazon"],
                mostRecent: true,
                // AWS deprecates public images two years after creation at the latest, and DescribeImages
                // then leaves them out unless asked: without this, every preview of a stack on a pinned
                // release would fail from that day on (AWS docs, "Deprecate an AMI"; fck-nat#107).
                includeDeprecated: true,
                filters: [
                    { name: "name", values: [al2023AmiName(this.args.amiRelease, this.args.amiKernel, this.args.instanceType)] },
                    { name: "architecture", values: [architectureOf(this.args.instanceType)] },
                ],
            },
            { parent: this },
        );
        return new aws.ec2.Instance(
            `${this.gatewayName}-instance`,
            {
                ami: image.id,
                instanceType: this.args.instanceType,
                primaryNetworkInterface: { networkInterfaceId: this.networkInterface.id },
                iamInstanceProfile: identity.profile.name,
                userDataBase64: userDataPayload(this.gatewayId, this.userData).base64,
                // A bootstrap change takes effect by replacement, visible in `pulumi preview`, instead of a
                // silent stop/start that cloud-init would not even act on (it writes files at first boot only).
                userDataReplaceOnChange: true,
                metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 },
                rootBlockDevice: { encrypted: true, volumeType: "gp3" },
                // Termination protection guards against terminations outside Pulumi (console, CLI); a
                // replacement or removal that `pulumi preview` showed goes through (README, Day two).
                disableApiTermination: this.args.terminationProtection ?? false,
                forceDestroy: true,
                // EC2 moves the instance to healthy hardware on a system status check failure
                // (keeping its ENI, so its private IP, Elastic IP and routes).
                maintenanceOptions: { autoRecovery: "default" },
                tags: { ...this.tags("instance"), ...GATEWAY_ROLE_TAG },
                volumeTags: this.tags("root"),
            },
            {
                parent: this,
                // The instance never sets sourceDestCheck (it conflicts with primaryNetworkInterface), so the
                // provider plans true against the ENI's false on every run and flips the ENI's check back on:
                // terraform-provider-aws #44768. The check belongs to the ENI; never remove this.
                ignoreChanges: ["sourceDestCheck"],
                // The network interface can be attached to one instance at a time.
                deleteBeforeReplace: true,
                // The first boot finds its permissions and its desired state in place.
                dependsOn: [identity.policy, ...parameters, ...(this.args.failover?.replaceAfter ? [this.args.failover.replaceAfter] : [])],
                ...(this.args.failover?.hooks ? { hooks: this.args.failover.hooks } : {}),
            },
        );
    }

    /**
     * The gateway's software in SSM, under a path named by its digest: a change to it is a new path
     * and new user data (naming the new digest), so the instance is replaced, and the parameters of
     * the old version are deleted once it is gone. Standard parameters (free), String: no secret in it.
     */
    private publishSoftware(packed: PackedSoftware, ref: SoftwareRef): aws.ssm.Parameter[] {
        return packed.parts.map(
            (value, i) =>
                new aws.ssm.Parameter(
                    `${this.gatewayName}-software-${i}`,
                    {
                        name: softwarePartName(ref.path, i),
                        type: "String",
                        tier: "Standard",
                        insecureValue: value,
                        description: `hubspoke-vpn: gateway ${this.gatewayId}'s software, part ${i + 1} of ${packed.parts.length} (sha256 ${packed.sha256})`,
                        tags: this.tags(`software-${i}`),
                    },
                    { parent: this },
                ),
        );
    }

    /** One topic per gateway that every alarm here notifies (and `alarmEmail`, if set). */
    private createAlarmTopic(): aws.sns.Topic {
        const topic = new aws.sns.Topic(`${this.gatewayName}-alarms`, { tags: this.tags("alarms") }, { parent: this });
        if (this.args.alarmEmail) {
            new aws.sns.TopicSubscription(
                `${this.gatewayName}-alarms-email`,
                { topic: topic.arn, protocol: "email", endpoint: this.args.alarmEmail },
                { parent: this },
            );
        }
        return topic;
    }

    private createTunnelAlarm(tunnel: string): aws.cloudwatch.MetricAlarm {
        return new aws.cloudwatch.MetricAlarm(
            `${this.gatewayName}-${tunnel}-down`,
            { ...tunnelAlarm(this.args.stack, this.args.region.name, tunnel, this.alarmTopic.arn), tags: this.tags(`${tunnel}-down`) },
            { parent: this },
        );
    }

    private createRecoveryAlarm(): aws.cloudwatch.MetricAlarm {
        const { region } = this.args;
        const partition = aws.getPartitionOutput({}, { parent: this }).partition;
        const recover = pulumi.interpolate`arn:${partition}:automate:${region.awsRegion}:ec2:recover`;
        return new aws.cloudwatch.MetricAlarm(
            `${this.gatewayName}-recover`,
            { ...recoveryAlarm(this.gatewayId, this.instance.id, recover, this.alarmTopic.arn), tags: this.tags("recover") },
            { parent: this },
        );
    }
}
