#!/usr/bin/env node
/**
 * A local stand-in for the AWS APIs the gateways call, that the real AWS CLI v2 (and the lab VM's
 * lab/fake-aws/aws-lite) talks to with `--endpoint-url`:
 *   - Systems Manager Parameter Store: the AWS JSON 1.1 protocol, SSM's operations and error names,
 *     over a directory;
 *   - EC2 (AssociateAddress, DescribeAddresses, ReplaceRoute, DescribeRouteTables): EC2's Query
 *     protocol and XML, over a JSON state file, applied to the lab's VPC-router namespaces (Elastic IP
 *     1:1 stateless NAT with nftables, routes with iproute2) before each answer, as a completed API call;
 *   - CloudWatch PutMetricData: the Query protocol, each datum appended to <store>/.metrics.jsonl.
 *   - CloudWatch GetMetricStatistics: AWS JSON 1.0 (as the SDK for JavaScript v3 asks), over the same file.
 *
 *   node lab/fake-aws/endpoint.mjs --store DIR --listen HOST:PORT [--unix-socket PATH] [--latency-ms N] [--log FILE]
 *        [--ec2-state FILE] [--ec2-latency-ms N] [--iam FILE] [--exit-with-parent]
 *
 * It prints `listening http://HOST:PORT` once it listens (PORT 0 picks a free port) and, with
 * --ec2-state, once it has applied that whole state to every namespace it names; it logs one line per
 * request to FILE, and exits on SIGTERM, or with --exit-with-parent as soon as its parent is gone (so
 * that a test runner killed mid-run leaves no server behind).
 *
 * Store layout (the tree `npm run render` writes under ssm/, and what the lab and tests edit as
 * `pulumi up` would edit AWS):
 *   <store>/<region><name>   the value of parameter <name> in <region>; one trailing "\n" is dropped
 *   <store>/.types.json      {"<region><name>": "String" | "SecureString" | "StringList"}, default String
 *   <store>/.versions.json   {"<region><name>": {"sha256", "version"}}: written by this server, so that
 *                            a restarted server keeps counting versions
 *   <store>/.metrics.jsonl   written by this server: one line per PutMetricData datum,
 *                            {"time", "awsRegion", "namespace", "metricName", "dimensions": {Name: Value}, "value", "unit"}
 *   <store>/.faults.json     injected failures, read on every request:
 *                            {"failNext": N, "error": "ThrottlingException" | "InternalServerError" | "unreachable",
 *                             "deny": ["/name", "/glob/*"], "latencyMs": N,
 *                             "ec2Deny": ["AssociateAddress", ...], "ec2LatencyMs": N,
 *                             "ec2FailNext": {"AssociateAddress": N, ...}}
 *                            failNext counts requests of every service; each service answers the
 *                            failure in its own words (EC2: RequestLimitExceeded 503 / InternalError 500,
 *                            CloudWatch: Throttling 400 / InternalServiceFault 500). latencyMs delays SSM
 *                            and CloudWatch answers, ec2LatencyMs (default --ec2-latency-ms, 1000) EC2's.
 *                            ec2FailNext fails the next N calls of an EC2 action that are not dry
 *                            runs (allowed by IAM, so refused after a dry run passed), as `error` says.
 *
 * EC2 state (--ec2-state FILE; without it EC2 actions fail): re-read on every EC2 request, rewritten
 * atomically on every change:
 *   {"addresses": [{"allocationId", "publicIp", "awsRegion", "netns"?, "networkInterfaceId": null | id,
 *                   "privateIpAddress": null | ip, "associationId": null | id}],
 *    "networkInterfaces": [{"networkInterfaceId", "awsRegion", "privateIpAddresses": [ip, ...], "nextHop"?: ip}],
 *    "routeTables": [{"routeTableId", "awsRegion", "vpcId"?, "netns"?, "table"?: number,
 *                     "routes": [{"destinationCidrBlock", "networkInterfaceId"}]}]}
 * An address with a `netns` is NATed in that namespace (the VPC router: nftables table `ip
 * hubspoke_eip` on its `wan` interface, rebuilt whole in one transaction; stateless, as AWS's 1:1 NAT
 * is: no connection tracking, no port ever remapped); a route table with a `netns` is that
 * namespace's routing table `table`, each route via its interface's `nextHop`. Entries without
 * `netns` are control plane only.
 *
 * IAM (--iam FILE; without it every call is allowed): each request's access key names a principal, whose
 * identity policies an IAM policy simulator evaluates for the request's action and resources, as
 * AWS would (lab/fake-aws/iam.mjs); a denial is answered in each service's words, a key the file does
 * not name as each service refuses unknown credentials. An EC2 request with DryRun=true is answered
 * DryRunOperation (412) when it would be allowed, as EC2 does, after the same checks.
 *
 * Everything is re-read on every request: nothing is cached but the version counters (and the IAM
 * file, until it changes).
 *
 * Node built-ins only, so that it starts fast, also inside the lab's QEMU VM.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { Authorizer, accessKeyOf, denialOf, requestAuthorization, unknownKeyOf } from "./iam.mjs";

const ACCOUNT = "123456789012";
const PAGE_MAX = 10; // GetParametersByPath's hard limit per page
const TYPES = new Set(["String", "SecureString", "StringList"]);
// AWS's parameter name alphabet, plus "/" for the hierarchy. "." and ".." segments are refused
// below, so that no name can leave the store.
const NAME_RE = /^(\/[A-Za-z0-9_.-]+)+$/;
const REGION_RE = /^[a-z0-9-]+$/;

/** An answer in AWS's error shape; thrown anywhere below, sent by the request handler. */
class AwsError extends Error {
    constructor(status, type, message) {
        super(message);
        this.status = status;
        this.type = type;
    }
}

const notFound = (name) => new AwsError(400, "ParameterNotFound", `Parameter ${name} not found.`);
const invalid = (message) => new AwsError(400, "ValidationException", message);

function parseArgs(argv) {
    const opts = {
        store: "",
        listen: "",
        unix: "",
        latencyMs: 0,
        log: "",
        ec2State: "",
        ec2LatencyMs: 1000,
        iam: "",
        exitWithParent: false,
    };
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === "--exit-with-parent") {
            opts.exitWithParent = true;
            continue;
        }
        const value = argv[i + 1];
        if (value === undefined) usage(`missing value for ${argv[i]}`);
        switch (argv[i]) {
            case "--store":
                opts.store = path.resolve(value);
                break;
            case "--listen":
                opts.listen = value;
                break;
            case "--unix-socket":
                opts.unix = path.resolve(value);
                break;
            case "--latency-ms":
                opts.latencyMs = Number(value);
                if (!Number.isFinite(opts.latencyMs) || opts.latencyMs < 0) usage(`bad --latency-ms ${value}`);
                break;
            case "--log":
                opts.log = path.resolve(value);
                break;
            case "--ec2-state":
                opts.ec2State = path.resolve(value);
                break;
            case "--iam":
                opts.iam = path.resolve(value);
                break;
            case "--ec2-latency-ms":
                opts.ec2LatencyMs = Number(value);
                if (!Number.isFinite(opts.ec2LatencyMs) || opts.ec2LatencyMs < 0) usage(`bad --ec2-latency-ms ${value}`);
                break;
            default:
                usage(`unknown argument ${argv[i]}`);
        }
        i++;
    }
    if (!opts.store || !opts.listen) usage("--store and --listen are required");
    const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(opts.listen);
    if (!m) usage(`--listen wants HOST:PORT, got ${opts.listen}`);
    opts.host = m[1];
    opts.port = Number(m[2]);
    return opts;
}

function usage(why) {
    process.stderr.write(
        `fake-aws: ${why}\nusage: endpoint.mjs --store DIR --listen HOST:PORT [--unix-socket PATH] [--latency-ms N] [--log FILE] [--ec2-state FILE] [--ec2-latency-ms N] [--iam FILE] [--exit-with-parent]\n`,
    );
    process.exit(2);
}

