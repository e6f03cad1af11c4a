/**
 * Start, feed and break the local stand-in for AWS (`lab/fake-aws/endpoint.mjs`: SSM Parameter Store,
 * EC2's Elastic IP and route calls applied to the lab's VPC routers, CloudWatch PutMetricData), for
 * the tests and the lab. Parameters, the EC2 state and faults are changed by writing the files
 * directly, as `pulumi up` changes AWS behind the gateways' back; the server re-reads them on every
 * request.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

/**
 * The real AWS CLI v2 (Debian's). Called by its full path because an older v1 shim comes first on
 * PATH on the development machines.
 */
export const AWS_CLI = "/usr/bin/aws";

/** The server script: next to this module from source (ts-node), or back in lab/ when compiled to bin/lab/. */
export const FAKE_AWS_ENDPOINT: string = (() => {
    const candidates = [
        path.join(__dirname, "fake-aws", "endpoint.mjs"),
        path.join(__dirname, "..", "..", "lab", "fake-aws", "endpoint.mjs"),
    ];
    return candidates.find((c) => fs.existsSync(c)) ?? candidates[0];
})();

/**
 * The lab VM's stand-in for the CLI (`lab/fake-aws/aws-lite`): under software emulation the real one
 * takes over a minute to start. It answers only the gateways' own calls (the agent's
 * `ssm get-parameters-by-path`, `ssm get-parameter`, the failover's `ec2 describe-addresses`,
 * `associate-address`, `replace-route`, `describe-route-tables`, and `cloudwatch put-metric-data`, `logs put-log-events`),
 * over the same protocols, printing what the real CLI prints; it refuses anything else.
 */
export const AWS_LITE: string = path.join(path.dirname(FAKE_AWS_ENDPOINT), "aws-lite");

/**
 * The `aws` of the failover lab's gateways (`lab/fake-aws/aws-lab`): a takeover's two calls
 * (associate-address, replace-route) over bash's /dev/tcp, everything else through aws-lite. Under
 * the VM's emulation a Python start takes about 3 s and every exec costs, which a real gateway's CLI does not pay.
 */
export const AWS_LAB: string = path.join(path.dirname(FAKE_AWS_ENDPOINT), "aws-lab");

/** The lab's stand-in for journald (`lab/fake-journal/journalctl`): hubspoke-events reads the lab's log files through it. */
export const LAB_JOURNALCTL: string = path.join(path.dirname(FAKE_AWS_ENDPOINT), "..", "fake-journal", "journalctl");

/** Where and how to run the server. */
export interface FakeAwsOptions {
    /** Address to listen on; default 127.0.0.1. */
    host?: string;
    /** Port; default 0, a free one. */
    port?: number;
    /** Delay added to every answer, unless `.faults.json` sets its own. */
    latencyMs?: number;
    /** Run inside this network namespace (`ip netns exec`), where the lab's gateways can reach it. */
    netns?: string;
    /** File to append one line per request to (operation, name or path, result). */
    log?: string;
    /**
     * The EC2 state file (see `Ec2State`): without it EC2 calls fail. The server applies it whole to
     * the namespaces it names before it listens (so it must run as root then), and every change before
     * it answers.
     */
    ec2State?: string;
    /** How long every EC2 call takes (the change applied first); default 1000, as about on AWS. */
    ec2LatencyMs?: number;
    /**
     * The principals file (lab/iam.ts writePrincipals): with it, every call is authorized with its
     * caller's policies as IAM would; without it, every call is allowed.
     */
    iam?: string;
    /** Also serve on this unix socket: how a process outside `netns` (the lab's operator) reaches it. */
    unixSocket?: string;
}

/** An Elastic IP in the EC2 state. */
export interface Ec2Address {
    allocationId: string;
    publicIp: string;
    awsRegion: string;
    /** The VPC router namespace doing its 1:1 NAT (chains HUBSPOKE-EIP-PRE/POST on `wan`); none: control plane only. */
    netns?: string | null;
    networkInterfaceId: string | null;
    privateIpAddress: string | null;
    associationId: string | null;
}

