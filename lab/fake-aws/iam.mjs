/**
 * The lab endpoint's IAM: who is calling (the access key id of the SigV4 credential scope), and whether
 * that principal's identity policies allow the call, decided by an IAM policy simulator
 * (@cloud-copilot/iam-simulate, which carries AWS's Service Authorization Reference: actions, resource
 * types, condition keys), never by logic of our own. Only what the lab needs from IAM is modelled:
 * identity policies of one account; no resource policies, SCPs, boundaries or sessions.
 *
 * Principals file (--iam FILE), re-read when it changes so that a test can edit a policy mid-run:
 *   {"principals": {"<access key id>": {"name": "virginia", "arn": "arn:aws:sts::...:assumed-role/R/i-...",
 *                                       "policies": [{"name": "...", "document": {...}}]}}}
 * Every decision is appended to <store>/.authz.jsonl:
 *   {"time", "principal", "action", "resources": [arn, ...], "context": {...}, "dryRun", "decision": "allowed" | "denied"}
 */
import * as fs from "node:fs";
import * as path from "node:path";

/**
 * What IAM is asked for a request: the action, every resource ARN it is authorized on (all must be
 * allowed), and the request's condition keys. `lookup` finds EC2 state the ARN needs (an association's
 * allocation). Only the operations this endpoint serves.
 *
 * Per the Service Authorization Reference: AssociateAddress is authorized on the elastic-ip and the
 * network-interface (also on the instance when one is named; the lab associates with interfaces only,
 * and whether EC2 checks the interface's instance too is undocumented); ReplaceRoute on the
 * route-table; EC2's Describe* and CloudWatch's PutMetricData have no resource types ("*"), the
 * latter's namespace is the condition key cloudwatch:namespace; SSM's parameter actions on
 * `parameter/<name without its leading slash>`, GetParametersByPath on the path itself.
 */
export function requestAuthorization({ service, op, region, account, params, body, lookup }) {
    const arn = (svc, resource) => `arn:aws:${svc}:${region}:${account}:${resource}`;
    const parameter = (name) => arn("ssm", `parameter/${String(name ?? "").replace(/^\//, "")}`);
    if (service === "ssm") {
        switch (op) {
            case "GetParameter":
            case "PutParameter":
            case "DeleteParameter":
                return { action: `ssm:${op}`, resources: [parameter(body.Name)], context: {} };
            case "GetParameters":
                return { action: "ssm:GetParameters", resources: (body.Names ?? []).map(parameter), context: {} };
            case "GetParametersByPath":
                return {
                    action: "ssm:GetParametersByPath",
                    resources: [parameter(String(body.Path ?? "").replace(/\/$/, ""))],
                    context: {},
                };
            default:
                return { action: `ssm:${op}`, resources: ["*"], context: {} };
        }
    }
    if (service === "monitoring") {
        // PutMetricData in the Query protocol (the CLI); reads in AWS JSON 1.0 (the SDK for JavaScript v3).
        const namespace = params ? (params.get("Namespace") ?? "") : String(body?.Namespace ?? "");
        return {
            action: `cloudwatch:${op}`,
            resources: ["*"],
            context: op === "PutMetricData" ? { "cloudwatch:namespace": namespace } : {},
        };
    }
    if (service === "logs") {
        // PutLogEvents is authorised on the stream; the rest of what the lab calls, on the group (`:*`),
        // as IAM's service authorization reference for CloudWatch Logs lists them.
        const group = `log-group:${body?.logGroupName ?? "-"}`;
        const resource = op === "PutLogEvents" ? `${group}:log-stream:${body?.logStreamName ?? "-"}` : `${group}:*`;
        return { action: `logs:${op}`, resources: [arn("logs", resource)], context: {} };
    }
    const ec2 = (type, id) => arn("ec2", `${type}/${id ?? "-"}`);
    switch (op) {
        case "AssociateAddress":
            return {
                action: "ec2:AssociateAddress",
                resources: [ec2("elastic-ip", params.get("AllocationId")), ec2("network-interface", params.get("NetworkInterfaceId"))],
                context: {},
            };
        case "DisassociateAddress":
            return {
                action: "ec2:DisassociateAddress",
                resources: [ec2("elastic-ip", lookup.allocationOfAssociation(params.get("AssociationId")))],
                context: {},
            };
        case "ReleaseAddress":
            return { action: "ec2:ReleaseAddress", resources: [ec2("elastic-ip", params.get("AllocationId"))], context: {} };
        case "ReplaceRoute":
            return { action: "ec2:ReplaceRoute", resources: [ec2("route-table", params.get("RouteTableId"))], context: {} };
        default:
            return { action: `ec2:${op}`, resources: ["*"], context: {} };
    }
}

