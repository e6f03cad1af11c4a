/**
 * Static checks of rendered gateway files by the real tools: libreswan's own config parser and
 * cloud-init's schema validator. Both come from Debian packages (`libreswan`, `cloud-init`).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export interface CheckResult {
    readonly ok: boolean;
    /** The tool's own words, for the failure message. */
    readonly output: string;
}

/** Why a check cannot run on this machine, or undefined when it can. */
export function missingTool(tool: "ipsec" | "cloud-init"): string | undefined {
    const found = spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
    const pkg = tool === "ipsec" ? "libreswan" : "cloud-init";
    return found ? undefined : `${tool} is not installed (apt-get install -y ${pkg}); scripts/install-system-deps.sh installs it`;
}

function run(cmd: string, args: string[]): CheckResult {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    return {
        ok: r.status === 0,
        output: `$ ${cmd} ${args.join(" ")}\n${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? String(r.error) : ""}`,
    };
}

/**
 * Parses a gateway's `/etc/ipsec.d/*.conf` as libreswan would load them from /etc/ipsec.conf's
 * include, with `ipsec readwriteconf` and `ipsec addconn --checkconfig`. Also reports which conns
 * libreswan saw, so a file that parses to nothing is caught.
 */
export function checkLibreswan(ipsecDir: string): CheckResult & { conns: string[] } {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-check-"));
    try {
        const conf = path.join(tmp, "ipsec.conf");
        fs.writeFileSync(conf, `config setup\n\ninclude ${path.resolve(ipsecDir)}/*.conf\n`);
        const parsed = run("ipsec", ["readwriteconf", "--config", conf]);
        const checked = run("ipsec", ["addconn", "--checkconfig", "--config", conf]);
        const conns = [...parsed.output.matchAll(/^conn (\S+)/gm)].map((m) => m[1]).filter((c) => c !== "%default");
        return { ok: parsed.ok && checked.ok, output: `${parsed.output}\n${checked.output}`, conns };
    } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
    }
}

/** Validates a user-data file against cloud-init's schema (`cloud-init schema --config-file`). */
export function checkCloudInit(userDataFile: string): CheckResult {
    return run("cloud-init", ["schema", "--config-file", userDataFile]);
}
