/**
 * gateway/hubspoke-bootstrap.sh, run for real (HUBSPOKE_ROOT standing for /) with the real AWS CLI
 * against the lab's AWS endpoint, which serves the gateway's software as the program publishes it in
 * SSM and authorizes each call with the gateway's rendered policy; stand-ins for dnf (failing as often
 * as told), systemctl, sysctl and sleep (which only records how long it was asked to wait). Layer
 * proven: the bootstrap's own logic and its calls; cloud-init and systemd themselves are not run here
 * (the user data passes `cloud-init schema` in tests/unit/render.test.ts).
 */
import { strict as assert } from "node:assert";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
    eventLogGroupName,
    eventLogStreamName,
    GATEWAY_PATHS,
    type GatewayIdentity,
    METRIC,
    softwareParameterRoot,
} from "../../gateway/contract";
import { AWS_CLI, awsCliEnv, type FakeAws, readMetrics, startFakeAws } from "../../lab/fakeAws";
import { LAB_ACCOUNT, labAccessKey, writePrincipals } from "../../lab/iam";
import { gatewayPolicy } from "../../render/awsDocuments";
import { gatewayBootstrap } from "../../render/bootstrap";
import { softwarePartName } from "../../render/software";
import { ciMustRun } from "../unit/fixtures";

const REGION = "us-east-1";
const PREFIX = "/hubspoke-vpn/prod";
const IDENTITY: GatewayIdentity = { stack: "prod", regionName: "virginia", awsRegion: REGION, parameterPath: `${PREFIX}/virginia/tunnels` };

