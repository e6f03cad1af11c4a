/**
 * A standby gateway in every site (Pulumi.prod-ha.yaml) under the mock runtime: what the pair is made
 * of, what each of its gateways may do, what they run, and what converting a running stack does.
 * Pulumi.prod.yaml (no standby) is the control: none of it may leak there.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import type { ResourceValidationArgs } from "@pulumi/policy";
import { HANDOVER_BEFORE_STOP_HOOK, HANDOVER_HOOK, READY_AFTER_START_HOOK, READY_HOOK } from "../../components/gatewayHandover";
import type { OpenSwanGateway } from "../../components/openSwanGateway";
import { SITE_ADDRESS_HOOK } from "../../components/siteAddressHook";
import { containsIp, parseCidr, parseIp } from "../../config/cidr";
import { siteIpOf } from "../../config/types";
import { type ModelledAlarm, pages, type Report, runAlarm } from "../../harness/alarmModel";
import { diffEvaluations, type StackDiff } from "../../harness/diff";
import { type Evaluation, evaluateOffline, MOCK_ACCOUNT_ID, plain, type RecordedResource } from "../../harness/evaluate";
import { filesOfGateway, parameterValue } from "../../harness/snapshot";
import { policies } from "../../policy/policies";
import { STANDBY_SILENT_MINUTES } from "../../render/awsDocuments";
import { gatewayBootstrap, userDataOfPayload } from "../../render/bootstrap";
import { prodEvaluation, stackConfig } from "./fixtures";

const REGIONS = { virginia: "us-east-1", sydney: "ap-southeast-2", frankfurt: "eu-central-1" } as const;
type RegionName = keyof typeof REGIONS;
const SITES = Object.keys(REGIONS) as RegionName[];
const CIDR: Record<RegionName, string> = { virginia: "10.11.0.0/16", sydney: "12.11.0.0/16", frankfurt: "13.11.0.0/16" };
/** Per site, its primary's and its standby's private IPs, as Pulumi.prod-ha.yaml sets them. */
const PRIVATE_IPS: Record<RegionName, [string, string]> = {
    virginia: ["10.11.4.5", "10.11.5.5"],
    sydney: ["12.11.4.5", "12.11.5.5"],
    frankfurt: ["13.11.4.5", "13.11.5.5"],
};
const PEERS: Record<RegionName, RegionName[]> = { virginia: ["sydney", "frankfurt"], sydney: ["virginia"], frankfurt: ["virginia"] };
const PREFIX = "/hubspoke-vpn/prod-ha";
const tunnelOf = (a: RegionName, b: RegionName) => (a === "virginia" ? `virginia-to-${b}` : `virginia-to-${a}`);

const ROUTE = "aws:ec2/route:Route";
const ENI = "aws:ec2/networkInterface:NetworkInterface";
const INSTANCE = "aws:ec2/instance:Instance";
const ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy";
const EIP_ASSOC = "aws:ec2/eipAssociation:EipAssociation";
const ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm";

/** The policy pack over every resource of an evaluation, as the policy host would run it (tests/unit/policy.test.ts). */
function packViolations(ev: Evaluation): string[] {
    const found: string[] = [];
    for (const r of ev.resources) {
        const args = {
            type: r.type,
            props: plain(r.inputs),
            name: r.name,
            urn: r.urn,
            opts: {},
        } as unknown as ResourceValidationArgs;
        for (const p of policies) {
            for (const v of ([] as any[]).concat(p.validateResource ?? [])) {
                v(args, (message: string) => found.push(`${p.name} ${r.name}: ${message}`));
            }
        }
    }
    return found;
}

/** The names of a gateway's software parts (render/software.ts), in order. */
const SOFTWARE_PART = /-gw-software-\d+$/;
function softwareParts(ev: Evaluation, gateway: string): string[] {
    return ev.resources
        .filter((r) => r.type === "aws:ssm/parameter:Parameter" && r.name.startsWith(`hubspoke-${gateway}-gw-software-`))
        .map((r) => r.name)
        .sort();
}