function readJson(file, fallback) {
    let text;
    try {
        text = fs.readFileSync(file, "utf8");
    } catch (e) {
        if (e.code === "ENOENT") return fallback;
        throw e;
    }
    if (text.trim() === "") return fallback;
    return JSON.parse(text);
}

/** Write via a temporary file and rename, so that a concurrent reader never sees half a file. */
function writeJsonAtomic(file, value) {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + "\n");
    fs.renameSync(tmp, file);
}

function sha256(text) {
    return createHash("sha256").update(text).digest("hex");
}

/** Shell-style glob (only "*") for the deny list, as IAM resource ARNs allow. */
function globMatch(pattern, name) {
    if (!pattern.includes("*")) return pattern === name;
    const re = pattern
        .split("*")
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
        .join(".*");
    return new RegExp(`^${re}$`).test(name);
}

class Store {
    constructor(dir) {
        this.dir = dir;
        this.versionsFile = path.join(dir, ".versions.json");
        // The only state kept in memory: AWS counts a version per change, a file does not.
        this.versions = readJson(this.versionsFile, {});
    }

    checkName(name) {
        if (typeof name !== "string" || name === "") throw invalid("Parameter name must not be empty.");
        if (!name.startsWith("/")) {
            throw invalid(`Parameter name ${name}: this stand-in stores hierarchical names (starting with "/") only.`);
        }
        if (!NAME_RE.test(name) || name.split("/").some((s) => s === "." || s === "..")) {
            throw invalid(`Parameter name ${name}: only a-zA-Z0-9_.- and "/" between non-empty segments are allowed.`);
        }
        if (name.length > 1011) throw invalid(`Parameter name ${name} is longer than 1011 characters.`);
    }

    file(region, name) {
        return path.join(this.dir, region, name);
    }

    types() {
        return readJson(path.join(this.dir, ".types.json"), {});
    }

    saveVersions() {
        writeJsonAtomic(this.versionsFile, this.versions);
    }

    /** The parameter as AWS would return it, or undefined if there is none. */
    read(region, name, withDecryption, types = this.types()) {
        this.checkName(name);
        const file = this.file(region, name);
        let raw;
        let stat;
        try {
            raw = fs.readFileSync(file, "utf8");
            stat = fs.statSync(file);
        } catch (e) {
            // ENOTDIR: a parent of the name is a parameter; EISDIR: the name is a directory of others.
            if (e.code === "ENOENT" || e.code === "ENOTDIR" || e.code === "EISDIR") {
                this.forget(region, name);
                return undefined;
            }
            throw e;
        }
        const value = raw.endsWith("\n") ? raw.slice(0, -1) : raw;
        const key = region + name;
        const hash = sha256(value);
        const seen = this.versions[key];
        if (!seen || seen.sha256 !== hash) {
            this.versions[key] = { sha256: hash, version: (seen?.version ?? 0) + 1 };
            this.saveVersions();
        }
        const type = TYPES.has(types[key]) ? types[key] : "String";
        return {
            Name: name,
            Type: type,
            // Without decryption AWS returns the KMS ciphertext: never the plain value.
            Value: type === "SecureString" && !withDecryption ? fakeCiphertext(value) : value,
            Version: this.versions[key].version,
            LastModifiedDate: stat.mtimeMs / 1000,
            ARN: `arn:aws:ssm:${region}:${ACCOUNT}:parameter${name}`,
            DataType: "text",
        };
    }

    /** A parameter seen missing starts again at version 1 when it comes back, as in AWS. */
    forget(region, name) {
        if (this.versions[region + name]) {
            delete this.versions[region + name];
            this.saveVersions();
        }
    }

    /** Names under `prefix` (which ends with "/"), sorted; only direct children unless recursive. */
    list(region, prefix, recursive) {
        const names = [];
        const walk = (dir, namePrefix) => {
            let entries;
            try {
                entries = fs.readdirSync(dir, { withFileTypes: true });
            } catch (e) {
                if (e.code === "ENOENT" || e.code === "ENOTDIR") return;
                throw e;
            }
            for (const entry of entries) {
                const name = namePrefix + entry.name;
                if (entry.isDirectory()) {
                    if (recursive) walk(path.join(dir, entry.name), name + "/");
                } else if (entry.isFile() && NAME_RE.test(name)) {
                    names.push(name);
                }
            }
        };
        walk(path.join(this.dir, region, prefix), prefix);
        return names.sort();
    }

    put(region, name, value, type, overwrite) {
        this.checkName(name);
        if (typeof value !== "string" || value === "") throw invalid("Parameter value must not be empty.");
        if (type !== undefined && !TYPES.has(type)) throw invalid(`Parameter type ${type} is not String, StringList or SecureString.`);
        const file = this.file(region, name);
        const key = region + name;
        const exists = fs.existsSync(file);
        if (exists && !overwrite) {
            throw new AwsError(
                400,
                "ParameterAlreadyExists",
                "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.",
            );
        }
        if (exists && fs.statSync(file).isDirectory()) {
            throw invalid(`Parameter ${name}: this stand-in cannot store a parameter whose name is also a path of others.`);
        }
        try {
            fs.mkdirSync(path.dirname(file), { recursive: true });
        } catch (e) {
            if (e.code === "EEXIST" || e.code === "ENOTDIR") {
                throw invalid(`Parameter ${name}: this stand-in cannot store a parameter below another parameter's name.`);
            }
            throw e;
        }
        // The temporary file sits in the store's root, outside every region, so no listing sees it.
        const tmp = path.join(this.dir, `.put.${process.pid}.tmp`);
        fs.writeFileSync(tmp, value);
        fs.renameSync(tmp, file);
        const types = this.types();
        const newType = type ?? (exists ? types[key] : undefined) ?? "String";
        if ((types[key] ?? "String") !== newType) {
            types[key] = newType;
            writeJsonAtomic(path.join(this.dir, ".types.json"), types);
        }
        // AWS counts every PutParameter as a new version, even of the same value.
        const version = exists ? (this.versions[key]?.version ?? 0) + 1 : 1;
        this.versions[key] = { sha256: sha256(value), version };
        this.saveVersions();
        return { Version: version, Tier: "Standard" };
    }

    delete(region, name) {
        this.checkName(name);
        const file = this.file(region, name);
        try {
            if (!fs.statSync(file).isFile()) throw notFound(name);
            fs.unlinkSync(file);
        } catch (e) {
            if (e.code === "ENOENT" || e.code === "ENOTDIR") throw notFound(name);
            throw e;
        }
        const types = this.types();
        if (region + name in types) {
            delete types[region + name];
            writeJsonAtomic(path.join(this.dir, ".types.json"), types);
        }
        this.forget(region, name);
        return {};
    }
}

function fakeCiphertext(value) {
    return "AQICAHfake" + Buffer.from(sha256(value), "hex").toString("base64");
}

function checkDenied(faults, names) {
    const deny = Array.isArray(faults.deny) ? faults.deny : [];
    const denied = names.find((n) => deny.some((pattern) => globMatch(pattern, n)));
    if (denied !== undefined) {
        throw new AwsError(
            400,
            "AccessDeniedException",
            `User: arn:aws:sts::${ACCOUNT}:assumed-role/fake/session is not authorized to perform: ssm:GetParameter* on resource: parameter${denied} because no identity-based policy allows it`,
        );
    }
}

/** Opaque NextToken: where the previous page ended, bound to its request so it cannot be reused for another. */
function encodeToken(region, pathArg, recursive, after) {
    return Buffer.from(JSON.stringify({ r: region, p: pathArg, c: recursive, a: after })).toString("base64");
}

function decodeToken(token, region, pathArg, recursive) {
    try {
        const t = JSON.parse(Buffer.from(String(token), "base64").toString("utf8"));
        if (t.r === region && t.p === pathArg && t.c === recursive && typeof t.a === "string") return t.a;
    } catch {}
    throw new AwsError(400, "InvalidNextToken", "The token is not valid.");
}

