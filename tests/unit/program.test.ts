import { strict as assert } from "node:assert";
import * as pulumi from "@pulumi/pulumi";
import { type Evaluation, evaluateOffline, isSecretValue, mockIdOf, plain, resolve } from "../../offline/evaluate";
import { filesOfUserData } from "../../render/cloudInit";
import { prodConfig, prodEvaluation } from "./fixtures";

const REGIONS = { virginia: "us-east-1", sydney: "ap-southeast-2", frankfurt: "eu-central-1" } as const;
type RegionName = keyof typeof REGIONS;
const CIDR: Record<RegionName, string> = { virginia: "10.11.0.0/16", sydney: "12.11.0.0/16", frankfurt: "13.11.0.0/16" };

describe("prod stack resource graph (mock runtime)", () => {
    let ev: Evaluation;
    const ofType = (type: string) => ev.resources.filter((r) => r.type === type);
    const inRegion = (type: string, region: RegionName) => ofType(type).filter((r) => r.name.startsWith(`hubspoke-${region}-`));
    const byName = (name: string) => {
        const r = ev.resources.find((x) => x.name === name);
        assert.ok(r, `no resource named ${name}`);
        return r;
    };
    const idOf = mockIdOf;

    before(async () => {
        ev = await prodEvaluation();
    });

    it("has one provider per region, with the stack's default tags", () => {
        const providers = ofType("pulumi:providers:aws").map((p) => [p.name, p.inputs.region, JSON.parse(p.inputs.defaultTags).tags]);
        assert.deepEqual(providers, [
            ["virginia", "us-east-1", { Project: "hubspoke-vpn", Stack: "prod", ManagedBy: "pulumi" }],
            ["sydney", "ap-southeast-2", { Project: "hubspoke-vpn", Stack: "prod", ManagedBy: "pulumi" }],
            ["frankfurt", "eu-central-1", { Project: "hubspoke-vpn", Stack: "prod", ManagedBy: "pulumi" }],
        ]);
    });

    it("registers every AWS resource and invoke on its own region's provider", () => {
        const aws = ev.resources.filter((r) => r.type.startsWith("aws:"));
        assert.ok(aws.length > 80);
        for (const r of aws) {
            const region = (Object.keys(REGIONS) as RegionName[]).find((n) => r.name.startsWith(`hubspoke-${n}-`));
            assert.ok(region, `${r.name} does not name its region`);
            assert.equal(r.awsRegion, REGIONS[region], `${r.type} ${r.name} is on the wrong provider`);
        }
        for (const i of ev.invokes) {
            assert.ok(i.awsRegion, `invoke ${i.token} ran on the default provider`);
        }
        assert.deepEqual(
            ofType("random:index/randomPassword:RandomPassword").map((r) => r.awsRegion),
            [undefined, undefined],
        );
    });

    it("builds the seed's VPCs, subnets and zones", () => {
        for (const region of Object.keys(REGIONS) as RegionName[]) {
            assert.deepEqual(
                inRegion("aws:ec2/vpc:Vpc", region).map((v) => v.inputs.cidrBlock),
                [CIDR[region]],
            );
            assert.equal(inRegion("aws:ec2/internetGateway:InternetGateway", region).length, 1);
        }
        const subnets = (region: RegionName) =>
            inRegion("aws:ec2/subnet:Subnet", region)
                .map((s) => `${s.inputs.cidrBlock} ${s.inputs.availabilityZone}`)
                .sort();
        assert.deepEqual(subnets("virginia"), ["10.11.4.0/24 us-east-1a"]);
        assert.deepEqual(subnets("sydney"), [
            "12.11.4.0/24 ap-southeast-2a",
            "12.11.6.0/24 ap-southeast-2a",
            "12.11.7.0/24 ap-southeast-2b",
            "12.11.8.0/24 ap-southeast-2a",
            "12.11.9.0/24 ap-southeast-2b",
        ]);
        assert.deepEqual(subnets("frankfurt"), [
            "13.11.4.0/24 eu-central-1a",
            "13.11.6.0/24 eu-central-1a",
            "13.11.7.0/24 eu-central-1b",
            "13.11.8.0/24 eu-central-1a",
            "13.11.9.0/24 eu-central-1b",
        ]);
        // Every subnet is associated with a route table of its own VPC.
        for (const s of ofType("aws:ec2/subnet:Subnet")) {
            const assoc = ofType("aws:ec2/routeTableAssociation:RouteTableAssociation").filter((a) => a.inputs.subnetId === idOf(s));
            assert.equal(assoc.length, 1, `${s.name} has ${assoc.length} route table associations`);
        }
    });

    it("gives each gateway its static private IP, source/dest check off, and its Elastic IP", () => {
        for (const region of Object.keys(REGIONS) as RegionName[]) {
            const [eni] = inRegion("aws:ec2/networkInterface:NetworkInterface", region);
            assert.deepEqual(eni.inputs.privateIps, [CIDR[region].replace("0.0/16", "4.5")]);
            assert.equal(eni.inputs.sourceDestCheck, false);
            assert.equal(eni.inputs.subnetId, idOf(byName(`hubspoke-${region}-vpn`)));
            const [assoc] = inRegion("aws:ec2/eipAssociation:EipAssociation", region);
            assert.equal(assoc.inputs.networkInterfaceId, idOf(eni));
            assert.equal(assoc.inputs.allocationId, `eipalloc-${region}`);
            const [instance] = inRegion("aws:ec2/instance:Instance", region);
            assert.equal(instance.inputs.primaryNetworkInterface.networkInterfaceId, idOf(eni));
        }
    });

    it("hardens every instance: AL2023 for its architecture, IMDSv2, encrypted root, Session Manager, no SSH", () => {
        for (const instance of ofType("aws:ec2/instance:Instance")) {
            assert.equal(instance.inputs.ami, "ami-mock-x86_64");
            assert.equal(instance.inputs.instanceType, "t3.small");
            assert.deepEqual(instance.inputs.metadataOptions, {
                httpEndpoint: "enabled",
                httpTokens: "required",
                httpPutResponseHopLimit: 1,
            });
            assert.deepEqual(instance.inputs.rootBlockDevice, { encrypted: true, volumeType: "gp3" });
            assert.equal(instance.inputs.tags.Role, "vpn-gateway");
            const region = instance.name.split("-")[1] as RegionName;
            const [profile] = inRegion("aws:iam/instanceProfile:InstanceProfile", region);
            assert.equal(instance.inputs.iamInstanceProfile, profile.name);
            assert.equal(instance.inputs.keyName, undefined, "no SSH key pair");
        }
        const amiParams = ev.invokes.filter((i) => i.token === "aws:ssm/getParameter:getParameter").map((i) => i.inputs.name);
        assert.deepEqual([...new Set(amiParams)], ["/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"]);
        // No managed policy: AmazonSSMManagedInstanceCore would grant ssm:GetParameter on every parameter.
        assert.deepEqual(ofType("aws:iam/rolePolicyAttachment:RolePolicyAttachment"), []);
    });

    it("hardens each VPC: default security group stripped, flow logs of all traffic with a retention, and gateways protected from termination", () => {
        for (const region of Object.keys(REGIONS) as RegionName[]) {
            const vpc = idOf(inRegion("aws:ec2/vpc:Vpc", region)[0]);
            const [defaultSg] = inRegion("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", region);
            assert.equal(defaultSg.inputs.vpcId, vpc);
            assert.equal(defaultSg.inputs.ingress, undefined, "no ingress rule in the default group");
            assert.equal(defaultSg.inputs.egress, undefined, "no egress rule in the default group");
            const [flowLog] = inRegion("aws:ec2/flowLog:FlowLog", region);
            const [group] = inRegion("aws:cloudwatch/logGroup:LogGroup", region);
            assert.deepEqual(
                [flowLog.inputs.vpcId, flowLog.inputs.trafficType, flowLog.inputs.logDestinationType, flowLog.inputs.logDestination],
                [vpc, "ALL", "cloud-watch-logs", `arn:aws:mock:::${group.name}`],
            );
            assert.equal(group.inputs.retentionInDays, 365, "Pulumi.prod.yaml keeps flow logs a year");
            const flowRole = inRegion("aws:iam/role:Role", region).find((r) => r.name.includes("flow-logs"))!;
            assert.equal(flowLog.inputs.iamRoleArn, `arn:aws:mock:::${flowRole.name}`);
            assert.deepEqual(JSON.parse(flowRole.inputs.assumeRolePolicy).Statement[0].Principal, {
                Service: "vpc-flow-logs.amazonaws.com",
            });
            const [instance] = inRegion("aws:ec2/instance:Instance", region);
            assert.equal(instance.inputs.disableApiTermination, true, "prod gateways are protected from termination");
            assert.equal(inRegion("aws:ec2/networkInterface:NetworkInterface", region)[0].inputs.tags.Role, "vpn-gateway");
        }
    });

    it("lets each gateway read exactly its own tunnels' key parameters, in its own region, and nothing else", () => {
        const own: Record<RegionName, string[]> = {
            virginia: ["virginia-to-frankfurt", "virginia-to-sydney"],
            sydney: ["virginia-to-sydney"],
            frankfurt: ["virginia-to-frankfurt"],
        };
        for (const region of Object.keys(REGIONS) as RegionName[]) {
            const [role] = inRegion("aws:iam/role:Role", region).filter((r) => r.name.includes("-gw-"));
            const policies = inRegion("aws:iam/rolePolicy:RolePolicy", region).filter((r) => r.name.includes("-gw-"));
            assert.equal(policies.length, 1);
            assert.equal(policies[0].inputs.role, role.name);
            const doc = JSON.parse(policies[0].inputs.policy);
            const params = own[region].map((t) => `arn:aws:mock:::hubspoke-${region}-${t}-psk`).sort();
            assert.deepEqual(doc.Statement, [
                {
                    Sid: "SessionManager",
                    Effect: "Allow",
                    Action: [
                        "ssm:UpdateInstanceInformation",
                        "ssmmessages:CreateControlChannel",
                        "ssmmessages:CreateDataChannel",
                        "ssmmessages:OpenControlChannel",
                        "ssmmessages:OpenDataChannel",
                    ],
                    Resource: "*",
                },
                { Sid: "OwnTunnelKeys", Effect: "Allow", Action: "ssm:GetParameter", Resource: params },
                {
                    Sid: "TunnelMetrics",
                    Effect: "Allow",
                    Action: "cloudwatch:PutMetricData",
                    Resource: "*",
                    Condition: { StringEquals: { "cloudwatch:namespace": "HubspokeVpn" } },
                },
            ]);
            assert.deepEqual(JSON.parse(role.inputs.assumeRolePolicy).Statement[0].Principal, { Service: "ec2.amazonaws.com" });
        }
    });

    it("stores each tunnel's key as a SecureString in the two regions that use it, under a path naming stack and tunnel", () => {
        const params = ofType("aws:ssm/parameter:Parameter").map((p) => ({
            region: p.awsRegion,
            name: p.inputs.name,
            type: p.inputs.type,
            secret: isSecretValue(p.inputs.value),
            value: plain(p.inputs.value),
        }));
        assert.deepEqual(params.map((p) => `${p.region} ${p.name} ${p.type} ${p.secret}`).sort(), [
            "ap-southeast-2 /hubspoke-vpn/prod/virginia-to-sydney/psk SecureString true",
            "eu-central-1 /hubspoke-vpn/prod/virginia-to-frankfurt/psk SecureString true",
            "us-east-1 /hubspoke-vpn/prod/virginia-to-frankfurt/psk SecureString true",
            "us-east-1 /hubspoke-vpn/prod/virginia-to-sydney/psk SecureString true",
        ]);
        for (const p of params) {
            const tunnel = p.name.split("/")[3];
            assert.equal(p.value, ev.keys[tunnel], `${p.region} ${p.name} does not hold the tunnel's generated key`);
        }
    });

    it("opens each gateway's security group to IKE, NAT-T and ESP from its peers' Elastic IPs only", () => {
        const eip = ev.elasticIps;
        const peers: Record<RegionName, RegionName[]> = {
            virginia: ["sydney", "frankfurt"],
            sydney: ["virginia"],
            frankfurt: ["virginia"],
        };
        for (const region of Object.keys(REGIONS) as RegionName[]) {
            const [sg] = inRegion("aws:ec2/securityGroup:SecurityGroup", region);
            const rules = (type: string) =>
                ofType(type)
                    .filter((r) => r.inputs.securityGroupId === idOf(sg))
                    .map((r) => `${r.inputs.ipProtocol}:${r.inputs.fromPort ?? "*"}-${r.inputs.toPort ?? "*"} ${r.inputs.cidrIpv4}`)
                    .sort();
            const ipsec = peers[region].flatMap((p) => [`udp:500-500 ${eip[p]}/32`, `udp:4500-4500 ${eip[p]}/32`, `50:*-* ${eip[p]}/32`]);
            assert.deepEqual(
                rules("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"),
                [...ipsec, `-1:*-* ${CIDR[region]}`].sort(),
            );
            assert.deepEqual(
                rules("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"),
                [...ipsec, `-1:*-* ${CIDR[region]}`, "tcp:443-443 0.0.0.0/0"].sort(),
            );
        }
    });

    it("routes each peer range through the gateway's network interface in every route table, and no spoke to spoke", () => {
        const routes = ofType("aws:ec2/route:Route");
        for (const region of Object.keys(REGIONS) as RegionName[]) {
            const eni = idOf(inRegion("aws:ec2/networkInterface:NetworkInterface", region)[0]);
            const tables = inRegion("aws:ec2/routeTable:RouteTable", region).map(idOf);
            assert.equal(tables.length, region === "virginia" ? 1 : 2);
            const expected = region === "virginia" ? [CIDR.sydney, CIDR.frankfurt] : [CIDR.virginia];
            for (const table of tables) {
                const viaGateway = routes.filter((r) => r.inputs.routeTableId === table && r.inputs.networkInterfaceId === eni);
                assert.deepEqual(viaGateway.map((r) => r.inputs.destinationCidrBlock).sort(), [...expected].sort(), `table ${table}`);
                for (const r of routes.filter((x) => x.inputs.routeTableId === table)) {
                    assert.equal(r.inputs.instanceId, undefined, "routes target the network interface, not the instance");
                    assert.ok(r.inputs.networkInterfaceId === eni || r.inputs.destinationCidrBlock === "0.0.0.0/0");
                }
            }
        }
        const spokeToSpoke = routes.filter(
            (r) =>
                (r.name.startsWith("hubspoke-sydney-") && r.inputs.destinationCidrBlock === CIDR.frankfurt) ||
                (r.name.startsWith("hubspoke-frankfurt-") && r.inputs.destinationCidrBlock === CIDR.sydney),
        );
        assert.deepEqual(spokeToSpoke, []);
        // Only the VPN subnet's table reaches the internet.
        const internet = routes.filter((r) => r.inputs.destinationCidrBlock === "0.0.0.0/0").map((r) => r.inputs.routeTableId);
        assert.deepEqual(
            internet,
            (["virginia", "sydney", "frankfurt"] as const).map((n) => idOf(byName(`hubspoke-${n}-vpn-rt`))),
        );
    });

    it("renders each gateway's tunnels with its peers' addresses, and where to fetch the key", () => {
        const files = (region: RegionName) => {
            const [instance] = inRegion("aws:ec2/instance:Instance", region);
            return filesOfUserData(plain(instance.inputs.userData));
        };
        const eip = ev.elasticIps;
        const conns: Record<string, string[]> = {};
        const lists: Record<string, string> = {};
        for (const region of Object.keys(REGIONS) as RegionName[]) {
            for (const f of files(region)) {
                const tunnel = /ipsec\.d\/(.+)\.conf$/.exec(f.path);
                if (tunnel) {
                    conns[tunnel[1]] = [...(conns[tunnel[1]] ?? []), `${region}:${f.permissions}:${f.content}`];
                }
                if (f.path === "/etc/hubspoke-vpn/tunnels") {
                    lists[region] = f.content;
                }
                assert.ok(!f.path.endsWith(".secrets"), `${region}'s user data writes ${f.path}: keys come from SSM at boot`);
            }
        }
        assert.deepEqual(Object.keys(conns).sort(), ["virginia-to-frankfurt", "virginia-to-sydney"], "no spoke-to-spoke tunnel");
        for (const spoke of ["sydney", "frankfurt"] as const) {
            const tunnel = `virginia-to-${spoke}`;
            const [hubConn, spokeConn] = conns[tunnel];
            assert.match(hubConn, /^virginia:0644:/);
            assert.match(
                hubConn,
                new RegExp(
                    `leftid=${eip.virginia}\\n.*leftsubnet=10\\.11\\.0\\.0/16\\n.*right=${eip[spoke]}\\n.*rightid=${eip[spoke]}\\n.*rightsubnet=${CIDR[spoke].replace(/\./g, "\\.")}`,
                    "s",
                ),
            );
            assert.match(spokeConn, new RegExp(`^${spoke}:0644:`));
            assert.match(spokeConn, new RegExp(`leftid=${eip[spoke]}\\n.*right=${eip.virginia}\\n.*rightsubnet=10\\.11\\.0\\.0/16`, "s"));
            // Each end fetches the same tunnel's key from its own region and writes the secrets line for its identities.
            assert.ok(lists.virginia.includes(`${tunnel} us-east-1 /hubspoke-vpn/prod/${tunnel}/psk ${eip.virginia} ${eip[spoke]}\n`));
            assert.ok(
                lists[spoke].includes(`${tunnel} ${REGIONS[spoke]} /hubspoke-vpn/prod/${tunnel}/psk ${eip[spoke]} ${eip.virginia}\n`),
            );
            assert.ok(ev.keys[tunnel].length >= 32);
        }
        assert.notEqual(ev.keys["virginia-to-sydney"], ev.keys["virginia-to-frankfurt"]);
        for (const region of Object.keys(REGIONS) as RegionName[]) {
            const sysctl = files(region).find((f) => f.path.startsWith("/etc/sysctl.d/"));
            assert.ok(sysctl, `${region} has no sysctl file`);
            for (const line of [
                "net.ipv4.ip_forward = 1",
                "net.ipv4.conf.all.accept_redirects = 0",
                "net.ipv4.conf.all.send_redirects = 0",
                "net.ipv4.conf.all.rp_filter = 0",
            ]) {
                assert.ok(sysctl.content.includes(line), `${region} sysctl lacks ${line}`);
            }
        }
    });

    it("keeps every key a secret: none in any user data, and none anywhere in plaintext", async () => {
        const keys = Object.values(ev.keys);
        assert.equal(keys.length, 2);
        // User data is readable with ec2:DescribeInstanceAttribute: it must hold no key at all.
        for (const instance of ofType("aws:ec2/instance:Instance")) {
            const userData = JSON.stringify(plain(instance.inputs.userData));
            for (const k of keys) {
                assert.ok(!userData.includes(k), `${instance.name} user data holds a generated key`);
            }
            assert.ok(!isSecretValue(instance.inputs.userData), "user data without keys needs no secret marking (it stays diffable)");
        }
        // Walk every registered input, skipping values marked secret: no key may be left.
        const leaks: string[] = [];
        const walk = (v: unknown, where: string): void => {
            if (isSecretValue(v)) {
                return;
            }
            if (typeof v === "string") {
                if (keys.some((k) => v.includes(k))) {
                    leaks.push(where);
                }
            } else if (typeof v === "object" && v !== null) {
                for (const [k, x] of Object.entries(v)) {
                    walk(x, `${where}.${k}`);
                }
            }
        };
        for (const r of ev.resources) {
            if (r.type !== "random:index/randomPassword:RandomPassword") {
                walk(r.inputs, `${r.type} ${r.name}`);
            }
        }
        assert.deepEqual(leaks, []);
        // Stack outputs, resolved as `pulumi stack output` would show them.
        const outputs = JSON.stringify(
            await resolve(
                Object.fromEntries(
                    Object.entries(ev.result.regions).map(([n, r]) => [
                        n,
                        { ...r, vpcId: r.vpcId, eip: r.gatewayElasticIp, id: r.gatewayInstanceId },
                    ]),
                ),
            ),
        );
        assert.ok(outputs.includes(ev.elasticIps.virginia), "outputs resolved");
        for (const k of keys) {
            assert.ok(!outputs.includes(k), "a key is in the stack outputs");
        }
    });

    it("rotates keys in place: a new pskRotation changes the keys, not the instances", async () => {
        const rotated = await evaluateOffline({ ...prodConfig(), pskRotation: 1 }, { stack: "prod" });
        const keepers = (e: Evaluation) =>
            e.resources.filter((r) => r.type === "random:index/randomPassword:RandomPassword").map((r) => r.inputs.keepers);
        assert.deepEqual(keepers(ev), [{ rotation: "0" }, { rotation: "0" }]);
        assert.deepEqual(keepers(rotated), [{ rotation: "1" }, { rotation: "1" }]);
        // Everything an instance is made from stays the same, so `pulumi up` updates only keys and parameters.
        const instances = (e: Evaluation) => e.resources.filter((r) => r.type === "aws:ec2/instance:Instance").map((r) => plain(r.inputs));
        assert.deepEqual(instances(rotated), instances(ev));
        const parameterNames = (e: Evaluation) =>
            e.resources
                .filter((r) => r.type === "aws:ssm/parameter:Parameter")
                .map((r) => r.inputs.name)
                .sort();
        assert.deepEqual(parameterNames(rotated), parameterNames(ev), "same parameters, updated in place");
    });

    it("watches every tunnel end: an alarm after 3 minutes down (missing data counts as down), a topic per region, one dashboard", () => {
        const ends: Record<RegionName, string[]> = {
            virginia: ["virginia-to-frankfurt", "virginia-to-sydney"],
            sydney: ["virginia-to-sydney"],
            frankfurt: ["virginia-to-frankfurt"],
        };
        for (const region of Object.keys(REGIONS) as RegionName[]) {
            const [topic] = inRegion("aws:sns/topic:Topic", region);
            const alarms = inRegion("aws:cloudwatch/metricAlarm:MetricAlarm", region).filter((a) => a.inputs.metricName === "TunnelUp");
            assert.deepEqual(alarms.map((a) => a.inputs.dimensions.Tunnel).sort(), ends[region]);
            for (const a of alarms) {
                assert.deepEqual(
                    { ...a.inputs, alarmDescription: undefined, tags: undefined, name: undefined },
                    {
                        alarmDescription: undefined,
                        tags: undefined,
                        name: undefined,
                        namespace: "HubspokeVpn",
                        metricName: "TunnelUp",
                        dimensions: { Stack: "prod", Region: region, Tunnel: a.inputs.dimensions.Tunnel },
                        statistic: "Minimum",
                        period: 60,
                        evaluationPeriods: 3,
                        datapointsToAlarm: 3,
                        threshold: 1,
                        comparisonOperator: "LessThanThreshold",
                        treatMissingData: "breaching",
                        alarmActions: [`arn:aws:mock:::${topic.name}`],
                        okActions: [`arn:aws:mock:::${topic.name}`],
                    },
                );
            }
            // Self-healing: EC2 automatic recovery, and the alarm that triggers it.
            const [instance] = inRegion("aws:ec2/instance:Instance", region);
            assert.deepEqual(instance.inputs.maintenanceOptions, { autoRecovery: "default" });
            const [recover] = inRegion("aws:cloudwatch/metricAlarm:MetricAlarm", region).filter(
                (a) => a.inputs.metricName === "StatusCheckFailed_System",
            );
            assert.equal(recover.inputs.namespace, "AWS/EC2");
            assert.deepEqual(recover.inputs.dimensions, { InstanceId: idOf(instance) });
            assert.deepEqual(recover.inputs.alarmActions, [
                `arn:aws:automate:${REGIONS[region]}:ec2:recover`,
                `arn:aws:mock:::${topic.name}`,
            ]);
            assert.deepEqual(inRegion("aws:sns/topicSubscription:TopicSubscription", region), [], "no e-mail unless configured");
        }
        const [dashboard] = ofType("aws:cloudwatch/dashboard:Dashboard");
        assert.equal(dashboard.awsRegion, "us-east-1");
        assert.equal(dashboard.inputs.dashboardName, "hubspoke-vpn-prod");
        const widgets = JSON.parse(dashboard.inputs.dashboardBody).widgets;
        assert.deepEqual(
            widgets.map((w: any) => w.properties.metrics.map((m: any[]) => `${m[5]}:${m[7]}@${m[8].region}`)),
            [
                ["virginia:virginia-to-sydney@us-east-1", "sydney:virginia-to-sydney@ap-southeast-2"],
                ["virginia:virginia-to-frankfurt@us-east-1", "frankfurt:virginia-to-frankfurt@eu-central-1"],
            ],
        );
    });

    it("subscribes the alarm e-mail to every region's topic when configured", async () => {
        const withEmail = await evaluateOffline({ ...prodConfig(), alarmEmail: "netops@example.com" }, { stack: "prod" });
        const subs = withEmail.resources.filter((r) => r.type === "aws:sns/topicSubscription:TopicSubscription");
        assert.deepEqual(
            subs.map((s) => [s.awsRegion, s.inputs.protocol, s.inputs.endpoint]),
            [
                ["us-east-1", "email", "netops@example.com"],
                ["ap-southeast-2", "email", "netops@example.com"],
                ["eu-central-1", "email", "netops@example.com"],
            ],
        );
    });

    it("exports per region the VPC, gateway addresses and tunnel names", async () => {
        const virginia = ev.result.regions.virginia;
        assert.equal(await resolve(virginia.gatewayElasticIp), ev.elasticIps.virginia);
        assert.equal(virginia.gatewayPrivateIp, "10.11.4.5");
        assert.equal(await resolve(virginia.vpcId), "hubspoke-virginia-vpc-id");
        assert.deepEqual(virginia.tunnels, ["virginia-to-sydney", "virginia-to-frankfurt"]);
        assert.deepEqual(ev.result.regions.sydney.tunnels, ["virginia-to-sydney"]);
        assert.deepEqual(ev.result.tunnels, ["virginia-to-sydney", "virginia-to-frankfurt"]);
        const id = await resolve(virginia.gatewayInstanceId);
        assert.equal(await resolve(virginia.sessionCommand), `aws ssm start-session --region us-east-1 --target ${id}`);
        assert.match(
            await resolve(virginia.tunnelStatusCommand),
            new RegExp(`--target ${id} --document-name AWS-StartInteractiveCommand --parameters command="sudo ipsec trafficstatus`),
        );
        assert.deepEqual(await resolve(pulumi.all(virginia.tunnelAlarmNames)), [
            "hubspoke-virginia-gw-virginia-to-sydney-down",
            "hubspoke-virginia-gw-virginia-to-frankfurt-down",
        ]);
        assert.equal(await resolve(ev.result.dashboardName), "hubspoke-vpn-prod");
    });
});
