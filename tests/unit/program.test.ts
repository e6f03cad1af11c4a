import { strict as assert } from "node:assert";
import * as pulumi from "@pulumi/pulumi";
import { DEFAULT_GATEWAY_AMI_RELEASE } from "../../config/validate";
import { type ModelledAlarm, pages, type Report, runAlarm } from "../../harness/alarmModel";
import {
    type Evaluation,
    evaluateOffline,
    isSecretValue,
    MOCK_ACCOUNT_ID,
    plain,
    type RecordedResource,
    resolve,
} from "../../harness/evaluate";
import { filesOfGateway, parameterValue } from "../../harness/snapshot";
import { gatewayBootstrap, userDataOfPayload } from "../../render/bootstrap";
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
    const idOf = (r: RecordedResource) => r.id;

    before(async () => {
        ev = await prodEvaluation();
    });

    it("has one provider per AWS region, with the stack's default tags, known by its region's earlier name", () => {
        const providers = ofType("pulumi:providers:aws").map((p) => [
            p.name,
            p.inputs.region,
            JSON.parse(p.inputs.defaultTags).tags,
            p.options.aliasNames,
        ]);
        const tags = { Project: "hubspoke-vpn", Stack: "prod", ManagedBy: "pulumi" };
        assert.deepEqual(providers, [
            ["us-east-1", "us-east-1", tags, ["virginia"]],
            ["ap-southeast-2", "ap-southeast-2", tags, ["sydney"]],
            ["eu-central-1", "eu-central-1", tags, ["frankfurt"]],
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
            assert.equal(assoc.inputs.allocationId, `hubspoke-${region}-eip-alloc`);
            const [instance] = inRegion("aws:ec2/instance:Instance", region);
            assert.equal(instance.inputs.primaryNetworkInterface.networkInterfaceId, idOf(eni));
        }
    });

    it("hardens every instance: the pinned AL2023 release for its architecture, IMDSv2, encrypted root, Session Manager, no SSH", () => {
        for (const instance of ofType("aws:ec2/instance:Instance")) {
            assert.equal(instance.inputs.ami, `ami-mock-${instance.awsRegion}-al2023-ami-${DEFAULT_GATEWAY_AMI_RELEASE}-kernel-6.1-x86_64`);
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
            // Lifecycle: the ENI's source/destination check is never flipped back by the instance
            // (terraform-provider-aws #44768), a bootstrap change replaces instead of a silent stop/start, and a
            // planned replacement or removal is not refused by termination protection.
            assert.deepEqual(instance.options.ignoreChanges, ["sourceDestCheck"]);
            assert.equal(instance.inputs.sourceDestCheck, undefined, "it conflicts with primaryNetworkInterface");
            assert.equal(instance.options.deleteBeforeReplace, true, "the network interface attaches to one instance at a time");
            assert.equal(instance.inputs.userDataReplaceOnChange, true);
            assert.equal(instance.inputs.userData, undefined);
            assert.equal(instance.inputs.forceDestroy, true);
        }
        const images = ev.invokes.filter((i) => i.token === "aws:ec2/getAmi:getAmi").map((i) => JSON.stringify([i.awsRegion, i.inputs]));
        assert.deepEqual(
            [...new Set(images)].map((j) => JSON.parse(j)),
            ["us-east-1", "ap-southeast-2", "eu-central-1"].map((awsRegion) => [
                awsRegion,
                {
                    owners: ["amazon"],
                    mostRecent: true,
                    includeDeprecated: true,
                    filters: [
                        { name: "name", values: [`al2023-ami-${DEFAULT_GATEWAY_AMI_RELEASE}-kernel-6.1-x86_64`] },
                        { name: "architecture", values: ["x86_64"] },
                    ],
                },
            ]),
            "a pinned release, not whatever is latest",
        );
        assert.deepEqual(
            ev.invokes.filter((i) => i.token === "aws:ssm/getParameter:getParameter"),
            [],
        );
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
            // Created only once the role's policy exists (terraform-provider-aws #29323).
            const [flowPolicy] = inRegion("aws:iam/rolePolicy:RolePolicy", region).filter((r) => r.name.includes("flow-logs"));
            assert.deepEqual(flowLog.options.dependsOn, [flowPolicy.urn]);
            assert.deepEqual(JSON.parse(flowRole.inputs.assumeRolePolicy).Statement[0].Principal, {
                Service: "vpc-flow-logs.amazonaws.com",
            });
            const [instance] = inRegion("aws:ec2/instance:Instance", region);
            assert.equal(instance.inputs.disableApiTermination, true, "prod gateways are protected from termination");
            assert.equal(inRegion("aws:ec2/networkInterface:NetworkInterface", region)[0].inputs.tags.Role, "vpn-gateway");
        }
    });

    it("lets each gateway read exactly its own desired-state path, in its own region, and nothing else", () => {
        for (const region of Object.keys(REGIONS) as RegionName[]) {
            const [role] = inRegion("aws:iam/role:Role", region).filter((r) => r.name.includes("-gw-"));
            const policies = inRegion("aws:iam/rolePolicy:RolePolicy", region).filter((r) => r.name.includes("-gw-"));
            assert.equal(policies.length, 1);
            assert.equal(policies[0].inputs.role, role.name);
            const doc = JSON.parse(policies[0].inputs.policy);
            const pathArn = `arn:aws:ssm:${REGIONS[region]}:${MOCK_ACCOUNT_ID}:parameter/hubspoke-vpn/prod/${region}/tunnels`;
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
                { Sid: "OwnDesiredStateList", Effect: "Allow", Action: "ssm:GetParametersByPath", Resource: pathArn },
                { Sid: "OwnDesiredState", Effect: "Allow", Action: "ssm:GetParameter", Resource: `${pathArn}/*` },
                {
                    Sid: "OwnSoftware",
                    Effect: "Allow",
                    Action: "ssm:GetParametersByPath",
                    Resource: pathArn.replace(/\/tunnels$/, "/software/*"),
                },
                {
                    Sid: "TunnelMetrics",
                    Effect: "Allow",
                    Action: "cloudwatch:PutMetricData",
                    Resource: "*",
                    Condition: { StringEquals: { "cloudwatch:namespace": "HubspokeVpn" } },
                },
                // Its tunnel events: its own stream only, in its own group and region.
                {
                    Sid: "OwnTunnelEvents",
                    Effect: "Allow",
                    Action: "logs:PutLogEvents",
                    Resource: `arn:aws:logs:${REGIONS[region]}:${MOCK_ACCOUNT_ID}:log-group:/hubspoke-vpn/prod/tunnel-events/${region}:log-stream:${region}`,
                },
            ]);
            assert.deepEqual(JSON.parse(role.inputs.assumeRolePolicy).Statement[0].Principal, { Service: "ec2.amazonaws.com" });
        }
    });

    it("publishes each tunnel end in its gateway's own region and path: the conn as a String, the secrets line as a secret SecureString", () => {
        const params = ofType("aws:ssm/parameter:Parameter").map((p) => ({
            region: p.awsRegion,
            name: p.inputs.name,
            type: p.inputs.type,
            secret: isSecretValue(p.inputs.value ?? p.inputs.insecureValue),
            value: parameterValue(p),
        }));
        // Besides the tunnel ends: each gateway's software, in parts, under its own path (tests/unit/render.test.ts).
        const software = /^\/hubspoke-vpn\/prod\/(virginia|sydney|frankfurt)\/software\/[0-9a-f]{16}\/\d\d$/;
        assert.ok(params.filter((p) => software.test(p.name)).every((p) => p.type === "String" && !p.secret));
        assert.deepEqual(
            params
                .filter((p) => !software.test(p.name))
                .map((p) => `${p.region} ${p.name} ${p.type} ${p.secret}`)
                .sort(),
            [
                "ap-southeast-2 /hubspoke-vpn/prod/sydney/tunnels/virginia-to-sydney/conf String false",
                "ap-southeast-2 /hubspoke-vpn/prod/sydney/tunnels/virginia-to-sydney/secrets SecureString true",
                "eu-central-1 /hubspoke-vpn/prod/frankfurt/tunnels/virginia-to-frankfurt/conf String false",
                "eu-central-1 /hubspoke-vpn/prod/frankfurt/tunnels/virginia-to-frankfurt/secrets SecureString true",
                "us-east-1 /hubspoke-vpn/prod/virginia/tunnels/virginia-to-frankfurt/conf String false",
                "us-east-1 /hubspoke-vpn/prod/virginia/tunnels/virginia-to-frankfurt/secrets SecureString true",
                "us-east-1 /hubspoke-vpn/prod/virginia/tunnels/virginia-to-sydney/conf String false",
                "us-east-1 /hubspoke-vpn/prod/virginia/tunnels/virginia-to-sydney/secrets SecureString true",
            ],
        );
        const eip = ev.elasticIps;
        for (const p of params.filter((x) => x.type === "SecureString")) {
            const [, , , site, , tunnel] = p.name.split("/");
            const peer = site === "virginia" ? tunnel.replace("virginia-to-", "") : "virginia";
            // The same key at both ends, selected by this end's identity and then its peer's.
            assert.equal(p.value, `${eip[site as RegionName]} ${eip[peer as RegionName]} : PSK "${ev.keys[tunnel]}"\n`);
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

    it("renders each gateway's tunnels with its peers' addresses; the user data holds no tunnel at all", () => {
        const eip = ev.elasticIps;
        const conf = (site: RegionName, tunnel: string) =>
            ofType("aws:ssm/parameter:Parameter").find((p) => p.inputs.name === `/hubspoke-vpn/prod/${site}/tunnels/${tunnel}/conf`)?.inputs
                .insecureValue;
        for (const spoke of ["sydney", "frankfurt"] as const) {
            const tunnel = `virginia-to-${spoke}`;
            assert.match(
                conf("virginia", tunnel),
                new RegExp(
                    `leftid=${eip.virginia}\\n.*leftsubnet=10\\.11\\.0\\.0/16\\n.*right=${eip[spoke]}\\n.*rightid=${eip[spoke]}\\n.*rightsubnet=${CIDR[spoke].replace(/\./g, "\\.")}`,
                    "s",
                ),
            );
            assert.match(
                conf(spoke, tunnel),
                new RegExp(`leftid=${eip[spoke]}\\n.*right=${eip.virginia}\\n.*rightsubnet=10\\.11\\.0\\.0/16`, "s"),
            );
            assert.equal(
                conf(spoke, "virginia-to-" + (spoke === "sydney" ? "frankfurt" : "sydney")),
                undefined,
                "no spoke-to-spoke tunnel",
            );
            assert.ok(ev.keys[tunnel].length >= 32);
        }
        assert.notEqual(ev.keys["virginia-to-sydney"], ev.keys["virginia-to-frankfurt"]);
        for (const region of Object.keys(REGIONS) as RegionName[]) {
            const [instance] = inRegion("aws:ec2/instance:Instance", region);
            const files = filesOfGateway(ev, instance);
            // Exactly what the gateway's identity alone gives: nothing of its tunnels.
            const identity = {
                stack: "prod",
                regionName: region,
                awsRegion: REGIONS[region],
                parameterPath: `/hubspoke-vpn/prod/${region}/tunnels`,
            };
            const expected = gatewayBootstrap(identity, "/hubspoke-vpn/prod", region);
            assert.deepEqual(
                files,
                [...expected.userDataFiles, ...expected.software],
                `${region}'s files must depend on the gateway alone`,
            );
            assert.match(
                files.find((f) => f.path === "/etc/hubspoke-vpn/gateway.env")!.content,
                new RegExp(`HUBSPOKE_PARAMETER_PATH='/hubspoke-vpn/prod/${region}/tunnels'`),
            );
            const sysctl = files.find((f) => f.path.startsWith("/etc/sysctl.d/"));
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
            const userData = userDataOfPayload(instance.inputs.userDataBase64);
            for (const k of keys) {
                assert.ok(!userData.includes(k), `${instance.name} user data holds a generated key`);
            }
            assert.ok(!isSecretValue(instance.inputs.userDataBase64), "user data without keys needs no secret marking (it stays diffable)");
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
        const values = (e: Evaluation) =>
            e.resources.filter((r) => r.type === "aws:ssm/parameter:Parameter").map((r) => `${r.inputs.name} ${parameterValue(r)}`);
        const changed = values(rotated)
            .filter((v, i) => v !== values(ev)[i])
            .map((v) => v.split(" ")[0]);
        assert.deepEqual(
            changed.sort(),
            parameterNames(ev).filter((n: string) => n.endsWith("/secrets")),
            "only the secrets lines change",
        );
    });

    it("watches every tunnel end: an alarm after 3 minutes down or silent (not before the first report), a topic per region, one dashboard", () => {
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
                        treatMissingData: "missing",
                        alarmActions: [`arn:aws:mock:::${topic.name}`],
                        okActions: [`arn:aws:mock:::${topic.name}`],
                        insufficientDataActions: [`arn:aws:mock:::${topic.name}`],
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
        const all = JSON.parse(dashboard.inputs.dashboardBody).widgets;
        const widgets = all.filter((w: any) => w.type === "metric");
        assert.deepEqual(
            widgets.map((w: any) => w.properties.metrics.map((m: any[]) => `${m[1]} ${m[5]}:${m[7]}@${m[8].region}`)),
            [
                ["TunnelUp virginia:virginia-to-sydney@us-east-1", "TunnelUp sydney:virginia-to-sydney@ap-southeast-2"],
                ["TunnelUp virginia:virginia-to-frankfurt@us-east-1", "TunnelUp frankfurt:virginia-to-frankfurt@eu-central-1"],
                // Bytes, both ends, summed a minute (the Sum of the per-minute reports).
                [
                    "TunnelDataIn virginia:virginia-to-sydney@us-east-1",
                    "TunnelDataOut virginia:virginia-to-sydney@us-east-1",
                    "TunnelDataIn sydney:virginia-to-sydney@ap-southeast-2",
                    "TunnelDataOut sydney:virginia-to-sydney@ap-southeast-2",
                ],
                [
                    "TunnelDataIn virginia:virginia-to-frankfurt@us-east-1",
                    "TunnelDataOut virginia:virginia-to-frankfurt@us-east-1",
                    "TunnelDataIn frankfurt:virginia-to-frankfurt@eu-central-1",
                    "TunnelDataOut frankfurt:virginia-to-frankfurt@eu-central-1",
                ],
            ],
        );
        assert.deepEqual(
            widgets.slice(2).map((w: any) => [w.properties.stat, w.y]),
            [
                ["Sum", 6],
                ["Sum", 6],
            ],
            "below the state graphs",
        );
        // Last, each AWS region's latest tunnel events, from its gateways' event logs (Logs Insights reads one region).
        const logs = all.filter((w: any) => w.type === "log");
        assert.deepEqual(
            logs.map((w: any) => [w.y, w.properties.region, w.properties.query.split(" | ").filter((q: string) => q.startsWith("SOURCE"))]),
            [
                [12, "us-east-1", ["SOURCE '/hubspoke-vpn/prod/tunnel-events/virginia'"]],
                [18, "ap-southeast-2", ["SOURCE '/hubspoke-vpn/prod/tunnel-events/sydney'"]],
                [24, "eu-central-1", ["SOURCE '/hubspoke-vpn/prod/tunnel-events/frankfurt'"]],
            ],
        );
        // The saved "why is it down" queries: per tunnel end, in its region, over its gateway's events.
        const queries = ofType("aws:cloudwatch/queryDefinition:QueryDefinition");
        assert.deepEqual(
            queries.map((q) => [q.awsRegion, q.inputs.name, q.inputs.logGroupNames]).sort(),
            [
                [
                    "us-east-1",
                    "hubspoke-vpn/prod/why-is-virginia-to-sydney-down-at-virginia",
                    ["/hubspoke-vpn/prod/tunnel-events/virginia"],
                ],
                [
                    "ap-southeast-2",
                    "hubspoke-vpn/prod/why-is-virginia-to-sydney-down-at-sydney",
                    ["/hubspoke-vpn/prod/tunnel-events/sydney"],
                ],
                [
                    "us-east-1",
                    "hubspoke-vpn/prod/why-is-virginia-to-frankfurt-down-at-virginia",
                    ["/hubspoke-vpn/prod/tunnel-events/virginia"],
                ],
                [
                    "eu-central-1",
                    "hubspoke-vpn/prod/why-is-virginia-to-frankfurt-down-at-frankfurt",
                    ["/hubspoke-vpn/prod/tunnel-events/frankfurt"],
                ],
            ].sort(),
        );
        const sydneyAtHub = queries.find((q) => q.inputs.name.endsWith("why-is-virginia-to-sydney-down-at-virginia"))!;
        assert.match(
            sydneyAtHub.inputs.queryString,
            /\| filter tunnel = "virginia-to-sydney" or event in \["takeover", "step-down", "handover"\]\n/,
        );
        // Each gateway's log group keeps its events the stack's retention (default 90 days); its stream is named after it.
        assert.deepEqual(
            ofType("aws:cloudwatch/logGroup:LogGroup")
                .filter((g) => g.name.endsWith("-gw-events"))
                .map((g) => [g.awsRegion, g.inputs.name, g.inputs.retentionInDays]),
            [
                ["us-east-1", "/hubspoke-vpn/prod/tunnel-events/virginia", 90],
                ["ap-southeast-2", "/hubspoke-vpn/prod/tunnel-events/sydney", 90],
                ["eu-central-1", "/hubspoke-vpn/prod/tunnel-events/frankfurt", 90],
            ],
        );
        assert.deepEqual(
            ofType("aws:cloudwatch/logStream:LogStream").map((s) => [s.awsRegion, s.inputs.logGroupName, s.inputs.name]),
            [
                ["us-east-1", "/hubspoke-vpn/prod/tunnel-events/virginia", "virginia"],
                ["ap-southeast-2", "/hubspoke-vpn/prod/tunnel-events/sydney", "sydney"],
                ["eu-central-1", "/hubspoke-vpn/prod/tunnel-events/frankfurt", "frankfurt"],
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

describe("a gateway's first-boot alarm over time (CloudWatch's documented evaluation, harness/alarmModel.ts)", () => {
    let alarm: ModelledAlarm;
    before(async () => {
        const ev = await prodEvaluation();
        const r = ev.resources.find(
            (x) => x.type === "aws:cloudwatch/metricAlarm:MetricAlarm" && x.name === "hubspoke-sydney-gw-bootstrap",
        );
        assert.ok(r, "no first-boot alarm for sydney");
        alarm = plain(r.inputs) as ModelledAlarm;
        assert.deepEqual(plain(r.inputs.dimensions), { Stack: "prod", Gateway: "sydney" });
    });
    // One 5-minute period per entry: GatewayBootstrapPending's maximum in it, or nothing.
    const paged = (reports: Report[]) => pages(runAlarm(alarm, reports)).map((p) => `${p.state} at ${p.period}`);

    it("a gateway that boots normally never reports, and never pages", () => {
        assert.deepEqual(paged(Array(24).fill(undefined)), []);
    });

    it("a gateway stuck in its first boot pages once and stays in ALARM, even when a slow try leaves a period without a report", () => {
        // Tries at most 2 min apart plus the try itself: a report at least every second period.
        const stuck: Report[] = [undefined, undefined, 1, undefined, 1, 1, undefined, 1, undefined, 1, undefined, 1];
        const run = runAlarm(alarm, stuck);
        assert.deepEqual(paged(stuck), ["ALARM at 2"]);
        assert.ok(
            run.states.slice(2).every((s) => s === "ALARM"),
            run.states.join(","),
        );
    });

    it("a gateway that finishes after paging returns to OK three periods after its last pending report, and does not page again", () => {
        const run = runAlarm(alarm, [1, 1, undefined, 0, undefined, undefined, undefined, undefined]);
        assert.deepEqual(
            run.notifications.map((n) => `${n.state} at ${n.period}`),
            ["ALARM at 0", "OK at 4"],
        );
    });
});
