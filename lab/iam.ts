/**
 * The lab's IAM: each gateway calls the lab's AWS endpoint with an access key of its own, and the
 * endpoint authorizes each call with that gateway's role policies as the program renders them
 * (plan.json `iamPolicies`), through an IAM policy simulator (lab/fake-aws/iam.mjs). This module
 * writes the endpoint's principals file, edits it mid-run (a statement removed, as a narrowed
 * policy would), and reads back what was decided.
 *
 * It also names each call by what it touches relative to the caller ("the site's Elastic IP", "its
 * own interface"), so that the calls seen in one lab become a fixture that the unit tests replay
 * against every gateway of any stack (tests/unit/fixtures/gateway-calls.json).
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { eventLogGroupName, eventLogStreamName, softwareRootOf } from "../gateway/contract";
import type { PlanPolicy } from "../harness/snapshot";

/** The account the mocks answer, and so the one in every rendered ARN. */
export const LAB_ACCOUNT = "123456789012";

/** A gateway as the lab's IAM sees it. */
export interface IamGateway {
    readonly name: string;
    readonly policies: readonly PlanPolicy[];
}

interface Principal {
    readonly name: string;
    readonly arn: string;
    readonly policies: readonly PlanPolicy[];
}

/** The access key the lab hands to one gateway alone (20 characters, as AWS's: AKIA and 16 more). */
export function labAccessKey(gateway: string): string {
    return `AKIA${createHash("sha256").update(gateway).digest("hex").slice(0, 16).toUpperCase()}`;
}

/** The instance-profile session a gateway's calls come from, as STS names it. */
export function labPrincipalArn(gateway: string): string {
    return `arn:aws:sts::${LAB_ACCOUNT}:assumed-role/${gateway}-gateway/i-${createHash("sha256").update(gateway).digest("hex").slice(0, 17)}`;
}

/**
 * The lab's operator: the user running `npm run site` or `pulumi up` (the program's hooks) with their
 * own credentials, allowed everything, as an administrator is. Not a gateway: its calls are counted
 * apart and never enter the gateways' call fixture.
 */
export const LAB_OPERATOR = "operator";

/** Writes the endpoint's principals file: every gateway's key, session and rendered policies, and the operator. */
export function writePrincipals(file: string, gateways: readonly IamGateway[]): void {
    const principals: Record<string, Principal> = {
        [labAccessKey(LAB_OPERATOR)]: {
            name: LAB_OPERATOR,
            arn: `arn:aws:iam::${LAB_ACCOUNT}:user/${LAB_OPERATOR}`,
            policies: [
                {
                    name: "AdministratorAccess",
                    document: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] },
                },
            ],
        },
    };
    for (const g of gateways) {
        principals[labAccessKey(g.name)] = { name: g.name, arn: labPrincipalArn(g.name), policies: g.policies };
    }
    writeAtomic(file, { principals });
}

/**
 * Removes the statement `sid` from every policy of `gateway` (as a narrowed policy would), or puts
 * the gateway's rendered policies back when `sid` is undefined. The endpoint rereads the file on its
 * next request.
 */
export function editPrincipal(file: string, gateways: readonly IamGateway[], gateway: string, sid?: string): void {
    const rendered = gateways.find((g) => g.name === gateway);
    if (!rendered) {
        throw new Error(`lab: no gateway "${gateway}" in the principals`);
    }
    const current = JSON.parse(fs.readFileSync(file, "utf8")) as { principals: Record<string, Principal> };
    const policies = rendered.policies.map((p) => ({
        name: p.name,
        document: { ...p.document, Statement: p.document.Statement.filter((s) => sid === undefined || s.Sid !== sid) },
    }));
    if (sid !== undefined && policies.every((p, i) => p.document.Statement.length === rendered.policies[i].document.Statement.length)) {
        throw new Error(`lab: ${gateway}'s policies have no statement "${sid}"`);
    }
    current.principals[labAccessKey(gateway)] = { name: gateway, arn: labPrincipalArn(gateway), policies };
    writeAtomic(file, current);
}

