import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import type { RegionSpec } from "../config/types";
import { assumeRolePolicy, flowLogPolicy } from "../render/awsDocuments";

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
 * (with a route table that reaches the internet; a standby's subnet in another zone shares it), and the workload subnets spread over zones
 * (sharing one route table without internet access). Routes to peer VPCs are added by the caller
 * to every table in `routeTables`.
 */
export class RegionalVpc extends pulumi.ComponentResource {
    public readonly vpc: aws.ec2.Vpc;
    public readonly vpcId: pulumi.Output<string>;
    public readonly internetGateway: aws.ec2.InternetGateway;
    public readonly vpnSubnet: aws.ec2.Subnet;
    /** The standby gateway's public subnet, in another zone, on the VPN route table (sites with a standby only). */
    public readonly standbyVpnSubnet?: aws.ec2.Subnet;
    /** Keyed `<name>-<zone>`, e.g. `fns-a`. */
    public readonly workloadSubnets: Record<string, aws.ec2.Subnet>;
    /** Every route table of the VPC that a subnet uses: the VPN table first, then the workload table if any. */
    public readonly routeTables: aws.ec2.RouteTable[];

    private readonly zones: pulumi.Output<string[]>;

    constructor(
        private readonly vpcName: string,
        private readonly args: RegionalVpcArgs,
        opts?: pulumi.ComponentResourceOptions,
    ) {
        super("hubspoke:network:RegionalVpc", vpcName, {}, opts);
        const { region } = args;
        // Zone letters from config resolve against the zones this region actually has, through the
        // region's own provider (inherited from this component).
        this.zones = aws.getAvailabilityZonesOutput({ state: "available" }, { parent: this }).names;

        this.vpc = new aws.ec2.Vpc(
            `${vpcName}-vpc`,
            { cidrBlock: region.vpcCidr, enableDnsHostnames: true, enableDnsSupport: true, tags: this.tags("vpc") },
            { parent: this },
        );
        this.vpcId = this.vpc.id;
        this.internetGateway = new aws.ec2.InternetGateway(
            `${vpcName}-igw`,
            { vpcId: this.vpc.id, tags: this.tags("igw") },
            { parent: this },
        );
        // Adopting the default security group with no rules strips the allow-all rules AWS puts in it,
        // so nothing launched into this VPC without a group of its own gets open access.
        new aws.ec2.DefaultSecurityGroup(`${vpcName}-default-sg`, { vpcId: this.vpc.id, tags: this.tags("default-sg") }, { parent: this });
        this.createFlowLogs();
        const vpn = this.createVpnSubnet();
        this.vpnSubnet = vpn.subnet;
        this.standbyVpnSubnet = vpn.standbySubnet;
        const workload = this.createWorkloadSubnets();
        this.workloadSubnets = workload.subnets;
        this.routeTables = [vpn.table, ...(workload.table ? [workload.table] : [])];

        this.registerOutputs({
            vpcId: this.vpcId,
            vpnSubnetId: this.vpnSubnet.id,
            workloadSubnetIds: Object.fromEntries(Object.entries(this.workloadSubnets).map(([k, s]) => [k, s.id])),
        });
    }

    private tags(suffix: string): Record<string, string> {
        return { ...this.args.tags, Name: `${this.vpcName}-${suffix}` };
    }

    /** The zone of a config zone letter; fails the deployment with the key and the zones there are if it does not exist. */
    private zoneName(letter: string, key: string): pulumi.Output<string> {
        const { awsRegion } = this.args.region;
        return this.zones.apply((names) => {
            const zone = `${awsRegion}${letter}`;
            if (!names.includes(zone)) {
                throw new Error(
                    `${key}: zone "${letter}" does not exist or is not available in ${awsRegion} ` +
                        `(available: ${names.map((n) => n.slice(awsRegion.length)).join(", ")})`,
                );
            }
            return zone;
        });
    }

    /** Flow logs of all traffic, kept for a bounded time: the record of what crossed the network. */
    private createFlowLogs(): void {
        const name = this.vpcName;
        const parent = { parent: this };
        const group = new aws.cloudwatch.LogGroup(
            `${name}-flow-logs`,
            { retentionInDays: this.args.flowLogRetentionDays, tags: this.tags("flow-logs") },
            parent,
        );
        const role = new aws.iam.Role(
            `${name}-flow-logs-role`,
            {
                description: `hubspoke-vpn VPC flow logs ${this.args.region.name}`,
                assumeRolePolicy: assumeRolePolicy("vpc-flow-logs.amazonaws.com"),
                tags: this.tags("flow-logs-role"),
            },
            parent,
        );
        const policy = new aws.iam.RolePolicy(
            `${name}-flow-logs-policy`,
            { role: role.name, policy: group.arn.apply(flowLogPolicy) },
            parent,
        );
        new aws.ec2.FlowLog(
            `${name}-flow-log`,
            {
                vpcId: this.vpc.id,
                trafficType: "ALL",
                logDestinationType: "cloud-watch-logs",
                logDestination: group.arn,
                iamRoleArn: role.arn,
                maxAggregationInterval: 60,
                tags: this.tags("flow-log"),
            },
            // The role's ARN exists before its policy does; a flow log created in between is refused
            // ("Unable to assume given IAM role", terraform-provider-aws #29323).
            { parent: this, dependsOn: [policy] },
        );
    }

    /** The public subnet of the gateway, with its own route table whose default route is the internet gateway. */
    private createVpnSubnet(): { subnet: aws.ec2.Subnet; standbySubnet?: aws.ec2.Subnet; table: aws.ec2.RouteTable } {
        const { region } = this.args;
        const name = this.vpcName;
        const parent = { parent: this };
        const subnet = new aws.ec2.Subnet(
            `${name}-vpn`,
            {
                vpcId: this.vpc.id,
                cidrBlock: region.vpnSubnet,
                availabilityZone: this.zoneName(region.vpnZone, `region ${region.name} vpnZone`),
                // The gateway gets an Elastic IP; nothing else here should get a public address by accident.
                mapPublicIpOnLaunch: false,
                tags: this.tags("vpn"),
            },
            parent,
        );
        const table = new aws.ec2.RouteTable(`${name}-vpn-rt`, { vpcId: this.vpc.id, tags: this.tags("vpn-rt") }, parent);
        new aws.ec2.Route(
            `${name}-vpn-internet`,
            { routeTableId: table.id, destinationCidrBlock: "0.0.0.0/0", gatewayId: this.internetGateway.id },
            parent,
        );
        new aws.ec2.RouteTableAssociation(`${name}-vpn-rta`, { subnetId: subnet.id, routeTableId: table.id }, parent);
        const standby = region.standby;
        if (!standby) {
            return { subnet, table };
        }
        const standbySubnet = new aws.ec2.Subnet(
            `${name}-vpn-standby`,
            {
                vpcId: this.vpc.id,
                cidrBlock: standby.vpnSubnet,
                availabilityZone: this.zoneName(standby.vpnZone, `region ${region.name} standby.vpnZone`),
                mapPublicIpOnLaunch: false,
                tags: this.tags("vpn-standby"),
            },
            parent,
        );
        new aws.ec2.RouteTableAssociation(`${name}-vpn-standby-rta`, { subnetId: standbySubnet.id, routeTableId: table.id }, parent);
        return { subnet, standbySubnet, table };
    }

    /** The workload subnets, sharing one route table without internet access (none when there are none). */
    private createWorkloadSubnets(): { subnets: Record<string, aws.ec2.Subnet>; table?: aws.ec2.RouteTable } {
        const { region } = this.args;
        const name = this.vpcName;
        const parent = { parent: this };
        const subnets: Record<string, aws.ec2.Subnet> = {};
        if (region.workloadSubnets.length === 0) {
            return { subnets };
        }
        const table = new aws.ec2.RouteTable(`${name}-workload-rt`, { vpcId: this.vpc.id, tags: this.tags("workload-rt") }, parent);
        for (const s of region.workloadSubnets) {
            const key = `${s.name}-${s.zone}`;
            const subnet = new aws.ec2.Subnet(
                `${name}-${key}`,
                {
                    vpcId: this.vpc.id,
                    cidrBlock: s.cidr,
                    availabilityZone: this.zoneName(s.zone, `region ${region.name} workloadSubnets.${s.name}.${s.zone}`),
                    tags: { ...this.tags(key), Tier: s.name },
                },
                parent,
            );
            new aws.ec2.RouteTableAssociation(`${name}-${key}-rta`, { subnetId: subnet.id, routeTableId: table.id }, parent);
            subnets[key] = subnet;
        }
        return { subnets, table };
    }
}