const operations = {
    GetParameter(store, region, body, faults) {
        store.checkName(body.Name);
        checkDenied(faults, [body.Name]);
        const parameter = store.read(region, body.Name, body.WithDecryption === true);
        if (!parameter) throw notFound(body.Name);
        return { result: { Parameter: parameter }, summary: `v${parameter.Version}` };
    },

    GetParameters(store, region, body, faults) {
        const names = body.Names;
        if (!Array.isArray(names) || names.length < 1 || names.length > 10) throw invalid("Names must hold 1 to 10 names.");
        for (const n of names) store.checkName(n);
        checkDenied(faults, names);
        const types = store.types();
        const Parameters = [];
        const InvalidParameters = [];
        for (const name of names) {
            const p = store.read(region, name, body.WithDecryption === true, types);
            if (p) Parameters.push(p);
            else InvalidParameters.push(name);
        }
        return { result: { Parameters, InvalidParameters }, summary: `${Parameters.length} found, ${InvalidParameters.length} invalid` };
    },

    GetParametersByPath(store, region, body, faults) {
        const p = body.Path;
        if (typeof p !== "string" || !p.startsWith("/")) throw invalid(`Path ${p} must start with "/".`);
        const prefix = p.endsWith("/") ? p : p + "/";
        if (prefix !== "/") store.checkName(prefix.slice(0, -1));
        const recursive = body.Recursive === true;
        let pageSize = PAGE_MAX;
        if (body.MaxResults !== undefined) {
            if (!Number.isInteger(body.MaxResults) || body.MaxResults < 1 || body.MaxResults > PAGE_MAX) {
                throw invalid(
                    `1 validation error detected: Value '${body.MaxResults}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and ${PAGE_MAX}`,
                );
            }
            pageSize = body.MaxResults;
        }
        const all = store.list(region, prefix, recursive);
        // AWS refuses the whole call when any parameter it would return is denied.
        checkDenied(faults, all);
        let start = 0;
        if (body.NextToken !== undefined) {
            const after = decodeToken(body.NextToken, region, p, recursive);
            start = all.findIndex((n) => n > after);
            if (start < 0) start = all.length;
        }
        const types = store.types();
        const Parameters = [];
        let i = start;
        for (; i < all.length && Parameters.length < pageSize; i++) {
            // A file removed between listing and reading is simply not returned.
            const parameter = store.read(region, all[i], body.WithDecryption === true, types);
            if (parameter) Parameters.push(parameter);
        }
        const result = { Parameters };
        if (i < all.length) result.NextToken = encodeToken(region, p, recursive, all[i - 1]);
        return { result, summary: `${Parameters.length} params${result.NextToken ? ", more" : ""}` };
    },

    PutParameter(store, region, body) {
        const result = store.put(region, body.Name, body.Value, body.Type, body.Overwrite === true);
        return { result, summary: `v${result.Version}` };
    },

    DeleteParameter(store, region, body) {
        return { result: store.delete(region, body.Name), summary: "deleted" };
    },
};

// ---- The Query protocol: EC2 and CloudWatch ----------------------------------------------------

const EC2_XMLNS = "http://ec2.amazonaws.com/doc/2016-11-15/";
const CLOUDWATCH_XMLNS = "http://monitoring.amazonaws.com/doc/2010-08-01/";
const NAT_TABLE = "hubspoke_eip";
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const CIDR_RE = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\/(3[0-2]|[12]?\d)$/;
const NETNS_RE = /^[A-Za-z0-9_.-]+$/;
const CLOUDWATCH_UNITS = new Set(
    (
        "Seconds Microseconds Milliseconds Bytes Kilobytes Megabytes Gigabytes Terabytes Bits Kilobits Megabits Gigabits " +
        "Terabits Percent Count Bytes/Second Kilobytes/Second Megabytes/Second Gigabytes/Second Terabytes/Second " +
        "Bits/Second Kilobits/Second Megabits/Second Gigabits/Second Terabits/Second Count/Second None"
    ).split(" "),
);

function xmlEscape(value) {
    return String(value).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]);
}

/** XML of a plain object: keys are element names, arrays are EC2's lists of <item>, null and undefined are left out. */
function xml(value) {
    if (Array.isArray(value)) return value.map((v) => `<item>${xml(v)}</item>`).join("");
    if (value !== null && typeof value === "object") {
        return Object.entries(value)
            .filter(([, v]) => v !== undefined && v !== null)
            .map(([k, v]) => `<${k}>${xml(v)}</${k}>`)
            .join("");
    }
    return xmlEscape(value);
}

/** The numbered members of a Query list, `prefix.1`, `prefix.2`, ..., up to the first gap. */
function queryList(params, prefix) {
    const values = [];
    for (let i = 1; params.has(`${prefix}.${i}`); i++) values.push(params.get(`${prefix}.${i}`));
    return values;
}

const ec2Error = (code, message, status = 400) => new AwsError(status, code, message);
const allocationNotFound = (id) => ec2Error("InvalidAllocationID.NotFound", `The allocation ID '${id}' does not exist`);
const interfaceNotFound = (id) => ec2Error("InvalidNetworkInterfaceID.NotFound", `The networkInterface ID '${id}' does not exist`);
const routeTableNotFound = (id) => ec2Error("InvalidRouteTableID.NotFound", `The routeTable ID '${id}' does not exist`);
const newId = (prefix) => `${prefix}-${randomBytes(9).toString("hex").slice(0, 17)}`;

/** The EC2 state file, checked enough that the data plane never gets a malformed address or name. */
function loadEc2State(file) {
    let state;
    try {
        state = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (e) {
        throw new AwsError(500, "InternalError", `fake-aws: cannot read the EC2 state ${file}: ${e.message}`);
    }
    const bad = (why) => new AwsError(500, "InternalError", `fake-aws: bad EC2 state ${file}: ${why}`);
    if (state === null || typeof state !== "object") throw bad("not an object");
    for (const key of ["addresses", "networkInterfaces", "routeTables"]) {
        state[key] ??= [];
        if (!Array.isArray(state[key])) throw bad(`"${key}" is not a list`);
    }
    for (const a of state.addresses) {
        if (!IPV4_RE.test(a.publicIp ?? "")) throw bad(`address ${a.allocationId}: publicIp ${a.publicIp}`);
        if (a.privateIpAddress != null && !IPV4_RE.test(a.privateIpAddress))
            throw bad(`address ${a.allocationId}: privateIpAddress ${a.privateIpAddress}`);
        if (a.netns != null && !NETNS_RE.test(a.netns)) throw bad(`address ${a.allocationId}: netns ${a.netns}`);
    }
    for (const n of state.networkInterfaces) {
        n.privateIpAddresses ??= [];
        if (!Array.isArray(n.privateIpAddresses) || !n.privateIpAddresses.every((ip) => IPV4_RE.test(ip))) {
            throw bad(`interface ${n.networkInterfaceId}: privateIpAddresses ${JSON.stringify(n.privateIpAddresses)}`);
        }
        if (n.nextHop != null && !IPV4_RE.test(n.nextHop)) throw bad(`interface ${n.networkInterfaceId}: nextHop ${n.nextHop}`);
    }
    for (const t of state.routeTables) {
        t.routes ??= [];
        if (t.netns != null && !NETNS_RE.test(t.netns)) throw bad(`route table ${t.routeTableId}: netns ${t.netns}`);
        if (t.table != null && !(Number.isInteger(t.table) && t.table > 0)) throw bad(`route table ${t.routeTableId}: table ${t.table}`);
        for (const r of t.routes)
            if (!CIDR_RE.test(r.destinationCidrBlock ?? "")) throw bad(`route table ${t.routeTableId}: ${r.destinationCidrBlock}`);
    }
    return state;
}

// The data plane: the lab's VPC routers, changed by nftables and iproute2 (as root).

/**
 * The router's Elastic IP NAT in `netns`, whole, as one nft transaction (the table declared, deleted and
 * written again: no packet sees half of it). Stateless, as AWS's 1:1 NAT: an address is rewritten
 * before connection tracking on the way in (and not tracked), after routing on the way out. A packet
 * sent from a private address before its Elastic IP arrived is not NATed (the next router drops it);
 * one sent after is, each the same way, whatever went before: iptables' stateful NAT would keep a
 * flow on the address's old target, or remap its port when the old target's flow still held it.
 */
function natRules(state, netns) {
    const pre = [];
    const post = [];
    for (const a of state.addresses) {
        if (a.netns !== netns || !a.associationId || !a.privateIpAddress) continue;
        pre.push(`    iifname "wan" ip daddr ${a.publicIp} notrack ip daddr set ${a.privateIpAddress}`);
        post.push(`    oifname "wan" ip saddr ${a.privateIpAddress} ip saddr set ${a.publicIp}`);
    }
    return [
        `table ip ${NAT_TABLE}`,
        `delete table ip ${NAT_TABLE}`,
        `table ip ${NAT_TABLE} {`,
        "  chain pre {",
        "    type filter hook prerouting priority raw; policy accept;",
        ...pre,
        "  }",
        "  chain post {",
        "    type filter hook postrouting priority srcnat; policy accept;",
        ...post,
        "  }",
        "}",
        "",
    ].join("\n");
}

/**
 * One bash per router namespace, started at its first change and kept: a change then costs only its
 * own commands (under the lab VM's emulation every process start costs about a second, and `ip netns
 * exec` adds two). Changes run one at a time (`serially`), so a shell runs one script at a time.
 */
const nsShells = new Map();
function nsShell(netns) {
    const known = nsShells.get(netns);
    if (known) return known;
    const child = spawn("ip", ["netns", "exec", netns, "bash", "--noprofile", "--norc"], { stdio: ["pipe", "pipe", "ignore"] });
    const shell = { child, out: "", waiting: null };
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
        shell.out += chunk;
        const done = /^__hubspoke_done (\d+)$/m.exec(shell.out);
        if (done && shell.waiting) {
            const { resolve } = shell.waiting;
            const output = shell.out.slice(0, done.index).trim();
            shell.out = "";
            shell.waiting = null;
            resolve({ code: Number(done[1]), output });
        }
    });
    child.stdin.on("error", () => {});
    const gone = (why) => {
        nsShells.delete(netns);
        shell.waiting?.reject(new Error(`the shell in ${netns} ${why}`));
        shell.waiting = null;
    };
    child.once("error", (e) => gone(`could not start: ${e.message}`));
    child.once("exit", (code) => gone(`exited (${code})`));
    nsShells.set(netns, shell);
    return shell;
}

