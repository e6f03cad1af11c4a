/**
 * End-to-end on this machine's kernel: real pluto daemons, one per gateway, running the rendered files
 * in network namespaces (lab/). IKE is proven (a kernel without ESP cannot install Child SAs; the VM
 * run, tests/vm/lab.test.ts, proves Child SAs and traffic). The tunnels reach each gateway as on AWS:
 * its rendered agent fetches them, with the real AWS CLI, from a local SSM Parameter Store
 * (lab/fake-aws); rotation is shown by changing a key there. Prints, per tunnel, the layer proven and
 * the seconds it took to come up and to recover.
 *
 * A missing prerequisite (not root, libreswan not installed) skips with the reason printed, except
 * under CI (CI=true): there it FAILS the suite, so that a green CI always means the lab ran.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { snapshotStack, writeSnapshot } from "../../harness/snapshot";
import { formatReport } from "../../lab/cli";
import { Lab, labUnavailable, namespaces } from "../../lab/lab";
import { runScenario, type ScenarioReport } from "../../lab/scenario";
import { assertGatewayIam } from "../support/gatewayCalls";
import { assertCommon, assertEvents, assertKeyCases, EVENT_DETAIL, indent } from "../support/labReport";
import { ciMustRun, prodConfig } from "../unit/fixtures";

describe("lab on this machine's kernel (libreswan in network namespaces)", function () {
    this.timeout(180_000);
    const labId = `e2e${process.pid % 10000}`;
    let report: ScenarioReport;
    let tmp: string;

    before(async function () {
        const why = labUnavailable();
        if (why) {
            ciMustRun(this, why);
        }
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-e2e-"));
        writeSnapshot(await snapshotStack(prodConfig(), { stack: "prod", revealSecrets: true }), path.join(tmp, "render"));
        const lab = new Lab(path.join(tmp, "render"), path.join(tmp, "work"), labId);
        report = await runScenario(lab, { full: true, timeoutSeconds: 60 });
        console.log(indent(formatReport(report)));
    });
    after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }));

    it("establishes every hub-spoke tunnel through the NATs, proving the layer this kernel allows", () => {
        assertCommon(report);
        assertKeyCases(report);
        const want = report.kernelHasEsp ? "traffic" : "IKE";
        for (const [name, t] of Object.entries(report.tunnels)) {
            assert.equal(t.proven, want, `${name} proven only up to ${t.proven}`);
        }
        if (!report.kernelHasEsp) {
            console.log("      note: this kernel has no ESP: IKE proven here; Child SA and traffic are proven by the VM run below");
        }
    });

    it("authenticates with the generated key and the Elastic IP identities, over NAT-T", () => {
        const eip = { virginia: "192.0.2.11", sydney: "192.0.2.12", frankfurt: "192.0.2.13" };
        for (const [name, t] of Object.entries(report.tunnels)) {
            const spoke = name.replace("virginia-to-", "") as "sydney" | "frankfurt";
            // Each end names the other's Elastic IP as the identity it verified with the pre-shared key.
            assert.match(
                t.authentication[0],
                new RegExp(`authenticated peer using authby=secret and ID_IPV4_ADDR '${eip[spoke].replace(/\./g, "\\.")}'`),
            );
            assert.match(t.authentication[1], /authenticated peer using authby=secret and ID_IPV4_ADDR '192\.0\.2\.11'/);
            assert.ok(t.natTraversal, `${name}: IKE did not move to UDP 4500 through the NAT`);
        }
    });

    it("runs the health script against the real pluto: 0 where no Child SA can exist", function () {
        // On a kernel without ESP there is no Child SA, so TunnelUp must say 0 even with IKE up.
        if (report.kernelHasEsp) {
            this.skip();
        }
        assert.ok(report.deadPeer?.skipped, "dead-peer detection needs a Child SA");
        assert.equal(report.deadPeer.health.before, 0);
        assert.match(
            report.deadPeer.healthLines.join("\n"),
            /^HubspokeVpn TunnelUp Stack=prod,Region=virginia,Tunnel=virginia-to-sydney 0$/m,
        );
    });

    it("authorizes every agent's call with its gateway's own rendered policies, and makes no call the unit tests do not replay", () => {
        assertGatewayIam(report.iam);
    });

    it("puts a wrong key's and an ESP proposal mismatch's events into CloudWatch Logs at both ends within 60 s (layer: IKE)", () => {
        assertEvents(report, ["wrongKey", "proposalMismatch"], EVENT_DETAIL);
    });

    it("leaves no namespace behind", () => {
        assert.deepEqual(namespaces(`${labId}-`), []);
    });
});
