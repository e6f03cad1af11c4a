import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { readRuntimeConfig } from "../../config/load";
import { siteIpOf } from "../../config/types";
import { ConfigError, parseStackConfig } from "../../config/validate";
import { evaluateOffline } from "../../harness/evaluate";
import { prodConfig, prodEvaluation, prodWith, stackConfig } from "./fixtures";

/** Asserts that the config is refused with a problem at `path` whose message matches `message`. */
function refused(raw: Record<string, unknown>, path: string, message: RegExp): ConfigError {
    let error: unknown;
    try {
        parseStackConfig(raw);
    } catch (e) {
        error = e;
    }
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    const hit = error.problems.find((p) => p.path === path && message.test(p.message));
    assert.ok(hit, `no problem at ${path} matching ${message}; got:\n${error.message}`);
    // The thrown message names the key path and carries the explanation.
    assert.ok(error.message.includes(`${path}: ${hit.message}`));
    return error;
}

const R = "hubspoke-vpn:regions";

describe("stack config", () => {
    it("reads the prod stack as the seed's table", () => {
        const { spec, warnings } = parseStackConfig(prodConfig());
        assert.deepEqual(
            spec.regions.map((r) => [r.name, r.awsRegion, r.role, r.vpcCidr, r.vpnSubnet, r.gatewayPrivateIp]),
            [
                ["virginia", "us-east-1", "hub", "10.11.0.0/16", "10.11.4.0/24", "10.11.4.5"],
                ["sydney", "ap-southeast-2", "spoke", "12.11.0.0/16", "12.11.4.0/24", "12.11.4.5"],
                ["frankfurt", "eu-central-1", "spoke", "13.11.0.0/16", "13.11.4.0/24", "13.11.4.5"],
            ],
        );
        assert.deepEqual(spec.hub.workloadSubnets, []);
        assert.deepEqual(
            spec.spokes[0].workloadSubnets.map((s) => `${s.name}/${s.zone}=${s.cidr}`),
            ["fns/a=12.11.6.0/24", "fns/b=12.11.7.0/24", "epss/a=12.11.8.0/24", "epss/b=12.11.9.0/24"],
        );
        assert.deepEqual(
            spec.tunnels.map((t) => t.name),
            ["virginia-to-sydney", "virginia-to-frankfurt"],
        );
        assert.equal(spec.gatewayInstanceType, "t3.small");
        assert.equal(spec.pskRotation, 0);
        assert.equal(spec.flowLogRetentionDays, 365);
        assert.equal(spec.gatewayTerminationProtection, true);
        const defaults = parseStackConfig({ regions: prodConfig().regions }).spec;
        assert.deepEqual(
            [defaults.flowLogRetentionDays, defaults.gatewayTerminationProtection, defaults.gatewayInstanceType],
            [90, false, "t3.small"],
        );
        assert.equal(
            parseStackConfig({ ...prodConfig(), pskRotation: "3" }).spec.pskRotation,
            3,
            "pulumi config set stores numbers as text",
        );
        // The seed's spoke ranges are publicly routed space: a warning each, not an error.
        assert.equal(warnings.length, 2);
        assert.match(warnings[0], /regions\[1\]\.vpcCidr: "12\.11\.0\.0\/16" is outside the RFC 1918 private ranges/);
        assert.match(warnings[1], /regions\[2\]\.vpcCidr: "13\.11\.0\.0\/16"/);
    });

    it("warns nothing for private ranges", () => {
        const raw = prodWith((c) => {
            c.regions[1].vpcCidr = "10.12.0.0/16";
            c.regions[1].vpnSubnet = "10.12.4.0/24";
            c.regions[1].gatewayPrivateIp = "10.12.4.5";
            c.regions[1].workloadSubnets = { app: { a: "10.12.6.0/24" } };
            c.regions.pop();
        });
        assert.deepEqual(parseStackConfig(raw).warnings, []);
    });

    it("accepts any number of spokes, and puts the hub first wherever it is listed", () => {
        const raw = prodWith((c) => {
            c.regions.push({
                name: "tokyo",
                awsRegion: "ap-northeast-1",
                role: "spoke",
                vpcCidr: "10.14.0.0/16",
                vpnSubnet: "10.14.4.0/24",
                gatewayPrivateIp: "10.14.4.5",
            });
            c.regions.push(c.regions.shift());
        });
        const { spec } = parseStackConfig(raw);
        assert.deepEqual(
            spec.regions.map((r) => r.name),
            ["virginia", "sydney", "frankfurt", "tokyo"],
        );
        assert.equal(spec.regions[3].vpnZone, "a", "vpnZone defaults to a");
        assert.deepEqual(
            spec.tunnels.map((t) => t.name),
            ["virginia-to-sydney", "virginia-to-frankfurt", "virginia-to-tokyo"],
        );
    });

    it("accepts several regions in one AWS region (one VPC each), with one AWS provider for them", () => {
        const raw = prodWith((c) => {
            c.regions.push({
                name: "virginia2",
                awsRegion: "us-east-1",
                role: "spoke",
                vpcCidr: "10.21.0.0/16",
                vpnSubnet: "10.21.4.0/24",
                gatewayPrivateIp: "10.21.4.5",
            });
        });
        const { spec } = parseStackConfig(raw);
        assert.deepEqual(spec.awsRegions, ["us-east-1", "ap-southeast-2", "eu-central-1"]);
        assert.deepEqual(
            spec.peers.virginia2.map((p) => [p.tunnel.name, p.peer.name]),
            [["virginia-to-virginia2", "virginia"]],
        );
        assert.deepEqual(
            spec.peers.virginia.map((p) => p.peer.name),
            ["sydney", "frankfurt", "virginia2"],
        );
    });

    describe("as `pulumi up` hands it over (pulumi.runtime.allConfig(): every value as text)", () => {
        // What the CLI passes for a stack that sets only its regions: Pulumi.yaml's defaults, as text.
        const declared = YAML.parse(fs.readFileSync(path.join(__dirname, "..", "..", "Pulumi.yaml"), "utf8")).config as Record<string, any>;
        const runtime = (overrides: Record<string, string> = {}) =>
            readRuntimeConfig({
                ...Object.fromEntries(Object.entries(declared).map(([k, d]) => [k, String(d.default)])),
                "hubspoke-vpn:regions": JSON.stringify((prodConfig() as any).regions),
                "aws:region": "us-east-1",
                ...overrides,
            });

        it("every Pulumi.yaml default, read as text, validates to the same settings as the stack file", () => {
            assert.deepEqual(parseStackConfig(runtime()).spec, parseStackConfig({ regions: (prodConfig() as any).regions }).spec);
        });

        it("text keys stay text: a kernel flavour 6.10 is refused as 6.10, not read as the number 6.1", () => {
            refused(
                runtime({ "hubspoke-vpn:gatewayAmiKernel": "6.10" }),
                "hubspoke-vpn:gatewayAmiKernel",
                /^"6.10" is not a kernel flavour/,
            );
            assert.equal(parseStackConfig(runtime({ "hubspoke-vpn:gatewayAmiKernel": "6.12" })).spec.gatewayAmiKernel, "6.12");
            assert.equal(parseStackConfig(runtime({ "hubspoke-vpn:pskRotation": "3" })).spec.pskRotation, 3);
            assert.equal(
                parseStackConfig(runtime({ "hubspoke-vpn:gatewayTerminationProtection": "true" })).spec.gatewayTerminationProtection,
                true,
            );
        });
    });

    describe("refuses, naming the key and the value", () => {
        it("bad CIDR syntax", () => {
            refused(
                prodWith((c) => (c.regions[1].vpcCidr = "12.11.0/16")),
                `${R}[1].vpcCidr`,
                /"12\.11\.0\/16" has an invalid address part/,
            );
            refused(
                prodWith((c) => (c.regions[1].workloadSubnets.fns.a = "12.11.6.0/33")),
                `${R}[1].workloadSubnets.fns.a`,
                /"12\.11\.6\.0\/33" has prefix length \/33/,
            );
            refused(
                prodWith((c) => (c.regions[0].vpnSubnet = "10.11.4.7/24")),
                `${R}[0].vpnSubnet`,
                /host bits set/,
            );
        });

        it("a subnet outside its VPC", () => {
            refused(
                prodWith((c) => (c.regions[2].workloadSubnets.epss.b = "12.11.9.0/24")),
                `${R}[2].workloadSubnets.epss.b`,
                /"12\.11\.9\.0\/24" is outside the VPC range 13\.11\.0\.0\/16/,
            );
            refused(
                prodWith((c) => (c.regions[0].vpnSubnet = "10.12.4.0/24")),
                `${R}[0].vpnSubnet`,
                /outside the VPC range 10\.11\.0\.0\/16/,
            );
        });

        it("overlapping VPC ranges, the same or one inside the other", () => {
            refused(
                prodWith((c) => (c.regions[2].vpcCidr = "12.11.0.0/16")),
                `${R}[2].vpcCidr`,
                /"12\.11\.0\.0\/16" overlaps hubspoke-vpn:regions\[1\]\.vpcCidr \(12\.11\.0\.0\/16, region sydney\)/,
            );
            // A partial overlap: a check of identical ranges alone would let it through.
            refused(
                prodWith((c) => {
                    c.regions[2].vpcCidr = "12.11.128.0/17";
                    c.regions[2].vpnSubnet = "12.11.132.0/24";
                    c.regions[2].gatewayPrivateIp = "12.11.132.5";
                    c.regions[2].workloadSubnets = { fns: { a: "12.11.136.0/24" } };
                }),
                `${R}[2].vpcCidr`,
                /"12\.11\.128\.0\/17" overlaps hubspoke-vpn:regions\[1\]\.vpcCidr \(12\.11\.0\.0\/16, region sydney\)/,
            );
        });

        it("overlapping subnets", () => {
            refused(
                prodWith((c) => (c.regions[1].workloadSubnets.epss.a = "12.11.6.0/23")),
                `${R}[1].workloadSubnets.epss.a`,
                /"12\.11\.6\.0\/23" overlaps hubspoke-vpn:regions\[1\]\.workloadSubnets\.fns\.a/,
            );
            refused(
                prodWith((c) => (c.regions[1].workloadSubnets.fns.a = "12.11.4.0/25")),
                `${R}[1].workloadSubnets.fns.a`,
                /overlaps hubspoke-vpn:regions\[1\]\.vpnSubnet/,
            );
        });

        it("a gateway IP outside its VPN subnet", () => {
            refused(
                prodWith((c) => (c.regions[0].gatewayPrivateIp = "10.11.5.5")),
                `${R}[0].gatewayPrivateIp`,
                /"10\.11\.5\.5" is outside the VPN subnet 10\.11\.4\.0\/24/,
            );
            refused(
                prodWith((c) => (c.regions[0].gatewayPrivateIp = "10.11.4")),
                `${R}[0].gatewayPrivateIp`,
                /is not an IPv4 address/,
            );
        });

        it("a gateway IP on an address AWS reserves", () => {
            for (const ip of ["10.11.4.0", "10.11.4.1", "10.11.4.2", "10.11.4.3", "10.11.4.255"]) {
                refused(
                    prodWith((c) => (c.regions[0].gatewayPrivateIp = ip)),
                    `${R}[0].gatewayPrivateIp`,
                    new RegExp(
                        `"${ip.replace(/\./g, "\\.")}" is one of the five addresses AWS reserves in 10\\.11\\.4\\.0/24; use one in 10\\.11\\.4\\.4-10\\.11\\.4\\.254`,
                    ),
                );
            }
        });

        it("no hub, or two hubs", () => {
            refused(
                prodWith((c) => (c.regions[0].role = "spoke")),
                R,
                /has no hub/,
            );
            refused(
                prodWith((c) => (c.regions[1].role = "hub")),
                R,
                /has 2 hubs \(virginia, sydney\)/,
            );
        });

        it("no spoke", () => {
            refused(
                prodWith((c) => c.regions.splice(1)),
                R,
                /has no spoke/,
            );
        });

        it("duplicate names", () => {
            refused(
                prodWith((c) => (c.regions[2].name = "sydney")),
                `${R}[2].name`,
                /"sydney" is already used by hubspoke-vpn:regions\[1\]/,
            );
        });

        it("an AWS region the provider does not know, with a suggestion", () => {
            refused(
                prodWith((c) => (c.regions[2].awsRegion = "eu-centrall-1")),
                `${R}[2].awsRegion`,
                /^"eu-centrall-1" is not an AWS region the AWS provider knows; did you mean "eu-central-1"\?$/,
            );
            refused(
                prodWith((c) => (c.regions[1].awsRegion = "ap-southeast-9")),
                `${R}[1].awsRegion`,
                /not an AWS region the AWS provider knows; did you mean "ap-southeast-[0-7]"\?/,
            );
        });

        it("a release that is not Amazon Linux 2023's, and proposals that are not one libreswan token", () => {
            refused(
                { ...prodConfig(), gatewayAmiRelease: "latest" },
                "hubspoke-vpn:gatewayAmiRelease",
                /"latest" is not an Amazon Linux 2023 release/,
            );
            refused(
                { ...prodConfig(), espProposals: "aes256; include /etc" },
                "hubspoke-vpn:espProposals",
                /is not a libreswan proposal list/,
            );
            refused({ ...prodConfig(), ikeProposals: 3 }, "hubspoke-vpn:ikeProposals", /^3 is not a libreswan proposal list/);
        });

        it("a kernel flavour AL2023 publishes no image for", () => {
            refused(
                { ...prodConfig(), gatewayAmiKernel: "6.10" },
                "hubspoke-vpn:gatewayAmiKernel",
                /"6.10" is not a kernel flavour Amazon Linux 2023 publishes images for \(expected one of 6.1, 6.12, 6.18\)/,
            );
            refused(
                { ...prodConfig(), gatewayAmiKernel: 6.1 },
                "hubspoke-vpn:gatewayAmiKernel",
                /^6.1 is a number; write the kernel flavour as a string/,
            );
            assert.equal(parseStackConfig(prodConfig()).spec.gatewayAmiKernel, "6.1");
            assert.equal(parseStackConfig({ ...prodConfig(), gatewayAmiKernel: "6.18" }).spec.gatewayAmiKernel, "6.18");
        });

        it("an unknown zone letter", () => {
            refused(
                prodWith((c) => (c.regions[1].workloadSubnets.fns.g = "12.11.10.0/24")),
                `${R}[1].workloadSubnets.fns.g`,
                /"g" is not a zone letter; expected one of a, b, c, d, e, f/,
            );
            refused(
                prodWith((c) => (c.regions[0].vpnZone = "z")),
                `${R}[0].vpnZone`,
                /"z" is not a zone letter/,
            );
        });

        it("unknown keys, missing keys and wrong types", () => {
            refused(
                prodWith((c) => (c.regions[0].vpcCdir = "10.0.0.0/16")),
                `${R}[0].vpcCdir`,
                /unknown key; expected one of name, awsRegion/,
            );
            refused(
                prodWith((c) => delete c.regions[0].awsRegion),
                `${R}[0].awsRegion`,
                /is missing/,
            );
            refused(
                prodWith((c) => (c.regions[0].role = "center")),
                `${R}[0].role`,
                /"center" is not a role; expected "hub" or "spoke"/,
            );
            refused(
                prodWith((c) => (c.regions[0].awsRegion = "virginia")),
                `${R}[0].awsRegion`,
                /"virginia" is not an AWS region the AWS provider knows \(expected e.g. "us-east-1"\)/,
            );
            refused(
                prodWith((c) => (c.regions[0].name = "North Virginia")),
                `${R}[0].name`,
                /not a valid region name/,
            );
            refused(
                prodWith((c) => (c.gatewayInstanceType = "big")),
                "hubspoke-vpn:gatewayInstanceType",
                /"big" is not an EC2 instance type/,
            );
            refused(
                prodWith((c) => (c.region = [])),
                "hubspoke-vpn:region",
                /unknown config key/,
            );
            refused(
                prodWith((c) => (c.flowLogRetentionDays = 10)),
                "hubspoke-vpn:flowLogRetentionDays",
                /10 is not a retention CloudWatch Logs accepts; use one of 1, 3, 5/,
            );
            refused(
                prodWith((c) => (c.gatewayTerminationProtection = "yes")),
                "hubspoke-vpn:gatewayTerminationProtection",
                /"yes" is not true or false/,
            );
            refused(
                prodWith((c) => (c.alarmEmail = "netops")),
                "hubspoke-vpn:alarmEmail",
                /"netops" is not an e-mail address/,
            );
            refused(
                prodWith((c) => (c.pskRotation = -1)),
                "hubspoke-vpn:pskRotation",
                /-1 is not a whole number >= 0/,
            );
            refused(
                prodWith((c) => (c.pskRotation = "soon")),
                "hubspoke-vpn:pskRotation",
                /"soon" is not a whole number/,
            );
            refused({}, R, /is missing/);
        });

        it("every problem at once", () => {
            const error = refused(
                prodWith((c) => {
                    c.regions[1].vpcCidr = "12.11.0.0/33";
                    c.regions[2].gatewayPrivateIp = "13.11.4.255";
                    c.regions[2].workloadSubnets.fns.q = "13.11.20.0/24";
                }),
                `${R}[1].vpcCidr`,
                /prefix length/,
            );
            assert.equal(error.problems.length, 3, error.message);
            assert.match(error.message, /^Invalid stack configuration \(3 problems\):/);
        });
    });

    describe("a standby gateway (regions[].standby)", () => {
        const SYDNEY_STANDBY = { vpnSubnet: "12.11.5.0/24", vpnZone: "b", gatewayPrivateIp: "12.11.5.5" };
        /** prod with a standby in sydney (regions[1]), changed by `change`. */
        const withStandby = (change: (standby: any, region: any) => void = () => {}) =>
            prodWith((c) => {
                c.regions[1].standby = { ...SYDNEY_STANDBY };
                change(c.regions[1].standby, c.regions[1]);
            });
        const S = `${R}[1].standby`;

        it("parses, and its site address is the next address", () => {
            const { spec } = parseStackConfig(withStandby());
            assert.deepEqual(spec.regions[1].standby, SYDNEY_STANDBY);
            assert.equal(spec.regions[0].standby, undefined);
            assert.equal(siteIpOf(spec.regions[1].standby!.gatewayPrivateIp), "12.11.5.6");
            assert.equal(siteIpOf(spec.regions[1].gatewayPrivateIp), "12.11.4.6");
            assert.equal(siteIpOf("10.0.0.255"), "10.0.1.0");
            const ha = parseStackConfig(stackConfig("prod-ha")).spec;
            assert.deepEqual(
                ha.regions.map((r) => [r.name, r.standby]),
                [
                    ["virginia", { vpnSubnet: "10.11.5.0/24", vpnZone: "b", gatewayPrivateIp: "10.11.5.5" }],
                    ["sydney", SYDNEY_STANDBY],
                    ["frankfurt", { vpnSubnet: "13.11.5.0/24", vpnZone: "b", gatewayPrivateIp: "13.11.5.5" }],
                ],
            );
        });

        it("refuses a standby in the primary's zone, suggesting another", () => {
            refused(
                withStandby((s) => (s.vpnZone = "a")),
                `${S}.vpnZone`,
                /^"a" is the zone of the primary gateway \(vpnZone\); a standby must be in another zone to survive it, e\.g\. "b"$/,
            );
            // The primary's zone as set, not the default.
            refused(
                withStandby((s, r) => {
                    r.vpnZone = "c";
                    s.vpnZone = "c";
                }),
                `${S}.vpnZone`,
                /"c" is the zone of the primary gateway.*e\.g\. "a"/,
            );
            refused(
                withStandby((s) => (s.vpnZone = "q")),
                `${S}.vpnZone`,
                /"q" is not a zone letter/,
            );
        });

        it("refuses a standby subnet overlapping the VPN subnet or a workload subnet, or outside the VPC", () => {
            refused(
                withStandby((s) => {
                    s.vpnSubnet = "12.11.4.128/25";
                    s.gatewayPrivateIp = "12.11.4.133";
                }),
                `${S}.vpnSubnet`,
                /^"12\.11\.4\.128\/25" overlaps hubspoke-vpn:regions\[1\]\.vpnSubnet \(12\.11\.4\.0\/24\)$/,
            );
            refused(
                withStandby((s) => {
                    s.vpnSubnet = "12.11.8.0/24";
                    s.gatewayPrivateIp = "12.11.8.5";
                }),
                `${S}.vpnSubnet`,
                /"12\.11\.8\.0\/24" overlaps hubspoke-vpn:regions\[1\]\.workloadSubnets\.epss\.a \(12\.11\.8\.0\/24\)/,
            );
            refused(
                withStandby((s) => {
                    s.vpnSubnet = "12.12.5.0/24";
                    s.gatewayPrivateIp = "12.12.5.5";
                }),
                `${S}.vpnSubnet`,
                /^"12\.12\.5\.0\/24" is outside the VPC range 12\.11\.0\.0\/16$/,
            );
            refused(
                withStandby((s) => (s.vpnSubnet = "12.11.5.0/33")),
                `${S}.vpnSubnet`,
                /prefix length \/33/,
            );
        });

        it("refuses a standby IP outside its subnet or on an address AWS reserves", () => {
            refused(
                withStandby((s) => (s.gatewayPrivateIp = "12.11.4.9")),
                `${S}.gatewayPrivateIp`,
                /^"12\.11\.4\.9" is outside the VPN subnet 12\.11\.5\.0\/24$/,
            );
            for (const ip of ["12.11.5.0", "12.11.5.1", "12.11.5.2", "12.11.5.3", "12.11.5.255"]) {
                refused(
                    withStandby((s) => (s.gatewayPrivateIp = ip)),
                    `${S}.gatewayPrivateIp`,
                    new RegExp(`^"${ip.replace(/\./g, "\\.")}" is one of the five addresses AWS reserves in 12\\.11\\.5\\.0/24`),
                );
            }
            refused(
                withStandby((s) => (s.gatewayPrivateIp = "12.11.5")),
                `${S}.gatewayPrivateIp`,
                /is not an IPv4 address/,
            );
        });

        it("refuses, in a site with a standby, a gateway IP whose next address (the site address) is reserved", () => {
            // The standby's: 12.11.5.254 is usable, its site address 12.11.5.255 is not.
            const error = refused(
                withStandby((s) => (s.gatewayPrivateIp = "12.11.5.254")),
                `${S}.gatewayPrivateIp`,
                /^"12\.11\.5\.254": in a site with a standby, the next address \(12\.11\.5\.255\) holds the site's Elastic IP and must be usable in 12\.11\.5\.0\/24 too; use an address in 12\.11\.5\.4-12\.11\.5\.253$/,
            );
            assert.equal(error.problems.length, 1, error.message);
            // The primary's, in a site with a standby.
            refused(
                withStandby((_s, r) => (r.gatewayPrivateIp = "12.11.4.254")),
                `${R}[1].gatewayPrivateIp`,
                /^"12\.11\.4\.254": in a site with a standby, the next address \(12\.11\.4\.255\).*use an address in 12\.11\.4\.4-12\.11\.4\.253$/,
            );
            // Without a standby, the last usable address is a gateway's like any other.
            assert.equal(
                parseStackConfig(prodWith((c) => (c.regions[1].gatewayPrivateIp = "12.11.4.254"))).spec.regions[1].gatewayPrivateIp,
                "12.11.4.254",
            );
            assert.equal(
                parseStackConfig(withStandby((s) => (s.gatewayPrivateIp = "12.11.5.253"))).spec.regions[1].standby?.gatewayPrivateIp,
                "12.11.5.253",
            );
        });

        it("refuses unknown or missing keys under standby, and a standby that is not a map", () => {
            refused(
                withStandby((s) => (s.privateIp = "12.11.5.6")),
                `${S}.privateIp`,
                /^unknown key; expected one of vpnSubnet, vpnZone, gatewayPrivateIp$/,
            );
            refused(
                withStandby((s) => delete s.vpnZone),
                `${S}.vpnZone`,
                /is missing/,
            );
            refused(
                withStandby((s) => delete s.gatewayPrivateIp),
                `${S}.gatewayPrivateIp`,
                /is missing/,
            );
            for (const [value, shown] of [
                ["b", '"b"'],
                [true, "true"],
                [null, "null"],
                [["12.11.5.0/24"], '\\["12\\.11\\.5\\.0/24"\\]'],
            ] as const) {
                refused(
                    prodWith((c) => (c.regions[1].standby = value)),
                    S,
                    new RegExp(`^${shown} is not a standby \\(expected a map with vpnSubnet, vpnZone, gatewayPrivateIp\\)$`),
                );
            }
        });

        it("registers no resource when a standby is bad", async () => {
            const recorded: string[] = [];
            await assert.rejects(
                evaluateOffline(
                    withStandby((s) => (s.vpnZone = "a")),
                    { stack: "prod", onRegister: (r) => recorded.push(r.type) },
                ),
                (e: unknown) => e instanceof ConfigError && e.message.includes(`${S}.vpnZone: "a" is the zone of the primary gateway`),
            );
            assert.deepEqual(recorded, []);
        });
    });

    it("registers no resource when the config is bad", async () => {
        const recorded: string[] = [];
        await assert.rejects(
            evaluateOffline(
                prodWith((c) => (c.regions[1].role = "hub")),
                { stack: "prod", onRegister: (r) => recorded.push(r.type) },
            ),
            (e: unknown) => e instanceof ConfigError && /has 2 hubs/.test(e.message),
        );
        assert.deepEqual(recorded, []);
        // The same harness does record resources for a good config, so the empty list above means something.
        assert.ok((await prodEvaluation()).resources.some((r) => r.type === "aws:ec2/instance:Instance"));
    });
});
