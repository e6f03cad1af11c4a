import { strict as assert } from "node:assert";
import type { ResourceValidationArgs, ResourceValidationPolicy } from "@pulumi/policy";
import { plain } from "../../harness/evaluate";
import { policies } from "../../policy/policies";
import { prodEvaluation } from "./fixtures";

/** Runs one policy on a resource, as the policy host would; returns the violations reported. */
function violations(policy: ResourceValidationPolicy, type: string, props: Record<string, unknown>, name = "r"): string[] {
    const reported: string[] = [];
    const validations = ([] as any[]).concat(policy.validateResource ?? []);
    const args = {
        type,
        props,
        name,
        urn: `urn:pulumi:prod::hubspoke-vpn::${type}::${name}`,
        opts: {},
    } as unknown as ResourceValidationArgs;
    for (const v of validations) {
        v(args, (message: string) => reported.push(message));
    }
    return reported;
}

const policy = (name: string) => {
    const p = policies.find((x) => x.name === name);
    assert.ok(p, `no policy ${name}`);
    return p;
};

const INSTANCE = "aws:ec2/instance:Instance";
const goodInstance = {
    metadataOptions: { httpTokens: "required", httpPutResponseHopLimit: 1 },
    rootBlockDevice: { encrypted: true },
    userData: "#cloud-config\nwrite_files: []\n",
    sourceDestCheck: false,
    tags: { Role: "vpn-gateway" },
};

