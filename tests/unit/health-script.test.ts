/**
 * gateway/hubspoke-health.sh, run for real against a stand-in `ipsec` that prints pluto's
 * --showstates output, and a stand-in `aws` that records what would reach CloudWatch. Its tunnels are
 * the ones the agent lists as desired (tests/integration/agent.test.ts), left-out ones included.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renderGatewayEnv } from "../../gateway/contract";

const SCRIPT = path.join(__dirname, "..", "..", "gateway/hubspoke-health.sh");
const UP = [
    '000 #3: "virginia-to-sydney":4500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); REKEY in 27824s; newest; idle;',
    '000 #4: "virginia-to-sydney":4500 STATE_V2_ESTABLISHED_CHILD_SA (established Child SA); REKEY in 3000s; newest; isakmp#3; idle;',
    '000 #5: "virginia-to-frankfurt":4500 STATE_V2_ESTABLISHED_IKE_SA (established IKE SA); REKEY in 27824s; newest; idle;',
    '000 #6: "virginia-to-frankfurt":500 STATE_V2_PARENT_I1 (sent IKE_SA_INIT request); RETRANSMIT in 2s;',
].join("\n");

describe("gateway health script (hubspoke-health)", () => {
    let dir: string;
    const run = (states: string, args: string[] = []) => {
        fs.writeFileSync(path.join(dir, "states"), states);
        return spawnSync("bash", [SCRIPT, ...args], {
            encoding: "utf8",
            env: {
                ...process.env,
                PATH: `${path.join(dir, "bin")}:${process.env.PATH}`,
                HUBSPOKE_ENV: path.join(dir, "gateway.env"),
            },
        });
    };
    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-health-"));
        fs.mkdirSync(path.join(dir, "bin"));
        fs.writeFileSync(
            path.join(dir, "bin/ipsec"),
            `#!/bin/sh\ncase "$*" in *--trafficstatus*) cat ${path.join(dir, "traffic")} 2>/dev/null ;; *) cat ${path.join(dir, "states")} ;; esac\n`,
            { mode: 0o755 },
        );
        // CloudWatch takes the report unless the file "refuse" exists.
        fs.writeFileSync(
            path.join(dir, "bin/aws"),
            `#!/bin/sh\nprintf '%s\\n' "$@" >${path.join(dir, "aws.args")}\n[ ! -e ${path.join(dir, "refuse")} ]\n`,
            { mode: 0o755 },
        );
        fs.writeFileSync(
            path.join(dir, "gateway.env"),
            renderGatewayEnv(
                { stack: "prod", regionName: "virginia", awsRegion: "us-east-1", parameterPath: "/hubspoke-vpn/prod/virginia/tunnels" },
                { stateDir: path.join(dir, "state") },
            ),
        );
        fs.mkdirSync(path.join(dir, "state"));
        fs.writeFileSync(path.join(dir, "state", "tunnels"), "virginia-to-frankfurt\nvirginia-to-sydney\n");
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("reports 1 only for a tunnel with both an IKE SA and a Child SA established", () => {
        const r = run(UP, ["--dry-run"]);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(
            r.stdout
                .split("\n")
                .filter((l) => / TunnelUp /.test(l))
                .join("\n"),
            "HubspokeVpn TunnelUp Stack=prod,Region=virginia,Tunnel=virginia-to-frankfurt 0\n" +
                "HubspokeVpn TunnelUp Stack=prod,Region=virginia,Tunnel=virginia-to-sydney 1",
        );
        assert.ok(!fs.existsSync(path.join(dir, "aws.args")), "--dry-run sends nothing");
    });

    it("reports a tunnel the agent left out as down, even when its last good files keep it up", () => {
        fs.writeFileSync(path.join(dir, "state", "tunnels"), "virginia-to-frankfurt\nvirginia-to-sydney\nvirginia-to-tokyo\n");
        fs.writeFileSync(
            path.join(dir, "state", "left-out"),
            "virginia-to-sydney its secrets parameter does not hold a usable key; keeping its last good files\n",
        );
        const out = run(UP, ["--dry-run"]).stdout;
        assert.match(out, /Tunnel=virginia-to-sydney 0\n/, "left out: down, whatever pluto says");
        assert.match(out, /Tunnel=virginia-to-tokyo 0\n$/, "desired, not loaded: down");
    });

    it("keeps quiet about a newly added tunnel until it is first up or its grace period ends", () => {
        const added = (secondsAgo: number) =>
            fs.writeFileSync(path.join(dir, "state", "virginia-to-frankfurt.added-at"), `${Math.floor(Date.now() / 1000) - secondsAgo}\n`);
        // Added a minute ago, never up (its peer is still booting): no data point, so its alarm does not page.
        added(60);
        let r = run(UP);
        assert.equal(r.status, 0, r.stderr);
        const sent = () => fs.readFileSync(path.join(dir, "aws.args"), "utf8");
        assert.doesNotMatch(sent(), /virginia-to-frankfurt/);
        assert.match(sent(), /Value=virginia-to-sydney\}\],Value=1/);
        // Still not up after the grace period (900 s): reported down, so it pages.
        added(901);
        r = run(UP);
        assert.match(sent(), /Value=virginia-to-frankfurt\}\],Value=0/);
        // Once up, a later failure is reported at once, grace or not.
        added(60);
        run(UP.replace('"virginia-to-frankfurt":500 STATE_V2_PARENT_I1', '"virginia-to-frankfurt":4500 STATE_V2_ESTABLISHED_CHILD_SA'));
        assert.ok(fs.existsSync(path.join(dir, "state", "virginia-to-frankfurt.up-once")));
        run(UP);
        assert.match(sent(), /Value=virginia-to-frankfurt\}\],Value=0/);
    });

    it("reports nothing, and sends nothing, before the agent's first run", () => {
        fs.rmSync(path.join(dir, "state", "tunnels"));
        const r = run(UP);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, "");
        assert.ok(!fs.existsSync(path.join(dir, "aws.args")));
    });

    it("reports 0 for every tunnel when pluto has no state (or is not running)", () => {
        assert.match(run("", ["--dry-run"]).stdout, /virginia-to-frankfurt 0\n.*virginia-to-sydney 0\n/s);
    });

    it("sends one put-metric-data to its region and namespace, with the stack, region and tunnel dimensions", () => {
        const r = run(UP);
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(fs.readFileSync(path.join(dir, "aws.args"), "utf8").trim().split("\n"), [
            "cloudwatch",
            "put-metric-data",
            "--region",
            "us-east-1",
            "--namespace",
            "HubspokeVpn",
            "--metric-data",
            "MetricName=TunnelUp,Dimensions=[{Name=Stack,Value=prod},{Name=Region,Value=virginia},{Name=Tunnel,Value=virginia-to-frankfurt}],Value=0,Unit=Count",
            "MetricName=TunnelDataIn,Dimensions=[{Name=Stack,Value=prod},{Name=Region,Value=virginia},{Name=Tunnel,Value=virginia-to-frankfurt}],Value=0,Unit=Bytes",
            "MetricName=TunnelDataOut,Dimensions=[{Name=Stack,Value=prod},{Name=Region,Value=virginia},{Name=Tunnel,Value=virginia-to-frankfurt}],Value=0,Unit=Bytes",
            "MetricName=TunnelUp,Dimensions=[{Name=Stack,Value=prod},{Name=Region,Value=virginia},{Name=Tunnel,Value=virginia-to-sydney}],Value=1,Unit=Count",
            "MetricName=TunnelDataIn,Dimensions=[{Name=Stack,Value=prod},{Name=Region,Value=virginia},{Name=Tunnel,Value=virginia-to-sydney}],Value=0,Unit=Bytes",
            "MetricName=TunnelDataOut,Dimensions=[{Name=Stack,Value=prod},{Name=Region,Value=virginia},{Name=Tunnel,Value=virginia-to-sydney}],Value=0,Unit=Bytes",
        ]);
    });

    it("reports each tunnel's bytes since its last report from pluto's Child SA counters: a rekey's SA from 0, across a pluto restart, never negative or twice", () => {
        // libreswan's --trafficstatus lines (testing/pluto/*/west.console.txt); libreswan 4 may add `[1] <peer>`.
        const sa = (serial: number, tunnel: string, added: number, inBytes: number, outBytes: number) =>
            `006 #${serial}: "${tunnel}"${serial === 9 ? "[1] 192.0.2.12" : ""}, type=ESP, add_time=${added}, inBytes=${inBytes}, outBytes=${outBytes}, maxBytes=2^63B, id='192.0.2.12'`;
        const report = (traffic: string[]) => {
            fs.writeFileSync(path.join(dir, "traffic"), `${traffic.join("\n")}\n`);
            const r = run(UP);
            assert.equal(r.status, fs.existsSync(path.join(dir, "refuse")) ? 1 : 0, r.stderr);
            const sent = fs.readFileSync(path.join(dir, "aws.args"), "utf8");
            const value = (metric: string, tunnel: string) =>
                Number(
                    new RegExp(`MetricName=${metric},Dimensions=\\[[^\\]]*Value=${tunnel}\\}\\],Value=(\\d+),Unit=Bytes`).exec(sent)![1],
                );
            return ["virginia-to-sydney", "virginia-to-frankfurt"].map((t) => [value("TunnelDataIn", t), value("TunnelDataOut", t)]);
        };
        // First report: every byte of a Child SA first seen.
        assert.deepEqual(report([sa(4, "virginia-to-sydney", 1000, 1000, 2000), sa(9, "virginia-to-frankfurt", 1000, 7, 8)]), [
            [1000, 2000],
            [7, 8],
        ]);
        // A minute later, and the sydney tunnel rekeyed: its new SA #7 starts at 0 beside the old one.
        assert.deepEqual(
            report([
                sa(4, "virginia-to-sydney", 1000, 1500, 2600),
                sa(7, "virginia-to-sydney", 1060, 100, 50),
                sa(9, "virginia-to-frankfurt", 1000, 7, 8),
            ]),
            [
                [600, 650],
                [0, 0],
            ],
        );
        // The old SA is gone: only the new one's growth.
        assert.deepEqual(report([sa(7, "virginia-to-sydney", 1060, 400, 300), sa(9, "virginia-to-frankfurt", 1000, 17, 18)]), [
            [300, 250],
            [10, 10],
        ]);
        // pluto restarted: serials from 1 again (#4 reused), new add_time: counted from 0, not against the old #4.
        assert.deepEqual(report([sa(4, "virginia-to-sydney", 1300, 10, 20)]), [
            [10, 20],
            [0, 0],
        ]);
        // CloudWatch refused a report: the next one carries its bytes too.
        fs.writeFileSync(path.join(dir, "refuse"), "");
        report([sa(4, "virginia-to-sydney", 1300, 110, 220)]);
        fs.rmSync(path.join(dir, "refuse"));
        assert.deepEqual(report([sa(4, "virginia-to-sydney", 1300, 210, 420)]), [
            [200, 400],
            [0, 0],
        ]);
        // A dry run moves nothing on.
        fs.writeFileSync(path.join(dir, "traffic"), `${sa(4, "virginia-to-sydney", 1300, 260, 520)}\n`);
        assert.match(run(UP, ["--dry-run"]).stdout, /TunnelDataIn Stack=prod,Region=virginia,Tunnel=virginia-to-sydney 50\n/);
        assert.deepEqual(report([sa(4, "virginia-to-sydney", 1300, 260, 520)]), [
            [50, 100],
            [0, 0],
        ]);
    });
});
