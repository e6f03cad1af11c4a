/**
 * Start, feed and break the local stand-in for SSM Parameter Store (`lab/fake-aws/endpoint.mjs`), for
 * the tests and the lab. Parameters and faults are changed by writing the store's files directly, as
 * `pulumi up` changes AWS behind the gateways' back; the server re-reads them on every request.
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
 * takes over a minute to start. It answers only the agent's one call, over the same protocol.
 */
export const AWS_LITE: string = path.join(path.dirname(FAKE_AWS_ENDPOINT), "aws-lite");

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
}

/** Failures for the server to inject, re-read on every request (see endpoint.mjs). */
export interface FakeAwsFaults {
    /** Fail this many next requests, whatever they are, then answer normally again. */
    failNext?: number;
    /** How they fail: 400 ThrottlingException (default), 500 InternalServerError, or a closed connection. */
    error?: "ThrottlingException" | "InternalServerError" | "unreachable";
    /** Parameter names (`*` globs allowed) answered with AccessDeniedException, also inside a by-path listing. */
    deny?: string[];
    /** Delay added to every answer. */
    latencyMs?: number;
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
    /** Replace the injected faults; `faults({})` clears them. */
    faults(faults: FakeAwsFaults): void;
    /** SIGTERM, then SIGKILL after 5 s; resolves when the server has exited. */
    stop(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 15_000;

/**
 * Start the server over `store` (created if missing) and resolve once it listens. Fails within 15 s
 * with the server's stderr if it does not come up.
 */
export function startFakeAws(store: string, opts: FakeAwsOptions = {}): Promise<FakeAws> {
    const storeDir = path.resolve(store);
    fs.mkdirSync(storeDir, { recursive: true });
    const host = opts.host ?? "127.0.0.1";
    const args = [FAKE_AWS_ENDPOINT, "--store", storeDir, "--listen", `${host.includes(":") ? `[${host}]` : host}:${opts.port ?? 0}`];
    if (opts.latencyMs !== undefined) args.push("--latency-ms", String(opts.latencyMs));
    if (opts.log !== undefined) args.push("--log", path.resolve(opts.log));
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