/** The access key id of a SigV4 Authorization header, or undefined. */
export function accessKeyOf(authorization) {
    return /Credential=([^/,\s]+)\//.exec(authorization ?? "")?.[1];
}

export class Authorizer {
    constructor(file, storeDir) {
        this.file = file;
        this.journal = path.join(storeDir, ".authz.jsonl");
        this.loaded = { version: "", principals: {} };
        // Loaded at once, not at the first call: under the lab VM's emulation it takes a while.
        this.simulator = import("@cloud-copilot/iam-simulate").then((m) => m.runSimulation);
        this.simulator.catch(() => undefined); // a failed load is reported by the first call that needs it
        // Verdicts by principal and request, until the principals file changes: the gateways repeat the
        // same few calls, and each simulation costs tens of milliseconds under emulation.
        this.verdicts = new Map();
    }

    principals() {
        // The lab rewrites the file by rename: a new inode each time, whatever the clock's resolution.
        const { ino, mtimeMs, size } = fs.statSync(this.file);
        const version = `${ino}:${mtimeMs}:${size}`;
        if (version !== this.loaded.version) {
            this.loaded = { version, principals: JSON.parse(fs.readFileSync(this.file, "utf8")).principals ?? {} };
            this.verdicts.clear();
        }
        return this.loaded.principals;
    }

    /**
     * The principal of `accessKeyId`, or undefined for a key the lab never handed out (AWS then refuses
     * the credentials before any policy is read).
     */
    principal(accessKeyId) {
        return this.principals()[accessKeyId];
    }

    /**
     * Whether `principal`'s policies allow `request` on every one of its resources; the first resource
     * denied otherwise. Appends the decision to the journal.
     */
    async decide(principal, request, { dryRun = false, account }) {
        const key = JSON.stringify([principal.arn, request.action, request.resources, request.context]);
        if (!this.verdicts.has(key)) this.verdicts.set(key, await this.simulateAll(principal, request, account));
        const denied = this.verdicts.get(key);
        fs.appendFileSync(
            this.journal,
            `${JSON.stringify({
                time: Date.now() / 1000,
                principal: principal.name,
                action: request.action,
                resources: request.resources,
                context: request.context,
                dryRun,
                decision: denied ? "denied" : "allowed",
            })}\n`,
        );
        return denied;
    }

    /** The first resource the simulator does not allow, with its verdict; undefined when it allows them all. */
    async simulateAll(principal, request, account) {
        const simulate = await this.simulator;
        for (const resource of request.resources) {
            const result = await simulate(
                {
                    identityPolicies: principal.policies.map((p) => ({ name: p.name, policy: p.document })),
                    serviceControlPolicies: [],
                    resourceControlPolicies: [],
                    request: {
                        principal: principal.arn,
                        action: request.action,
                        resource: { resource, accountId: account },
                        contextVariables: request.context,
                    },
                },
                {},
            );
            if (result.errors) {
                throw new Error(`the IAM simulator refused the request ${request.action} on ${resource}: ${JSON.stringify(result.errors)}`);
            }
            if (result.overallResult !== "Allowed") {
                return { resource, result: result.overallResult };
            }
        }
        return undefined;
    }
}

/**
 * A denial in the words of the service that answers it: EC2's UnauthorizedOperation (403, with an
 * encoded authorization message), SSM's AccessDeniedException (400, AWS JSON), CloudWatch's
 * AccessDenied (403; the Query protocol, which the CLI in this lab speaks to CloudWatch).
 */
export function denialOf(service, principal, request, denied) {
    const explicit = denied.result === "ExplicitlyDenied";
    const why = explicit
        ? "with an explicit deny in an identity-based policy"
        : `because no identity-based policy allows the ${request.action} action`;
    const on = denied.resource === "*" ? "" : ` on resource: ${denied.resource}`;
    const text = `User: ${principal.arn} is not authorized to perform: ${request.action}${on} ${why}`;
    if (service === "ec2") {
        const encoded = Buffer.from(
            JSON.stringify({ allowed: false, explicitDeny: explicit, action: request.action, resource: denied.resource }),
        ).toString("base64url");
        return [
            403,
            "UnauthorizedOperation",
            `You are not authorized to perform this operation. ${text}. Encoded authorization failure message: ${encoded}`,
        ];
    }
    if (service === "ssm" || service === "logs") return [400, "AccessDeniedException", text];
    return [403, "AccessDenied", text];
}

/** An access key the lab never handed out, refused as each service refuses unknown credentials. */
export function unknownKeyOf(service) {
    if (service === "ec2") return [401, "AuthFailure", "AWS was not able to validate the provided access credentials"];
    if (service === "ssm" || service === "logs")
        return [400, "UnrecognizedClientException", "The security token included in the request is invalid."];
    return [403, "InvalidClientTokenId", "The security token included in the request is invalid."];
}
