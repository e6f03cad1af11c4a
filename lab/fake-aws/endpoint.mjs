#!/usr/bin/env node
/**
 * A local stand-in for AWS Systems Manager Parameter Store that the real AWS CLI v2 talks to with
 * `--endpoint-url`: the AWS JSON 1.1 protocol, SSM's operations and error names, over a directory.
 *
 *   node lab/fake-aws/endpoint.mjs --store DIR --listen HOST:PORT [--latency-ms N] [--log FILE] [--exit-with-parent]
 *
 * It prints `listening http://HOST:PORT` once it listens (PORT 0 picks a free port), logs one line per
 * request to FILE, and exits on SIGTERM, or with --exit-with-parent as soon as its parent is gone (so
 * that a test runner killed mid-run leaves no server behind).
 *
 * Store layout (the tree `npm run render` writes under ssm/, and what the lab and tests edit as
 * `pulumi up` would edit AWS):
 *   <store>/<region><name>   the value of parameter <name> in <region>; one trailing "\n" is dropped
 *   <store>/.types.json      {"<region><name>": "String" | "SecureString" | "StringList"}, default String
 *   <store>/.versions.json   {"<region><name>": {"sha256", "version"}}: written by this server, so that
 *                            a restarted server keeps counting versions
 *   <store>/.faults.json     injected failures, read on every request:
 *                            {"failNext": N, "error": "ThrottlingException" | "InternalServerError" | "unreachable",
 *                             "deny": ["/name", "/glob/*"], "latencyMs": N}
 * Everything is re-read on every request: nothing is cached but the version counters.
 *
 * Node built-ins only, so that it starts fast, also inside the lab's QEMU VM.
 */
import { createHash, randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";

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
    const opts = { store: "", listen: "", latencyMs: 0, log: "", exitWithParent: false };
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
            case "--latency-ms":
                opts.latencyMs = Number(value);
                if (!Number.isFinite(opts.latencyMs) || opts.latencyMs < 0) usage(`bad --latency-ms ${value}`);
                break;
            case "--log":
                opts.log = path.resolve(value);
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
        `fake-aws: ${why}\nusage: endpoint.mjs --store DIR --listen HOST:PORT [--latency-ms N] [--log FILE] [--exit-with-parent]\n`,
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

/** The signing region from the SigV4 credential scope: Credential=AKID/DATE/REGION/ssm/aws4_request. */
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

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function main() {
    const opts = parseArgs(process.argv.slice(2));
    fs.mkdirSync(opts.store, { recursive: true });
    const store = new Store(opts.store);
    const faultsFile = path.join(opts.store, ".faults.json");
    const log = (line) => {
        // Synchronous and before the answer, so that the log is complete when the client has its answer.
        if (opts.log) fs.appendFileSync(opts.log, `${new Date().toISOString()} ${line}\n`);
    };

    const server = http.createServer(async (req, res) => {
        let op = "-";
        let region = "-";
        let subject = "-";
        const send = (status, body, summary) => {
            log(`${region} ${op} ${subject} ${status} ${summary}`);
            const text = JSON.stringify(body);
            res.writeHead(status, {
                "Content-Type": "application/x-amz-json-1.1",
                "Content-Length": Buffer.byteLength(text),
                "x-amzn-RequestId": randomUUID(),
            });
            res.end(text);
        };
        try {
            const raw = await readBody(req);
            const target = String(req.headers["x-amz-target"] ?? "");
            op = target.startsWith("AmazonSSM.") ? target.slice("AmazonSSM.".length) : target || "-";
            let body;
            try {
                body = raw === "" ? {} : JSON.parse(raw);
            } catch {
                throw new AwsError(400, "SerializationException", "The request body is not JSON.");
            }
            subject = String(body.Name ?? body.Path ?? (Array.isArray(body.Names) ? body.Names.join(",") : "-"));
            if (body.NextToken) subject += " (next page)";

            if (req.method !== "POST" || !target.startsWith("AmazonSSM.") || !Object.hasOwn(operations, op)) {
                throw new AwsError(400, "InvalidAction", `The action ${target || "(no X-Amz-Target)"} is not valid for this endpoint.`);
            }
            region = regionOf(req);

            let faults;
            try {
                faults = readJson(faultsFile, {});
            } catch (e) {
                throw new AwsError(500, "InternalServerError", `fake-aws: bad ${faultsFile}: ${e.message}`);
            }
            const latency = Number(faults.latencyMs ?? opts.latencyMs);
            const failure = takeFailure(faultsFile, faults);
            if (latency > 0) await sleep(latency);
            if (failure === "unreachable") {
                log(`${region} ${op} ${subject} - connection destroyed (injected)`);
                req.socket.destroy();
                return;
            }
            if (failure === "InternalServerError") throw new AwsError(500, "InternalServerError", "Internal server error (injected).");
            if (failure) throw new AwsError(400, String(failure), "Rate exceeded (injected).");

            const { result, summary } = operations[op](store, region, body, faults);
            send(200, result, `ok ${summary}`);
        } catch (e) {
            if (e instanceof AwsError) {
                send(e.status, { __type: e.type, message: e.message }, e.type);
            } else {
                process.stderr.write(`fake-aws: ${e?.stack ?? e}\n`);
                send(
                    500,
                    { __type: "InternalServerError", message: String(e?.message ?? e) },
                    `InternalServerError (bug: ${e?.message ?? e})`,
                );
            }
        }
    });

    server.on("error", (e) => {
        process.stderr.write(`fake-aws: cannot listen on ${opts.listen}: ${e.message}\n`);
        process.exit(1);
    });
    server.listen(opts.port, opts.host, () => {
        const { port } = server.address();
        const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
        process.stdout.write(`listening http://${host}:${port}\n`);
    });

    const stop = () => {
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