/** A network interface in the EC2 state. */
export interface Ec2NetworkInterface {
    networkInterfaceId: string;
    awsRegion: string;
    /** Its private addresses; the first is the primary (AssociateAddress's default). */
    privateIpAddresses: string[];
    /** Where the VPC router sends traffic routed to this interface. */
    nextHop?: string;
}

/** A route table in the EC2 state. */
export interface Ec2RouteTable {
    routeTableId: string;
    awsRegion: string;
    vpcId?: string;
    /** The VPC router namespace holding it; none: control plane only. */
    netns?: string | null;
    /** Its routing table number in `netns` (default main). */
    table?: number;
    routes: { destinationCidrBlock: string; networkInterfaceId: string }[];
}

/** The endpoint's EC2 state file: re-read on every EC2 call, rewritten atomically on every change. */
export interface Ec2State {
    addresses: Ec2Address[];
    networkInterfaces: Ec2NetworkInterface[];
    routeTables: Ec2RouteTable[];
}

/** One datum the endpoint received by PutMetricData: one line of `<store>/.metrics.jsonl`. */
export interface MetricRecord {
    /** When it arrived, in seconds since the epoch. */
    time: number;
    awsRegion: string;
    namespace: string;
    metricName: string;
    dimensions: Record<string, string>;
    value: number;
    unit: string;
}

/** Failures for the server to inject, re-read on every request (see endpoint.mjs). */
export interface FakeAwsFaults {
    /** Fail this many next requests, whatever they are, then answer normally again. */
    failNext?: number;
    /**
     * How they fail: throttled (default; SSM 400 ThrottlingException, EC2 503 RequestLimitExceeded,
     * CloudWatch 400 Throttling), an internal error (500 InternalServerError, InternalError,
     * InternalServiceFault), or a closed connection.
     */
    error?: "ThrottlingException" | "InternalServerError" | "unreachable";
    /** Parameter names (`*` globs allowed) answered with AccessDeniedException, also inside a by-path listing. */
    deny?: string[];
    /** Delay added to every SSM and CloudWatch answer. */
    latencyMs?: number;
    /** EC2 actions (`AssociateAddress`, ...) answered with UnauthorizedOperation. */
    ec2Deny?: string[];
    /**
     * Per EC2 action, how many of its next calls fail as `error` says, dry runs not counted: a call
     * that IAM allowed and whose dry run passed, refused all the same (throttled, say).
     */
    ec2FailNext?: Record<string, number>;
    /** How long every EC2 call takes, instead of the server's `ec2LatencyMs`. */
    ec2LatencyMs?: number;
}

/** A running server over one store directory. */
export interface FakeAws {
    /** `http://host:port`, for the CLI's `--endpoint-url`. */
    readonly url: string;
    /** The store directory. */
    readonly store: string;
    /** The server's process id (inside `netns` if one was given). */
    readonly pid: number;
    /** Create or change a parameter, as `pulumi up` would; `type` unset keeps the current one (String if new). */
    put(region: string, name: string, value: string, type?: "String" | "SecureString" | "StringList"): void;
    /** Delete a parameter, if it exists. */
    remove(region: string, name: string): void;
    /** Create a log group (if missing) and a stream in it, as `pulumi up` would (the gateways' event logs). */
    logStream(region: string, group: string, stream: string): void;
    /** Replace the injected faults; `faults({})` clears them. */
    faults(faults: FakeAwsFaults): void;
    /** SIGTERM, then SIGKILL after 5 s; resolves when the server has exited. */
    stop(): Promise<void>;
}

/**
 * Node's own start under the lab VM's emulation takes seconds, and with an EC2 state the server first
 * programs every VPC router (a process per table and namespace): generous, since a server that
 * cannot start fails at once with its stderr anyway.
 */
const STARTUP_TIMEOUT_MS = 60_000;

