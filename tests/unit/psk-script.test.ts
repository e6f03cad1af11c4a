/**
 * gateway/hubspoke-psk.sh, the script that lands on every gateway and writes its secrets files
 * from SSM Parameter Store, run for real against lab/fake-aws/aws (the AWS CLI's get-parameter,
 * reading a local directory) and a recording stand-in for `ipsec`.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseTunnelList, renderTunnelList, secretsFiles } from "../../render/cloudInit";

const REPO = path.join(__dirname, "..", "..");
const SCRIPT = path.join(REPO, "gateway/hubspoke-psk.sh");
const KEY_A = "A".repeat(20) + "b1-_.+=~" + "c".repeat(20);
const KEY_B = "Zz9".repeat(16);

const tunnels = [
    {
        end: {
            tunnel: "virginia-to-sydney",
            localElasticIp: "192.0.2.11",
            localCidr: "10.11.0.0/16",
            peerElasticIp: "192.0.2.12",
            peerCidr: "12.11.0.0/16",
        },
        keyParameter: { awsRegion: "us-east-1", name: "/hubspoke-vpn/prod/virginia-to-sydney/psk" },
    },
    {
        end: {
            tunnel: "virginia-to-frankfurt",
            localElasticIp: "192.0.2.11",
            localCidr: "10.11.0.0/16",
            peerElasticIp: "192.0.2.13",
            peerCidr: "13.11.0.0/16",
        },
        keyParameter: { awsRegion: "us-east-1", name: "/hubspoke-vpn/prod/virginia-to-frankfurt/psk" },
    },
];

describe("gateway key script (hubspoke-psk)", () => {
    let dir: string;
    const ssm = () => path.join(dir, "ssm");
    const ipsecD = () => path.join(dir, "ipsec.d");
    const setKey = (tunnel: string, key: string) => {
        const file = path.join(ssm(), "us-east-1", "hubspoke-vpn/prod", tunnel, "psk");
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, key + "\n");
    };
    const run = (args: string[] = [], env: Record<string, string> = {}) =>
        spawnSync("bash", [SCRIPT, ...args], {
            encoding: "utf8",
            timeout: 30_000,
            env: {
                ...process.env,
                PATH: `${path.join(dir, "bin")}:${path.join(REPO, "lab/fake-aws")}:${process.env.PATH}`,
                LAB_SSM_DIR: ssm(),
                HUBSPOKE_TUNNELS: path.join(dir, "tunnels"),
                HUBSPOKE_IPSEC_D: ipsecD(),
                HUBSPOKE_STATE_DIR: path.join(dir, "state"),
                HUBSPOKE_BACKOFF_MAX: "0",
                ...env,
            },
        });
    const whackCalls = () =>
        fs.existsSync(path.join(dir, "whack.log")) ? fs.readFileSync(path.join(dir, "whack.log"), "utf8").trim().split("\n") : [];

    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-psk-"));
        fs.mkdirSync(ipsecD());
        fs.mkdirSync(path.join(dir, "bin"));
        // Records what the script asks of pluto.
        fs.writeFileSync(path.join(dir, "bin/ipsec"), `#!/bin/sh\necho "$*" >>${path.join(dir, "whack.log")}\n`, { mode: 0o755 });
        fs.writeFileSync(path.join(dir, "tunnels"), renderTunnelList(tunnels));
        setKey("virginia-to-sydney", KEY_A);
        setKey("virginia-to-frankfurt", KEY_B);
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("writes exactly the secrets files the renderer describes, mode 0600, and never logs a key", () => {
        const r = run();
        assert.equal(r.status, 0, r.stderr);
        const keys: Record<string, string> = { "virginia-to-sydney": KEY_A, "virginia-to-frankfurt": KEY_B };
        for (const f of secretsFiles(parseTunnelList(renderTunnelList(tunnels)), (t) => keys[t])) {
            const written = path.join(ipsecD(), path.basename(f.path));
            assert.equal(fs.readFileSync(written, "utf8"), f.content);
            assert.equal(fs.statSync(written).mode & 0o777, 0o600);
        }
        assert.ok(!r.stderr.includes(KEY_A) && !r.stderr.includes(KEY_B), "a key reached the log");
        assert.deepEqual(whackCalls(), [], "the boot run does not touch pluto (ipsec starts after it)");
    });

    it("retries a failing fetch with backoff, logging each failure, until it succeeds", () => {
        const r = run([], { LAB_SSM_FAIL_FIRST: "2" });
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /get-parameter \/hubspoke-vpn\/prod\/virginia-to-frankfurt\/psk in us-east-1 failed: Could not connect/);
        assert.match(r.stderr, /virginia-to-frankfurt: attempt 1 failed; retrying in 0s\n[\s\S]*attempt 2 failed/);
        assert.ok(fs.existsSync(path.join(ipsecD(), "virginia-to-frankfurt.secrets")));
    });

    it("never writes an empty or unusable key, and leaves the previous one in place", () => {
        assert.equal(run().status, 0);
        const before = fs.readFileSync(path.join(ipsecD(), "virginia-to-sydney.secrets"), "utf8");
        for (const bad of ["", "short", 'has"quote'.repeat(5)]) {
            setKey("virginia-to-sydney", bad);
            const r = run([], { HUBSPOKE_MAX_ATTEMPTS: "2" });
            assert.equal(r.status, 1, `accepted ${JSON.stringify(bad)}`);
            assert.match(r.stderr, /does not hold a usable key/);
            assert.match(r.stderr, /virginia-to-sydney: giving up after 2 attempts; its secrets file is unchanged/);
            assert.equal(fs.readFileSync(path.join(ipsecD(), "virginia-to-sydney.secrets"), "utf8"), before);
        }
        fs.rmSync(path.join(ssm(), "us-east-1/hubspoke-vpn/prod/virginia-to-sydney/psk"));
        const missing = run([], { HUBSPOKE_MAX_ATTEMPTS: "1" });
        assert.equal(missing.status, 1);
        assert.match(missing.stderr, /ParameterNotFound/);
    });

    it("on refresh, rereads secrets for a rotated key and re-authenticates only that tunnel once the delay has passed", () => {
        assert.equal(run().status, 0);
        const unchanged = run(["--reload"]);
        assert.equal(unchanged.status, 0, unchanged.stderr);
        assert.deepEqual(whackCalls(), [], "nothing changed, pluto left alone");

        setKey("virginia-to-sydney", KEY_B);
        const noticed = run(["--reload"], { HUBSPOKE_REAUTH_DELAY: "3600" });
        assert.equal(noticed.status, 0, noticed.stderr);
        assert.match(fs.readFileSync(path.join(ipsecD(), "virginia-to-sydney.secrets"), "utf8"), new RegExp(`PSK "${KEY_B}"`));
        assert.deepEqual(whackCalls(), ["whack --rereadsecrets"], "the running SA stays up until the peer surely has the key");

        // Once due (here: a marker already in the past), the tunnel gets a new IKE SA with the new key.
        fs.writeFileSync(path.join(dir, "state/virginia-to-sydney.reauth-after"), "1\n");
        assert.equal(run(["--reload"]).status, 0);
        assert.deepEqual(whackCalls().slice(1), [
            "whack --name virginia-to-sydney --terminate",
            "whack --name virginia-to-sydney --initiate --asynchronous",
        ]);
        assert.ok(!fs.existsSync(path.join(dir, "state/virginia-to-sydney.reauth-after")));
    });
});