/** Runs a bash script in the namespace's shell, `input` on its stdin; rejects unless it exits 0. */
function runInNetns(netns, script, input = "") {
    const shell = nsShell(netns);
    const end = `__hubspoke_input_${randomUUID().replace(/-/g, "")}`;
    return new Promise((resolve, reject) => {
        shell.waiting = { resolve, reject };
        shell.child.stdin.write(
            `{\n${script}\n} 2>&1 <<'${end}'\n${input}${input.endsWith("\n") || !input ? "" : "\n"}${end}\necho "__hubspoke_done $?"\n`,
        );
    }).then(({ code, output }) => {
        if (code !== 0) throw new Error(`${netns}: ${script}: exit ${code}${output ? `: ${output}` : ""}`);
    });
}

/** The router's NAT, as the state says. */
const applyNat = (state, netns) => runInNetns(netns, "nft -f -", natRules(state, netns));

function applyRoute(state, table, route) {
    const eni = state.networkInterfaces.find((n) => n.networkInterfaceId === route.networkInterfaceId && n.awsRegion === table.awsRegion);
    if (!eni?.nextHop) {
        return Promise.reject(
            new Error(`route table ${table.routeTableId}: interface ${route.networkInterfaceId} has no nextHop in the EC2 state`),
        );
    }
    // Every value was checked when the state was read (CIDR, address, table number): safe in a script.
    return runInNetns(table.netns, `ip route replace ${route.destinationCidrBlock} via ${eni.nextHop} table ${table.table ?? "main"}`);
}

/** The whole state, into every namespace it names: the lab's initial data plane. */
async function applyEc2State(state) {
    for (const netns of new Set(state.addresses.map((a) => a.netns).filter(Boolean))) await applyNat(state, netns);
    for (const table of state.routeTables) {
        if (table.netns) for (const route of table.routes) await applyRoute(state, table, route);
    }
}

/** Data-plane changes run one at a time, in the order of the state changes they apply. */
let dataPlane = Promise.resolve();
function serially(job) {
    const done = dataPlane.then(job);
    dataPlane = done.catch(() => {});
    return done;
}

function addressXml(a) {
    const association = a.associationId
        ? {
              associationId: a.associationId,
              networkInterfaceId: a.networkInterfaceId,
              networkInterfaceOwnerId: ACCOUNT,
              privateIpAddress: a.privateIpAddress,
          }
        : {};
    return {
        publicIp: a.publicIp,
        allocationId: a.allocationId,
        domain: "vpc",
        ...association,
        publicIpv4Pool: "amazon",
        networkBorderGroup: a.awsRegion,
    };
}

function rejectFilters(params) {
    if ([...params.keys()].some((k) => k.startsWith("Filter."))) {
        throw ec2Error("InvalidParameterValue", "fake-aws: this stand-in does not support filters; ask by id");
    }
}

/** What a log line names: the ids a request is about. */
function ec2Subject(action, params) {
    switch (action) {
        case "AssociateAddress":
            return `${params.get("AllocationId") ?? "-"}->${params.get("NetworkInterfaceId") ?? "-"}/${params.get("PrivateIpAddress") ?? "first"}`;
        case "DescribeAddresses":
            return [...queryList(params, "AllocationId"), ...queryList(params, "PublicIp")].join(",") || "all";
        case "DisassociateAddress":
            return params.get("AssociationId") ?? "-";
        case "ReleaseAddress":
            return params.get("AllocationId") ?? "-";
        case "ReplaceRoute":
            return `${params.get("RouteTableId") ?? "-"}:${params.get("DestinationCidrBlock") ?? "-"}->${params.get("NetworkInterfaceId") ?? "-"}`;
        case "DescribeRouteTables":
            return queryList(params, "RouteTableId").join(",") || "all";
        default:
            return "-";
    }
}

/**
 * EC2's actions over the state: each checks as AWS does, changes `state` and saves it, and returns the
 * XML body, a summary for the log, and the data-plane change to make before answering.
 */
