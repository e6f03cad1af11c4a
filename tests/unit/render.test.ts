import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { architectureOf } from "../../config/ami";
import { DEFAULT_TUNNEL_SETTINGS } from "../../config/validate";
import { GATEWAY_PATHS, isUsablePsk, PSK, SSM_STANDARD_MAX_BYTES, TCP_MSS } from "../../gateway/contract";
import { REDACTED, snapshotStack, writeSnapshot } from "../../harness/snapshot";
import {
    filesOfUserData,
    gatewayBootstrap,
    gatewayScript,
    renderUserData,
    USER_DATA_BUDGET_BYTES,
    userDataOfPayload,
    userDataPayload,
} from "../../render/bootstrap";
import { assertPskSafe, renderConn, renderPairDefaults, renderSecrets, type TunnelEnd, tunnelEndConf } from "../../render/libreswan";
import { unpackSoftware } from "../../render/software";
import { renderSysctl } from "../../render/sysctl";
import { parseArgs } from "../../scripts/render";
import { checkCloudInit, checkLibreswan, missingTool } from "../support/staticChecks";
import { manySitesSnapshot, prodConfig, prodHaSnapshot, prodSnapshot, prodWith } from "./fixtures";

const END: TunnelEnd = {
    tunnel: "virginia-to-sydney",
    localElasticIp: "192.0.2.11",
    localCidr: "10.11.0.0/16",
    peerElasticIp: "192.0.2.12",
    peerCidr: "12.11.0.0/16",
    settings: DEFAULT_TUNNEL_SETTINGS,
};
const KEY = "abcDEF0123456789abcDEF0123456789-_.+=~";