describe("policy pack", () => {
    it("declares every rule mandatory", () => {
        assert.deepEqual(
            policies.map((p) => `${p.name}:${p.enforcementLevel}`),
            [
                "no-ingress-from-anywhere:mandatory",
                "imdsv2-required:mandatory",
                "encrypted-volumes:mandatory",
                "no-key-in-user-data:mandatory",
                "event-logs-bounded-and-scoped:mandatory",
                "source-dest-check-only-on-gateways:mandatory",
            ],
        );
    });

    it("no-ingress-from-anywhere: passes a peer /32, fails 0.0.0.0/0 and ::/0 in any rule form", () => {
        const p = policy("no-ingress-from-anywhere");
        const rule = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule";
        assert.deepEqual(violations(p, rule, { cidrIpv4: "192.0.2.12/32", ipProtocol: "udp", fromPort: 500, toPort: 500 }), []);
        assert.match(
            violations(p, rule, { cidrIpv4: "0.0.0.0/0", ipProtocol: "tcp", fromPort: 22, toPort: 22 })[0],
            /from 0\.0\.0\.0\/0 \(protocol tcp, ports 22-22\) opens the group to the whole internet/,
        );
        assert.equal(violations(p, rule, { cidrIpv6: "::/0", ipProtocol: "-1" }).length, 1);
        assert.equal(
            violations(p, "aws:ec2/securityGroup:SecurityGroup", {
                ingress: [{ protocol: "tcp", fromPort: 22, toPort: 22, cidrBlocks: ["0.0.0.0/0"] }],
            }).length,
            1,
        );
        assert.equal(
            violations(p, "aws:ec2/securityGroupRule:SecurityGroupRule", { type: "ingress", protocol: "-1", cidrBlocks: ["0.0.0.0/0"] })
                .length,
            1,
        );
        // Egress to anywhere is not this rule's business.
        assert.deepEqual(
            violations(p, "aws:ec2/securityGroupRule:SecurityGroupRule", { type: "egress", protocol: "tcp", cidrBlocks: ["0.0.0.0/0"] }),
            [],
        );
    });

    it("imdsv2-required: passes required tokens with hop limit 1, fails optional tokens or a larger hop limit", () => {
        const p = policy("imdsv2-required");
        assert.deepEqual(violations(p, INSTANCE, goodInstance), []);
        assert.match(
            violations(p, INSTANCE, { ...goodInstance, metadataOptions: undefined })[0],
            /httpTokens is "optional"; set "required"/,
        );
        assert.match(
            violations(p, INSTANCE, { ...goodInstance, metadataOptions: { httpTokens: "required", httpPutResponseHopLimit: 2 } })[0],
            /hop ?Limit is 2/i,
        );
    });

    it("encrypted-volumes: fails an unencrypted root or EBS volume", () => {
        const p = policy("encrypted-volumes");
        assert.deepEqual(violations(p, INSTANCE, goodInstance), []);
        assert.match(
            violations(p, INSTANCE, { ...goodInstance, rootBlockDevice: { encrypted: false } })[0],
            /rootBlockDevice.encrypted is not true/,
        );
        assert.match(
            violations(p, INSTANCE, { ...goodInstance, ebsBlockDevices: [{ deviceName: "/dev/sdf" }] })[0],
            /\/dev\/sdf is not encrypted/,
        );
        assert.equal(violations(p, "aws:ebs/volume:Volume", { size: 8 }).length, 1);
    });

    it("no-key-in-user-data: passes the key-fetching script, fails a secrets line with a key, plain or base64", () => {
        const p = policy("no-key-in-user-data");
        assert.deepEqual(violations(p, INSTANCE, { ...goodInstance, userData: `line=$(printf '%s %s : PSK "%s"' "$a" "$b" "$key")` }), []);
        const leaked = `#cloud-config\nwrite_files:\n  - content: |\n      192.0.2.11 192.0.2.12 : PSK "${"k".repeat(48)}"\n`;
        assert.match(violations(p, INSTANCE, { ...goodInstance, userData: leaked })[0], /user data contains a pre-shared key/);
        assert.equal(
            violations(p, "aws:ec2/launchTemplate:LaunchTemplate", { userData: Buffer.from(leaked).toString("base64") }).length,
            1,
        );
        // Gzip-compressed, as the gateways' user data is sent.
        const gzipped = require("node:zlib").gzipSync(Buffer.from(leaked)).toString("base64");
        assert.equal(violations(p, INSTANCE, { ...goodInstance, userData: undefined, userDataBase64: gzipped }).length, 1);
        const clean = require("node:zlib").gzipSync(Buffer.from("#cloud-config\nwrite_files: []\n")).toString("base64");
        assert.deepEqual(violations(p, INSTANCE, { ...goodInstance, userData: undefined, userDataBase64: clean }), []);
    });

    it("event-logs-bounded-and-scoped: passes a gateway's own stream and a retention, fails forever and a wildcard", () => {
        const p = policy("event-logs-bounded-and-scoped");
        const GROUP = "aws:cloudwatch/logGroup:LogGroup";
        assert.deepEqual(violations(p, GROUP, { retentionInDays: 90 }), []);
        assert.deepEqual(violations(p, GROUP, {}, "events"), [
            "events keeps its events forever (retentionInDays unset); set the days CloudWatch Logs keeps them",
        ]);
        const rolePolicy = (Action: unknown, Resource: unknown) => ({
            policy: JSON.stringify({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action, Resource }] }),
        });
        const stream = "arn:aws:logs:us-east-1:123456789012:log-group:/hubspoke-vpn/prod/tunnel-events/virginia:log-stream:virginia";
        const ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy";
        assert.deepEqual(violations(p, ROLE_POLICY, rolePolicy("logs:PutLogEvents", stream)), []);
        // VPC flow logs' role: one group and its streams.
        assert.deepEqual(
            violations(
                p,
                ROLE_POLICY,
                rolePolicy(
                    ["logs:CreateLogStream", "logs:PutLogEvents"],
                    ["arn:aws:logs:us-east-1:1:log-group:f", "arn:aws:logs:us-east-1:1:log-group:f:*"],
                ),
            ),
            [],
        );
        // Other services' actions on every resource are not this rule's business.
        assert.deepEqual(violations(p, ROLE_POLICY, rolePolicy("cloudwatch:PutMetricData", "*")), []);
        for (const [action, resource] of [
            ["logs:PutLogEvents", "*"],
            ["logs:*", "arn:aws:logs:*:*:*"],
            ["*", "arn:aws:logs:us-east-1:123456789012:log-group:/hubspoke-vpn/*"],
            ["logs:Put*", ["arn:aws:logs:us-east-1:123456789012:log-group:*:log-stream:virginia"]],
        ]) {
            const found = violations(p, ROLE_POLICY, rolePolicy(action, resource), "gw-policy");
            assert.equal(found.length, 1, `${action} on ${resource}`);
            assert.match(found[0], /^gw-policy lets its role put log events into \S+; name one log group/);
        }
    });

    it("source-dest-check-only-on-gateways: fails an untagged interface or instance that forwards", () => {
        const p = policy("source-dest-check-only-on-gateways");
        assert.deepEqual(
            violations(p, "aws:ec2/networkInterface:NetworkInterface", { sourceDestCheck: false, tags: { Role: "vpn-gateway" } }),
            [],
        );
        assert.match(
            violations(p, "aws:ec2/networkInterface:NetworkInterface", { sourceDestCheck: false, tags: { Name: "x" } }, "eni")[0],
            /eni disables the source\/destination check but is not tagged Role=vpn-gateway/,
        );
        assert.equal(violations(p, INSTANCE, { ...goodInstance, tags: {} }).length, 1);
        assert.deepEqual(violations(p, INSTANCE, { ...goodInstance, sourceDestCheck: true, tags: {} }), []);
    });

    it("passes every resource of the prod stack", async () => {
        const ev = await prodEvaluation();
        const found: string[] = [];
        for (const r of ev.resources) {
            for (const p of policies) {
                found.push(...violations(p, r.type, plain(r.inputs), r.name).map((v) => `${p.name} ${r.name}: ${v}`));
            }
        }
        assert.deepEqual(found, []);
    });
});
