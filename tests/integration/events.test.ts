/**
 * gateway/hubspoke-events.sh, run for real: the real AWS CLI v2 against the lab's CloudWatch Logs
 * (lab/fake-aws, IAM enforced with the gateway's rendered policy), reading a journal of files
 * (lab/fake-journal/journalctl, which serves them as `journalctl -o short-unix` does). Layer proven:
 * delivery (cursor, spool, batches, IAM); the lines are pluto's own, captured in the lab
 * (tests/unit/fixtures/pluto-events).
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { EVENTS, eventLogGroupName, eventLogStreamName, renderGatewayEnv } from "../../gateway/contract";
import { AWS_CLI, AWS_LITE, awsCliEnv, type FakeAws, LAB_JOURNALCTL, readLogEvents, startFakeAws } from "../../lab/fakeAws";
import { LAB_ACCOUNT, labAccessKey, writePrincipals } from "../../lab/iam";
import { gatewayPolicy } from "../../render/awsDocuments";
import { ciMustRun } from "../unit/fixtures";

const REPO = path.join(__dirname, "..", "..");
const SCRIPT = path.join(REPO, "gateway/hubspoke-events.sh");
const REGION = "us-east-1";
const GROUP = eventLogGroupName("prod", "virginia");
const STREAM = eventLogStreamName("virginia");

/** pluto's log line at `t` (seconds since the epoch), as its --logfile writes it (local time). */
function plutoLine(t: number, text: string): string {
    const d = new Date(t * 1000);
    const mon = d.toLocaleString("en-US", { month: "short" });
    const hms = d.toTimeString().slice(0, 8);
    return `${mon} ${String(d.getDate()).padStart(2, " ")} ${hms}.${String(t % 1)
        .slice(2, 8)
        .padEnd(6, "0")}: ${text}\n`;
}

const AUTH_FAILED = `"virginia-to-frankfurt" #14: authentication failed: computed hash does not match hash received from peer ID_IPV4_ADDR '192.0.2.13'`;
const ESTABLISHED = `"virginia-to-sydney" #2: initiator established Child SA using #1; IPsec tunnel [10.11.0.0/16===12.11.0.0/16] {ESPinUDP=>0x1a2b3c4d <0x5e6f7a8b xfrm=AES_GCM_16_256-NONE NATOA=none NATD=192.0.2.12:4500 DPD=active}`;