describe("rendering", () => {
    it("writes a libreswan 4 conn: IKEv2, identities by Elastic IP, explicit proposals, DPD restart", () => {
        const conn = renderConn(END);
        const lines = conn.split("\n").map((l) => l.trim());
        for (const expected of [
            "conn virginia-to-sydney",
            "authby=secret",
            "ikev2=yes",
            "left=%defaultroute",
            "leftid=192.0.2.11",
            "leftsubnet=10.11.0.0/16",
            "right=192.0.2.12",
            "rightid=192.0.2.12",
            "rightsubnet=12.11.0.0/16",
            "ike=aes_gcm256-sha2_256-dh19,aes256-sha2_256-dh19",
            "esp=aes_gcm256,aes256-sha2_256",
            "pfs=yes",
            "dpdaction=restart",
            "auto=start",
        ]) {
            assert.ok(lines.includes(expected), `missing "${expected}" in\n${conn}`);
        }
        // The seed's options that libreswan 4 rejects as syntax errors must never come back.
        assert.doesNotMatch(conn, /nat_traversal|oe=|protostack|leftnexthop/);
    });

    it("writes the secrets line selected by both identities, and refuses unsafe keys without echoing them", () => {
        assert.equal(renderSecrets(END, KEY), `192.0.2.11 192.0.2.12 : PSK "${KEY}"\n`);
        assert.throws(
            () => renderSecrets(END, 'a"b'.repeat(20)),
            (e: Error) => /tunnel virginia-to-sydney is unusable/.test(e.message) && !e.message.includes('a"b'),
        );
        assert.throws(() => assertPskSafe("short", "t"), /at least 32 characters/);
        assert.throws(() => assertPskSafe("x".repeat(40) + "\\", "t"), /unusable/);
        // The boundary, and every character the generator may use.
        assert.throws(() => assertPskSafe("Q".repeat(31), "t"), /at least 32 characters/);
        assertPskSafe("Q".repeat(32), "t");
        assert.ok(isUsablePsk(`${"a".repeat(26)}${PSK.special}`));
        for (const c of [" ", '"', "\\", "'", "$", "#", "`", "\n", "/", "!"]) {
            assert.ok(!isUsablePsk(`${"a".repeat(40)}${c}`), JSON.stringify(c));
        }
    });

    it("lets the conn parameter hold at most a standard SSM parameter's 4 KB", () => {
        assert.ok(Buffer.byteLength(tunnelEndConf(END)) < 1024);
        assert.throws(
            () => tunnelEndConf({ ...END, settings: { ...END.settings, espProposals: "aes_gcm256,".repeat(400) + "aes256" } }),
            /tunnel virginia-to-sydney: its conf is \d+ bytes; a standard SSM parameter holds 4096/,
        );
    });

    it("persists the kernel settings libreswan needs", () => {
        const sysctl = renderSysctl();
        for (const line of [
            "net.ipv4.ip_forward = 1",
            "net.ipv4.conf.all.accept_redirects = 0",
            "net.ipv4.conf.all.send_redirects = 0",
            "net.ipv4.conf.all.rp_filter = 0",
            "net.ipv4.conf.default.rp_filter = 0",
        ]) {
            assert.ok(sysctl.split("\n").includes(line), line);
        }
    });

    it("builds a gateway's software and its user data from the gateway's identity alone: the agent, its units, the clamp, sysctl", () => {
        const identity = {
            stack: "prod",
            regionName: "virginia",
            awsRegion: "us-east-1",
            parameterPath: "/hubspoke-vpn/prod/virginia/tunnels",
        };
        const b = gatewayBootstrap(identity, "/hubspoke-vpn/prod", "virginia");
        const userData = renderUserData("virginia", b.userDataFiles);
        assert.match(userData, /^#cloud-config\n/);
        assert.deepEqual(filesOfUserData(userData), b.userDataFiles, "the files round-trip through the YAML");
        assert.deepEqual(
            b.userDataFiles.map((f) => `${f.permissions} ${f.path}`),
            [
                "0644 /etc/hubspoke-vpn/bootstrap.env",
                "0755 /usr/local/sbin/hubspoke-bootstrap",
                "0644 /etc/systemd/system/hubspoke-bootstrap.service",
            ],
        );
        const files = b.software;
        assert.deepEqual(
            files.map((f) => `${f.permissions} ${f.path}`),
            [
                "0644 /etc/hubspoke-vpn/gateway.env",
                "0755 /usr/local/sbin/hubspoke-agent",
                "0755 /usr/local/sbin/hubspoke-health",
                "0755 /usr/local/sbin/hubspoke-events",
                "0644 /etc/systemd/system/hubspoke-mss.service",
                "0644 /etc/systemd/system/hubspoke-agent-boot.service",
                "0644 /etc/systemd/system/ipsec.service.d/10-hubspoke.conf",
                "0644 /etc/systemd/system/hubspoke-agent.service",
                "0644 /etc/systemd/system/hubspoke-agent.timer",
                "0644 /etc/systemd/system/hubspoke-health.service",
                "0644 /etc/systemd/system/hubspoke-health.timer",
                "0644 /etc/systemd/system/hubspoke-events.service",
                "0644 /etc/sysctl.d/90-hubspoke-vpn.conf",
                "0644 /etc/hubspoke-vpn/mss-clamp.nft",
                "0644 /etc/hubspoke-vpn/units",
            ],
        );
        // The software travels packed in SSM parameters that each fit the standard tier, and comes back whole.
        assert.ok(b.packed.parts.every((p) => p.length <= SSM_STANDARD_MAX_BYTES));
        assert.deepEqual(unpackSoftware(b.packed.parts, b.ref.sha256), files);
        assert.throws(
            () => unpackSoftware([b.packed.parts[0].replace(/^./, (c) => (c === "A" ? "B" : "A"))], b.ref.sha256),
            /not [0-9a-f]{64}/,
        );
        assert.equal(b.ref.path, `/hubspoke-vpn/prod/virginia/software/${b.ref.sha256.slice(0, 16)}`);
        const settings = b.userDataFiles[0].content;
        assert.match(settings, new RegExp(`^HUBSPOKE_SOFTWARE_SHA256='${b.ref.sha256}'$`, "m"));
        assert.match(settings, new RegExp(`^HUBSPOKE_SOFTWARE_PATH='${b.ref.path}'$`, "m"));
        // The same identity gives the same bytes: no change, no replacement.
        assert.deepEqual(gatewayBootstrap(identity, "/hubspoke-vpn/prod", "virginia").packed, b.packed);
        const file = (p: string) => files.find((f) => f.path === p)!.content;
        // ipsec waits for the first fetch and the clamp, but starts without them (from the last good files).
        assert.match(
            file("/etc/systemd/system/ipsec.service.d/10-hubspoke.conf"),
            /Wants=hubspoke-agent-boot.service hubspoke-mss.service\nAfter=hubspoke-agent-boot.service hubspoke-mss.service/,
        );
        assert.doesNotMatch(file("/etc/systemd/system/ipsec.service.d/10-hubspoke.conf"), /Requires=/);
        // ipsec always comes back, whatever ended it.
        assert.match(file("/etc/systemd/system/ipsec.service.d/10-hubspoke.conf"), /\[Service\]\nRestart=always\nRestartSec=2/);
        assert.match(
            file("/etc/systemd/system/hubspoke-agent-boot.service"),
            /Before=ipsec.service[\s\S]*ExecStart=\/usr\/local\/sbin\/hubspoke-agent --boot\n/,
        );
        // The agent converges at most every 60 s.
        const timer = file("/etc/systemd/system/hubspoke-agent.timer");
        const every =
            Number(/OnUnitActiveSec=(\d+)s/.exec(timer)![1]) +
            Number(/RandomizedDelaySec=(\d+)/.exec(timer)![1]) +
            Number(/AccuracySec=(\d+)s/.exec(timer)?.[1] ?? 60);
        assert.ok(every <= 60, `agent every ${every} s`);
        assert.match(file("/etc/systemd/system/hubspoke-health.timer"), /OnUnitActiveSec=1min/);
        assert.match(file(GATEWAY_PATHS.env), /^HUBSPOKE_PARAMETER_PATH='\/hubspoke-vpn\/prod\/virginia\/tunnels'$/m);
        assert.match(file(GATEWAY_PATHS.mssClamp), new RegExp(`tcp option maxseg size set ${TCP_MSS}\n`));
        // cloud-init installs no package (it would not retry): hubspoke-bootstrap does, then enables these in this order.
        assert.doesNotMatch(userData, /packages:/);
        assert.match(gatewayScript("hubspoke-bootstrap.sh"), /dnf install -y libreswan awscli-2 jq nftables/);
        assert.equal(
            file(GATEWAY_PATHS.unitsFile),
            "hubspoke-mss.service hubspoke-agent-boot.service ipsec.service hubspoke-agent.timer hubspoke-health.timer hubspoke-events.service\n",
        );
        assert.match(userData, /- - systemctl\n {4}- enable\n {4}- hubspoke-bootstrap.service\n/);
        // What EC2 receives: gzip, deterministic, far under the limit, and the same document back.
        const payload = userDataPayload("virginia", userData);
        assert.equal(payload.base64, userDataPayload("virginia", userData).base64);
        assert.ok(payload.bytes <= USER_DATA_BUDGET_BYTES * 0.75, `${payload.bytes} bytes`);
        assert.equal(userDataOfPayload(payload.base64), userData);
        assert.throws(
            () => userDataPayload("x", "#cloud-config\n" + require("node:crypto").randomBytes(20000).toString("hex")),
            /EC2 accepts at most 16384/,
        );
    });

    it("keeps every gateway's user data within 75% of its 4 KB budget, in prod, prod-ha and a stack of 50 sites", async function () {
        this.timeout(120_000);
        const sizes: string[] = [];
        for (const snapshot of [await prodSnapshot(), await prodHaSnapshot(), await manySitesSnapshot()]) {
            for (const g of snapshot.plan.gateways) {
                for (const x of g.failover?.gateways ?? [{ name: g.region, userDataBytes: g.userDataBytes }]) {
                    sizes.push(`${snapshot.plan.stack} ${x.name} ${x.userDataBytes}`);
                }
            }
        }
        assert.equal(sizes.length, 3 + 6 + 75);
        const over = sizes.filter((s) => Number(s.split(" ")[2]) > USER_DATA_BUDGET_BYTES * 0.75);
        assert.deepEqual(over, [], `user data over ${USER_DATA_BUDGET_BYTES * 0.75} bytes (75% of ${USER_DATA_BUDGET_BYTES})`);
        console.log(
            `      measured: largest user data ${Math.max(...sizes.map((s) => Number(s.split(" ")[2])))} bytes (gzip) of ${sizes.length} gateways`,
        );
    });

    it("picks the AMI architecture from the instance type", () => {
        for (const t of ["t4g.small", "c7gn.large", "m6gd.xlarge", "a1.medium", "im4gn.large"]) {
            assert.equal(architectureOf(t), "arm64", t);
        }
        for (const t of ["t3.small", "c5n.large", "g5.xlarge", "m7i.large", "mac2.metal"]) {
            assert.equal(architectureOf(t), "x86_64", t);
        }
    });
});

describe("render command", () => {
    let tmp: string;
    beforeEach(() => (tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-render-"))));
    afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

    const cli = (...args: string[]) =>
        spawnSync(process.execPath, ["-r", "ts-node/register/transpile-only", "scripts/render.ts", ...args], {
            encoding: "utf8",
            cwd: path.join(__dirname, "..", ".."),
        });

    it("writes each gateway's files, user data and plan, deterministically and with keys redacted", async () => {
        const a = await prodSnapshot();
        // A second, independent evaluation: the output must not depend on the run.
        const b = await snapshotStack(prodConfig(), { stack: "prod" });
        assert.deepEqual(a.files, b.files, "two renders are identical");
        const modes = Object.fromEntries(a.files.map((f) => [f.path, f.mode.toString(8)]));
        for (const [p, mode] of Object.entries({
            "plan.json": "644",
            "virginia/user-data": "600",
            "virginia/etc/ipsec.d/virginia-to-sydney.conf": "644",
            "virginia/etc/ipsec.d/virginia-to-frankfurt.conf": "644",
            "virginia/etc/ipsec.d/virginia-to-sydney.secrets": "600",
            "virginia/etc/ipsec.d/virginia-to-frankfurt.secrets": "600",
            "virginia/usr/local/sbin/hubspoke-agent": "755",
            "virginia/etc/sysctl.d/90-hubspoke-vpn.conf": "644",
            "sydney/etc/ipsec.d/virginia-to-sydney.conf": "644",
            "sydney/etc/ipsec.d/virginia-to-sydney.secrets": "600",
            "frankfurt/etc/ipsec.d/virginia-to-frankfurt.secrets": "600",
            "ssm/us-east-1/hubspoke-vpn/prod/virginia/tunnels/virginia-to-sydney/conf": "600",
            "ssm/us-east-1/hubspoke-vpn/prod/virginia/tunnels/virginia-to-sydney/secrets": "600",
            "ssm/ap-southeast-2/hubspoke-vpn/prod/sydney/tunnels/virginia-to-sydney/secrets": "600",
            "ssm/us-east-1/hubspoke-vpn/prod/virginia/tunnels/virginia-to-frankfurt/secrets": "600",
            "ssm/eu-central-1/hubspoke-vpn/prod/frankfurt/tunnels/virginia-to-frankfurt/secrets": "600",
            "ssm/.types.json": "644",
        })) {
            assert.equal(modes[p], mode, p);
        }
        // No spoke knows the other spoke's tunnel, or holds its key parameter.
        assert.deepEqual(
            Object.keys(modes).filter((p) =>
                /^sydney\/.*frankfurt|^frankfurt\/.*sydney|ssm\/ap-southeast-2\/.*frankfurt|ssm\/eu-central-1\/.*sydney/.test(p),
            ),
            [],
        );
        for (const f of a.files.filter((f) => f.path.startsWith("ssm/") && f.path.endsWith("/secrets"))) {
            assert.match(f.content, new RegExp(`^192\\.0\\.2\\.1\\d 192\\.0\\.2\\.1\\d : PSK "${REDACTED}"\\n$`));
        }
        assert.deepEqual(
            a.plan.gateways.map((g) => [g.region, g.routesToGateway]),
            [
                ["virginia", ["12.11.0.0/16", "13.11.0.0/16"]],
                ["sydney", ["10.11.0.0/16"]],
                ["frankfurt", ["10.11.0.0/16"]],
            ],
        );
        const secrets = a.files.find((f) => f.path === "sydney/etc/ipsec.d/virginia-to-sydney.secrets")!;
        assert.equal(secrets.content, `192.0.2.12 192.0.2.11 : PSK "${REDACTED}"\n`);
        assert.deepEqual(
            a.plan.gateways.map((g) => [g.region, g.elasticIp, g.privateIp, g.tunnels.join(",")]),
            [
                ["virginia", "192.0.2.11", "10.11.4.5", "virginia-to-sydney,virginia-to-frankfurt"],
                ["sydney", "192.0.2.12", "12.11.4.5", "virginia-to-sydney"],
                ["frankfurt", "192.0.2.13", "13.11.4.5", "virginia-to-frankfurt"],
            ],
        );
    });

    it("reveals the same key at both ends only when asked, and takes given Elastic IPs", async () => {
        const r = await snapshotStack(prodConfig(), { stack: "prod", revealSecrets: true, elasticIps: { virginia: "203.0.113.7" } });
        const psk = (p: string) => /PSK "([^"]+)"/.exec(r.files.find((f) => f.path === p)!.content)![1];
        const hub = psk("virginia/etc/ipsec.d/virginia-to-sydney.secrets");
        assert.notEqual(hub, REDACTED);
        assert.equal(psk("sydney/etc/ipsec.d/virginia-to-sydney.secrets"), hub);
        assert.equal(psk("ssm/ap-southeast-2/hubspoke-vpn/prod/sydney/tunnels/virginia-to-sydney/secrets"), hub);
        assert.ok(!r.files.find((f) => f.path === "virginia/user-data")!.content.includes(hub), "user data never holds a key");
        assert.equal(r.plan.gateways[0].elasticIp, "203.0.113.7");
        assert.match(r.files.find((f) => f.path === "sydney/etc/ipsec.d/virginia-to-sydney.conf")!.content, /right=203\.0\.113\.7\n/);
    });

    it("runs as a command, and on bad config says why, exits non-zero and writes nothing", () => {
        const out = path.join(tmp, "out");
        const good = cli("--stack", "prod", "--out", out);
        assert.equal(good.status, 0, good.stderr);
        assert.ok(fs.existsSync(path.join(out, "virginia/etc/ipsec.d/virginia-to-sydney.conf")));
        assert.equal(fs.statSync(path.join(out, "virginia/etc/ipsec.d/virginia-to-sydney.secrets")).mode & 0o777, 0o600);

        const badFile = path.join(tmp, "Pulumi.bad.yaml");
        const raw = prodWith((c) => (c.regions[0].gatewayPrivateIp = "10.11.4.1"));
        fs.writeFileSync(
            badFile,
            JSON.stringify({ config: Object.fromEntries(Object.entries(raw).map(([k, v]) => [`hubspoke-vpn:${k}`, v])) }),
        );
        const badOut = path.join(tmp, "bad-out");
        const bad = cli("--config", badFile, "--out", badOut);
        assert.equal(bad.status, 1);
        assert.match(bad.stderr, /hubspoke-vpn:regions\[0\]\.gatewayPrivateIp: "10\.11\.4\.1" is one of the five addresses AWS reserves/);
        assert.match(bad.stderr, /nothing written/);
        assert.ok(!fs.existsSync(badOut));

        // Usage errors are parsed before anything loads; checked in-process.
        assert.throws(() => parseArgs(["--stack", "prod"]), /--out DIR is required/);
        assert.throws(() => parseArgs(["--out", "x", "--eip", "virginia"]), /--eip takes REGION=IPV4/);
        assert.throws(() => parseArgs(["--out", "x", "--stack", "prod", "--bogus"]), /Unknown option '--bogus'/);
    });

    it("refuses to overwrite a directory that holds something other than a render", async () => {
        fs.writeFileSync(path.join(tmp, "precious.txt"), "x");
        const r = await prodSnapshot();
        assert.throws(() => writeSnapshot(r, tmp), /not empty and holds no earlier render/);
        assert.ok(fs.existsSync(path.join(tmp, "precious.txt")));
    });
});

describe("static checks by libreswan and cloud-init", () => {
    let dir: string;
    before(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-static-"));
        writeSnapshot(await prodSnapshot(), path.join(dir, "prod"));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    for (const region of ["virginia", "sydney", "frankfurt"]) {
        it(`${region}: the rendered conns parse under the installed libreswan`, function () {
            const missing = missingTool("ipsec");
            if (missing) {
                console.log(`      skipped: ${missing}`);
                this.skip();
            }
            const r = checkLibreswan(path.join(dir, "prod", region, "etc/ipsec.d"));
            assert.ok(r.ok, r.output);
            assert.deepEqual(
                r.conns.sort(),
                region === "virginia" ? ["virginia-to-frankfurt", "virginia-to-sydney"] : [`virginia-to-${region}`],
            );
        });

        it(`${region}: the user data is valid cloud-config`, function () {
            const missing = missingTool("cloud-init");
            if (missing) {
                console.log(`      skipped: ${missing}`);
                this.skip();
            }
            const r = checkCloudInit(path.join(dir, "prod", region, "user-data"));
            assert.ok(r.ok, r.output);
        });
    }

    it("a gateway of a pair: libreswan gives every conn its defaults file's leftupdown=%disabled, and a single gateway's conns keep the updown script", function () {
        const missing = missingTool("ipsec");
        if (missing) {
            console.log(`      skipped: ${missing}`);
            this.skip();
        }
        const pairDir = path.join(dir, "pair");
        fs.mkdirSync(pairDir);
        fs.writeFileSync(path.join(pairDir, path.basename(GATEWAY_PATHS.pairDefaults)), renderPairDefaults());
        fs.writeFileSync(path.join(pairDir, `${END.tunnel}.conf`), renderConn({ ...END, localAddress: "10.11.4.6" }));
        const pair = checkLibreswan(pairDir);
        assert.ok(pair.ok, pair.output);
        assert.deepEqual(pair.conns, [END.tunnel], "the defaults file holds no conn of its own");
        assert.match(pair.output, /^conn virginia-to-sydney\n(\t[^\n]*\n)*\tleftupdown=%disabled$/m);
        const single = checkLibreswan(path.join(dir, "prod", "sydney", "etc/ipsec.d"));
        assert.ok(single.ok, single.output);
        assert.doesNotMatch(single.output, /leftupdown/);
    });

    it("the checks do fail: the seed's config setup and a broken cloud-config are rejected", function () {
        if (missingTool("ipsec") || missingTool("cloud-init")) {
            console.log(`      skipped: ${missingTool("ipsec") ?? missingTool("cloud-init")}`);
            this.skip();
        }
        const bad = path.join(dir, "bad");
        fs.mkdirSync(bad);
        fs.writeFileSync(path.join(bad, "seed.conf"), "conn seed\n    nat_traversal=yes\n    auto=start\n");
        const r = checkLibreswan(bad);
        assert.ok(!r.ok);
        assert.match(r.output, /nat_traversal/);
        fs.writeFileSync(path.join(bad, "user-data"), "#cloud-config\npackages: libreswan\n");
        assert.ok(!checkCloudInit(path.join(bad, "user-data")).ok);
    });
});
