/**
 * The tunnel-event catalogue of gateway/hubspoke-events.sh, run as a pure function (`--classify`:
 * journal lines in, JSON events out, no state read or written) on real pluto lines captured in the lab
 * (tests/unit/fixtures/pluto-lab.log) and on the agent's and the failover script's own words.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PSK, renderGatewayEnv, TUNNEL_EVENTS } from "../../gateway/contract";

const REPO = path.join(__dirname, "..", "..");
const SCRIPT = path.join(REPO, "gateway/hubspoke-events.sh");
const LAB_LINES = fs
    .readFileSync(path.join(__dirname, "fixtures/pluto-lab.log"), "utf8")
    .split("\n")
    .filter((l) => l && !l.startsWith("#"));

interface Event {
    time: string;
    stack: string;
    region: string;
    gateway: string;
    tunnel: string | null;
    peer: string | null;
    event: string;
    ikeState: string | null;
    childState: string | null;
    dpd: boolean | null;
    natt: boolean | null;
    repeats: number;
    detail: string;
}

/** pluto's logfile time (`Dec  4 21:23:37.633333: `) as the journal's short-unix line of `ident`. */
function journalLine(line: string, ident = "pluto"): string {
    const m = /^(\w{3} +\d+ \d\d:\d\d:\d\d)\.(\d{6}): (.*)$/.exec(line);
    assert.ok(m, `not a pluto log line: ${line}`);
    const seconds = Date.parse(`${m[1]} 2026 UTC`) / 1000;
    return `${seconds}.${m[2]} gw ${ident}[1]: ${m[3]}`;
}