function writeAtomic(file: string, value: unknown): void {
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(value, null, 2));
    fs.renameSync(tmp, file);
}

/** One decision of the endpoint (a line of `<store>/.authz.jsonl`). */
export interface AuthzRecord {
    readonly time: number;
    readonly principal: string;
    readonly action: string;
    readonly resources: readonly string[];
    readonly context: Readonly<Record<string, string>>;
    readonly dryRun: boolean;
    readonly decision: "allowed" | "denied";
}

export function readAuthz(storeDir: string): AuthzRecord[] {
    const file = path.join(storeDir, ".authz.jsonl");
    if (!fs.existsSync(file)) {
        return [];
    }
    return fs
        .readFileSync(file, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as AuthzRecord);
}

export function authzCounts(records: readonly AuthzRecord[]): { allowed: number; denied: number } {
    return {
        allowed: records.filter((r) => r.decision === "allowed").length,
        denied: records.filter((r) => r.decision === "denied").length,
    };
}

/** What a gateway's ARNs are, relative to it: its own, its partner's, its site's. */
export interface CallerView {
    readonly name: string;
    /** "single" for a site's only gateway, "pair" for either gateway of a site with a standby. */
    readonly kind: "single" | "pair";
    readonly parameterPath: string;
    readonly networkInterfaceId?: string;
    readonly partnerNetworkInterfaceId?: string;
    readonly allocationId?: string;
    readonly routeTableIds?: readonly string[];
    readonly layoutParameter?: string;
}

/** A call named by what it touches relative to its caller: what the fixture holds. */
export interface SymbolicCall {
    readonly kind: "single" | "pair";
    readonly action: string;
    readonly resources: readonly string[];
    readonly context?: Readonly<Record<string, string>>;
}

/**
 * The ARN's name relative to the caller: `own-parameter-path`, `own-parameter-path/*`,
 * `own-software/*`, `site-layout-parameter`, `site-elastic-ip`, `own-network-interface`, `partner-network-interface`,
 * `site-route-table`, `own-event-stream`, `*`; or `other:<ARN>` for anything else (a call the fixture should never hold).
 */
export function symbolicResource(arn: string, v: CallerView): string {
    if (arn === "*") return "*";
    const m = /^arn:aws:(ssm|ec2|logs):[a-z0-9-]+:\d{12}:(.+)$/.exec(arn);
    const rest = m?.[2] ?? "";
    if (rest === eventStreamResource(v)) return "own-event-stream";
    const own = `parameter${v.parameterPath}`;
    if (rest === own) return "own-parameter-path";
    if (rest.startsWith(`${own}/`)) return "own-parameter-path/*";
    if (rest.startsWith(`${softwareResource(v)}/`)) return "own-software/*";
    if (v.layoutParameter !== undefined && rest === `parameter${v.layoutParameter}`) return "site-layout-parameter";
    if (rest === `elastic-ip/${v.allocationId}`) return "site-elastic-ip";
    if (rest === `network-interface/${v.networkInterfaceId}`) return "own-network-interface";
    if (rest === `network-interface/${v.partnerNetworkInterfaceId}`) return "partner-network-interface";
    if (v.routeTableIds?.some((t) => rest === `route-table/${t}`)) return "site-route-table";
    return `other:${arn}`;
}

/** The caller's tunnel-event stream, as an ARN's resource part (its stack is its parameter path's second segment). */
function eventStreamResource(v: CallerView): string {
    const stack = v.parameterPath.split("/")[2];
    return `log-group:${eventLogGroupName(stack, v.name)}:log-stream:${eventLogStreamName(v.name)}`;
}