const ec2Actions = {
    DescribeAddresses({ state, region, params }) {
        rejectFilters(params);
        const ids = queryList(params, "AllocationId");
        const ips = queryList(params, "PublicIp");
        let found = state.addresses.filter((a) => a.awsRegion === region);
        for (const id of ids) if (!found.some((a) => a.allocationId === id)) throw allocationNotFound(id);
        for (const ip of ips)
            if (!found.some((a) => a.publicIp === ip)) throw ec2Error("InvalidAddress.NotFound", `Address '${ip}' not found.`);
        if (ids.length || ips.length) found = found.filter((a) => ids.includes(a.allocationId) || ips.includes(a.publicIp));
        const summary = found.map((a) => `${a.allocationId}=${a.networkInterfaceId ?? "unassociated"}`).join(",");
        return { body: { addressesSet: found.map(addressXml) }, summary: summary || "none" };
    },

    AssociateAddress({ state, region, params, save }) {
        if (params.has("InstanceId")) {
            throw ec2Error(
                "InvalidParameterCombination",
                "fake-aws: this stand-in associates addresses with network interfaces, not instances",
            );
        }
        const allocationId = params.get("AllocationId");
        if (!allocationId) throw ec2Error("MissingParameter", "The request must contain the parameter AllocationId");
        const interfaceId = params.get("NetworkInterfaceId");
        if (!interfaceId) throw ec2Error("MissingParameter", "The request must contain the parameter NetworkInterfaceId");
        const address = state.addresses.find((a) => a.allocationId === allocationId && a.awsRegion === region);
        if (!address) throw allocationNotFound(allocationId);
        const eni = state.networkInterfaces.find((n) => n.networkInterfaceId === interfaceId && n.awsRegion === region);
        if (!eni) throw interfaceNotFound(interfaceId);
        const privateIp = params.get("PrivateIpAddress") ?? eni.privateIpAddresses[0];
        if (!privateIp || !eni.privateIpAddresses.includes(privateIp)) {
            throw ec2Error(
                "InvalidParameterValue",
                `The specified private IP address ${privateIp} is not assigned to the network interface ${interfaceId}`,
            );
        }
        if (address.associationId && params.get("AllowReassociation") !== "true") {
            throw ec2Error(
                "Resource.AlreadyAssociated",
                `resource ${allocationId} is already associated with associate-id ${address.associationId}`,
            );
        }
        // One private address holds one Elastic IP: one already there is disassociated (and stays allocated).
        const displaced = state.addresses.filter(
            (a) => a !== address && a.associationId && a.networkInterfaceId === interfaceId && a.privateIpAddress === privateIp,
        );
        for (const a of displaced) Object.assign(a, { networkInterfaceId: null, privateIpAddress: null, associationId: null });
        const associationId = newId("eipassoc");
        Object.assign(address, { networkInterfaceId: interfaceId, privateIpAddress: privateIp, associationId });
        save();
        const moved = [address, ...displaced].filter((a) => a.netns);
        return {
            body: { return: true, associationId },
            summary: `${associationId}${displaced.length ? ` (disassociated ${displaced.map((a) => a.allocationId).join(",")})` : ""}`,
            apply: async () => {
                for (const netns of new Set(moved.map((a) => a.netns))) await applyNat(state, netns);
            },
        };
    },

    DisassociateAddress({ state, region, params, save }) {
        const associationId = params.get("AssociationId");
        if (!associationId) {
            throw ec2Error("MissingParameter", "fake-aws: this stand-in disassociates VPC addresses by AssociationId only");
        }
        const address = state.addresses.find((a) => a.associationId === associationId && a.awsRegion === region);
        if (!address) throw ec2Error("InvalidAssociationID.NotFound", `The association ID '${associationId}' does not exist`);
        Object.assign(address, { networkInterfaceId: null, privateIpAddress: null, associationId: null });
        save();
        return {
            body: { return: true },
            summary: address.allocationId,
            apply: address.netns ? () => applyNat(state, address.netns) : undefined,
        };
    },

    /** An associated address is refused with AWS's code (EC2 API reference, ReleaseAddress); the message is this stand-in's. */
    ReleaseAddress({ state, region, params, save }) {
        const allocationId = params.get("AllocationId");
        if (!allocationId) throw ec2Error("MissingParameter", "fake-aws: this stand-in releases VPC addresses by AllocationId only");
        const i = state.addresses.findIndex((a) => a.allocationId === allocationId && a.awsRegion === region);
        if (i < 0) throw allocationNotFound(allocationId);
        const address = state.addresses[i];
        if (address.associationId) {
            throw ec2Error(
                "InvalidIPAddress.InUse",
                `Address ${address.publicIp} (${allocationId}) is in use by ${address.associationId}.`,
            );
        }
        state.addresses.splice(i, 1);
        save();
        return { body: { return: true }, summary: "released" };
    },

    ReplaceRoute({ state, region, params, save }) {
        const tableId = params.get("RouteTableId");
        if (!tableId) throw ec2Error("MissingParameter", "The request must contain the parameter routeTableId");
        const cidr = params.get("DestinationCidrBlock");
        if (!cidr)
            throw ec2Error("MissingParameter", "fake-aws: this stand-in replaces IPv4 routes only: DestinationCidrBlock is required");
        const otherTargets = [
            "GatewayId",
            "InstanceId",
            "NatGatewayId",
            "TransitGatewayId",
            "VpcPeeringConnectionId",
            "EgressOnlyInternetGatewayId",
            "LocalGatewayId",
            "CarrierGatewayId",
            "VpcEndpointId",
            "CoreNetworkArn",
            "LocalTarget",
        ].filter((k) => params.has(k));
        if (otherTargets.length) {
            throw ec2Error(
                "InvalidParameterValue",
                `fake-aws: this stand-in routes to network interfaces only, not ${otherTargets.join(", ")}`,
            );
        }
        const interfaceId = params.get("NetworkInterfaceId");
        if (!interfaceId) throw ec2Error("MissingParameter", "The request must contain a route target (this stand-in: NetworkInterfaceId)");
        const table = state.routeTables.find((t) => t.routeTableId === tableId && t.awsRegion === region);
        if (!table) throw routeTableNotFound(tableId);
        if (!state.networkInterfaces.some((n) => n.networkInterfaceId === interfaceId && n.awsRegion === region)) {
            throw interfaceNotFound(interfaceId);
        }
        const route = table.routes.find((r) => r.destinationCidrBlock === cidr);
        if (!route) throw ec2Error("InvalidRoute.NotFound", `no route with destination-cidr-block ${cidr} in route table ${tableId}`);
        route.networkInterfaceId = interfaceId;
        save();
        return { body: { return: true }, summary: "replaced", apply: table.netns ? () => applyRoute(state, table, route) : undefined };
    },

    DescribeRouteTables({ state, region, params }) {
        rejectFilters(params);
        const ids = queryList(params, "RouteTableId");
        let found = state.routeTables.filter((t) => t.awsRegion === region);
        for (const id of ids) if (!found.some((t) => t.routeTableId === id)) throw routeTableNotFound(id);
        if (ids.length) found = found.filter((t) => ids.includes(t.routeTableId));
        const routeTableSet = found.map((t) => ({
            routeTableId: t.routeTableId,
            vpcId: t.vpcId,
            ownerId: ACCOUNT,
            routeSet: t.routes.map((r) => ({
                destinationCidrBlock: r.destinationCidrBlock,
                networkInterfaceId: r.networkInterfaceId,
                origin: "CreateRoute",
                state: "active",
            })),
            associationSet: [],
            propagatingVgwSet: [],
            tagSet: [],
        }));
        return { body: { routeTableSet }, summary: `${found.length} tables` };
    },
};

const CLOUDWATCH_TARGET = "GraniteServiceVersion20100801.";
const STATISTICS = new Set(["SampleCount", "Average", "Sum", "Minimum", "Maximum"]);

/**
 * CloudWatch GetMetricStatistics over <store>/.metrics.jsonl: the datapoints of exactly these
 * dimensions (as CloudWatch matches them), one per period that has data, its Timestamp the period's
 * start, in epoch seconds (AWS JSON 1.0).
 */
function getMetricStatistics(storeDir, region, body) {
    for (const key of ["Namespace", "MetricName", "StartTime", "EndTime", "Period"]) {
        if (body[key] === undefined) throw new AwsError(400, "MissingParameter", `The parameter ${key} is required.`);
    }
    const statistics = body.Statistics ?? [];
    if (statistics.length === 0 || statistics.some((s) => !STATISTICS.has(s))) {
        throw new AwsError(400, "InvalidParameterCombination", "Must specify either Statistics or ExtendedStatistics, but not both.");
    }
    const period = Number(body.Period);
    const wanted = Object.fromEntries((body.Dimensions ?? []).map((d) => [d.Name, d.Value]));
    const sameDimensions = (d) =>
        Object.keys(d).length === Object.keys(wanted).length && Object.entries(wanted).every(([k, v]) => d[k] === v);
    const file = path.join(storeDir, ".metrics.jsonl");
    const lines = fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
    const buckets = new Map();
    for (const line of lines) {
        const m = JSON.parse(line);
        if (m.awsRegion !== region || m.namespace !== body.Namespace || m.metricName !== body.MetricName || !sameDimensions(m.dimensions))
            continue;
        if (m.time < Number(body.StartTime) || m.time >= Number(body.EndTime)) continue;
        const start = Math.floor(m.time / period) * period;
        if (!buckets.has(start)) buckets.set(start, { values: [], unit: m.unit });
        buckets.get(start).values.push(m.value);
    }
    const Datapoints = [...buckets.entries()]
        .sort(([a], [b]) => a - b)
        .map(([start, { values, unit }]) => {
            const all = {
                SampleCount: values.length,
                Sum: values.reduce((a, b) => a + b, 0),
                Minimum: Math.min(...values),
                Maximum: Math.max(...values),
            };
            all.Average = all.Sum / values.length;
            return { Timestamp: start, Unit: unit, ...Object.fromEntries(statistics.map((s) => [s, all[s]])) };
        });
    return { Label: body.MetricName, Datapoints };
}

