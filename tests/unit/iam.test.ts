/**
 * Each gateway's role policies, as the program renders them (plan.json `iamPolicies`, under the
 * mocks), evaluated by an IAM policy simulator (@cloud-copilot/iam-simulate, AWS's Service
 * Authorization Reference inside) against:
 *   - every call the gateways' scripts make, as the host-kernel labs recorded them
 *     (tests/unit/fixtures/gateway-calls.json): each must be allowed, for every gateway of its kind;
 *   - its neighbours' resources: each must be denied.
 * On prod (single gateways), prod-ha (pairs) and a 50-site stack (both kinds, six AWS regions).
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { runSimulation } from "@cloud-copilot/iam-simulate";
import { eventLogGroupName, eventLogStreamName, softwareRootOf } from "../../gateway/contract";
import type { Plan, PlanPolicy } from "../../harness/snapshot";
import { type CallerView, concreteResource, LAB_ACCOUNT, labPrincipalArn } from "../../lab/iam";
import { readGatewayCalls } from "../support/gatewayCalls";
import { manySitesSnapshot, prodHaSnapshot, prodSnapshot } from "./fixtures";

const GATEWAY_SCRIPTS = path.join(__dirname, "..", "..", "gateway");

interface Caller {
    readonly view: CallerView;
    readonly awsRegion: string;
    readonly policies: readonly PlanPolicy[];
}

/** Every gateway of a plan, with what its ARNs are relative to it. */
function callers(plan: Plan): Caller[] {
    return plan.gateways.flatMap((g): Caller[] => {
        const f = g.failover;
        if (!f) {
            return [
                {
                    view: { name: g.region, kind: "single", parameterPath: g.parameterPath },
                    awsRegion: g.awsRegion,
                    policies: g.iamPolicies,
                },
            ];
        }
        return f.gateways.map((p, i) => ({
            view: {
                name: p.name,
                kind: "pair",
                parameterPath: p.parameterPath,
                networkInterfaceId: p.networkInterfaceId,
                partnerNetworkInterfaceId: f.gateways[1 - i].networkInterfaceId,
                allocationId: f.allocationId,
                routeTableIds: f.routeTables.map((t) => t.id),
                layoutParameter: f.layoutParameter,
            },
            awsRegion: g.awsRegion,
            policies: p.iamPolicies,
        }));
    });
}

/** The simulator's verdict on `action` over every resource (all must be allowed, as AWS requires). */
async function decide(c: Caller, action: string, resources: readonly string[], context: Record<string, string> = {}): Promise<string> {
    for (const resource of resources) {
        const r = await runSimulation(
            {
                identityPolicies: c.policies.map((p) => ({ name: p.name, policy: p.document as any })),
                serviceControlPolicies: [],
                resourceControlPolicies: [],
                request: {
                    principal: labPrincipalArn(c.view.name),
                    action,
                    resource: { resource, accountId: LAB_ACCOUNT },
                    contextVariables: context,
                },
            },
            {},
        );
        if (r.resultType === "error") {
            assert.fail(`the simulator refused ${action} on ${resource}: ${JSON.stringify(r.errors)}`);
        }
        if (r.overallResult !== "Allowed") {
            return `${r.overallResult} on ${resource}`;
        }
    }
    return "Allowed";
}

/** The Pulumi stack of a caller: its parameter path's second segment (`/hubspoke-vpn/<stack>/...`). */
const stackOf = (v: CallerView) => v.parameterPath.split("/")[2];
const ARN = (service: string, region: string, resource: string) => `arn:aws:${service}:${region}:${LAB_ACCOUNT}:${resource}`;

