/**
 * The hubspoke-vpn policies: rules every preview and update must pass, for this program and for
 * any change to it. Plain functions over resource properties, so they are unit-tested directly
 * (tests/unit/policy.test.ts) and run by the CLI through policy/index.ts.
 */
import * as zlib from "node:zlib";
import type { ReportViolation, ResourceValidationArgs, ResourceValidationPolicy } from "@pulumi/policy";
import { GATEWAY_TAG } from "../gateway/contract";

const INSTANCE = "aws:ec2/instance:Instance";
const NETWORK_INTERFACE = "aws:ec2/networkInterface:NetworkInterface";

/** A pre-shared key literal in a libreswan secrets line (a printf template such as `PSK "%s"`, or a pattern that matches one, is not one). */
const PSK_LITERAL = /PSK\s+"[A-Za-z0-9._+=~/-]{8,}"/;

function typed(type: string | string[], check: (props: any, args: ResourceValidationArgs, report: ReportViolation) => void) {
    const types = Array.isArray(type) ? type : [type];
    return (args: ResourceValidationArgs, report: ReportViolation) => {
        if (types.includes(args.type)) {
            check(args.props ?? {}, args, report);
        }
    };
}

/** Base64 user data as cloud-init reads it: inflated when gzip-compressed; "" when it is not base64. */
function decodeUserData(text: string): string {
    if (text.length === 0 || !/^[A-Za-z0-9+/=\s]+$/.test(text)) {
        return "";
    }
    const bytes = Buffer.from(text, "base64");
    try {
        return bytes[0] === 0x1f && bytes[1] === 0x8b ? zlib.gunzipSync(bytes).toString("utf8") : bytes.toString("utf8");
    } catch {
        return "";
    }
}

const isGateway = (props: any) => props.tags?.[GATEWAY_TAG.key] === GATEWAY_TAG.value;

/** An action pattern of a statement that covers logs:PutLogEvents (`*`, `logs:*`, `logs:Put*`, ...). */
const coversPutLogEvents = (action: string) =>
    new RegExp(`^${action.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`, "i").test("logs:PutLogEvents");

/** A resource that names one log group, not a pattern: no wildcard but the `:*` of "its streams". */
const namesOneLogGroup = (resource: string) => !resource.replace(/:\*$/, "").includes("*");

/** The statements of an IAM policy document (JSON text); none when it is not one. */
function statementsOf(document: unknown): any[] {
    if (typeof document !== "string") return [];
    try {
        const parsed = JSON.parse(document);
        return [parsed.Statement ?? []].flat();
    } catch {
        return [];
    }
}