/** CloudWatch PutMetricData: each datum as one line of <store>/.metrics.jsonl. */
function putMetricData(storeDir, region, params) {
    const namespace = params.get("Namespace");
    if (!namespace) throw new AwsError(400, "MissingParameter", "The parameter Namespace is required.");
    if (namespace.startsWith("AWS/") || namespace.length > 255) {
        throw new AwsError(400, "InvalidParameterValue", `The value ${namespace} for parameter Namespace is invalid.`);
    }
    const data = [];
    const time = Date.now() / 1000;
    for (let i = 1; [...params.keys()].some((k) => k.startsWith(`MetricData.member.${i}.`)); i++) {
        const p = `MetricData.member.${i}`;
        const metricName = params.get(`${p}.MetricName`);
        if (!metricName) throw new AwsError(400, "MissingParameter", `The parameter ${p}.MetricName is required.`);
        const dimensions = {};
        for (let j = 1; params.has(`${p}.Dimensions.member.${j}.Name`); j++) {
            const value = params.get(`${p}.Dimensions.member.${j}.Value`);
            if (value === null) throw new AwsError(400, "MissingParameter", `The parameter ${p}.Dimensions.member.${j}.Value is required.`);
            dimensions[params.get(`${p}.Dimensions.member.${j}.Name`)] = value;
        }
        if (Object.keys(dimensions).length > 30) {
            throw new AwsError(400, "InvalidParameterValue", `The collection ${p}.Dimensions must not have a size greater than 30.`);
        }
        const raw = params.get(`${p}.Value`);
        if (raw === null) {
            throw new AwsError(
                400,
                "InvalidParameterCombination",
                `fake-aws: this stand-in takes ${p}.Value only (not Values or StatisticValues)`,
            );
        }
        const value = Number(raw);
        if (raw.trim() === "" || !Number.isFinite(value))
            throw new AwsError(400, "InvalidParameterValue", `The value ${raw} for parameter ${p}.Value is invalid.`);
        const unit = params.get(`${p}.Unit`) ?? "None";
        if (!CLOUDWATCH_UNITS.has(unit))
            throw new AwsError(400, "InvalidParameterValue", `The value ${unit} for parameter ${p}.Unit is invalid.`);
        data.push({ time, awsRegion: region, namespace, metricName, dimensions, value, unit });
    }
    if (data.length === 0) throw new AwsError(400, "MissingParameter", "The parameter MetricData is required.");
    if (data.length > 1000)
        throw new AwsError(400, "InvalidParameterValue", "The collection MetricData must not have a size greater than 1000.");
    fs.appendFileSync(path.join(storeDir, ".metrics.jsonl"), data.map((d) => `${JSON.stringify(d)}\n`).join(""));
    return data.map((d) => `${d.metricName}=${d.value}`).join(",");
}

const LOGS_TARGET = "Logs_20140328.";

/**
 * CloudWatch Logs (AWS JSON 1.1, X-Amz-Target Logs_20140328.<op>): groups and streams created by
 * CreateLogGroup and CreateLogStream (the program's resources, in the lab the operator), events put by
 * PutLogEvents and read back by GetLogEvents, kept in <store>/.logs.json. PutLogEvents checks what
 * AWS checks and the gateways rely on: the group and the stream exist, the events are in
 * chronological order, at most 10,000 of them and 1,048,576 bytes (each message plus 26).
 */
const logsOperations = {
    CreateLogGroup(logs, region, body) {
        logs[region] ??= {};
        const groups = logs[region];
        if (groups[body.logGroupName]) throw new AwsError(400, "ResourceAlreadyExistsException", "The specified log group already exists");
        groups[body.logGroupName] = { streams: {} };
        return { result: {}, summary: body.logGroupName };
    },
    CreateLogStream(logs, region, body) {
        const group = logGroupOf(logs, region, body);
        if (group.streams[body.logStreamName])
            throw new AwsError(400, "ResourceAlreadyExistsException", "The specified log stream already exists");
        group.streams[body.logStreamName] = [];
        return { result: {}, summary: `${body.logGroupName}:${body.logStreamName}` };
    },
    PutLogEvents(logs, region, body) {
        const stream = logStreamOf(logs, region, body);
        const events = body.logEvents ?? [];
        if (events.length === 0 || events.length > 10_000) {
            throw invalid(
                "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length between 1 and 10000",
            );
        }
        if (events.reduce((n, e) => n + Buffer.byteLength(String(e.message)) + 26, 0) > 1_048_576) {
            throw new AwsError(400, "InvalidParameterException", "Upload too large: the batch is over 1,048,576 bytes");
        }
        if (events.some((e, i) => i > 0 && e.timestamp < events[i - 1].timestamp)) {
            throw new AwsError(
                400,
                "InvalidParameterException",
                "Log events in a single PutLogEvents request must be in chronological order.",
            );
        }
        const ingestionTime = Date.now();
        stream.push(...events.map((e) => ({ timestamp: Number(e.timestamp), message: String(e.message), ingestionTime })));
        return { result: { nextSequenceToken: String(stream.length).padStart(56, "0") }, summary: `${events.length} events` };
    },
    /** The newest `limit` events (startFromHead false, the default) or the oldest, in order. */
    GetLogEvents(logs, region, body) {
        const all = logStreamOf(logs, region, body).filter(
            (e) =>
                (body.startTime === undefined || e.timestamp >= body.startTime) &&
                (body.endTime === undefined || e.timestamp < body.endTime),
        );
        const limit = Math.min(Number(body.limit ?? 10_000), 10_000);
        const events = body.startFromHead ? all.slice(0, limit) : all.slice(-limit);
        return { result: { events, nextForwardToken: "f/end", nextBackwardToken: "b/end" }, summary: `${events.length} events` };
    },
};

function logGroupOf(logs, region, body) {
    const group = logs[region]?.[body.logGroupName];
    if (!group) throw new AwsError(400, "ResourceNotFoundException", "The specified log group does not exist.");
    return group;
}

function logStreamOf(logs, region, body) {
    const stream = logGroupOf(logs, region, body).streams[body.logStreamName];
    if (!stream) throw new AwsError(400, "ResourceNotFoundException", "The specified log stream does not exist.");
    return stream;
}

/** A failure taken from .faults.json, in the words of the service that answers it. */
function injectedError(service, failure) {
    const table = {
        ssm: {
            ThrottlingException: [400, "ThrottlingException", "Rate exceeded (injected)."],
            InternalServerError: [500, "InternalServerError", "Internal server error (injected)."],
        },
        ec2: {
            ThrottlingException: [503, "RequestLimitExceeded", "Request limit exceeded. (injected)"],
            InternalServerError: [500, "InternalError", "An internal error has occurred. (injected)"],
        },
        logs: {
            ThrottlingException: [400, "ThrottlingException", "Rate exceeded (injected)."],
            InternalServerError: [500, "ServiceUnavailableException", "The service cannot complete the request (injected)."],
        },
        monitoring: {
            ThrottlingException: [400, "Throttling", "Rate exceeded (injected)."],
            InternalServerError: [500, "InternalServiceFault", "Internal service fault (injected)."],
        },
    }[service];
    const [status, code, message] = table[failure] ?? [400, String(failure), "Rate exceeded (injected)."];
    return new AwsError(status, code, message);
}

