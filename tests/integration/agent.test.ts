/**
 * gateway/hubspoke-agent.sh, the converge agent on every gateway, run for real: the real AWS CLI v2
 * (Debian's, as Amazon Linux 2023 ships v2) against the local Parameter Store (lab/fake-aws), so its
 * query syntax, pagination (10 parameters a page) and text output are exercised as on the gateway;
 * and a recording stand-in for `ipsec` that keeps a list of loaded conns as pluto would. The lab
 * (tests/e2e) runs the same agent against real pluto daemons.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { TunnelSettings } from "../../config/types";
import { DEFAULT_TUNNEL_SETTINGS } from "../../config/validate";
import { gatewayParameterPath, renderGatewayEnv, tunnelParameterNames } from "../../gateway/contract";
import { AWS_CLI, awsCliEnv, type FakeAws, startFakeAws } from "../../lab/fakeAws";
import { tunnelEndState } from "../../render/libreswan";
import { ciMustRun } from "../unit/fixtures";

const REPO = path.join(__dirname, "..", "..");
const AGENT = path.join(REPO, "gateway/hubspoke-agent.sh");
const REGION = "us-east-1";
const PATH = gatewayParameterPath("/hubspoke-vpn/prod", "virginia");
const KEY = (c: string) => `${c}${"k".repeat(30)}-_.+=~${c}`;
const PEERS: Record<string, string> = { sydney: "192.0.2.12", frankfurt: "192.0.2.13", tokyo: "192.0.2.14" };
const CIDRS: Record<string, string> = { sydney: "12.11.0.0/16", frankfurt: "13.11.0.0/16", tokyo: "14.11.0.0/16" };

/** A tunnel end of the hub, as the program renders and publishes it. */
function endState(spoke: string, key: string, settings: TunnelSettings = DEFAULT_TUNNEL_SETTINGS) {
    return tunnelEndState(
        {
            tunnel: `virginia-to-${spoke}`,
            localElasticIp: "192.0.2.11",
            localCidr: "10.11.0.0/16",
            peerElasticIp: PEERS[spoke],
            peerCidr: CIDRS[spoke],
            settings,
        },
        key,
    );
}

/** `ipsec` as the agent uses it, recording each call; `whack --status` lists the loaded conns as pluto does. */
const FAKE_IPSEC = `#!/bin/bash
dir=$(dirname "$0")/..
# libreswan's parser on a staged conn: refuses one that says BROKEN. Not a call to pluto: not recorded.
if [ "$1" = addconn ] && [ "$2" = --checkconfig ]; then
  ! grep -q BROKEN "$(sed -n 's/^include //p' "$4")"
  exit
fi
echo "$*" >>"$dir/ipsec.calls"
loaded=$dir/loaded
touch "$loaded"
name=""; prev=""
for a in "$@"; do [ "$prev" = --name ] && name=$a; prev=$a; done
case "$1" in
  whack)
    case " $* " in
      *" --status "*) [ -f "$dir/pluto-down" ] && exit 1; while read -r c; do echo "\\"$c\\": 10.11.0.0/16===..."; done <"$loaded" ;;
      *" --delete "*) grep -vx "$name" "$loaded" >"$loaded.new"; mv "$loaded.new" "$loaded" ;;
    esac ;;
  addconn) echo "\${@: -1}" >>"$loaded" ;;
esac
exit 0
`;