describe("tunnel events: the catalogue (hubspoke-events --classify, a pure function)", () => {
    let dir: string;
    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-classify-"));
        fs.mkdirSync(path.join(dir, "ipsec.d"));
        for (const [spoke, ip] of [
            ["sydney", "192.0.2.12"],
            ["frankfurt", "192.0.2.13"],
        ]) {
            fs.writeFileSync(
                path.join(dir, "ipsec.d", `virginia-to-${spoke}.conf`),
                `conn virginia-to-${spoke}\n    right=${ip}\n    dpddelay=2s\n`,
            );
        }
        fs.writeFileSync(
            path.join(dir, "gateway.env"),
            renderGatewayEnv(
                { stack: "prod", regionName: "virginia", awsRegion: "us-east-1", parameterPath: "/hubspoke-vpn/prod/virginia/tunnels" },
                { ipsecDir: path.join(dir, "ipsec.d"), stateDir: path.join(dir, "state") },
            ),
        );
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    /** The events of `lines` (journal lines), as the script prints them; checks that each is one valid JSON line. */
    const classify = (lines: readonly string[]): Event[] => {
        const r = spawnSync("bash", [SCRIPT, "--classify"], {
            input: `${lines.join("\n")}\n`,
            encoding: "utf8",
            env: { PATH: process.env.PATH, HUBSPOKE_ENV: path.join(dir, "gateway.env") },
        });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stderr, "");
        assert.ok(!fs.existsSync(path.join(dir, "state")), "--classify wrote state");
        return r.stdout
            .split("\n")
            .filter(Boolean)
            .map((l) => {
                const [ms, json] = l.split("\t");
                const e = JSON.parse(json) as Event;
                assert.equal(Number(ms), Date.parse(e.time), "the spool's timestamp is the event's time");
                return e;
            });
    };
    const ofGateway = (g: string) => LAB_LINES.filter((l) => l.startsWith(`${g} `)).map((l) => journalLine(l.slice(g.length + 1)));

    it("names exactly the contract's events (gateway/contract.ts TUNNEL_EVENTS)", () => {
        const script = fs.readFileSync(SCRIPT, "utf8");
        const named = new Set([...script.matchAll(/\bevent=([a-z-]+)/g)].map((m) => m[1]));
        assert.deepEqual([...named].sort(), Object.keys(TUNNEL_EVENTS).sort());
    });

    it("the hub's lines of a wrong key and a refused ESP proposal: one authentication failure a minute, the rest counted", () => {
        const events = classify(ofGateway("virginia"));
        assert.deepEqual(
            events.map((e) => [e.event, e.tunnel, e.ikeState, e.childState, e.peer, e.dpd]),
            [["authentication-failed", "virginia-to-frankfurt", "down", "down", "192.0.2.13", true]],
        );
        assert.equal(
            events[0].detail,
            "authentication failed: computed hash does not match hash received from peer ID_IPV4_ADDR '192.0.2.13'",
        );
        assert.equal(events[0].time, "2026-12-04T21:23:37.633Z");
        // Five attempts logged 10 lines of it (the failure and the notification sent) within the minute.
        assert.deepEqual(
            classify([
                ...ofGateway("virginia"),
                journalLine(`Dec  4 21:24:38.000000: "virginia-to-frankfurt" #40: authentication failed: again`),
            ]).map((e) => e.repeats),
            [0, 9],
        );
    });

    it("the spoke's lines of its refused ESP proposals and subnets: the Child SA down, its IKE SA up", () => {
        const events = classify(ofGateway("sydney"));
        assert.deepEqual(
            events.map((e) => [e.event, e.tunnel, e.ikeState, e.childState, e.detail]),
            [
                [
                    "no-proposal-chosen",
                    "virginia-to-sydney",
                    "established",
                    "down",
                    "IKE_AUTH response rejected Child SA with NO_PROPOSAL_CHOSEN",
                ],
                [
                    "traffic-selectors-refused",
                    "virginia-to-sydney",
                    "established",
                    "down",
                    "IKE_AUTH response rejected Child SA with TS_UNACCEPTABLE",
                ],
            ],
        );
        assert.equal(events[0].repeats, 0);
    });

    it("the initiator's side of a wrong key", () => {
        const events = classify(ofGateway("frankfurt"));
        assert.deepEqual(
            events.map((e) => [e.event, e.detail, e.repeats]),
            [["authentication-failed", "IKE SA authentication request rejected by peer: AUTHENTICATION_FAILED", 0]],
        );
    });

    it("an established Child SA says whether NAT-T is in use, and later events of the tunnel carry it", () => {
        const events = classify([
            journalLine(
                `Dec  4 21:30:00.000000: "virginia-to-sydney"[1] 192.0.2.12 #2: initiator established Child SA using #1; IPsec tunnel [10.11.0.0-10.11.255.255:0-65535 0] -> [12.11.0.0-12.11.255.255:0-65535 0] {ESPinUDP=>0xd5a9e4a1 <0x3a0a8c8f xfrm=AES_GCM_16_256-NONE NATOA=none NATD=192.0.2.12:4500 DPD=active}`,
            ),
            journalLine(
                `Dec  4 21:31:00.000000: "virginia-to-sydney" #1: liveness action - restarting all connections that share this peer`,
            ),
        ]);
        assert.deepEqual(
            events.map((e) => [e.event, e.natt, e.ikeState]),
            [
                ["established", true, "established"],
                ["dead-peer", true, "down"],
            ],
        );
    });

    it("the agent's and the failover script's own words; a site's event names no tunnel", () => {
        const events = classify([
            "1764883400.000000 gw hubspoke-agent[9]: hubspoke-agent: virginia-to-tokyo: its conf parameter /hubspoke-vpn/prod/virginia/tunnels/virginia-to-tokyo/conf is missing; left out",
            "1764883401.000000 gw hubspoke-agent[9]: hubspoke-agent: virginia-to-sydney: conn changed: replaced and re-established",
            "1764883402.000000 gw hubspoke-agent[9]: hubspoke-agent: listing /hubspoke-vpn/prod/virginia/tunnels in us-east-1 failed (attempt 1 of 3): timeout",
            "1764883403.000000 gw bash[7]: 21:23:23 hubspoke-failover: taking over the site: the active did not answer 4 echo(es)",
            "1764883404.000000 gw bash[7]: 21:23:24 hubspoke-failover: stepping down: the Elastic IP is on eni-0standby (virginia-standby)",
            "1764883405.000000 gw bash[7]: 21:23:25 hubspoke-failover: handing the site to virginia-standby: drained",
            "1764883406.000000 gw bash[7]: 21:23:26 hubspoke-failover: the active answers again",
        ]);
        assert.deepEqual(
            events.map((e) => [e.event, e.tunnel, e.peer, e.ikeState, e.dpd]),
            [
                ["left-out", "virginia-to-tokyo", null, null, null],
                ["agent-changed", "virginia-to-sydney", "192.0.2.12", null, true],
                ["takeover", null, null, null, null],
                ["step-down", null, null, null, null],
                ["handover", null, null, null, null],
            ],
        );
        assert.equal(events[2].detail, "taking over the site: the active did not answer 4 echo(es)");
    });

    it("never puts a key in an event: a line about a PSK keeps no detail, a run of key characters is cut out", () => {
        const key = "Ab3-_.+=~".repeat(6).slice(0, PSK.length);
        const events = classify([
            `1764883400.000000 gw hubspoke-agent[9]: hubspoke-agent: virginia-to-sydney: its secrets parameter holds 192.0.2.11 192.0.2.12 : PSK "${key}"; left out`,
            `1764883401.000000 gw pluto[1]: "virginia-to-sydney" #3: authentication failed: ${key} ${key.slice(0, 31)}`,
        ]);
        const text = JSON.stringify(events);
        assert.ok(!text.includes(key), "a key reached an event");
        assert.ok(!text.includes(key.slice(0, PSK.minLength)), "a key's first 32 characters reached an event");
        assert.deepEqual(
            events.map((e) => e.detail),
            ["(detail withheld: it mentions a key)", `authentication failed: [redacted] ${key.slice(0, 31)}`],
        );
    });

    it("reads pluto's line with or without its own time in front (logtime), as journald keeps it", () => {
        const line = `"virginia-to-frankfurt" #14: authentication failed: computed hash does not match hash received from peer ID_IPV4_ADDR '192.0.2.13'`;
        const [plain, timed] = [line, `Dec  4 21:23:37.633333: ${line}`].map((m) => classify([`1764883417.633333 gw pluto[1]: ${m}`]));
        assert.deepEqual(timed, plain);
        assert.equal(plain[0].event, "authentication-failed");
    });

    // Each captured case (tests/unit/fixtures/pluto-events/README.md: libreswan 4.10 in the VM, the
    // rendered conn, virginia initiating): the events, with the IKE and Child SA states they imply.
    const CASES: Record<string, string[]> = {
        "auth-failed.initiator": ["authentication-failed down down"],
        "auth-failed.responder": ["authentication-failed down down"],
        "auth-failed-responder-key.initiator": ["authentication-failed down down"],
        "auth-failed-responder-key.responder": ["authentication-failed down down"],
        "established.initiator": ["established established established"],
        "established.responder": ["established established established"],
        "established-crossed.virginia": ["established established established"],
        "established-crossed.sydney": ["established established established"],
        // The Child SA rekeyed (a rekey 20 s later, of the IKE SA, is counted in the next one a minute on).
        "rekey-child.initiator": ["established established established", "rekeyed established established"],
        "rekey-child.responder": ["established established established", "rekeyed established established"],
        // The responder deletes the IKE SA its rekey replaced without a notification: not a peer's Delete.
        "rekey-ike.responder": ["rekeyed established established"],
        "rekey-ike.initiator": ["rekeyed established established"],
        // Its peer took the tunnel down (--terminate), shut down, or deleted the conn: a Delete received.
        "deleted-by-peer-down.initiator": ["established established established", "deleted-by-peer down down"],
        "deleted-by-peer-down-by-initiator.responder": ["established established established", "deleted-by-peer down down"],
        "deleted-by-peer-shutdown.initiator": [
            "established established established",
            "deleted-by-peer down down",
            "retransmits-exhausted down down",
        ],
        "deleted-by-peer-delete.initiator": [
            "established established established",
            "deleted-by-peer down down",
            "no-proposal-chosen down down",
            "retransmits-exhausted down down",
        ],
        // The end that deleted (or shut down, or whose IKE SA expired) says nothing about itself.
        "deleted-by-peer-down.responder": ["established established established"],
        "deleted-by-peer-down-by-initiator.initiator": ["established established established"],
        "deleted-by-peer-shutdown.responder": ["established established established"],
        "deleted-by-peer-delete.responder": ["established established established"],
        "expire.responder": ["established established established"],
        "expire.initiator": ["established established established", "deleted-by-peer down down"],
        "established-no-nat.initiator": ["established established established"],
        "established-no-nat.responder": ["established established established"],
        "no-proposal-esp.initiator": ["no-proposal-chosen established down"],
        "no-proposal-esp.responder": ["no-proposal-chosen established down"],
        "no-proposal-ike.initiator": ["no-proposal-chosen down down", "retransmits-exhausted down down"],
        "no-proposal-ike.responder": ["no-proposal-chosen down down"],
        "retransmits.initiator": ["retransmits-exhausted down down"],
        "retransmits-not-running.initiator": ["retransmits-exhausted down down"],
        // Liveness failed: then the restart's first exchange goes unanswered while the peer is away.
        "dead-peer.initiator": ["established established established", "dead-peer down down", "retransmits-exhausted down down"],
        "dead-peer.responder": ["established established established", "dead-peer down down", "retransmits-exhausted down down"],
        "dead-peer-recovery.responder": ["established established established", "dead-peer down down"],
        // Its peer's liveness failure deleted the IKE SA they shared (a Delete received).
        "dead-peer-recovery.initiator": ["established established established", "deleted-by-peer down down"],
    };
    const captured = (name: string) =>
        fs
            .readFileSync(path.join(__dirname, "fixtures/pluto-events", `${name}.log`), "utf8")
            .split("\n")
            .filter((l) => /^\w{3} +\d+ /.test(l))
            .map((l) => journalLine(l));

    it("classifies every case captured from libreswan 4.10 at both ends, with the states each implies", () => {
        const files = fs
            .readdirSync(path.join(__dirname, "fixtures/pluto-events"))
            .filter((f) => f.endsWith(".log") && !f.startsWith("nat-detection-debug"));
        assert.deepEqual(
            files.map((f) => f.replace(/\.log$/, "")).sort(),
            Object.keys(CASES).sort(),
            "a captured case without an expectation",
        );
        for (const [name, want] of Object.entries(CASES)) {
            assert.deepEqual(
                classify(captured(name)).map((e) => `${e.event} ${e.ikeState} ${e.childState}`),
                want,
                name,
            );
        }
    });

    it("NAT-T: true through the Elastic IPs' 1:1 NAT (ESPinUDP), false without a NAT", () => {
        assert.deepEqual(
            ["established.initiator", "established-no-nat.initiator"].map((n) => classify(captured(n)).map((e) => e.natt)),
            [[true], [false]],
        );
    });

    it("ignores every other line: a quiet tunnel sends nothing", () => {
        const quiet = LAB_LINES.filter((l) => /sent IKE_SA_INIT|proposal 1:|loading secrets|added IKEv2 connection/.test(l));
        assert.ok(quiet.length > 10);
        assert.deepEqual(classify(quiet.map((l) => journalLine(l.replace(/^\S+ /, "")))), []);
    });
});