/** The signing region from the SigV4 credential scope: Credential=AKID/DATE/REGION/SERVICE/aws4_request. */
function regionOf(req) {
    const m = /Credential=[^/,\s]+\/\d{8}\/([^/,\s]+)\/[^/,\s]+\/aws4_request/.exec(req.headers.authorization ?? "");
    if (!m) throw new AwsError(400, "MissingAuthenticationTokenException", "Request is missing a SigV4 Authorization header.");
    if (!REGION_RE.test(m[1])) throw new AwsError(400, "InvalidSignatureException", `Bad region ${m[1]} in the credential scope.`);
    return m[1];
}

function readBody(req) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        let size = 0;
        req.on("data", (c) => {
            size += c.length;
            if (size > 1 << 20) reject(new AwsError(413, "RequestEntityTooLarge", "Request body over 1 MiB."));
            else chunks.push(c);
        });
        req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
        req.on("error", reject);
    });
}

/**
 * Take one failure from the budget in .faults.json, if any. Synchronous from read to write, so two
 * requests in flight cannot both take the last one.
 */
function takeFailure(faultsFile, faults) {
    const n = Number(faults.failNext ?? 0);
    if (!(n > 0)) return undefined;
    writeJsonAtomic(faultsFile, { ...faults, failNext: n - 1 });
    return faults.error ?? "ThrottlingException";
}

