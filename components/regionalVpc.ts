import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { RegionSpec } from "../config/types";
import { assumeRolePolicy, flowLogPolicy as flowLogPolicyDocument } from "../render/awsDocuments";

export interface RegionalVpcArgs {
    /** The region's validated config: VPC range, VPN subnet and workload subnets. */
    readonly region: RegionSpec;
    /** Tags added to every resource, besides `Name`. */
    readonly tags?: Record<string, string>;
    /** Days CloudWatch Logs keeps the VPC's flow logs. */
    readonly flowLogRetentionDays: number;
}

/**
 * A VPC of the private network: internet gateway, the public VPN subnet that holds the gateway
 * (with a route table that reaches the internet), and the workload subnets spread over zones
 * (sharing one route table without internet access). Routes to peer VPCs are added by the caller
 * to every table in `routeTables`.
 */
export class RegionalVpc extends pulumi.ComponentResource {
    public readonly vpc: aws.ec2.Vpc;
    public readonly vpcId: pulumi.Output<string>;
    public readonly internetGateway: aws.ec2.InternetGateway;
    public readonly vpnSubnet: aws.ec2.Subnet;
    /** Keyed `<name>-<zone>`, e.g. `fns-a`. */
    public readonly workloadSubnets: Record<string, aws.ec2.Subnet>;
    /** Every route table of the VPC that a subnet uses: the VPN table first, then the workload table if any. */
    public readonly routeTables: aws.ec2.RouteTable[];

    constructor(name: string, args: RegionalVpcArgs, opts?: pulumi.ComponentResourceOptions) {
        super("hubspoke:network:RegionalVpc", name, {}, opts);
        const { region } = args;
        const tags = (suffix: string) => ({ ...args.tags, Name: `${name}-${suffix}` });
        const parent = { parent: this };

        // Zone letters from config resolve against the zones this region actually has, through the
        // region's own provider (inherited from this component).
        const zones = aws.getAvailabilityZonesOutput({ state: "available" }, parent);
        const zoneName = (letter: string, key: string) =>
            zones.names.apply((names) => {
                const zone = `${region.awsRegion}${letter}`;
                if (!names.includes(zone)) {
                    throw new Error(
                        `${key}: zone "${letter}" does not exist or is not available in ${region.awsRegion} ` +
                            `(available: ${names.map((n) => n.slice(region.awsRegion.length)).join(", ")})`,
                    );
                }
                return zone;
            });

        this.vpc = new aws.ec2.Vpc(
            `${name}-vpc`,
            { cidrBlock: region.vpcCidr, enableDnsHostnames: true, enableDnsSupport: true, tags: tags("vpc") },
            parent,
        );
        this.vpcId = this.vpc.id;
        this.internetGateway = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: this.vpc.id, tags: tags("igw") }, parent);

        // Adopting the default security group with no rules strips the allow-all rules AWS puts in it,
        // so nothing launched into this VPC without a group of its own gets open access.
        new aws.ec2.DefaultSecurityGroup(`${name}-default-sg`, { vpcId: this.vpc.id, tags: tags("default-sg") }, parent);

        // Flow logs of all traffic, kept for a bounded time: the record of what crossed the network.
        const flowLogGroup = new aws.cloudwatch.LogGroup(
            `${name}-flow-logs`,
            { retentionInDays: args.flowLogRetentionDays, tags: tags("flow-logs") },
            parent,
        );
        const flowLogRole = new aws.iam.Role(
            `${name}-flow-logs-role`,
            {
                description: `hubspoke-vpn VPC flow logs ${region.name}`,
                assumeRolePolicy: assumeRolePolicy("vpc-flow-logs.amazonaws.com"),
                tags: tags("flow-logs-role"),
            },
            parent,
        );
        const flowLogPolicy = new aws.iam.RolePolicy(
            `${name}-flow-logs-policy`,
            { role: flowLogRole.name, policy: flowLogGroup.arn.apply(flowLogPolicyDocument) },
            parent,
        );
        new aws.ec2.FlowLog(
            `${name}-flow-log`,
            {
                vpcId: this.vpc.id,
                trafficType: "ALL",
                logDestinationType: "cloud-watch-logs",
                logDestination: flowLogGroup.arn,
                iamRoleArn: flowLogRole.arn,
                maxAggregationInterval: 60,
                tags: tags("flow-log"),
            },
            // The role's ARN exists before its policy does; a flow log created in between is refused
            // ("Unable to assume given IAM role", terraform-provider-aws #29323).
            { parent: this, dependsOn: [flowLogPolicy] },
        );

        this.vpnSubnet = new aws.ec2.Subnet(
            `${name}-vpn`,
            {
                vpcId: this.vpc.id,
                cidrBlock: region.vpnSubnet,
                availabilityZone: zoneName(region.vpnZone, `region ${region.name} vpnZone`),
                // The gateway gets an Elastic IP; nothing else here should get a public address by accident.
                mapPublicIpOnLaunch: false,
                tags: tags("vpn"),
            },
            parent,
        );
        const vpnTable = new aws.ec2.RouteTable(`${name}-vpn-rt`, { vpcId: this.vpc.id, tags: tags("vpn-rt") }, parent);
        new aws.ec2.Route(
            `${name}-vpn-internet`,
            { routeTableId: vpnTable.id, destinationCidrBlock: "0.0.0.0/0", gatewayId: this.internetGateway.id },
            parent,
        );
        new aws.ec2.RouteTableAssociation(`${name}-vpn-rta`, { subnetId: this.vpnSubnet.id, routeTableId: vpnTable.id }, parent);
        this.routeTables = [vpnTable];

        this.workloadSubnets = {};
        if (region.workloadSubnets.length > 0) {
            const workloadTable = new aws.ec2.RouteTable(`${name}-workload-rt`, { vpcId: this.vpc.id, tags: tags("workload-rt") }, parent);
            this.routeTables.push(workloadTable);
            for (const s of region.workloadSubnets) {
                const key = `${s.name}-${s.zone}`;
                const subnet = new aws.ec2.Subnet(
                    `${name}-${key}`,
                    {
                        vpcId: this.vpc.id,
                        cidrBlock: s.cidr,
                        availabilityZone: zoneName(s.zone, `region ${region.name} workloadSubnets.${s.name}.${s.zone}`),
                        tags: { ...tags(key), Tier: s.name },
                    },
                    parent,
                );
                new aws.ec2.RouteTableAssociation(`${name}-${key}-rta`, { subnetId: subnet.id, routeTableId: workloadTable.id }, parent);
                this.workloadSubnets[key] = subnet;
            }
        }

        this.registerOutputs({
            vpcId: this.vpcId,
            vpnSubnetId: this.vpnSubnet.id,
            workloadSubnetIds: Object.fromEntries(Object.entries(this.workloadSubnets).map(([k, s]) => [k, s.id])),
        });
    }
}
