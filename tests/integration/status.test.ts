/**
 * `npm run status`: what the operator reads about each tunnel, with the AWS SDK against the lab's
 * endpoint (CloudWatch's GetMetricStatistics over the metrics the gateways sent, EC2 and SSM for the
 * site that has a standby, CloudWatch Logs' GetLogEvents for the last event). The gateways' reports
 * are written as they arrive from hubspoke-health and hubspoke-events.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { handoverClients } from "../../components/gatewayHandover";
import { parseStackConfig } from "../../config/validate";
import { type FakeAws, startFakeAws, writeEc2State } from "../../lab/fakeAws";
import { renderFailoverLayout } from "../../render/failover";
import { formatStatus, readStatus, type StackStatus, stateOf } from "../../scripts/status";
import { stackConfig } from "../unit/fixtures";

const SITE_SCRIPT = path.join(__dirname, "..", "..", "scripts", "status.ts");

describe("npm run status (AWS SDK, the lab's CloudWatch, EC2 and SSM)", function () {
    this.timeout(60_000);
    let dir: string;
    let fake: FakeAws;
    // Set when the test starts, not when mocha loads the file (minutes earlier in `npm test`).
    let now = 0;
    // A report m minutes (and 10 s) before the test: one a minute, each in a minute of its own, the
    // newest well inside the last 5 minutes however long the test takes.
    const minute = (m: number) => now - m * 60_000 - 10_000;
    /** The minute CloudWatch files a report under: the start of its minute. */
    const bucket = (t: number) => new Date(Math.floor(t / 60_000) * 60_000).toISOString();
    const report = (at: number, awsRegion: string, region: string, tunnel: string, metric: string, value: number) =>
        fs.appendFileSync(
            path.join(dir, "store", ".metrics.jsonl"),
            `${JSON.stringify({ time: at / 1000, awsRegion, namespace: "HubspokeVpn", metricName: metric, dimensions: { Stack: "prod-ha", Region: region, Tunnel: tunnel }, value, unit: metric === "TunnelUp" ? "Count" : "Bytes" })}\n`,
        );
    const spec = parseStackConfig(stackConfig("prod-ha")).spec;

    before(async () => {
        now = Date.now();
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-status-"));
        fs.mkdirSync(path.join(dir, "store"));
        // virginia-to-sydney: up at both ends for the last 20 minutes, after a drop 21 minutes ago at sydney.
        for (let m = 20; m >= 0; m--) {
            report(minute(m), "us-east-1", "virginia", "virginia-to-sydney", "TunnelUp", 1);
            report(minute(m), "ap-southeast-2", "sydney", "virginia-to-sydney", "TunnelUp", 1);
        }
        report(minute(21), "ap-southeast-2", "sydney", "virginia-to-sydney", "TunnelUp", 0);
        for (let m = 4; m >= 0; m--) {
            report(minute(m), "us-east-1", "virginia", "virginia-to-sydney", "TunnelDataIn", 1_000_000);
            report(minute(m), "us-east-1", "virginia", "virginia-to-sydney", "TunnelDataOut", 200_000);
        }
        // Older than the 5 minutes: not in the bytes.
        report(minute(9), "us-east-1", "virginia", "virginia-to-sydney", "TunnelDataIn", 7_777_777);
        // virginia-to-frankfurt: down at the hub for 3 minutes; frankfurt silent for 30.
        for (let m = 10; m >= 3; m--) report(minute(m), "us-east-1", "virginia", "virginia-to-frankfurt", "TunnelUp", 1);
        for (let m = 2; m >= 0; m--) report(minute(m), "us-east-1", "virginia", "virginia-to-frankfurt", "TunnelUp", 0);
        report(minute(30), "eu-central-1", "frankfurt", "virginia-to-frankfurt", "TunnelUp", 1);
        // Each site's layout, and its Elastic IP on the standby of virginia, the primaries elsewhere.
        const eni = (site: string, i: number) => `eni-0${site.slice(0, 3)}${i}0000000000000`.slice(0, 21);
        const ec2 = { addresses: [] as unknown[], networkInterfaces: [] as unknown[], routeTables: [] };
        for (const r of spec.regions) {
            const holder = r.name === "virginia" ? 1 : 0;
            fs.mkdirSync(path.join(dir, "store", r.awsRegion, "hubspoke-vpn", "prod-ha", r.name), { recursive: true });
            const gateways = [0, 1].map((i) => ({
                name: i === 0 ? r.name : `${r.name}-standby`,
                networkInterfaceId: eni(r.name, i),
                privateIp: `10.${i}.0.5`,
                siteIp: `10.${i}.0.6`,
            })) as [never, never];
            fs.writeFileSync(
                path.join(dir, "store", `${r.awsRegion}/hubspoke-vpn/prod-ha/${r.name}/failover`),
                renderFailoverLayout(r.name, {
                    allocationId: `eipalloc-0${r.name.slice(0, 3)}000000000000`,
                    routeTables: [],
                    peerCidrs: [],
                    probeTargets: [],
                    gateways,
                }),
            );
            ec2.addresses.push({
                allocationId: `eipalloc-0${r.name.slice(0, 3)}000000000000`,
                publicIp: "192.0.2.1",
                awsRegion: r.awsRegion,
                networkInterfaceId: eni(r.name, holder),
                privateIpAddress: `10.${holder}.0.6`,
                associationId: `eipassoc-0${r.name.slice(0, 3)}00000000000`,
            });
            for (const g of [0, 1])
                ec2.networkInterfaces.push({
                    networkInterfaceId: eni(r.name, g),
                    awsRegion: r.awsRegion,
                    privateIpAddresses: [`10.${g}.0.5`, `10.${g}.0.6`],
                });
        }
        writeEc2State(path.join(dir, "ec2.json"), ec2 as never);
        // Tunnel events, as hubspoke-events puts them: virginia's site moved to its standby 15 minutes
        // ago; virginia refused frankfurt's key 2 minutes ago; sydney's stream is empty; frankfurt's
        // gateways have no log group yet (deployed before they shipped events).
        const event = (at: number, gateway: string, event: string, tunnel: string | null, detail: string) => ({
            timestamp: at,
            ingestionTime: at + 1000,
            message: JSON.stringify({
                time: new Date(at).toISOString(),
                stack: "prod-ha",
                region: "virginia",
                gateway,
                tunnel,
                event,
                detail,
            }),
        });
        const logs = {
            "us-east-1": {
                "/hubspoke-vpn/prod-ha/tunnel-events/virginia": {
                    streams: {
                        virginia: [
                            event(minute(16), "virginia", "established", "virginia-to-sydney", "initiator established Child SA using #1"),
                            event(
                                minute(2),
                                "virginia",
                                "authentication-failed",
                                "virginia-to-frankfurt",
                                "IKE SA authentication request rejected by peer: AUTHENTICATION_FAILED",
                            ),
                        ],
                    },
                },
                "/hubspoke-vpn/prod-ha/tunnel-events/virginia-standby": {
                    streams: {
                        "virginia-standby": [
                            event(minute(15), "virginia-standby", "takeover", null, "taking over the site: virginia hands the site over"),
                        ],
                    },
                },
            },
            "ap-southeast-2": {
                "/hubspoke-vpn/prod-ha/tunnel-events/sydney": { streams: { sydney: [] } },
                "/hubspoke-vpn/prod-ha/tunnel-events/sydney-standby": { streams: { "sydney-standby": [] } },
            },
        };
        fs.writeFileSync(path.join(dir, "store", ".logs.json"), JSON.stringify(logs));
        fake = await startFakeAws(path.join(dir, "store"), { ec2State: path.join(dir, "ec2.json"), ec2LatencyMs: 10 });
    });
    after(async () => {
        await fake?.stop();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    const lab = { endpoint: "", credentials: { accessKeyId: "AKIAOPERATOROPERATOR", secretAccessKey: "lab" } };
    let status: StackStatus;

    it("reads each end's state and since when, its bytes over 5 minutes, and which gateway holds its site", async () => {
        const clients = new Map<string, ReturnType<typeof handoverClients>>();
        status = await readStatus(spec, "prod-ha", (r) => {
            if (!clients.has(r)) clients.set(r, handoverClients(r, { ...lab, endpoint: fake.url }));
            return clients.get(r)!;
        });
        for (const c of clients.values()) c.destroy();
        const [sydney, frankfurt] = status.tunnels;
        assert.deepEqual(
            sydney.ends.map((e) => [e.region, e.state, e.since, e.bytesIn, e.bytesOut, e.active]),
            [
                ["virginia", "up", undefined, 5_000_000, 1_000_000, "virginia-standby"],
                ["sydney", "up", bucket(minute(20)), 0, 0, "sydney"],
            ],
        );
        assert.deepEqual(
            frankfurt.ends.map((e) => [e.region, e.state, e.since, e.lastReport]),
            [
                ["virginia", "down", bucket(minute(2)), bucket(minute(0))],
                ["frankfurt", "silent", undefined, bucket(minute(30))],
            ],
        );
        // The last event: the tunnel's own or its site's (the standby's takeover is newer than sydney's establishment).
        assert.deepEqual(
            [...sydney.ends, ...frankfurt.ends].map((e) => e.lastEvent && [e.lastEvent.gateway, e.lastEvent.event]),
            [["virginia-standby", "takeover"], undefined, ["virginia", "authentication-failed"], undefined],
        );
    });

    it("prints it at 80 columns, and --json gives the same data; without credentials it says so, exit 1", () => {
        const lines = formatStatus(status);
        for (const l of lines) assert.ok(l.length <= 80, `${l.length} columns: ${l}`);
        assert.match(lines[1], /^virginia-to-sydney$/);
        assert.match(lines[2], /^ {2}virginia +up +3 h\+ +in 5\.0 MB +out 1\.0 MB +on virginia-stand~$/);
        assert.match(lines[3], /^ {4}\d\d:\d\d UTC takeover \(virginia-standby\): taking over the site: virginia hands~$/);
        assert.match(lines[7], /^ {4}\d\d:\d\d UTC authentication-failed \(virginia\): IKE SA authentication request \S+~$/);
        assert.match(lines[8], /^ {2}frankfurt +silent +last \d\d:\d\d UTC +in 0 B +out 0 B +on frankfurt$/);
        const run = (env: Record<string, string>, ...args: string[]) =>
            spawnSync(
                process.execPath,
                [require.resolve("ts-node/dist/bin"), "--transpile-only", SITE_SCRIPT, "--stack", "prod-ha", ...args],
                {
                    encoding: "utf8",
                    env: { PATH: process.env.PATH, HOME: dir, AWS_EC2_METADATA_DISABLED: "true", ...env },
                },
            );
        const r = run(
            { AWS_ENDPOINT_URL: fake.url, AWS_ACCESS_KEY_ID: lab.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: "lab" },
            "--json",
        );
        assert.equal(r.status, 0, r.stderr);
        const printed = JSON.parse(r.stdout) as StackStatus;
        assert.deepEqual(printed.tunnels, JSON.parse(JSON.stringify(status.tunnels)));
        const none = run({});
        assert.equal(none.status, 1);
        assert.match(none.stderr, /^status: no AWS credentials .*; set AWS_PROFILE or run aws sso login\n$/);
        const bad = run({}, "extra");
        assert.equal(bad.status, 2);
    });

    it("stateOf: the run of equal values that ends the series, silent after 6 minutes without a report", () => {
        const t = (m: number) => 1_000_000_000_000 - m * 60_000;
        assert.deepEqual(stateOf([], t(0)), { state: "silent" });
        assert.equal(stateOf([{ at: t(7), value: 1 }], t(0)).state, "silent");
        assert.deepEqual(
            stateOf(
                [
                    { at: t(3), value: 0 },
                    { at: t(2), value: 1 },
                    { at: t(1), value: 1 },
                ],
                t(0),
            ).since,
            new Date(t(2)).toISOString(),
        );
    });
});