describe("gateway converge agent (hubspoke-agent) with the real AWS CLI and a local Parameter Store", function () {
    this.timeout(60_000);
    let dir: string;
    let aws: FakeAws;
    const ipsecD = () => path.join(dir, "ipsec.d");
    const state = () => path.join(dir, "state");
    const calls = () =>
        fs.existsSync(path.join(dir, "ipsec.calls")) ? fs.readFileSync(path.join(dir, "ipsec.calls"), "utf8").trim().split("\n") : [];
    const loaded = () => fs.readFileSync(path.join(dir, "loaded"), "utf8").trim().split("\n").filter(Boolean).sort();
    const publish = (spoke: string, key: string, settings: TunnelSettings = DEFAULT_TUNNEL_SETTINGS) => {
        const s = endState(spoke, key, settings);
        const names = tunnelParameterNames(PATH, `virginia-to-${spoke}`);
        aws.put(REGION, names.conf, s.conf, "String");
        aws.put(REGION, names.secrets, s.secrets, "SecureString");
    };
    const unpublish = (spoke: string) => {
        const names = tunnelParameterNames(PATH, `virginia-to-${spoke}`);
        aws.remove(REGION, names.conf);
        aws.remove(REGION, names.secrets);
    };
    const run = (...args: string[]) => {
        fs.rmSync(path.join(dir, "ipsec.calls"), { force: true });
        const r = spawnSync("bash", [AGENT, ...args], {
            encoding: "utf8",
            timeout: 50_000,
            env: {
                ...awsCliEnv(aws.url),
                PATH: `${path.join(dir, "bin")}:${process.env.PATH}`,
                HUBSPOKE_ENV: path.join(dir, "gateway.env"),
            },
        });
        return { status: r.status, log: `${r.stderr}${r.stdout}`.trim() };
    };
    const file = (tunnel: string, ext: "conf" | "secrets") => fs.readFileSync(path.join(ipsecD(), `virginia-to-${tunnel}.${ext}`), "utf8");

    before(function () {
        if (!fs.existsSync(AWS_CLI) || spawnSync("sh", ["-c", "command -v flock"]).status !== 0) {
            ciMustRun(this, `${AWS_CLI} or flock is missing (scripts/install-system-deps.sh installs awscli)`);
        }
    });

    beforeEach(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-agent-"));
        fs.mkdirSync(path.join(dir, "bin"));
        fs.writeFileSync(path.join(dir, "bin", "ipsec"), FAKE_IPSEC, { mode: 0o755 });
        fs.symlinkSync(AWS_CLI, path.join(dir, "bin", "aws"));
        aws = await startFakeAws(path.join(dir, "ssm"), { log: path.join(dir, "requests.log") });
        fs.writeFileSync(
            path.join(dir, "gateway.env"),
            renderGatewayEnv(
                { stack: "prod", regionName: "virginia", awsRegion: REGION, parameterPath: PATH },
                { ipsecDir: ipsecD(), stateDir: state(), ipsecConf: path.join(dir, "ipsec.conf") },
            ) + `HUBSPOKE_AWS_ARGS='--endpoint-url ${aws.url}'\nHUBSPOKE_BOOT_ATTEMPTS=2\n`,
        );
        publish("sydney", KEY("a"));
        publish("frankfurt", KEY("b"));
    });
    afterEach(async () => {
        await aws.stop();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("at boot writes every tunnel's files exactly as published, without touching pluto", () => {
        const r = run("--boot");
        assert.equal(r.status, 0, r.log);
        assert.equal(file("sydney", "conf"), endState("sydney", KEY("a")).conf);
        assert.equal(file("sydney", "secrets"), endState("sydney", KEY("a")).secrets);
        assert.equal(fs.statSync(path.join(ipsecD(), "virginia-to-sydney.secrets")).mode & 0o777, 0o600);
        assert.equal(file("frankfurt", "conf"), endState("frankfurt", KEY("b")).conf);
        assert.deepEqual(calls(), [], "the boot run never talks to pluto (it is not running yet)");
        assert.equal(fs.readFileSync(path.join(state(), "tunnels"), "utf8"), "virginia-to-frankfurt\nvirginia-to-sydney\n");
        assert.ok(!r.log.includes(KEY("a")) && !r.log.includes(KEY("b")), "no key in the log");
    });

    it("does nothing and logs nothing when nothing changed", () => {
        assert.equal(run("--boot").status, 0);
        fs.writeFileSync(path.join(dir, "loaded"), "virginia-to-frankfurt\nvirginia-to-sydney\n");
        const before = fs.readFileSync(path.join(dir, "requests.log"), "utf8").split("\n").length;
        const r = run();
        assert.equal(r.status, 0, r.log);
        assert.equal(r.log, "");
        // Only the status query: no add, delete, reread or initiate.
        assert.deepEqual(calls(), ["whack --status"]);
        // One listing call, no parameter fetched again.
        const requests = fs
            .readFileSync(path.join(dir, "requests.log"), "utf8")
            .split("\n")
            .slice(before - 1)
            .filter(Boolean);
        assert.equal(requests.filter((l) => l.includes("GetParametersByPath")).length, 1, requests.join("\n"));
        assert.equal(requests.filter((l) => /\bGetParameter\b/.test(l)).length, 0, requests.join("\n"));
    });

    it("adds a new tunnel and brings it up, leaving the others untouched", () => {
        run("--boot");
        fs.writeFileSync(path.join(dir, "loaded"), "virginia-to-frankfurt\nvirginia-to-sydney\n");
        publish("tokyo", KEY("c"));
        const r = run();
        assert.equal(r.status, 0, r.log);
        assert.equal(file("tokyo", "conf"), endState("tokyo", KEY("c")).conf);
        assert.deepEqual(calls(), [
            "whack --status",
            "whack --rereadsecrets",
            `addconn --config ${path.join(dir, "ipsec.conf")} virginia-to-tokyo`,
            "whack --name virginia-to-tokyo --initiate --asynchronous",
        ]);
        assert.match(r.log, /^hubspoke-agent: virginia-to-tokyo: added and initiated$/m);
        assert.deepEqual(loaded(), ["virginia-to-frankfurt", "virginia-to-sydney", "virginia-to-tokyo"]);
        // When it was added: the health script keeps quiet about it while its peer may still be booting.
        assert.ok(Math.abs(Number(fs.readFileSync(path.join(state(), "virginia-to-tokyo.added-at"), "utf8")) - Date.now() / 1000) < 60);
    });

    it("replaces and re-establishes a tunnel whose conn changed, and only that one", () => {
        run("--boot");
        fs.writeFileSync(path.join(dir, "loaded"), "virginia-to-frankfurt\nvirginia-to-sydney\n");
        publish("sydney", KEY("a"), { ...DEFAULT_TUNNEL_SETTINGS, espProposals: "aes_gcm256" });
        const r = run();
        assert.equal(r.status, 0, r.log);
        assert.match(file("sydney", "conf"), /esp=aes_gcm256\n/);
        assert.deepEqual(calls(), [
            "whack --status",
            "whack --rereadsecrets",
            "whack --name virginia-to-sydney --delete",
            `addconn --config ${path.join(dir, "ipsec.conf")} virginia-to-sydney`,
            "whack --name virginia-to-sydney --initiate --asynchronous",
        ]);
        assert.match(r.log, /virginia-to-sydney: conn changed: replaced and re-established/);
    });

    it("rereads a rotated key at once and re-authenticates the tunnel after the delay, never before", () => {
        run("--boot");
        fs.writeFileSync(path.join(dir, "loaded"), "virginia-to-frankfurt\nvirginia-to-sydney\n");
        publish("sydney", KEY("z"));
        let r = run();
        assert.equal(r.status, 0, r.log);
        assert.equal(file("sydney", "secrets"), endState("sydney", KEY("z")).secrets);
        assert.deepEqual(calls(), ["whack --status", "whack --rereadsecrets"], "the running SA stays up");
        assert.match(r.log, /virginia-to-sydney: key changed: secrets reread; re-authenticating in 420s/);
        // Not yet due: nothing more happens.
        r = run();
        assert.deepEqual(calls(), ["whack --status"]);
        // Due (as 420 s later): a new IKE SA, authenticated with the new key.
        fs.writeFileSync(path.join(state(), "virginia-to-sydney.reauth-after"), "0\n");
        r = run();
        assert.deepEqual(calls(), [
            "whack --status",
            "whack --name virginia-to-sydney --terminate",
            "whack --name virginia-to-sydney --initiate --asynchronous",
        ]);
    });

    it("removes a tunnel that is no longer published, with its secrets", () => {
        run("--boot");
        fs.writeFileSync(path.join(dir, "loaded"), "virginia-to-frankfurt\nvirginia-to-sydney\n");
        unpublish("frankfurt");
        const r = run();
        assert.equal(r.status, 0, r.log);
        assert.ok(!fs.existsSync(path.join(ipsecD(), "virginia-to-frankfurt.conf")));
        assert.ok(!fs.existsSync(path.join(ipsecD(), "virginia-to-frankfurt.secrets")));
        assert.deepEqual(calls(), ["whack --status", "whack --name virginia-to-frankfurt --delete", "whack --rereadsecrets"]);
        assert.deepEqual(loaded(), ["virginia-to-sydney"]);
        assert.equal(fs.readFileSync(path.join(state(), "tunnels"), "utf8"), "virginia-to-sydney\n");
    });

    it("refuses to remove every tunnel when the listing comes back empty", () => {
        run("--boot");
        unpublish("frankfurt");
        unpublish("sydney");
        const r = run();
        assert.equal(r.status, 1);
        assert.match(r.log, /no tunnel under \/hubspoke-vpn\/prod\/virginia\/tunnels in us-east-1; refusing to remove every tunnel/);
        assert.ok(fs.existsSync(path.join(ipsecD(), "virginia-to-sydney.conf")));
    });

    it("keeps the running configuration when the fetch fails, and boots from the last good files", () => {
        run("--boot");
        const good = file("sydney", "secrets");
        publish("sydney", KEY("y"));
        aws.faults({ failNext: 10, error: "unreachable" });
        let r = run();
        assert.equal(r.status, 1);
        assert.match(r.log, /listing \/hubspoke-vpn\/prod\/virginia\/tunnels in us-east-1 failed \(attempt 1 of 1\)/);
        assert.equal(file("sydney", "secrets"), good, "files unchanged");
        assert.deepEqual(calls(), [], "pluto untouched");
        // At boot: a few tries (2 here), then ipsec starts from what is on disk.
        r = run("--boot");
        assert.equal(r.status, 0, r.log);
        assert.match(r.log, /attempt 2 of 2/);
        assert.match(r.log, /starting from the last good files/);
        assert.equal(file("sydney", "secrets"), good);
    });

    it("leaves out a tunnel with a bad key (reported, once), while every other tunnel converges", () => {
        run("--boot");
        fs.writeFileSync(path.join(dir, "loaded"), "virginia-to-frankfurt\nvirginia-to-sydney\n");
        // tokyo is new with a 31-character key; frankfurt's key is rotated to a good one.
        const tokyo = tunnelParameterNames(PATH, "virginia-to-tokyo");
        aws.put(REGION, tokyo.conf, endState("tokyo", KEY("c")).conf, "String");
        aws.put(REGION, tokyo.secrets, `192.0.2.11 192.0.2.14 : PSK "${"s".repeat(31)}"`, "SecureString");
        publish("frankfurt", KEY("x"));
        let r = run();
        assert.equal(r.status, 0, r.log);
        assert.match(
            r.log,
            /virginia-to-tokyo: its secrets parameter does not hold a usable key \(at least 32 characters of A-Za-z0-9_.\+=~-\); left out/,
        );
        assert.ok(!fs.existsSync(path.join(ipsecD(), "virginia-to-tokyo.conf")), "nothing written for it");
        assert.equal(file("frankfurt", "secrets"), endState("frankfurt", KEY("x")).secrets, "the other tunnel converged");
        assert.match(fs.readFileSync(path.join(state(), "left-out"), "utf8"), /^virginia-to-tokyo its secrets parameter/);
        // Desired, so hubspoke-health reports it (as down).
        assert.match(fs.readFileSync(path.join(state(), "tunnels"), "utf8"), /virginia-to-tokyo/);
        assert.ok(!calls().some((c) => c.includes("tokyo")), "pluto never hears of it");
        // Reported once per change, not every run.
        r = run();
        assert.equal(r.log, "");
        // Fixed: it comes up.
        aws.put(REGION, tokyo.secrets, endState("tokyo", KEY("c")).secrets, "SecureString");
        r = run();
        assert.match(r.log, /virginia-to-tokyo: added and initiated/);
        assert.equal(fs.readFileSync(path.join(state(), "left-out"), "utf8"), "");
    });

    it("refuses a conn with a setting the program never writes, or one libreswan refuses, keeping the last good files", () => {
        run("--boot");
        fs.writeFileSync(path.join(dir, "loaded"), "virginia-to-frankfurt\nvirginia-to-sydney\n");
        const good = file("sydney", "conf");
        const names = tunnelParameterNames(PATH, "virginia-to-sydney");
        // Write access to a parameter must not be a way to run code as root (pluto runs leftupdown=).
        aws.put(REGION, names.conf, good.replace("    auto=start\n", "    auto=start\n    leftupdown=/tmp/x\n"), "String");
        let r = run();
        assert.equal(r.status, 0, r.log);
        assert.match(
            r.log,
            /virginia-to-sydney: its conf parameter is refused: it sets leftupdown, which hubspoke-vpn never writes; keeping its last good files/,
        );
        assert.equal(file("sydney", "conf"), good);
        assert.deepEqual(calls(), ["whack --status"], "pluto untouched");
        // libreswan's own parser, on the conn alone, before it can replace the good file.
        aws.put(REGION, names.conf, good.replace("    pfs=yes\n", "    pfs=BROKEN\n"), "String");
        r = run();
        assert.match(r.log, /virginia-to-sydney: its conf parameter is refused: libreswan refuses it/);
        assert.equal(file("sydney", "conf"), good);
        assert.match(fs.readFileSync(path.join(state(), "left-out"), "utf8"), /^virginia-to-sydney /m);
    });

    it("accepts a 32-character key and refuses a 31-character one (the key check's boundary)", () => {
        const tokyo = tunnelParameterNames(PATH, "virginia-to-tokyo");
        aws.put(REGION, tokyo.conf, endState("tokyo", KEY("c")).conf, "String");
        for (const [length, accepted] of [
            [31, false],
            [32, true],
        ] as const) {
            aws.put(REGION, tokyo.secrets, `192.0.2.11 192.0.2.14 : PSK "${"Q".repeat(length)}"`, "SecureString");
            const r = run("--boot");
            assert.equal(r.status, 0, r.log);
            assert.equal(fs.existsSync(path.join(ipsecD(), "virginia-to-tokyo.secrets")), accepted, `${length} characters: ${r.log}`);
        }
    });

    it("pages through more than 10 parameters (GetParametersByPath returns 10 a page)", () => {
        for (const spoke of ["tokyo"]) {
            publish(spoke, KEY("c"));
        }
        // 3 tunnels = 6 parameters; add 6 more tunnel ends of made-up spokes: 12 in all, two pages.
        for (let i = 0; i < 3; i++) {
            const names = tunnelParameterNames(PATH, `virginia-to-x${i}`);
            const s = tunnelEndState(
                {
                    tunnel: `virginia-to-x${i}`,
                    localElasticIp: "192.0.2.11",
                    localCidr: "10.11.0.0/16",
                    peerElasticIp: `192.0.2.${40 + i}`,
                    peerCidr: `14.${20 + i}.0.0/16`,
                    settings: DEFAULT_TUNNEL_SETTINGS,
                },
                KEY("d"),
            );
            aws.put(REGION, names.conf, s.conf, "String");
            aws.put(REGION, names.secrets, s.secrets, "SecureString");
        }
        const r = run("--boot");
        assert.equal(r.status, 0, r.log);
        assert.deepEqual(
            fs
                .readdirSync(ipsecD())
                .filter((f) => f.endsWith(".conf"))
                .sort(),
            ["virginia-to-frankfurt", "virginia-to-sydney", "virginia-to-tokyo", "virginia-to-x0", "virginia-to-x1", "virginia-to-x2"].map(
                (t) => `${t}.conf`,
            ),
        );
        const listings = fs
            .readFileSync(path.join(dir, "requests.log"), "utf8")
            .split("\n")
            .filter((l) => l.includes("GetParametersByPath"));
        assert.equal(listings.length, 2, listings.join("\n"));
    });
    it("mirrors the drain parameter of a pair gateway into its state, wakes the failover script, and ignores it on a single gateway", () => {
        const drain = `${PATH}/drain`;
        const drainedFile = path.join(state(), "drained");
        // A single gateway: no drain setting, so the parameter is just another name it does not read.
        aws.put(REGION, drain, "drained", "String");
        let r = run();
        assert.equal(r.status, 0, r.log);
        assert.ok(!fs.existsSync(drainedFile), "a single gateway was drained");
        // The same gateway as one of a pair.
        const run_ = path.join(dir, "run");
        fs.mkdirSync(run_);
        spawnSync("mkfifo", [path.join(run_, "tick")]);
        fs.appendFileSync(
            path.join(dir, "gateway.env"),
            `HUBSPOKE_DRAIN_PARAMETER='${drain}'\nHUBSPOKE_DRAINED='drained'\nHUBSPOKE_STATE_DRAINED='drained'\nHUBSPOKE_RUN_DIR='${run_}'\n`,
        );
        // The failover script's end of the FIFO: what the agent writes wakes it.
        const reader = fs.openSync(path.join(run_, "tick"), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
        const woken = () => {
            try {
                return fs.readSync(reader, Buffer.alloc(64)) > 0;
            } catch {
                return false;
            }
        };
        r = run();
        assert.equal(r.status, 0, r.log);
        assert.ok(fs.existsSync(drainedFile), r.log);
        assert.match(r.log, new RegExp(`drained \\(${drain}\\)`));
        assert.ok(woken(), "the failover script was not woken");
        r = run();
        assert.equal(r.log, "", "nothing changed, nothing logged");
        assert.ok(fs.existsSync(drainedFile));
        aws.put(REGION, drain, "yes", "String");
        r = run();
        assert.ok(!fs.existsSync(drainedFile), "a value other than 'drained' drains");
        assert.match(r.log, new RegExp(`${drain} holds 'yes', not 'drained': not drained`));
        aws.put(REGION, drain, "drained", "String");
        run();
        aws.remove(REGION, drain);
        r = run();
        assert.ok(!fs.existsSync(drainedFile), r.log);
        assert.match(r.log, /no longer drained/);
        fs.closeSync(reader);
        // The tunnels were never touched by any of it.
        assert.deepEqual(
            calls().filter((c) => !/^whack --status|^whack --rereadsecrets/.test(c)),
            [],
        );
    });
});