/**
 * Start the server over `store` (created if missing) and resolve once it listens. Fails within 60 s
 * with the server's stderr if it does not come up.
 */
export function startFakeAws(store: string, opts: FakeAwsOptions = {}): Promise<FakeAws> {
    const storeDir = path.resolve(store);
    fs.mkdirSync(storeDir, { recursive: true });
    const host = opts.host ?? "127.0.0.1";
    const args = [FAKE_AWS_ENDPOINT, "--store", storeDir, "--listen", `${host.includes(":") ? `[${host}]` : host}:${opts.port ?? 0}`];
    if (opts.latencyMs !== undefined) args.push("--latency-ms", String(opts.latencyMs));
    if (opts.log !== undefined) args.push("--log", path.resolve(opts.log));
    if (opts.ec2State !== undefined) args.push("--ec2-state", path.resolve(opts.ec2State));
    if (opts.ec2LatencyMs !== undefined) args.push("--ec2-latency-ms", String(opts.ec2LatencyMs));
    if (opts.iam !== undefined) args.push("--iam", path.resolve(opts.iam));
    if (opts.unixSocket !== undefined) args.push("--unix-socket", path.resolve(opts.unixSocket));
    args.push("--exit-with-parent");
    // `ip netns exec` execs the command in place, so the child's pid is the server's own.
    const argv = opts.netns ? ["ip", "netns", "exec", opts.netns, process.execPath, ...args] : [process.execPath, ...args];
    const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });

    // Both pipes are drained for the server's whole life: a full pipe would block it.
    let stderr = "";
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
        stderr = (stderr + chunk).slice(-8192);
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

    return new Promise<FakeAws>((resolve, reject) => {
        let stdout = "";
        let settled = false;
        const fail = (why: string) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            child.kill("SIGKILL");
            reject(new Error(`fake-aws: ${why} (${argv.join(" ")})${stderr.trim() ? `; its stderr:\n${stderr.trim()}` : ""}`));
        };
        const timer = setTimeout(() => fail(`no "listening" line within ${STARTUP_TIMEOUT_MS / 1000} s`), STARTUP_TIMEOUT_MS);
        child.once("error", (e) => fail(`cannot start: ${e.message}`));
        // "close", not "exit": by then all of stderr has arrived to be quoted.
        child.once("close", (code, signal) => fail(`exited before listening (${signal ?? `code ${code}`})`));
        child.stdout!.setEncoding("utf8");
        child.stdout!.on("data", (chunk: string) => {
            if (settled) return;
            stdout += chunk;
            const m = /^listening (http:\/\/\S+)$/m.exec(stdout);
            if (!m) return;
            settled = true;
            clearTimeout(timer);
            resolve(handle(child, m[1], storeDir, exited));
        });
    });
}

function handle(child: ChildProcess, url: string, store: string, exited: Promise<void>): FakeAws {
    return {
        url,
        store,
        pid: child.pid!,
        put(region, name, value, type) {
            const file = parameterFile(store, region, name);
            fs.mkdirSync(path.dirname(file), { recursive: true });
            // One "\n" is appended and the server drops it, so values ending in a newline survive.
            writeAtomic(store, file, value + "\n");
            if (type !== undefined) updateTypes(store, (types) => (types[region + name] = type));
        },
        remove(region, name) {
            fs.rmSync(parameterFile(store, region, name), { force: true });
            updateTypes(store, (types) => delete types[region + name]);
        },
        logStream(region, group, stream) {
            const file = path.join(store, ".logs.json");
            const logs = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : {};
            logs[region] ??= {};
            logs[region][group] ??= { streams: {} };
            logs[region][group].streams[stream] ??= [];
            writeAtomic(store, file, JSON.stringify(logs));
        },
        faults(faults) {
            writeAtomic(store, path.join(store, ".faults.json"), JSON.stringify(faults) + "\n");
        },
        async stop() {
            if (child.exitCode !== null || child.signalCode !== null) return;
            child.kill("SIGTERM");
            const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
            await exited;
            clearTimeout(timer);
        },
    };
}