export const policies: ResourceValidationPolicy[] = [
    {
        name: "no-ingress-from-anywhere",
        description:
            "Security groups must not accept traffic from 0.0.0.0/0 or ::/0; gateways accept IPsec from their peers' Elastic IPs only.",
        enforcementLevel: "mandatory",
        validateResource: [
            typed("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", (p, _a, report) => {
                if (p.cidrIpv4 === "0.0.0.0/0" || p.cidrIpv6 === "::/0") {
                    report(
                        `ingress rule from ${p.cidrIpv4 ?? p.cidrIpv6} (protocol ${p.ipProtocol}, ports ${p.fromPort ?? "all"}-${p.toPort ?? "all"}) opens the group to the whole internet`,
                    );
                }
            }),
            typed(["aws:ec2/securityGroup:SecurityGroup", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"], (p, _a, report) => {
                for (const rule of p.ingress ?? []) {
                    if ((rule.cidrBlocks ?? []).includes("0.0.0.0/0") || (rule.ipv6CidrBlocks ?? []).includes("::/0")) {
                        report(
                            `inline ingress rule (protocol ${rule.protocol}, ports ${rule.fromPort}-${rule.toPort}) is open to the whole internet`,
                        );
                    }
                }
            }),
            typed("aws:ec2/securityGroupRule:SecurityGroupRule", (p, _a, report) => {
                if (p.type === "ingress" && ((p.cidrBlocks ?? []).includes("0.0.0.0/0") || (p.ipv6CidrBlocks ?? []).includes("::/0"))) {
                    report(`ingress rule (protocol ${p.protocol}, ports ${p.fromPort}-${p.toPort}) is open to the whole internet`);
                }
            }),
        ],
    },
    {
        name: "imdsv2-required",
        description: "Instances must require IMDSv2 session tokens, with a response hop limit of 1.",
        enforcementLevel: "mandatory",
        validateResource: typed(INSTANCE, (p, _a, report) => {
            const m = p.metadataOptions ?? {};
            if (m.httpTokens !== "required") {
                report(`metadataOptions.httpTokens is ${JSON.stringify(m.httpTokens ?? "optional")}; set "required" (IMDSv2)`);
            }
            if (m.httpPutResponseHopLimit !== undefined && m.httpPutResponseHopLimit > 1) {
                report(`metadataOptions.httpPutResponseHopLimit is ${m.httpPutResponseHopLimit}; set 1 so tokens never leave the instance`);
            }
        }),
    },
    {
        name: "encrypted-volumes",
        description: "Instance root and EBS volumes must be encrypted.",
        enforcementLevel: "mandatory",
        validateResource: [
            typed(INSTANCE, (p, _a, report) => {
                if (p.rootBlockDevice?.encrypted !== true) {
                    report("rootBlockDevice.encrypted is not true");
                }
                for (const d of p.ebsBlockDevices ?? []) {
                    if (d.encrypted !== true) {
                        report(`EBS volume ${d.deviceName} is not encrypted`);
                    }
                }
            }),
            typed("aws:ebs/volume:Volume", (p, _a, report) => {
                if (p.encrypted !== true) {
                    report("EBS volume is not encrypted");
                }
            }),
        ],
    },
    {
        name: "no-key-in-user-data",
        description:
            "User data must not carry a pre-shared key: it is readable with ec2:DescribeInstanceAttribute. Keys come from SSM Parameter Store at boot.",
        enforcementLevel: "mandatory",
        validateResource: typed([INSTANCE, "aws:ec2/launchTemplate:LaunchTemplate"], (p, _a, report) => {
            // Instances take user data plain (`userData`) or base64 (`userDataBase64`, gzip inside for ours);
            // launch templates take base64.
            for (const raw of [p.userData, p.userDataBase64]) {
                const text = typeof raw === "string" ? raw : "";
                if (PSK_LITERAL.test(text) || PSK_LITERAL.test(decodeUserData(text))) {
                    report('user data contains a pre-shared key (a `PSK "..."` secrets line); deliver keys through SSM Parameter Store');
                    return;
                }
            }
        }),
    },
    {
        name: "event-logs-bounded-and-scoped",
        description:
            "Log groups keep their events for a set number of days, and a policy may let a role put log events only into named log groups (a gateway: its own stream), never into every group of the account.",
        enforcementLevel: "mandatory",
        validateResource: [
            typed("aws:cloudwatch/logGroup:LogGroup", (p, args, report) => {
                if (!(p.retentionInDays > 0)) {
                    report(`${args.name} keeps its events forever (retentionInDays unset); set the days CloudWatch Logs keeps them`);
                }
            }),
            typed(["aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"], (p, args, report) => {
                for (const s of statementsOf(p.policy)) {
                    const actions = [s.Action ?? []].flat().map(String);
                    if (s.Effect !== "Allow" || !actions.some(coversPutLogEvents)) continue;
                    for (const resource of [s.Resource ?? "*"].flat().map(String)) {
                        if (!namesOneLogGroup(resource)) {
                            report(
                                `${args.name} lets its role put log events into ${resource}; name one log group (arn:aws:logs:REGION:ACCOUNT:log-group:NAME:log-stream:STREAM)`,
                            );
                        }
                    }
                }
            }),
        ],
    },
    {
        name: "source-dest-check-only-on-gateways",
        description: `Only resources tagged ${GATEWAY_TAG.key}=${GATEWAY_TAG.value} may disable the source/destination check.`,
        enforcementLevel: "mandatory",
        validateResource: typed([INSTANCE, NETWORK_INTERFACE], (p, args, report) => {
            if (p.sourceDestCheck === false && !isGateway(p)) {
                report(`${args.name} disables the source/destination check but is not tagged ${GATEWAY_TAG.key}=${GATEWAY_TAG.value}`);
            }
        }),
    },
];