/** `parameter<prefix>/<gateway>/software`, as an ARN's resource part. */
function softwareResource(v: CallerView): string {
    return `parameter${softwareRootOf(v.parameterPath)}`;
}

/** The symbolic resource as an ARN of the caller's region (the inverse of symbolicResource). */
export function concreteResource(symbol: string, v: CallerView, awsRegion: string): string {
    const ssm = (name: string) => `arn:aws:ssm:${awsRegion}:${LAB_ACCOUNT}:parameter${name}`;
    const ec2 = (type: string, id?: string) => {
        if (id === undefined) {
            throw new Error(`${v.name} has no ${type} for "${symbol}" (a ${v.kind} gateway)`);
        }
        return `arn:aws:ec2:${awsRegion}:${LAB_ACCOUNT}:${type}/${id}`;
    };
    switch (symbol) {
        case "*":
            return "*";
        case "own-parameter-path":
            return ssm(v.parameterPath);
        case "own-parameter-path/*":
            return ssm(`${v.parameterPath}/tunnel-x/conf`);
        case "own-software/*":
            return ssm(`${softwareRootOf(v.parameterPath)}/0123456789abcdef`);
        case "site-layout-parameter":
            return ssm(v.layoutParameter ?? "");
        case "site-elastic-ip":
            return ec2("elastic-ip", v.allocationId);
        case "own-network-interface":
            return ec2("network-interface", v.networkInterfaceId);
        case "partner-network-interface":
            return ec2("network-interface", v.partnerNetworkInterfaceId);
        case "site-route-table":
            return ec2("route-table", v.routeTableIds?.[0]);
        case "own-event-stream":
            return `arn:aws:logs:${awsRegion}:${LAB_ACCOUNT}:${eventStreamResource(v)}`;
        default:
            throw new Error(`unknown symbolic resource "${symbol}"`);
    }
}

/** The distinct calls in `records`, each named relative to its caller; sorted, for a stable fixture. */
export function symbolicCalls(records: readonly AuthzRecord[], views: readonly CallerView[]): SymbolicCall[] {
    const byName = new Map(views.map((v) => [v.name, v]));
    const seen = new Map<string, SymbolicCall>();
    for (const r of records) {
        const v = byName.get(r.principal);
        if (!v) continue;
        const call: SymbolicCall = {
            kind: v.kind,
            action: r.action,
            resources: r.resources.map((a) => symbolicResource(a, v)),
            ...(Object.keys(r.context).length ? { context: r.context } : {}),
        };
        seen.set(JSON.stringify(call), call);
    }
    return [...seen.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, c]) => c);
}

/** A gateway of a lab: its rendered policies, and what its ARNs are relative to it. */
export interface LabIamGateway extends IamGateway {
    readonly view: CallerView;
}

/** Both labs' IAM: the principals file in `workDir`, the endpoint's journal in `<workDir>/ssm`. */
export class LabIam {
    constructor(
        private readonly workDir: string,
        private readonly gateways: readonly LabIamGateway[],
    ) {}

    /** The endpoint's principals file (its --iam). */
    get file(): string {
        return path.join(this.workDir, "iam.json");
    }

    /** Every gateway's key and rendered policies, as the endpoint starts with them. */
    write(): void {
        writePrincipals(this.file, this.gateways);
    }

    /** `gateway`'s policies without statement `sid` (as a narrowed policy would), or as rendered when `sid` is undefined. */
    narrow(gateway: string, sid?: string): void {
        editPrincipal(this.file, this.gateways, gateway, sid);
    }

    /** What the endpoint decided so far, and the distinct calls, named relative to each caller. */
    report(): { allowed: number; denied: number; calls: SymbolicCall[] } {
        const records = readAuthz(path.join(this.workDir, "ssm")).filter((r) => r.principal !== LAB_OPERATOR);
        return {
            ...authzCounts(records),
            calls: symbolicCalls(
                records,
                this.gateways.map((g) => g.view),
            ),
        };
    }
}