describe("IAM: every gateway may make its scripts' calls and nothing of its neighbours' (IAM policy simulator)", function () {
    this.timeout(120_000);
    const plans: Record<string, Plan> = {};

    before(async () => {
        plans.prod = (await prodSnapshot()).plan;
        plans["prod-ha"] = (await prodHaSnapshot()).plan;
        plans["50 sites"] = (await manySitesSnapshot()).plan;
    });

    it("the fixture holds every AWS call in the gateway scripts, for each kind of gateway that runs the script", () => {
        const recorded = new Set(readGatewayCalls().map((c) => `${c.kind} ${c.action}`));
        const unrecorded: string[] = [];
        let found = 0;
        for (const f of fs.readdirSync(GATEWAY_SCRIPTS).filter((f) => f.endsWith(".sh"))) {
            const text = fs.readFileSync(path.join(GATEWAY_SCRIPTS, f), "utf8");
            // hubspoke-failover runs only on a site with a standby; the agent and the health script on every gateway.
            const kinds = f === "hubspoke-failover.sh" ? ["pair"] : ["single", "pair"];
            for (const m of text.matchAll(/\b(?:awscli|aws) (ssm|ec2|cloudwatch) ([a-z-]+)/g)) {
                const action = `${m[1]}:${m[2].replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase())}`;
                found++;
                unrecorded.push(...kinds.map((k) => `${k} ${action} (${f})`).filter((k) => !recorded.has(k.replace(/ \(.*$/, ""))));
            }
        }
        assert.ok(found >= 8, `found only ${found} calls in the scripts`);
        assert.deepEqual(unrecorded, [], "calls in gateway/*.sh that no lab recorded (run the host labs with HUBSPOKE_UPDATE_FIXTURES=1)");
    });

    it("every gateway may list its own software (hubspoke-bootstrap's call, run in tests/integration/bootstrap.test.ts, not in the labs)", async () => {
        const refused: string[] = [];
        for (const plan of Object.values(plans)) {
            for (const c of callers(plan)) {
                const verdict = await decide(c, "ssm:GetParametersByPath", [concreteResource("own-software/*", c.view, c.awsRegion)]);
                if (verdict !== "Allowed") refused.push(`${c.view.name}: ${verdict}`);
            }
        }
        assert.deepEqual(refused, []);
    });

    for (const stack of ["prod", "prod-ha", "50 sites"]) {
        it(`${stack}: every call the scripts make is allowed, for every gateway of its kind`, async () => {
            const calls = readGatewayCalls();
            const all = callers(plans[stack]);
            assert.ok(all.length > 0);
            const refused: string[] = [];
            for (const c of all) {
                for (const call of calls.filter((x) => x.kind === c.view.kind)) {
                    const resources = call.resources.map((r) => concreteResource(r, c.view, c.awsRegion));
                    const verdict = await decide(c, call.action, resources, { ...(call.context ?? {}) });
                    if (verdict !== "Allowed") refused.push(`${c.view.name}: ${call.action} ${verdict}`);
                }
            }
            assert.deepEqual(refused, []);
        });

        it(`${stack}: another site's address, another VPC's routes, another gateway's parameters, another namespace, and any write are denied`, async () => {
            const all = callers(plans[stack]);
            const allowed: string[] = [];
            for (const c of all) {
                const r = c.awsRegion;
                // A neighbour in the same AWS region if there is one (same-region ARNs are the ones a loose policy would match).
                const others = all.filter(
                    (o) =>
                        o.view.name !== c.view.name && o.view.name !== `${c.view.name}-standby` && `${o.view.name}-standby` !== c.view.name,
                );
                const neighbour = others.find((o) => o.awsRegion === r) ?? others[0];
                const pairNeighbour =
                    others.find((o) => o.view.kind === "pair" && o.awsRegion === r) ?? others.find((o) => o.view.kind === "pair");
                const checks: [string, string[], Record<string, string>?][] = [
                    ["ssm:GetParameter", [ARN("ssm", r, `parameter${neighbour.view.parameterPath}/x/conf`)]],
                    ["ssm:GetParametersByPath", [ARN("ssm", r, `parameter${neighbour.view.parameterPath}`)]],
                    [
                        "ssm:GetParametersByPath",
                        [ARN("ssm", r, `parameter${softwareRootOf(neighbour.view.parameterPath)}/0123456789abcdef`)],
                    ],
                    ["ssm:PutParameter", [ARN("ssm", r, `parameter${softwareRootOf(c.view.parameterPath)}/0123456789abcdef/00`)]],
                    ["ssm:PutParameter", [ARN("ssm", r, `parameter${c.view.parameterPath}/x/conf`)]],
                    ["ssm:DeleteParameter", [ARN("ssm", r, `parameter${c.view.parameterPath}/x/conf`)]],
                    ["ssm:GetParameter", [ARN("ssm", r, "parameter/hubspoke-vpn/other-stack/x/conf")]],
                    ["cloudwatch:PutMetricData", ["*"], { "cloudwatch:namespace": "SomeoneElse" }],
                    // Another gateway's tunnel events, its own group's other streams, and creating streams or groups.
                    [
                        "logs:PutLogEvents",
                        [
                            ARN(
                                "logs",
                                r,
                                `log-group:${eventLogGroupName(stackOf(neighbour.view), neighbour.view.name)}:log-stream:${eventLogStreamName(neighbour.view.name)}`,
                            ),
                        ],
                    ],
                    [
                        "logs:PutLogEvents",
                        [ARN("logs", r, `log-group:${eventLogGroupName(stackOf(c.view), c.view.name)}:log-stream:forged`)],
                    ],
                    ["logs:CreateLogStream", [ARN("logs", r, `log-group:${eventLogGroupName(stackOf(c.view), c.view.name)}:*`)]],
                    ["logs:CreateLogGroup", [ARN("logs", r, "log-group:/somewhere-else:*")]],
                    ["ec2:ReplaceRoute", [ARN("ec2", r, "route-table/rtb-0somebodyelse0001")]],
                    [
                        "ec2:AssociateAddress",
                        [ARN("ec2", r, "elastic-ip/eipalloc-0somebodyelse1"), ARN("ec2", r, "network-interface/eni-0somebodyelse01")],
                    ],
                    ["ec2:DisassociateAddress", [ARN("ec2", r, "elastic-ip/eipalloc-0somebodyelse1")]],
                    ["ec2:CreateRoute", [ARN("ec2", r, "route-table/rtb-0somebodyelse0001")]],
                ];
                if (pairNeighbour?.view.allocationId && pairNeighbour.awsRegion === r) {
                    checks.push(
                        ["ec2:ReplaceRoute", [ARN("ec2", r, `route-table/${pairNeighbour.view.routeTableIds![0]}`)]],
                        [
                            "ec2:AssociateAddress",
                            [
                                ARN("ec2", r, `elastic-ip/${pairNeighbour.view.allocationId}`),
                                ARN("ec2", r, `network-interface/${pairNeighbour.view.networkInterfaceId}`),
                            ],
                        ],
                        ["ssm:GetParameter", [ARN("ssm", r, `parameter${pairNeighbour.view.layoutParameter}`)]],
                    );
                }
                if (c.view.kind === "pair") {
                    // Its own site's address onto another interface, or another site's address onto its own interface.
                    checks.push(
                        [
                            "ec2:AssociateAddress",
                            [ARN("ec2", r, `elastic-ip/${c.view.allocationId}`), ARN("ec2", r, "network-interface/eni-0somebodyelse01")],
                        ],
                        [
                            "ec2:AssociateAddress",
                            [
                                ARN("ec2", r, "elastic-ip/eipalloc-0somebodyelse1"),
                                ARN("ec2", r, `network-interface/${c.view.networkInterfaceId}`),
                            ],
                        ],
                        ["ssm:PutParameter", [ARN("ssm", r, `parameter${c.view.layoutParameter}`)]],
                    );
                }
                for (const [action, resources, context] of checks) {
                    if ((await decide(c, action, resources, context ?? {})) === "Allowed") {
                        allowed.push(`${c.view.name}: ${action} on ${resources.join(" + ")}`);
                    }
                }
            }
            assert.deepEqual(allowed, []);
        });
    }
});