describe("gateway bootstrap against the lab's SSM and IAM (hubspoke-bootstrap)", function () {
    this.timeout(60_000);
    let dir: string;
    let fake: FakeAws;
    const b = gatewayBootstrap(IDENTITY, PREFIX, "virginia");
    const at = (...p: string[]) => path.join(dir, ...p);
    const root = (p: string) => at("root", p);
    const recorded = (tool: string) =>
        fs.existsSync(at(`${tool}.calls`))
            ? fs
                  .readFileSync(at(`${tool}.calls`), "utf8")
                  .trim()
                  .split("\n")
            : [];

    before(function () {
        if (!fs.existsSync(AWS_CLI)) {
            ciMustRun(this, `the AWS CLI v2 is not installed at ${AWS_CLI} (scripts/install-system-deps.sh installs it)`);
        }
    });

    beforeEach(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-bootstrap-"));
        // The program's SSM parameters: the software's parts, as `npm run render` writes them.
        b.packed.parts.forEach((part, i) => {
            const file = at("ssm", `${REGION}${softwarePartName(b.ref.path, i)}`);
            fs.mkdirSync(path.dirname(file), { recursive: true });
            fs.writeFileSync(file, part);
        });
        const policy = gatewayPolicy({
            partition: "aws",
            accountId: LAB_ACCOUNT,
            awsRegion: REGION,
            parameterPath: IDENTITY.parameterPath,
            softwareRoot: softwareParameterRoot(PREFIX, "virginia"),
            eventLogGroup: eventLogGroupName("prod", "virginia"),
            eventLogStream: eventLogStreamName("virginia"),
        });
        writePrincipals(at("iam.json"), [{ name: "virginia", policies: [{ name: "virginia-policy", document: JSON.parse(policy) }] }]);
        fake = await startFakeAws(at("ssm"), { iam: at("iam.json") });
        // The user data's files, as cloud-init writes them.
        for (const f of b.userDataFiles) {
            fs.mkdirSync(path.dirname(root(f.path)), { recursive: true });
            fs.writeFileSync(root(f.path), f.content, { mode: Number.parseInt(f.permissions, 8) });
        }
        fs.mkdirSync(at("bin"));
        const stub = (name: string, body: string) =>
            fs.writeFileSync(at("bin", name), `#!/bin/bash\necho "$*" >>${at(`${name}.calls`)}\n${body}\n`, { mode: 0o755 });
        // dnf fails while <dir>/dnf-failures counts down.
        stub(
            "dnf",
            `n=$(cat ${at("dnf-failures")} 2>/dev/null || echo 0); if [ "$n" -gt 0 ]; then echo $((n - 1)) >${at("dnf-failures")}; echo "Error: Failed to download metadata for repo 'amazonlinux'" >&2; exit 1; fi`,
        );
        stub("systemctl", "exit 0");
        stub("sysctl", "exit 0");
        stub("sleep", "exec /bin/sleep 0.05");
        fs.symlinkSync(AWS_CLI, at("bin", "aws"));
    });

    afterEach(async () => {
        await fake?.stop?.();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    /** One boot's run of the script; killed after `seconds` (as a reboot midway would). */
    /**
     * One boot of the bootstrap, killed (a reboot) after `seconds`, or as soon as its log matches
     * `rebootWhen` (a reboot midway, wherever the machine's load put the script by then).
     */
    function boot(seconds = 45, extraSettings = "", rebootWhen?: RegExp): Promise<{ status: number | null; log: string }> {
        if (extraSettings) fs.appendFileSync(root(GATEWAY_PATHS.bootstrapEnv), extraSettings);
        const child = spawn("bash", [root(GATEWAY_PATHS.bootstrapScript)], {
            env: {
                ...awsCliEnv(fake.url),
                AWS_ACCESS_KEY_ID: labAccessKey("virginia"),
                PATH: `${at("bin")}:${process.env.PATH}`,
                HUBSPOKE_ROOT: at("root"),
                HUBSPOKE_BOOTSTRAP_ENV: root(GATEWAY_PATHS.bootstrapEnv),
                HUBSPOKE_AWS_ARGS: `--endpoint-url ${fake.url}`,
            },
            stdio: ["ignore", "pipe", "pipe"],
        });
        let log = "";
        const read = (d: Buffer) => {
            log += d;
            if (rebootWhen?.test(log)) child.kill("SIGKILL");
        };
        child.stdout.on("data", read);
        child.stderr.on("data", read);
        const timer = setTimeout(() => child.kill("SIGKILL"), seconds * 1000);
        return new Promise((done) =>
            child.on("close", (status) => {
                clearTimeout(timer);
                done({ status, log });
            }),
        );
    }

    it("installs exactly the rendered software and starts its units, retrying the packages until dnf succeeds (5 s, then 10 s)", async () => {
        fs.writeFileSync(at("dnf-failures"), "2");
        const r = await boot();
        assert.equal(r.status, 0, r.log);
        for (const f of b.software) {
            assert.equal(fs.readFileSync(root(f.path), "utf8"), f.content, f.path);
            assert.equal((fs.statSync(root(f.path)).mode & 0o777).toString(8), f.permissions.slice(1), f.path);
        }
        assert.equal(recorded("dnf").length, 3, "dnf: two failures, then the install");
        assert.deepEqual(recorded("sleep"), ["5", "10"]);
        assert.match(r.log, /install_packages failed; trying again in 5s/);
        const units =
            "hubspoke-mss.service hubspoke-agent-boot.service ipsec.service hubspoke-agent.timer hubspoke-health.timer hubspoke-events.service";
        assert.deepEqual(recorded("systemctl"), ["daemon-reload", `enable ${units}`, `start --no-block ${units}`]);
        assert.ok(fs.existsSync(root(`${GATEWAY_PATHS.stateDir}/bootstrapped-${b.ref.sha256}`)));
        // The next boot has nothing to do.
        const again = await boot();
        assert.equal(again.status, 0);
        assert.equal(recorded("dnf").length, 3, "a finished bootstrap installs nothing at the next boot");
    });

    it("installs nothing from parts that do not make the digest its user data names, and finishes once they do (a reboot midway)", async () => {
        const first = at("ssm", `${REGION}${softwarePartName(b.ref.path, 0)}`);
        const good = fs.readFileSync(first, "utf8");
        fs.writeFileSync(first, `${good[0] === "A" ? "B" : "A"}${good.slice(1)}`);
        const refused = new RegExp(
            `the software under ${b.ref.path} is not the one this gateway's user data names \\(sha256 ${b.ref.sha256}\\); not installing it`,
        );
        // The reboot comes once it has refused the parts (or after 30 s, still retrying).
        const r = await boot(30, "", refused);
        assert.equal(r.status, null, "it should still be retrying when the reboot comes");
        assert.match(r.log, refused);
        assert.ok(!fs.existsSync(root(GATEWAY_PATHS.agentScript)), "a file of unverified software was installed");
        assert.deepEqual(recorded("systemctl"), []);
        fs.writeFileSync(first, good);
        const after = await boot();
        assert.equal(after.status, 0, after.log);
        assert.equal(
            fs.readFileSync(root(GATEWAY_PATHS.agentScript), "utf8"),
            b.software.find((f) => f.path === GATEWAY_PATHS.agentScript)!.content,
        );
    });

    it("reports GatewayBootstrapPending 1 while it retries past its limit, and 0 once it has finished", async () => {
        fs.writeFileSync(at("dnf-failures"), "1");
        const r = await boot(45, "HUBSPOKE_BOOTSTRAP_REPORT_AFTER='0'\n");
        assert.equal(r.status, 0, r.log);
        const pending = readMetrics(at("ssm")).filter((m) => m.metricName === METRIC.bootstrapPending);
        assert.deepEqual(
            pending.map((m) => [m.value, m.dimensions]),
            [
                [1, { Stack: "prod", Gateway: "virginia" }],
                [0, { Stack: "prod", Gateway: "virginia" }],
            ],
        );
    });
});