/** The next injected failure of one EC2 action (`ec2FailNext`), counted down; undefined if none is left. */
function takeOpFailure(faultsFile, op) {
    const faults = readJson(faultsFile, {});
    const n = Number(faults.ec2FailNext?.[op] ?? 0);
    if (!(n > 0)) return undefined;
    writeJsonAtomic(faultsFile, { ...faults, ec2FailNext: { ...faults.ec2FailNext, [op]: n - 1 } });
    return faults.error ?? "ThrottlingException";
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The body of an AWS JSON request (SSM, CloudWatch's reads, CloudWatch Logs); refused as AWS refuses it when it is not JSON. */
function jsonBody(raw) {
    try {
        return raw === "" ? {} : JSON.parse(raw);
    } catch {
        throw new AwsError(400, "SerializationException", "The request body is not JSON.");
    }
}

async function main() {
    const opts = parseArgs(process.argv.slice(2));
    fs.mkdirSync(opts.store, { recursive: true });
    const store = new Store(opts.store);
    const faultsFile = path.join(opts.store, ".faults.json");
    const authorizer = opts.iam ? new Authorizer(opts.iam, opts.store) : undefined;
    /** IAM's verdict on the request (nothing without --iam): throws the service's own refusal. */
    const authorize = async (req, entry, input) => {
        if (!authorizer) return;
        const principal = authorizer.principal(accessKeyOf(req.headers.authorization));
        if (!principal) throw new AwsError(...unknownKeyOf(entry.service));
        const lookup = {
            allocationOfAssociation: (id) =>
                (opts.ec2State ? loadEc2State(opts.ec2State).addresses : []).find((a) => a.associationId === id)?.allocationId,
        };
        const request = requestAuthorization({ ...entry, account: ACCOUNT, ...input, lookup });
        const dryRun = input.params?.get("DryRun") === "true";
        const denied = await authorizer.decide(principal, request, { dryRun, account: ACCOUNT });
        if (denied) {
            const error = new AwsError(...denialOf(entry.service, principal, request, denied));
            error.summary = `${principal.name}: ${request.action} on ${denied.resource}`;
            throw error;
        }
    };
    const log = (line) => {
        // Synchronous and before the answer, so that the log is complete when the client has its answer.
        if (opts.log) fs.appendFileSync(opts.log, `${new Date().toISOString()} ${line}\n`);
    };
    const readFaults = () => {
        try {
            return readJson(faultsFile, {});
        } catch (e) {
            throw new AwsError(500, "InternalServerError", `fake-aws: bad ${faultsFile}: ${e.message}`);
        }
    };

    if (opts.ec2State) {
        // The lab's initial data plane comes from the same code as every later change.
        try {
            await applyEc2State(loadEc2State(opts.ec2State));
        } catch (e) {
            process.stderr.write(`fake-aws: cannot apply the EC2 state ${opts.ec2State}: ${e.message}\n`);
            process.exit(1);
        }
    }

    /**
     * The AWS JSON services' faults (.faults.json): the added latency, then the next failure if one is
     * due, thrown in `service`'s words; "unreachable" when the connection is to be dropped instead.
     */
    const injectFault = async (faults, service) => {
        const latency = Number(faults.latencyMs ?? opts.latencyMs);
        const failure = takeFailure(faultsFile, faults);
        if (latency > 0) await sleep(latency);
        if (failure === "unreachable") return "unreachable";
        if (failure) throw injectedError(service, failure);
        return undefined;
    };

    /** SSM: AWS JSON 1.1, the operation in X-Amz-Target. */
    const serveSsm = async (req, raw, entry) => {
        const target = String(req.headers["x-amz-target"] ?? "");
        entry.op = target.startsWith("AmazonSSM.") ? target.slice("AmazonSSM.".length) : target || "-";
        const body = jsonBody(raw);
        entry.subject = String(body.Name ?? body.Path ?? (Array.isArray(body.Names) ? body.Names.join(",") : "-"));
        if (body.NextToken) entry.subject += " (next page)";

        if (req.method !== "POST" || !target.startsWith("AmazonSSM.") || !Object.hasOwn(operations, entry.op)) {
            throw new AwsError(400, "InvalidAction", `The action ${target || "(no X-Amz-Target)"} is not valid for this endpoint.`);
        }
        entry.region = regionOf(req);

        const faults = readFaults();
        if ((await injectFault(faults, "ssm")) === "unreachable") return "unreachable";
        await authorize(req, entry, { body });

        const { result, summary } = operations[entry.op](store, entry.region, body, faults);
        return { status: 200, text: JSON.stringify(result), summary: `ok ${summary}` };
    };

    /** CloudWatch reads, in AWS JSON 1.0 (X-Amz-Target GraniteServiceVersion20100801.<op>), as the SDK v3 sends them. */
    const serveCloudWatchJson = async (req, raw, entry) => {
        entry.service = "monitoring";
        entry.op = String(req.headers["x-amz-target"]).slice(CLOUDWATCH_TARGET.length);
        const body = jsonBody(raw);
        entry.subject = `${body.Namespace ?? "-"}/${body.MetricName ?? "-"}`;
        entry.region = regionOf(req);
        if (req.method !== "POST" || entry.op !== "GetMetricStatistics") {
            throw new AwsError(400, "InvalidAction", `The action ${entry.op} is not valid for this web service.`);
        }
        await authorize(req, entry, { body });
        const result = getMetricStatistics(opts.store, entry.region, body);
        return { status: 200, text: JSON.stringify(result), summary: `ok ${result.Datapoints.length} datapoints` };
    };

    /** CloudWatch Logs: AWS JSON 1.1, the operation in X-Amz-Target; with the SSM faults (.faults.json). */
    const serveLogs = async (req, raw, entry) => {
        entry.service = "logs";
        entry.op = String(req.headers["x-amz-target"]).slice(LOGS_TARGET.length);
        const body = jsonBody(raw);
        entry.subject = `${body.logGroupName ?? "-"}:${body.logStreamName ?? "-"}`;
        if (req.method !== "POST" || !Object.hasOwn(logsOperations, entry.op)) {
            throw new AwsError(400, "UnknownOperationException", `The action ${entry.op} is not valid for this endpoint.`);
        }
        entry.region = regionOf(req);
        if ((await injectFault(readFaults(), "logs")) === "unreachable") return "unreachable";
        await authorize(req, entry, { body });
        const file = path.join(opts.store, ".logs.json");
        const logs = readJson(file, {});
        const { result, summary } = logsOperations[entry.op](logs, entry.region, body);
        if (entry.op !== "GetLogEvents") writeJsonAtomic(file, logs);
        return { status: 200, text: JSON.stringify(result), summary: `ok ${summary}` };
    };

    /** EC2 and CloudWatch: the Query protocol (form-encoded Action=...), answered in XML. */
    const serveQuery = async (req, raw, entry) => {
        const params = new URLSearchParams(raw);
        entry.op = params.get("Action") ?? "-";
        entry.service = entry.op === "PutMetricData" ? "monitoring" : "ec2";
        if (entry.service === "ec2") entry.subject = ec2Subject(entry.op, params);
        else entry.subject = params.get("Namespace") ?? "-";
        if (req.method !== "POST" || (entry.op !== "PutMetricData" && !Object.hasOwn(ec2Actions, entry.op))) {
            throw new AwsError(400, "InvalidAction", `The action ${entry.op} is not valid for this web service.`);
        }
        entry.region = regionOf(req);

        const started = Date.now();
        const faults = readFaults();
        const latency = Number(entry.service === "ec2" ? (faults.ec2LatencyMs ?? opts.ec2LatencyMs) : (faults.latencyMs ?? opts.latencyMs));
        const failure = takeFailure(faultsFile, faults);
        const waitOut = async () => {
            const rest = started + latency - Date.now();
            if (rest > 0) await sleep(rest);
        };
        if (failure) {
            await waitOut();
            if (failure === "unreachable") return "unreachable";
            throw injectedError(entry.service, failure);
        }

        if (entry.service === "monitoring") {
            let outcome;
            try {
                await authorize(req, entry, { params });
                outcome = { summary: putMetricData(opts.store, entry.region, params) };
            } catch (e) {
                outcome = { error: e };
            }
            await waitOut();
            if (outcome.error) throw outcome.error;
            const id = randomUUID();
            return {
                status: 200,
                text: `<PutMetricDataResponse xmlns="${CLOUDWATCH_XMLNS}"><ResponseMetadata><RequestId>${id}</RequestId></ResponseMetadata></PutMetricDataResponse>`,
                summary: `ok ${outcome.summary}`,
            };
        }

        // EC2: check and change the state, apply it to the data plane, and only then (after the
        // latency) answer, as a completed API call.
        let outcome;
        try {
            const deny = Array.isArray(faults.ec2Deny) ? faults.ec2Deny : [];
            if (deny.includes(entry.op)) {
                throw ec2Error(
                    "UnauthorizedOperation",
                    `You are not authorized to perform this operation. User: arn:aws:sts::${ACCOUNT}:assumed-role/fake/session is not authorized to perform: ec2:${entry.op} because no identity-based policy allows the ec2:${entry.op} action (injected)`,
                    403,
                );
            }
            await authorize(req, entry, { params });
            if (params.get("DryRun") === "true") {
                throw ec2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412);
            }
            const opFailure = takeOpFailure(faultsFile, entry.op);
            if (opFailure) throw injectedError("ec2", opFailure);
            if (!opts.ec2State) {
                throw ec2Error("UnsupportedOperation", "fake-aws: no EC2 state was given (start the endpoint with --ec2-state FILE)");
            }
            const state = loadEc2State(opts.ec2State);
            const result = ec2Actions[entry.op]({
                state,
                region: entry.region,
                params,
                save: () => writeJsonAtomic(opts.ec2State, state),
            });
            // Queued in the same turn as the state change, so that changes reach the data plane in order.
            if (result.apply) {
                await serially(result.apply).catch((e) => {
                    process.stderr.write(`fake-aws: ${entry.op} ${entry.subject}: the data plane failed: ${e.message}\n`);
                    throw ec2Error("InternalError", `fake-aws: the state changed but the data plane failed: ${e.message}`, 500);
                });
            }
            outcome = { result };
        } catch (e) {
            outcome = { error: e };
        }
        await waitOut();
        if (outcome.error) throw outcome.error;
        const name = `${entry.op}Response`;
        return {
            status: 200,
            text: `<?xml version="1.0" encoding="UTF-8"?>\n<${name} xmlns="${EC2_XMLNS}"><requestId>${randomUUID()}</requestId>${xml(outcome.result.body)}</${name}>`,
            summary: `ok ${outcome.result.summary}`,
        };
    };

    const server = http.createServer(async (req, res) => {
        const entry = { protocol: "json", service: "ssm", op: "-", region: "-", subject: "-" };
        const send = (status, text, summary) => {
            log(`${entry.region} ${entry.op} ${entry.subject} ${status} ${summary}`);
            const json = entry.protocol === "json";
            res.writeHead(status, {
                "Content-Type": json ? "application/x-amz-json-1.1" : "text/xml;charset=UTF-8",
                "Content-Length": Buffer.byteLength(text),
                "x-amzn-RequestId": randomUUID(),
            });
            res.end(text);
        };
        const sendError = (e) => {
            const id = randomUUID();
            const message = xmlEscape(e.message);
            const summary = e.summary ? `${e.type} (${e.summary})` : e.type;
            if (entry.protocol === "json") {
                send(e.status, JSON.stringify({ __type: e.type, message: e.message }), summary);
            } else if (entry.service === "ec2") {
                const body = `<Response><Errors><Error><Code>${xmlEscape(e.type)}</Code><Message>${message}</Message></Error></Errors><RequestID>${id}</RequestID></Response>`;
                send(e.status, `<?xml version="1.0" encoding="UTF-8"?>\n${body}`, summary);
            } else {
                const type = e.status >= 500 ? "Receiver" : "Sender";
                const body = `<ErrorResponse xmlns="${CLOUDWATCH_XMLNS}"><Error><Type>${type}</Type><Code>${xmlEscape(e.type)}</Code><Message>${message}</Message></Error><RequestId>${id}</RequestId></ErrorResponse>`;
                send(e.status, body, summary);
            }
        };
        try {
            const raw = await readBody(req);
            const form = /^application\/x-www-form-urlencoded\b/i.test(String(req.headers["content-type"] ?? ""));
            if (form && req.headers["x-amz-target"] === undefined) entry.protocol = "query";
            const target = String(req.headers["x-amz-target"] ?? "");
            const answer =
                entry.protocol === "query"
                    ? await serveQuery(req, raw, entry)
                    : target.startsWith(CLOUDWATCH_TARGET)
                      ? await serveCloudWatchJson(req, raw, entry)
                      : target.startsWith(LOGS_TARGET)
                        ? await serveLogs(req, raw, entry)
                        : await serveSsm(req, raw, entry);
            if (answer === "unreachable") {
                log(`${entry.region} ${entry.op} ${entry.subject} - connection destroyed (injected)`);
                req.socket.destroy();
                return;
            }
            send(answer.status, answer.text, answer.summary);
        } catch (e) {
            if (e instanceof AwsError) {
                sendError(e);
            } else {
                process.stderr.write(`fake-aws: ${e?.stack ?? e}\n`);
                const error = new AwsError(
                    500,
                    entry.service === "ec2" && entry.protocol === "query" ? "InternalError" : "InternalServerError",
                    String(e?.message ?? e),
                );
                error.summary = `bug: ${e?.message ?? e}`;
                sendError(error);
            }
        }
    });

    server.on("error", (e) => {
        process.stderr.write(`fake-aws: cannot listen on ${opts.listen}: ${e.message}\n`);
        process.exit(1);
    });
    // The same service on a unix socket too: the lab's operator (the user's machine) reaches an endpoint
    // that listens inside a network namespace through the file system.
    const unixServer = opts.unix ? http.createServer((req, res) => server.emit("request", req, res)) : undefined;
    server.listen(opts.port, opts.host, () => {
        const { port } = server.address();
        const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
        const announce = () => process.stdout.write(`listening http://${host}:${port}\n`);
        if (!unixServer) return announce();
        fs.rmSync(opts.unix, { force: true });
        unixServer.listen(opts.unix, announce);
    });

    const stop = () => {
        unixServer?.close();
        unixServer?.closeAllConnections();
        server.close(() => process.exit(0));
        // The CLI keeps connections alive; they must not hold the exit up.
        server.closeAllConnections();
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
    if (opts.exitWithParent) {
        const parent = process.ppid;
        // Orphans are re-parented (to init or a subreaper): the parent's pid is no longer ours.
        setInterval(() => process.ppid !== parent && stop(), 500).unref();
    }
}

main();