/**
 * The environment for `AWS_CLI` to talk to the stand-in only: the caller's environment without any
 * AWS_* variable (no profile, region, credentials or CA bundle of the host leaks in), dummy keys
 * (the server checks no signature), no config files, no instance metadata, no pager, no proxy for
 * the local address, and one attempt (no silent retries; a caller testing retries overrides
 * AWS_MAX_ATTEMPTS). CLI 2.9 ignores AWS_ENDPOINT_URL, so callers also pass `--endpoint-url url`;
 * it is set for newer CLIs that read it.
 */
export function awsCliEnv(url: string): Record<string, string> {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
        if (v !== undefined && !k.startsWith("AWS_")) env[k] = v;
    }
    return {
        ...env,
        AWS_ACCESS_KEY_ID: "AKIAFAKEFAKEFAKEFAKE",
        AWS_SECRET_ACCESS_KEY: "fake-secret-access-key",
        AWS_CONFIG_FILE: "/dev/null",
        AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
        AWS_EC2_METADATA_DISABLED: "true",
        AWS_PAGER: "",
        AWS_RETRY_MODE: "standard",
        AWS_MAX_ATTEMPTS: "1",
        AWS_ENDPOINT_URL: url,
        NO_PROXY: "*",
        no_proxy: "*",
    };
}

/** The metric data the server has received, oldest first; none if it has received none. */
export function readMetrics(storeDir: string): MetricRecord[] {
    let text: string;
    try {
        text = fs.readFileSync(path.join(storeDir, ".metrics.jsonl"), "utf8");
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw e;
    }
    return text
        .split("\n")
        .filter((line) => line.trim() !== "")
        .map((line) => JSON.parse(line) as MetricRecord);
}

/** One event the server's CloudWatch Logs holds (PutLogEvents), with when it took it. */
export interface LogEventRecord {
    readonly timestamp: number;
    readonly message: string;
    readonly ingestionTime: number;
}

/** The events of one log stream, oldest first; none if it has none or does not exist. */
export function readLogEvents(storeDir: string, region: string, group: string, stream: string): LogEventRecord[] {
    let text: string;
    try {
        text = fs.readFileSync(path.join(storeDir, ".logs.json"), "utf8");
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw e;
    }
    return JSON.parse(text)[region]?.[group]?.streams?.[stream] ?? [];
}

/** The EC2 state as the server last wrote it (or as it was given). */
export function readEc2State(file: string): Ec2State {
    return JSON.parse(fs.readFileSync(file, "utf8")) as Ec2State;
}

/** Replace the EC2 state (atomically: the server never reads half a file), as `pulumi up` would change EC2. */
export function writeEc2State(file: string, state: Ec2State): void {
    const tmp = `${file}.write.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(state, null, 2) + "\n");
    fs.renameSync(tmp, file);
}

function parameterFile(store: string, region: string, name: string): string {
    if (!/^[a-z0-9-]+$/.test(region)) throw new Error(`fake-aws: bad region ${JSON.stringify(region)}`);
    if (!/^(\/[A-Za-z0-9_.-]+)+$/.test(name) || name.split("/").some((s) => s === "." || s === "..")) {
        throw new Error(`fake-aws: bad parameter name ${JSON.stringify(name)} (hierarchical names only, e.g. /a/b)`);
    }
    return path.join(store, region + name);
}

/** Temporary file in the store's root, outside every region, so no listing ever sees it half written. */
function writeAtomic(store: string, file: string, text: string): void {
    const tmp = path.join(store, `.write.${process.pid}.tmp`);
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, file);
}

function updateTypes(store: string, change: (types: Record<string, string>) => void): void {
    const file = path.join(store, ".types.json");
    let types: Record<string, string> = {};
    try {
        types = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    change(types);
    writeAtomic(store, file, JSON.stringify(types, null, 2) + "\n");
}