describe("standby gateways: Pulumi.prod-ha.yaml (mock runtime)", () => {
    let ha: Evaluation;
    let prod: Evaluation;
    const ofType = (ev: Evaluation, type: string) => ev.resources.filter((r) => r.type === type);
    const inSite = (ev: Evaluation, type: string, site: RegionName) =>
        ofType(ev, type).filter((r) => r.name.startsWith(`hubspoke-${site}-`));
    const byId = (ev: Evaluation, id: string) => {
        const r = ev.resources.find((x) => x.id === id);
        assert.ok(r, `no resource with id ${id}`);
        return r;
    };
    /** The site's two gateways, primary first, as the program holds them. */
    const pair = (site: RegionName): [OpenSwanGateway, OpenSwanGateway] => {
        const standby = ha.result.vpn.standbys[site];
        assert.ok(standby, `site ${site} has no standby`);
        return [ha.result.vpn.gateways[site], standby.gateway];
    };
    const parameter = (ev: Evaluation, name: string) => {
        const p = ofType(ev, "aws:ssm/parameter:Parameter").find((x) => x.inputs.name === name);
        assert.ok(p, `no parameter ${name}`);
        return p;
    };
    const routeTableIds = (site: RegionName) => inSite(ha, "aws:ec2/routeTable:RouteTable", site).map((t) => t.id);

    before(async () => {
        ha = await evaluateOffline(stackConfig("prod-ha"), { stack: "prod-ha" });
        prod = await prodEvaluation();
    });

    it("runs two gateways per site, on their own interfaces in subnets of different zones, each interface holding its private IP and its site address", () => {
        for (const site of SITES) {
            const gateways = pair(site);
            assert.deepEqual(
                gateways.map((g) => ha.recordOf(g.instance).name),
                [`hubspoke-${site}-gw-instance`, `hubspoke-${site}-standby-gw-instance`],
            );
            assert.deepEqual(
                inSite(ha, INSTANCE, site)
                    .map((i) => i.name)
                    .sort(),
                [`hubspoke-${site}-gw-instance`, `hubspoke-${site}-standby-gw-instance`],
                "exactly the pair",
            );
            const enis = gateways.map((g) => ha.recordOf(g.networkInterface));
            const zones: string[] = [];
            const subnets: string[] = [];
            enis.forEach((eni, i) => {
                const instance = ha.recordOf(gateways[i].instance);
                assert.equal(instance.inputs.primaryNetworkInterface.networkInterfaceId, eni.id);
                assert.equal(eni.inputs.sourceDestCheck, false, `${eni.name} forwards`);
                assert.equal(eni.inputs.privateIpListEnabled, true, eni.name);
                const ip = PRIVATE_IPS[site][i];
                assert.deepEqual(eni.inputs.privateIpLists, [ip, siteIpOf(ip)], `${eni.name}: its private IP first, then its site address`);
                assert.equal(eni.inputs.privateIps, undefined, "privateIps conflicts with privateIpLists");
                assert.equal(gateways[i].privateIp, ip);
                const subnet = byId(ha, eni.inputs.subnetId);
                assert.equal(subnet.type, "aws:ec2/subnet:Subnet");
                assert.ok(subnet.inputs.availabilityZone.startsWith(REGIONS[site]), subnet.inputs.availabilityZone);
                zones.push(subnet.inputs.availabilityZone);
                subnets.push(subnet.inputs.cidrBlock);
            });
            assert.notEqual(enis[0].id, enis[1].id);
            assert.deepEqual(subnets, [CIDR[site].replace("0.0/16", "4.0/24"), CIDR[site].replace("0.0/16", "5.0/24")]);
            assert.deepEqual(zones, [`${REGIONS[site]}a`, `${REGIONS[site]}b`], "the standby survives its primary's zone");
        }
        assert.deepEqual(siteIpOf("10.11.4.5"), "10.11.4.6");
    });

    it("leaves the site's Elastic IP unassociated (the gateways own it) and keeps each gateway's management Elastic IP on its private IP", () => {
        const associations = ofType(ha, EIP_ASSOC);
        for (const site of SITES) {
            const siteEip = ha.resources.find((r) => r.type === "aws:ec2/eip:Eip" && r.name === `hubspoke-${site}-eip`);
            assert.ok(siteEip);
            assert.deepEqual(
                associations.filter((a) => a.inputs.allocationId === `${siteEip.name}-alloc`),
                [],
                `${site}'s Elastic IP is associated by the program: a refresh would move it back`,
            );
            pair(site).forEach((g, i) => {
                const eni = ha.recordOf(g.networkInterface);
                const mine = associations.filter((a) => a.inputs.networkInterfaceId === eni.id);
                const name = i === 0 ? `hubspoke-${site}-gw` : `hubspoke-${site}-standby-gw`;
                assert.deepEqual(
                    mine.map((a) => [a.name, a.inputs.allocationId, a.inputs.privateIpAddress]),
                    [[`${name}-mgmt-eip-assoc`, `${name}-mgmt-eip-alloc`, PRIVATE_IPS[site][i]]],
                );
            });
        }
        assert.equal(associations.length, 6, "two management associations per site, nothing else");
        // The gateways' addresses: the site's for the peers, each gateway's own for management.
        assert.deepEqual(ha.elasticIps, { virginia: "192.0.2.11", sydney: "192.0.2.12", frankfurt: "192.0.2.13" });
    });

    it("routes each peer range once per route table, to the primary at first, and lets the active gateway move the route (ignoreChanges)", () => {
        const routes = ofType(ha, ROUTE).filter((r) => r.inputs.destinationCidrBlock !== "0.0.0.0/0");
        let expected = 0;
        for (const site of SITES) {
            const primaryEni = ha.recordOf(pair(site)[0].networkInterface).id;
            const tables = routeTableIds(site);
            assert.equal(tables.length, site === "virginia" ? 1 : 2, "the standby's subnet shares the VPN route table");
            for (const table of tables) {
                for (const peer of PEERS[site]) {
                    const found = routes.filter((r) => r.inputs.routeTableId === table && r.inputs.destinationCidrBlock === CIDR[peer]);
                    assert.equal(found.length, 1, `${table} -> ${peer}: ${found.length} routes`);
                    assert.equal(found[0].inputs.networkInterfaceId, primaryEni, `${found[0].name} targets the primary first`);
                    assert.ok(
                        found[0].options.ignoreChanges.includes("networkInterfaceId"),
                        `${found[0].name} would fail back on pulumi up`,
                    );
                    expected++;
                }
                assert.deepEqual(
                    routes.filter(
                        (r) => r.inputs.routeTableId === table && !PEERS[site].some((p) => CIDR[p] === r.inputs.destinationCidrBlock),
                    ),
                    [],
                    `${table} routes nothing else (no spoke to spoke)`,
                );
            }
        }
        assert.equal(routes.length, expected);
        // The seed's single gateways keep their routes under the program's control.
        for (const r of ofType(prod, ROUTE)) {
            assert.deepEqual(r.options.ignoreChanges, [], r.name);
        }
    });

    it("lets each gateway move exactly its own site: its Elastic IP to its two interfaces, its routes, its layout; no wildcard anywhere", () => {
        const arn = (site: RegionName, type: string, id: string) => `arn:aws:ec2:${REGIONS[site]}:${MOCK_ACCOUNT_ID}:${type}/${id}`;
        const failoverPolicies = ofType(ha, ROLE_POLICY).filter((p) => p.name.includes("-failover-"));
        assert.equal(failoverPolicies.length, 6);
        for (const site of SITES) {
            const gateways = pair(site);
            const mine = ha.result.vpn.standbys[site].failover.policies.map((p) => ha.recordOf(p));
            assert.deepEqual(
                mine.map((p) => p.inputs.role),
                gateways.map((g) => ha.recordOf(g.role).name),
                "one policy per gateway role, primary first",
            );
            const enis = gateways.map((g) => ha.recordOf(g.networkInterface).id);
            for (const p of mine) {
                assert.equal(p.awsRegion, REGIONS[site]);
                const statements = JSON.parse(p.inputs.policy).Statement;
                const allowing = (action: string) =>
                    statements
                        .filter((s: any) => s.Effect === "Allow" && [s.Action].flat().includes(action))
                        .flatMap((s: any) => [s.Resource].flat());
                assert.deepEqual(allowing("ec2:AssociateAddress"), [
                    arn(site, "elastic-ip", `hubspoke-${site}-eip-alloc`),
                    ...enis.map((id) => arn(site, "network-interface", id)),
                ]);
                assert.deepEqual(
                    allowing("ec2:ReplaceRoute"),
                    routeTableIds(site).map((id) => arn(site, "route-table", id)),
                );
                assert.deepEqual(allowing("ssm:GetParameter"), [
                    `arn:aws:ssm:${REGIONS[site]}:${MOCK_ACCOUNT_ID}:parameter${PREFIX}/${site}/failover`,
                ]);
                const anywhere = statements.filter((s: any) => [s.Resource].flat().includes("*"));
                assert.deepEqual(
                    anywhere.flatMap((s: any) => [s.Action].flat()).sort(),
                    ["ec2:DescribeAddresses", "ec2:DescribeRouteTables"],
                    "only reads on *",
                );
                assert.ok(statements.every((s: any) => s.Effect === "Allow" && s.Condition === undefined && s.NotResource === undefined));
            }
        }
        // Every policy of the stack: no ec2:* or * action, and no EC2 write on "*".
        for (const p of ofType(ha, ROLE_POLICY)) {
            for (const s of JSON.parse(p.inputs.policy).Statement) {
                const actions: string[] = [s.Action].flat();
                assert.ok(!actions.some((a) => a === "*" || a === "ec2:*" || a === "iam:*"), `${p.name}: ${actions}`);
                assert.equal(s.NotAction, undefined, p.name);
                if ([s.Resource].flat().includes("*")) {
                    for (const a of actions.filter((x) => x.startsWith("ec2:"))) {
                        assert.match(a, /^ec2:Describe/, `${p.name} allows ${a} on every resource`);
                    }
                }
            }
        }
    });

    it("puts no key in any user data; both gateways of a site run hubspoke-failover and its units, prod's gateways do not", () => {
        const keys = Object.values(ha.keys);
        assert.equal(keys.length, 2);
        const userData = (r: RecordedResource) => userDataOfPayload(plain(r.inputs.userDataBase64));
        for (const instance of ofType(ha, INSTANCE)) {
            const text = userData(instance);
            for (const k of keys) {
                assert.ok(!text.includes(k), `${instance.name}'s user data holds a key`);
            }
        }
        for (const site of SITES) {
            pair(site).forEach((g, i) => {
                const gateway = i === 0 ? site : `${site}-standby`;
                const text = userData(ha.recordOf(g.instance));
                const files = filesOfGateway(ha, ha.recordOf(g.instance));
                const expected = gatewayBootstrap(
                    {
                        stack: "prod-ha",
                        regionName: site,
                        awsRegion: REGIONS[site],
                        parameterPath: `${PREFIX}/${gateway}/tunnels`,
                        failover: { gateway, parameter: `${PREFIX}/${site}/failover` },
                    },
                    PREFIX,
                    gateway,
                );
                assert.deepEqual(files, [...expected.userDataFiles, ...expected.software], `${gateway}: exactly its own identity's files`);
                const paths = files.map((f) => f.path);
                for (const p of [
                    "/usr/local/sbin/hubspoke-failover",
                    "/etc/systemd/system/hubspoke-failover.service",
                    "/etc/systemd/system/hubspoke-health.service.d/20-hubspoke-failover.conf",
                    "/etc/ipsec.d/00-hubspoke-pair.conf",
                ]) {
                    assert.ok(paths.includes(p), `${gateway} lacks ${p}`);
                }
                const env = files.find((f) => f.path === "/etc/hubspoke-vpn/gateway.env")!.content;
                assert.match(env, new RegExp(`^HUBSPOKE_GATEWAY='${gateway}'$`, "m"));
                assert.match(env, new RegExp(`^HUBSPOKE_FAILOVER_PARAMETER='${PREFIX}/${site}/failover'$`, "m"));
                const units = files.find((f) => f.path === "/etc/hubspoke-vpn/units")!.content;
                assert.ok(units.split(/\s+/).includes("hubspoke-failover.service"), `${gateway} does not enable hubspoke-failover`);
                assert.ok(!text.includes("HUBSPOKE_GATEWAY="), `${gateway}: its settings travel in its software, not its user data`);
            });
        }
        for (const instance of ofType(prod, INSTANCE)) {
            const files = filesOfGateway(prod, instance);
            // hubspoke-events names hubspoke-failover's unit (it reads its journal): what counts is what is installed and enabled.
            assert.ok(!files.some((f) => f.path.includes("hubspoke-failover")), `${instance.name}: a single gateway runs no failover`);
            const units = files.find((f) => f.path === "/etc/hubspoke-vpn/units")!.content;
            assert.ok(!units.includes("hubspoke-failover"), `${instance.name}: a single gateway enables no failover`);
            const env = files.find((f) => f.path === "/etc/hubspoke-vpn/gateway.env")!.content;
            assert.ok(!env.includes("HUBSPOKE_FAILOVER_PARAMETER"), `${instance.name}: a single gateway has no failover settings`);
            assert.ok(!files.some((f) => f.content.includes("HUBSPOKE_GATEWAY=")), instance.name);
            assert.ok(
                !files.some((f) => f.path === "/etc/ipsec.d/00-hubspoke-pair.conf"),
                `${instance.name}: a single gateway's conns keep libreswan's updown`,
            );
        }
    });

    it("passes the policy pack", () => {
        assert.deepEqual(packViolations(ha), []);
        assert.ok(ofType(ha, ENI).length === 6, "the pack saw both gateways' interfaces");
    });

    it("leaves the prod stack as it was: no standby, no failover, no management address, the same resources as 0.1 had but the key parameters", () => {
        assert.deepEqual(prod.result.vpn.standbys, {});
        assert.deepEqual(
            prod.resources
                .filter((r) => /standby|failover|mgmt/.test(r.name) || r.type === "hubspoke:gateway:SiteFailover")
                .map((r) => r.name),
            [],
        );
        assert.deepEqual(
            ofType(prod, "aws:ec2/eip:Eip").map((r) => r.name),
            SITES.map((s) => `hubspoke-${s}-eip`),
        );
        for (const eni of ofType(prod, ENI)) {
            assert.equal(eni.inputs.privateIpListEnabled, undefined, eni.name);
            assert.equal(eni.inputs.privateIps.length, 1, eni.name);
        }
        for (const site of SITES) {
            assert.equal(ha.result.regions[site].standby !== undefined, true);
            assert.equal(prod.result.regions[site].standby, undefined, `${site} exports a standby`);
        }
        // The resources of a stack deployed with 0.1 (tests/unit/day-two.test.ts): the same, by URN or
        // alias, but the four per-tunnel key parameters that went, and the eight tunnel-end parameters
        // that came since (the keys travel in each gateway's own desired state now).
        const fixture: string[] = [
            ...new Set<string>(JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures/prod-urns-0.1.json"), "utf8"))),
        ];
        const now = new Set(prod.resources.map((r) => r.urn));
        const aliased = new Set(prod.resources.flatMap((r) => r.options.aliasNames.map((a) => `${r.type}::${a}`)));
        const gone = fixture.filter(
            (urn) => !now.has(urn) && !aliased.has(urn.slice(urn.lastIndexOf("::", urn.lastIndexOf("::") - 1) + 2)),
        );
        assert.equal(gone.length, 4);
        assert.ok(
            gone.every((u) => /aws:ssm\/parameter:Parameter::hubspoke-\w+-virginia-to-\w+-psk$/.test(u)),
            gone.join("\n"),
        );
        // Since: the tunnel ends' parameters, each gateway's software (its parts), its first-boot alarm,
        // its tunnel-event log group and stream, and each tunnel end's saved "why is it down" query.
        const came = prod.resources.filter((r) => !fixture.includes(r.urn) && r.options.aliasNames.length === 0);
        assert.deepEqual(
            came.map((r) => r.name).sort(),
            SITES.flatMap((s) => [
                ...PEERS[s].flatMap((p) => [`hubspoke-${s}-gw-${tunnelOf(s, p)}-conf`, `hubspoke-${s}-gw-${tunnelOf(s, p)}-secrets`]),
                ...PEERS[s].map((p) => `hubspoke-${s}-${tunnelOf(s, p)}-events-query`),
                ...softwareParts(prod, s),
                `hubspoke-${s}-gw-bootstrap`,
                `hubspoke-${s}-gw-events`,
                `hubspoke-${s}-gw-events-stream`,
            ]).sort(),
        );
        for (const s of SITES) {
            assert.ok(softwareParts(prod, s).length >= 1, `${s} has no software parameter`);
        }
        assert.equal(prod.resources.length, fixture.length - gone.length + came.length);
    });

    it("publishes each site's failover layout: its Elastic IP, every route table, the peers' ranges and gateways, then its two gateways, primary first", () => {
        for (const site of SITES) {
            const p = parameter(ha, `${PREFIX}/${site}/failover`);
            assert.equal(p.awsRegion, REGIONS[site]);
            assert.equal(p.inputs.type, "String");
            const layout = JSON.parse(parameterValue(p));
            const gateways = pair(site);
            assert.deepEqual(layout, {
                allocationId: `hubspoke-${site}-eip-alloc`,
                routeTables: routeTableIds(site),
                peerCidrs: PEERS[site].map((peer) => CIDR[peer]),
                probeTargets: PEERS[site].flatMap((peer) => PRIVATE_IPS[peer]),
                gateways: gateways.map((g, i) => ({
                    name: i === 0 ? site : `${site}-standby`,
                    networkInterfaceId: ha.recordOf(g.networkInterface).id,
                    privateIp: PRIVATE_IPS[site][i],
                    siteIp: siteIpOf(PRIVATE_IPS[site][i]),
                })),
            });
            assert.equal(layout.routeTables.length, site === "virginia" ? 1 : 2);
        }
    });

    it("publishes the same tunnels with the same keys for both gateways of a site, each conn leaving from its own site address", () => {
        const eip = ha.elasticIps;
        for (const site of SITES) {
            for (const peer of PEERS[site]) {
                const tunnel = tunnelOf(site, peer);
                const of = (gateway: string) => ({
                    conf: parameter(ha, `${PREFIX}/${gateway}/tunnels/${tunnel}/conf`),
                    secrets: parameter(ha, `${PREFIX}/${gateway}/tunnels/${tunnel}/secrets`),
                });
                const [primary, standby] = [of(site), of(`${site}-standby`)];
                for (const p of [primary.conf, primary.secrets, standby.conf, standby.secrets]) {
                    assert.equal(p.awsRegion, REGIONS[site]);
                }
                const secret = `${eip[site]} ${eip[peer]} : PSK "${ha.keys[tunnel]}"\n`;
                assert.equal(parameterValue(primary.secrets), secret);
                assert.equal(parameterValue(standby.secrets), secret, "the standby holds the same key, under the site's identity");
                const [a, b] = [primary.conf, standby.conf].map((p) => parameterValue(p).split("\n"));
                assert.equal(a.length, b.length);
                const differing = a.map((line, i) => [line, b[i]]).filter(([x, y]) => x !== y);
                assert.deepEqual(differing, [[`    left=${siteIpOf(PRIVATE_IPS[site][0])}`, `    left=${siteIpOf(PRIVATE_IPS[site][1])}`]]);
                assert.ok(a.includes(`    leftid=${eip[site]}`), "both identify as the site");
                // Both load it warm; hubspoke-failover initiates it on the active.
                assert.ok(a.includes("    auto=add") && b.includes("    auto=add"), `${tunnel}: a pair's conns do not start by themselves`);
            }
            // Each gateway reads its own path only.
            pair(site).forEach((g, i) => {
                const gateway = i === 0 ? site : `${site}-standby`;
                assert.equal(g.parameterPath, `${PREFIX}/${gateway}/tunnels`);
                const own = ha.resources.find(
                    (r) => r.type === ROLE_POLICY && r.name === `hubspoke-${site}-${i === 0 ? "" : "standby-"}gw-policy`,
                );
                assert.ok(own);
                const statements = JSON.parse(own.inputs.policy).Statement;
                const pathArn = `arn:aws:ssm:${REGIONS[site]}:${MOCK_ACCOUNT_ID}:parameter${PREFIX}/${gateway}/tunnels`;
                assert.deepEqual(
                    statements.filter((s: any) => String(s.Action).startsWith("ssm:GetParameter")).map((s: any) => s.Resource),
                    [pathArn, `${pathArn}/*`, `arn:aws:ssm:${REGIONS[site]}:${MOCK_ACCOUNT_ID}:parameter${PREFIX}/${gateway}/software/*`],
                );
            });
        }
        // prod: the conn leaves from the interface's primary address.
        for (const p of ofType(prod, "aws:ssm/parameter:Parameter").filter((x) => x.inputs.name.endsWith("/conf"))) {
            assert.match(parameterValue(p), /^ {4}left=%defaultroute$/m);
            assert.match(parameterValue(p), /^ {4}auto=start$/m);
        }
    });

    it("lets each standby's probes leave it: its security group allows ICMP to every probe target of its layout", () => {
        // The standby decides that the active failed when neither the active (across the VPC) nor any peer
        // gateway (through the tunnels, via the active) answers a ping (gateway/hubspoke-failover.sh, probe).
        // A security group filters what leaves an interface by destination, whatever the route: a ping to a
        // peer's gateway leaves the standby only if an egress rule of its group covers that address.
        const allows = (ruleType: string, groupId: string, ip: string) =>
            ofType(ha, ruleType).some((r) => {
                const block = parseCidr(r.inputs.securityGroupId === groupId ? (r.inputs.cidrIpv4 ?? "") : "");
                return typeof block !== "string" && containsIp(block, parseIp(ip)!) && ["-1", "icmp"].includes(String(r.inputs.ipProtocol));
            });
        const blocked: string[] = [];
        for (const site of SITES) {
            const layout = JSON.parse(parameterValue(parameter(ha, `${PREFIX}/${site}/failover`)));
            const standby = pair(site)[1];
            const group = ha.recordOf(standby.securityGroup).id;
            for (const target of [PRIVATE_IPS[site][0], ...layout.probeTargets]) {
                if (!allows("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", group, target)) {
                    blocked.push(`${site}-standby -> ${target}`);
                }
            }
        }
        assert.deepEqual(blocked, [], "probes the standby's own security group drops: only the active's private IP is ever probed");
    });

    it("frees each site's Elastic IP before its release, and hands a pair gateway's site over before its instance goes (the beforeDelete hooks)", () => {
        for (const [ev, pairs] of [
            [ha, true],
            [prod, false],
        ] as const) {
            const hooked = ev.resources.filter((r) => r.options.beforeDeleteHooks.length > 0);
            assert.deepEqual(
                hooked.map((r) => `${r.name} ${r.options.beforeDeleteHooks.join(",")}`).sort(),
                [
                    ...SITES.map((s) => `hubspoke-${s}-eip ${SITE_ADDRESS_HOOK}`),
                    ...(pairs
                        ? SITES.flatMap((s) => [`hubspoke-${s}-gw-instance`, `hubspoke-${s}-standby-gw-instance`]).map(
                              (n) => `${n} ${HANDOVER_HOOK}`,
                          )
                        : []),
                ].sort(),
            );
            // Registered on every run, whatever the sites: the engine calls a name kept in state.
            assert.deepEqual(
                Object.keys(ev.hooks).sort(),
                [HANDOVER_HOOK, READY_HOOK, HANDOVER_BEFORE_STOP_HOOK, READY_AFTER_START_HOOK, SITE_ADDRESS_HOOK].sort(),
            );
        }
    });

    it("replaces a pair one gateway after the other: the standby's instance waits for the primary's, ready, and only through dependsOn", () => {
        for (const site of SITES) {
            const [primary, standby] = [`hubspoke-${site}-gw-instance`, `hubspoke-${site}-standby-gw-instance`].map(
                (n) => ha.resources.find((r) => r.type === INSTANCE && r.name === n)!,
            );
            for (const r of [primary, standby]) {
                assert.deepEqual(
                    r.options.afterCreateHooks,
                    [READY_HOOK],
                    `${r.name}: its replacement is ready before the engine answers its registration`,
                );
                // An in-place type change stops and starts it: the same handover and wait around it.
                assert.deepEqual(r.options.updateHooks, [HANDOVER_BEFORE_STOP_HOOK, READY_AFTER_START_HOOK], r.name);
                assert.equal(r.options.deleteBeforeReplace, true, `${r.name}: one network interface, one instance at a time`);
            }
            assert.ok(standby.options.dependsOn.includes(primary.urn), `${site}: the standby's instance must wait for the primary's`);
            assert.ok(!primary.options.dependsOn.includes(standby.urn), `${site}: not the other way round`);
            // A property of the primary in the standby's inputs would make a deleteBeforeReplace replacement of
            // the primary replace the standby at the same time (the engine's calculateDependentReplacements).
            assert.ok(!JSON.stringify(standby.inputs).includes(primary.id), `${site}: the standby's inputs name the primary's instance`);
        }
        for (const r of ofType(prod, INSTANCE)) {
            assert.deepEqual(
                [r.options.afterCreateHooks, r.options.beforeDeleteHooks, r.options.updateHooks],
                [[], [], []],
                `${r.name}: a single gateway has no partner`,
            );
        }
    });

    it("each pair gateway's hooks find it: the drain parameter they write is the one its agent reads", () => {
        for (const site of SITES) {
            for (const [i, gateway] of [site, `${site}-standby`].entries()) {
                const instance = pair(site)[i].instance;
                const env = filesOfGateway(ha, ha.recordOf(instance)).find((f) => f.path === "/etc/hubspoke-vpn/gateway.env")!.content;
                const drainParameter = /^HUBSPOKE_DRAIN_PARAMETER='([^']+)'$/m.exec(env)?.[1];
                assert.equal(drainParameter, `${PREFIX}/${gateway}/tunnels/drain`);
                assert.deepEqual(ha.result.vpn.pairGateways.get(ha.recordOf(instance).name), {
                    stack: "prod-ha",
                    site,
                    awsRegion: REGIONS[site],
                    gateway,
                    drainParameter,
                    layoutParameter: `${PREFIX}/${site}/failover`,
                });
            }
        }
    });

    it("an image release replaces every gateway of prod-ha, and nothing else (the hooks make it rolling)", async () => {
        const later = await evaluateOffline({ ...stackConfig("prod-ha"), gatewayAmiRelease: "2023.9.20260101.0" }, { stack: "prod-ha" });
        const d = diffEvaluations(ha, later);
        assert.deepEqual(
            d.changed.map((c) => `${c.action} ${c.resource} ${c.inputs}`).sort(),
            SITES.flatMap((s) => [`hubspoke-${s}-gw-instance`, `hubspoke-${s}-standby-gw-instance`])
                .map((n) => `replace aws:ec2/instance:Instance::${n} ami`)
                .sort(),
        );
        assert.deepEqual([d.added, d.removed], [[], []]);
    });

    it("alarms once per tunnel end (not twice for a pair), once per site without a ready standby, and graphs StandbyReady and Failovers", () => {
        const tunnelAlarms = ofType(ha, ALARM).filter((a) => a.inputs.metricName === "TunnelUp");
        assert.deepEqual(
            tunnelAlarms.map((a) => `${a.awsRegion} ${a.name} ${a.inputs.dimensions.Region}:${a.inputs.dimensions.Tunnel}`).sort(),
            SITES.flatMap((s) =>
                PEERS[s].map((p) => `${REGIONS[s]} hubspoke-${s}-gw-${tunnelOf(s, p)}-down ${s}:${tunnelOf(s, p)}`),
            ).sort(),
        );
        const redundancy = ofType(ha, ALARM).filter((a) => a.inputs.metricName === "StandbyReady");
        assert.deepEqual(
            redundancy.map((a) => `${a.name} ${a.awsRegion}`).sort(),
            SITES.flatMap((s) => [
                `hubspoke-${s}-failover-redundancy ${REGIONS[s]}`,
                `hubspoke-${s}-failover-standby-silent ${REGIONS[s]}`,
            ]).sort(),
        );
        for (const a of redundancy) {
            const site = a.inputs.dimensions.Region as RegionName;
            assert.deepEqual(a.inputs.dimensions, { Stack: "prod-ha", Region: site });
            assert.equal(a.inputs.namespace, "HubspokeVpn");
            const topic = [`arn:aws:mock:::hubspoke-${site}-gw-alarms`];
            // Each pages through the site's topic: one into ALARM, the other into INSUFFICIENT_DATA.
            assert.deepEqual(a.inputs.alarmActions ?? a.inputs.insufficientDataActions, topic);
            assert.deepEqual(a.inputs.okActions, topic);
        }
        // Each instance still has its own recovery alarm.
        assert.equal(ofType(ha, ALARM).filter((a) => a.inputs.metricName === "StatusCheckFailed_System").length, 6);

        const graphs = (ev: Evaluation) => {
            const [dashboard] = ofType(ev, "aws:cloudwatch/dashboard:Dashboard");
            return JSON.parse(dashboard.inputs.dashboardBody)
                .widgets.filter((w: any) => w.type === "metric")
                .map((w: any) => w.properties);
        };
        const bySite = (metric: string) =>
            graphs(ha)
                .filter((g: any) => g.metrics.some((m: any[]) => m[1] === metric))
                .map((g: any) => g.metrics.map((m: any[]) => `${m[1]} ${m[5]}@${m[6].region}`));
        for (const metric of ["StandbyReady", "Failovers"]) {
            assert.deepEqual(bySite(metric), [SITES.map((s) => `${metric} ${s}@${REGIONS[s]}`)], `one ${metric} graph with every site`);
        }
        assert.equal(graphs(ha).length, 6, "two tunnel graphs, the two site graphs, then the two tunnels' bytes");
        const prodMetrics = graphs(prod).flatMap((g: any) => g.metrics.map((m: any[]) => m[1]));
        assert.deepEqual([...new Set(prodMetrics)], ["TunnelUp", "TunnelDataIn", "TunnelDataOut"]);
    });

    describe("the redundancy alarms over time (CloudWatch's documented evaluation, harness/alarmModel.ts)", () => {
        let notReady: ModelledAlarm;
        let silent: ModelledAlarm;
        before(() => {
            const alarm = (name: string) => plain(ofType(ha, ALARM).find((a) => a.name === name)!.inputs) as ModelledAlarm;
            notReady = alarm("hubspoke-sydney-failover-redundancy");
            silent = alarm("hubspoke-sydney-failover-standby-silent");
        });
        // One StandbyReady report a minute (the failover script's round), or none.
        const ready = (minutes: number): Report[] => Array(minutes).fill(1);
        const notReadyFor = (minutes: number): Report[] => Array(minutes).fill(0);
        const nothing = (minutes: number): Report[] => Array(minutes).fill(undefined);
        const paged = (run: Report[]) => ({
            notReady: pages(runAlarm(notReady, run)).map((p) => `${p.state} at ${p.period}`),
            silent: pages(runAlarm(silent, run)).map((p) => `${p.state} at ${p.period}`),
        });
        // Every notification, the OK mails included.
        const mails = (run: Report[]) => ({
            notReady: runAlarm(notReady, run).notifications.map((p) => `${p.state} at ${p.period}`),
            silent: runAlarm(silent, run).notifications.map((p) => `${p.state} at ${p.period}`),
        });

        it("a fresh deploy pages nothing, however long the standby takes to report first: one OK mail each, at its first report", () => {
            for (const boot of [2, 6, 30]) {
                const first = `OK at ${boot}`;
                assert.deepEqual(
                    mails([...nothing(boot), ...ready(60)]),
                    { notReady: [first], silent: [first] },
                    `first report after ${boot} min`,
                );
            }
        });

        it("a standby replaced (or rebooted) within the silent time sends nothing at all", () => {
            assert.deepEqual(mails([...ready(30), ...nothing(STANDBY_SILENT_MINUTES - 1), ...ready(30)]), {
                notReady: ["OK at 0"],
                silent: ["OK at 0"],
            });
        });

        it("a standby gone for good pages once, once it has been silent for the silent time (no earlier on AWS: its range can reach further back)", () => {
            assert.deepEqual(paged([...ready(30), ...nothing(120)]), {
                notReady: [],
                silent: [`INSUFFICIENT_DATA at ${30 + STANDBY_SILENT_MINUTES - 1}`],
            });
        });

        it("a standby that runs but reports it could not take over pages after 3 minutes, and clears when it is ready again", () => {
            const run = [...ready(30), ...notReadyFor(10), ...ready(10)];
            assert.deepEqual(paged(run), { notReady: ["ALARM at 32"], silent: [] });
            assert.deepEqual(
                runAlarm(notReady, run).notifications.map((n) => `${n.state} at ${n.period}`),
                ["OK at 0", "ALARM at 32", "OK at 40"],
            );
        });

        it("the model does tell: the alarm this replaced (missing data breaching, 3 of 3) paged at birth and on every replacement", () => {
            const before = { ...notReady, treatMissingData: "breaching", insufficientDataActions: notReady.okActions };
            const [birth, replacement, ...more] = pages(runAlarm(before, [...nothing(6), ...ready(30), ...nothing(5), ...ready(10)]));
            assert.ok(birth.state === "ALARM" && birth.period < 6, "paged before the standby's first report");
            assert.deepEqual(replacement, { period: 38, state: "ALARM" }, "paged 3 minutes into a 5-minute replacement");
            assert.deepEqual(more, []);
        });
    });

    describe("day two: converting the running prod stack to a standby in every site", () => {
        let converted: Evaluation;
        let d: StackDiff;
        before(async () => {
            // The same stack (URNs and parameter paths of prod) with Pulumi.prod-ha.yaml's regions.
            converted = await evaluateOffline(stackConfig("prod-ha"), { stack: "prod" });
            d = diffEvaluations(prod, converted);
            console.log(
                "      prod -> prod-ha:\n" +
                    [
                        ...d.changed.map((c) => `        ${c.action.padEnd(10)} ${c.resource} (${c.inputs.join(", ")})`),
                        ...d.removed.map((r) => `        delete     ${r}`),
                        `        added ${d.added.length}`,
                    ].join("\n"),
            );
        });

        it("replaces each primary instance (its bootstrap gains hubspoke-failover), updates its interface in place, deletes the site's Elastic IP association", () => {
            assert.deepEqual(
                d.changed.map((c) => `${c.action} ${c.resource} ${c.inputs}`),
                [
                    "update aws:cloudwatch/dashboard:Dashboard::hubspoke-virginia-dashboard dashboardBody",
                    // Each tunnel end's "why is it down" query reads its standby's events too.
                    ...["frankfurt", "sydney"]
                        .flatMap((spoke) =>
                            [spoke, "virginia"].map(
                                (end) =>
                                    `update aws:cloudwatch/queryDefinition:QueryDefinition::hubspoke-${end}-virginia-to-${spoke}-events-query logGroupNames`,
                            ),
                        )
                        .sort(),
                    ...["frankfurt", "sydney", "virginia"].map(
                        (s) => `replace aws:ec2/instance:Instance::hubspoke-${s}-gw-instance userDataBase64`,
                    ),
                    ...["frankfurt", "sydney", "virginia"].map(
                        (s) => `update ${ENI}::hubspoke-${s}-gw-eni privateIpListEnabled,privateIpLists,privateIps`,
                    ),
                    // The conn leaves from the site address now (left=), and loads warm (auto=add); the
                    // software gains hubspoke-failover: a new version, under a new path (its parts replaced).
                    ...["frankfurt", "sydney", "virginia"].flatMap((s) => [
                        ...softwareParts(prod, s).map((n) => `replace aws:ssm/parameter:Parameter::${n} description,insecureValue,name`),
                        ...PEERS[s as RegionName]
                            .map((p) => `hubspoke-${s}-gw-${tunnelOf(s as RegionName, p)}-conf`)
                            .sort()
                            .map((n) => `update aws:ssm/parameter:Parameter::${n} insecureValue`),
                    ]),
                ],
            );
            const was = (name: string) => prod.resources.find((r) => r.name === name)!;
            const now = (name: string) => converted.resources.find((r) => r.name === name)!;
            for (const s of SITES) {
                assert.ok(
                    filesOfGateway(converted, now(`hubspoke-${s}-gw-instance`)).some((f) => f.path === "/usr/local/sbin/hubspoke-failover"),
                );
                assert.deepEqual(now(`hubspoke-${s}-gw-eni`).inputs.privateIpLists, [
                    ...was(`hubspoke-${s}-gw-eni`).inputs.privateIps,
                    siteIpOf(was(`hubspoke-${s}-gw-eni`).inputs.privateIps[0]),
                ]);
                const conf = (ev: Evaluation) =>
                    ev.resources.filter(
                        (r) =>
                            r.type === "aws:ssm/parameter:Parameter" && r.name.startsWith(`hubspoke-${s}-gw-`) && r.name.endsWith("-conf"),
                    );
                const [oldConfs, newConfs] = [conf(prod), conf(converted)];
                assert.deepEqual(
                    newConfs.map((p) => p.name),
                    oldConfs.map((p) => p.name),
                );
                oldConfs.forEach((p, i) => {
                    const after = parameterValue(newConfs[i]).split("\n");
                    const changed = parameterValue(p)
                        .split("\n")
                        .map((line, j) => [line, after[j]])
                        .filter(([x, y]) => x !== y);
                    assert.deepEqual(
                        changed,
                        [
                            ["    left=%defaultroute", `    left=${siteIpOf(PRIVATE_IPS[s][0])}`],
                            ["    auto=start", "    auto=add"],
                        ],
                        p.name,
                    );
                });
            }
            assert.deepEqual(d.removed, SITES.map((s) => `${EIP_ASSOC}::hubspoke-${s}-gw-eip-assoc`).sort());
        });

        it("keeps the routes (not replaced, not moved), and replaces or deletes no VPC, subnet, route table, site Elastic IP or key", () => {
            const kept = [
                "aws:ec2/vpc:Vpc",
                "aws:ec2/subnet:Subnet",
                "aws:ec2/routeTable:RouteTable",
                "aws:ec2/routeTableAssociation:RouteTableAssociation",
                "aws:ec2/internetGateway:InternetGateway",
                ROUTE,
                "aws:ec2/eip:Eip",
                "random:index/randomPassword:RandomPassword",
                "aws:ssm/parameter:Parameter",
                "aws:iam/role:Role",
                "aws:ec2/securityGroup:SecurityGroup",
            ];
            // A gateway's software parts are replaced with every new version of it (a new path), by design.
            const touched = [...d.removed, ...d.changed.filter((c) => c.action === "replace").map((c) => c.resource)].filter(
                (k) => !SOFTWARE_PART.test(k),
            );
            assert.deepEqual(
                touched.filter((k) => kept.some((t) => k.startsWith(`${t}::`))),
                [],
            );
            assert.deepEqual(
                d.changed.filter((c) => kept.slice(0, 8).some((t) => c.resource.startsWith(`${t}::`))),
                [],
                "not even updated",
            );
            // The existing routes keep targeting the primary's interface, which the upgrade keeps.
            for (const r of ofType(converted, ROUTE).filter((x) => x.inputs.networkInterfaceId)) {
                assert.ok(r.inputs.networkInterfaceId.endsWith("-gw-eni-id") && !r.inputs.networkInterfaceId.includes("standby"), r.name);
                assert.ok(r.options.ignoreChanges.includes("networkInterfaceId"), r.name);
            }
            assert.deepEqual(converted.keys, prod.keys, "the keys stay");
            assert.deepEqual(converted.elasticIps, prod.elasticIps, "the peers' addresses stay");
            // What comes: the standbys and what makes each pair fail over; of a primary only its management
            // address and the ICMP rules of the standby's probes (to and from each peer's range), and the
            // parts its larger software needs beyond the ones it had.
            const primaryAdded = d.added.filter((k) => /hubspoke-\w+-gw-/.test(k) && !k.includes("standby") && !SOFTWARE_PART.test(k));
            assert.deepEqual(
                primaryAdded,
                SITES.flatMap((s) => [
                    `aws:ec2/eip:Eip::hubspoke-${s}-gw-mgmt-eip`,
                    `${EIP_ASSOC}::hubspoke-${s}-gw-mgmt-eip-assoc`,
                    ...PEERS[s].flatMap((peer) => {
                        const tunnel = s === "virginia" ? `virginia-to-${peer}` : `virginia-to-${s}`;
                        return [
                            `aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule::hubspoke-${s}-gw-${tunnel}-probe-out`,
                            `aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule::hubspoke-${s}-gw-${tunnel}-probe-in`,
                        ];
                    }),
                ]).sort(),
            );
        });
    });
});
