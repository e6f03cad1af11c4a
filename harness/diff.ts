/**
 * What a `pulumi up` from one evaluation of the program to another would do to a running stack:
 * which resources it adds, removes, and changes, and whether each change updates in place, stops
 * and starts an instance, or replaces the resource. Compares recorded inputs by URN.
 *
 * Which input changes replace a resource is the AWS provider's rule ("forces new resource" in its
 * documentation, node_modules/@pulumi/aws/**\/*.d.ts); the table below holds those this program sets.
 */
import { type Evaluation, plain, type RecordedResource } from "./evaluate";

export type Action = "update" | "stop-start" | "replace";

export interface ResourceChange {
    /** `<type>::<name>`. */
    readonly resource: string;
    /** The top-level inputs whose values differ. */
    readonly inputs: string[];
    readonly action: Action;
}

export interface StackDiff {
    /** `<type>::<name>` of each resource, sorted. */
    readonly added: string[];
    readonly removed: string[];
    readonly changed: ResourceChange[];
}

/** Inputs whose change replaces the resource, per type (the provider's "forces new resource"). */
const REPLACED_BY: Record<string, readonly string[]> = {
    "aws:ec2/instance:Instance": ["ami", "availabilityZone", "primaryNetworkInterface", "subnetId", "privateIp"],
    "aws:ec2/vpc:Vpc": ["cidrBlock"],
    "aws:ec2/subnet:Subnet": ["vpcId", "cidrBlock", "availabilityZone"],
    "aws:ec2/networkInterface:NetworkInterface": ["subnetId"],
    "aws:ec2/route:Route": ["routeTableId", "destinationCidrBlock"],
    "aws:ec2/eipAssociation:EipAssociation": ["allocationId", "networkInterfaceId"],
    "aws:ssm/parameter:Parameter": ["name"],
    "aws:iam/rolePolicy:RolePolicy": ["role", "name"],
    "aws:ec2/securityGroup:SecurityGroup": ["vpcId", "description", "name"],
    "random:index/randomPassword:RandomPassword": ["keepers", "length", "special", "overrideSpecial", "minLower", "minUpper", "minNumeric"],
};

/** Inputs whose change EC2 can only apply to a stopped instance: the provider stops and starts it. */
const STOP_START: Record<string, readonly string[]> = {
    "aws:ec2/instance:Instance": ["instanceType", "userData", "userDataBase64"],
};

const key = (r: RecordedResource) => `${r.type}::${r.name}`;

/** The action an update of `inputs` on `r` takes, as the provider applies it. */
export function actionOf(r: RecordedResource, inputs: readonly string[]): Action {
    const replacing = new Set([...(REPLACED_BY[r.type] ?? []), ...r.options.replaceOnChanges]);
    // userDataReplaceOnChange turns the provider's stop/start on a user data change into a replacement.
    if (r.type === "aws:ec2/instance:Instance" && r.inputs.userDataReplaceOnChange === true) {
        replacing.add("userData");
        replacing.add("userDataBase64");
    }
    if (inputs.some((i) => replacing.has(i))) {
        return "replace";
    }
    return inputs.some((i) => (STOP_START[r.type] ?? []).includes(i)) ? "stop-start" : "update";
}

export function diffEvaluations(before: Evaluation, after: Evaluation): StackDiff {
    const old = new Map(before.resources.map((r) => [r.urn, r]));
    const now = new Map(after.resources.map((r) => [r.urn, r]));
    // A resource renamed with an alias keeps its identity: it is compared, not removed and added.
    for (const r of after.resources) {
        for (const alias of r.options.aliasNames) {
            const was = before.resources.find((b) => b.type === r.type && b.name === alias);
            if (was && !now.has(was.urn)) {
                old.delete(was.urn);
                old.set(r.urn, was);
            }
        }
    }
    const changed: ResourceChange[] = [];
    for (const [urn, r] of now) {
        const was = old.get(urn);
        if (!was) {
            continue;
        }
        const names = [...new Set([...Object.keys(was.inputs), ...Object.keys(r.inputs)])].sort();
        const inputs = names.filter((n) => JSON.stringify(plain(was.inputs[n])) !== JSON.stringify(plain(r.inputs[n])));
        if (inputs.length > 0) {
            changed.push({ resource: key(r), inputs, action: actionOf(was.type === r.type ? r : was, inputs) });
        }
    }
    return {
        added: after.resources
            .filter((r) => !old.has(r.urn))
            .map(key)
            .sort(),
        removed: [...old.entries()]
            .filter(([urn]) => !now.has(urn))
            .map(([, r]) => key(r))
            .sort(),
        changed: changed.sort((a, b) => a.resource.localeCompare(b.resource)),
    };
}