describe("tunnel events to CloudWatch Logs (hubspoke-events, the real AWS CLI, the lab's CloudWatch Logs)", function () {
    this.timeout(120_000);
    let dir: string;
    let fake: FakeAws;
    const at = (...p: string[]) => path.join(dir, ...p);

    before(async function () {
        if (!fs.existsSync(AWS_CLI)) return ciMustRun(this, "the AWS CLI v2 is not installed (bash scripts/install-system-deps.sh)");
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-events-"));
        fs.mkdirSync(at("ipsec.d"));
        for (const [spoke, ip] of [
            ["sydney", "192.0.2.12"],
            ["frankfurt", "192.0.2.13"],
        ]) {
            fs.writeFileSync(at("ipsec.d", `virginia-to-${spoke}.conf`), `conn virginia-to-${spoke}\n    right=${ip}\n    dpddelay=2s\n`);
        }
        fs.writeFileSync(
            at("gateway.env"),
            renderGatewayEnv(
                { stack: "prod", regionName: "virginia", awsRegion: REGION, parameterPath: "/hubspoke-vpn/prod/virginia/tunnels" },
                { ipsecDir: at("ipsec.d"), stateDir: at("state") },
            ),
        );
        const policy = (group: string, stream: string) =>
            JSON.parse(
                gatewayPolicy({
                    partition: "aws",
                    accountId: LAB_ACCOUNT,
                    awsRegion: REGION,
                    parameterPath: "/hubspoke-vpn/prod/virginia/tunnels",
                    softwareRoot: "/hubspoke-vpn/prod/virginia/software",
                    eventLogGroup: group,
                    eventLogStream: stream,
                }),
            );
        writePrincipals(at("iam.json"), [{ name: "virginia", policies: [{ name: "virginia-policy", document: policy(GROUP, STREAM) }] }]);
        fake = await startFakeAws(at("store"), { iam: at("iam.json") });
        fake.logStream(REGION, GROUP, STREAM);
        fake.logStream(REGION, eventLogGroupName("prod", "sydney"), eventLogStreamName("sydney"));
        fs.mkdirSync(at("lite"));
        fs.symlinkSync(AWS_LITE, at("lite", "aws"));
    });

    after(async () => {
        await fake?.stop();
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    beforeEach(() => {
        fs.rmSync(at("state"), { recursive: true, force: true });
        fs.writeFileSync(at("pluto.log"), "");
        fs.writeFileSync(at("agent.log"), "");
        fake.faults({});
        // A fresh stream per test.
        const file = path.join(fake.store, ".logs.json");
        const logs = JSON.parse(fs.readFileSync(file, "utf8"));
        logs[REGION][GROUP].streams[STREAM] = [];
        fs.writeFileSync(file, JSON.stringify(logs));
    });

    /** One run of the script, as hubspoke-events.service runs it; `lite`: with the VM lab's AWS CLI stand-in. */
    const ship = (cli: "real" | "lite" = "real") =>
        spawnSync("bash", [SCRIPT], {
            encoding: "utf8",
            env: {
                ...awsCliEnv(fake.url),
                PATH: `${cli === "lite" ? at("lite") : path.dirname(AWS_CLI)}:${process.env.PATH}`,
                AWS_ACCESS_KEY_ID: labAccessKey("virginia"),
                HUBSPOKE_ENV: at("gateway.env"),
                HUBSPOKE_AWS_ARGS: `--endpoint-url ${fake.url}`,
                HUBSPOKE_JOURNALCTL: LAB_JOURNALCTL,
                LAB_JOURNAL: `ipsec.service=${at("pluto.log")} hubspoke-agent.service=${at("agent.log")}`,
            },
        });
    const shipped = () => readLogEvents(fake.store, REGION, GROUP, STREAM).map((e) => ({ ...e, event: JSON.parse(e.message) }));
    const now = () => Math.floor(Date.now() / 1000) - 600;

    it("puts each event once, in time order, with its fields, and nothing of a line outside the catalogue", () => {
        const t = now();
        fs.appendFileSync(
            at("pluto.log"),
            plutoLine(t, ESTABLISHED) + plutoLine(t + 1, `"virginia-to-sydney" #2: sent INFORMATIONAL request`),
        );
        fs.appendFileSync(at("pluto.log"), plutoLine(t + 5.25, AUTH_FAILED));
        const first = ship();
        assert.equal(first.status, 0, first.stderr);
        fs.appendFileSync(at("agent.log"), "hubspoke-agent: virginia-to-tokyo: its conf parameter /p/conf is missing; left out\n");
        const second = ship();
        assert.equal(second.status, 0, second.stderr);
        assert.equal(ship().status, 0);
        const events = shipped();
        assert.deepEqual(
            events.map((e) => [e.event.event, e.event.tunnel]),
            [
                ["established", "virginia-to-sydney"],
                ["authentication-failed", "virginia-to-frankfurt"],
                ["left-out", "virginia-to-tokyo"],
            ],
        );
        const [up, auth] = events.map((e) => e.event);
        assert.deepEqual(
            { ...up, detail: undefined },
            {
                time: new Date(t * 1000).toISOString(),
                stack: "prod",
                region: "virginia",
                gateway: "virginia",
                tunnel: "virginia-to-sydney",
                peer: "192.0.2.12",
                event: "established",
                ikeState: "established",
                childState: "established",
                dpd: true,
                natt: true,
                repeats: 0,
                detail: undefined,
            },
        );
        assert.match(up.detail, /^initiator established Child SA using #1/);
        assert.equal(events[1].timestamp, (t + 5.25) * 1000, "the event's timestamp is pluto's, to the millisecond");
        assert.equal(auth.peer, "192.0.2.13");
        assert.equal(auth.ikeState, "down");
    });

    it("keeps what CloudWatch Logs could not take through an outage of 10 minutes, and delivers it after, once, in order", () => {
        fake.faults({ failNext: 1000, error: "unreachable" });
        const t = now() - 600;
        const lines: string[] = [];
        for (let minute = 0; minute <= 10; minute++) {
            // A tunnel that fails each minute, with a retry in between that the limiter coalesces.
            lines.push(plutoLine(t + minute * 60, AUTH_FAILED), plutoLine(t + minute * 60 + 20, AUTH_FAILED));
            fs.appendFileSync(at("pluto.log"), lines.slice(-2).join(""));
            // Runs every 10 s on a gateway; here every 5 minutes of the lines' time, each failing.
            if (minute % 5 !== 0) continue;
            const r = ship();
            assert.equal(r.status, 1, "a run that could not deliver says so");
            assert.match(r.stderr, new RegExp(`put-log-events failed \\(${minute + 1} events kept for the next try\\)`));
        }
        assert.equal(shipped().length, 0);
        fake.faults({});
        const r = ship();
        assert.equal(r.status, 0, r.stderr);
        const events = shipped().map((e) => e.event);
        assert.equal(events.length, 11, "one event a minute (the retry 20 s later is counted, not sent)");
        assert.deepEqual(
            events.map((e) => e.repeats),
            [0, ...Array(10).fill(1)],
        );
        const times = events.map((e) => Date.parse(e.time));
        assert.deepEqual(
            times,
            [...times].sort((a, b) => a - b),
        );
        assert.equal(ship().status, 0);
        assert.equal(shipped().length, 11, "nothing twice");
    });

    it("delivers the same through the VM lab's AWS CLI stand-in (aws-lite), and says what it refuses in the CLI's words", () => {
        fs.appendFileSync(at("pluto.log"), plutoLine(now(), AUTH_FAILED));
        fake.faults({ failNext: 1, error: "ThrottlingException" });
        const refused = ship("lite");
        assert.equal(refused.status, 1);
        assert.match(refused.stderr, /An error occurred \(ThrottlingException\) when calling the PutLogEvents operation/);
        const r = ship("lite");
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(
            shipped().map((e) => [e.event.event, e.event.tunnel]),
            [["authentication-failed", "virginia-to-frankfurt"]],
        );
    });

    it("bounds a flapping tunnel: one event per kind and tunnel a minute, the rest counted in the next", () => {
        const t = now();
        let text = "";
        for (let i = 0; i < 120; i++) text += plutoLine(t + i, i % 2 ? ESTABLISHED : AUTH_FAILED.replace("frankfurt", "sydney"));
        fs.appendFileSync(at("pluto.log"), text);
        assert.equal(ship().status, 0);
        const events = shipped().map((e) => e.event);
        assert.deepEqual(
            events.map((e) => [e.event, e.repeats]),
            [
                ["authentication-failed", 0],
                ["established", 0],
                ["authentication-failed", 29],
                ["established", 29],
            ],
        );
        assert.ok(EVENTS.coalesceSeconds === 60);
    });

    it("may put events in its own stream only: another gateway's is refused as IAM refuses it", () => {
        fs.writeFileSync(at("one.json"), JSON.stringify([{ timestamp: Date.now(), message: "{}" }]));
        const r = spawnSync(
            AWS_CLI,
            [
                "logs",
                "put-log-events",
                "--region",
                REGION,
                "--endpoint-url",
                fake.url,
                "--log-group-name",
                eventLogGroupName("prod", "sydney"),
                "--log-stream-name",
                eventLogStreamName("sydney"),
                "--log-events",
                `file://${at("one.json")}`,
            ],
            { encoding: "utf8", env: { ...awsCliEnv(fake.url), AWS_ACCESS_KEY_ID: labAccessKey("virginia") } },
        );
        assert.equal(r.status, 254);
        assert.match(
            r.stderr,
            /An error occurred \(AccessDeniedException\) when calling the PutLogEvents operation(?: \(reached max retries: \d\))?: User: \S+ is not authorized to perform: logs:PutLogEvents on resource: arn:aws:logs:us-east-1:123456789012:log-group:\/hubspoke-vpn\/prod\/tunnel-events\/sydney:log-stream:sydney because no identity-based policy allows the logs:PutLogEvents action/,
        );
    });

    it("says why it cannot deliver to a stream that does not exist, and keeps the events", () => {
        const file = path.join(fake.store, ".logs.json");
        const logs = JSON.parse(fs.readFileSync(file, "utf8"));
        delete logs[REGION][GROUP].streams[STREAM];
        fs.writeFileSync(file, JSON.stringify(logs));
        fs.appendFileSync(at("pluto.log"), plutoLine(now(), AUTH_FAILED));
        const r = ship();
        assert.equal(r.status, 1);
        assert.match(r.stderr, /ResourceNotFoundException.*The specified log stream does not exist/);
        fake.logStream(REGION, GROUP, STREAM);
        assert.equal(ship().status, 0);
        assert.deepEqual(
            shipped().map((e) => e.event.event),
            ["authentication-failed"],
        );
    });
});
