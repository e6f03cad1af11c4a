/**
 * End-to-end failover on Pulumi.prod-ha.yaml (a standby in every site) on this machine's kernel, in
 * the failover lab: both gateways of every site in network namespaces, each running its rendered
 * hubspoke-agent and hubspoke-failover against the lab's AWS stand-in, whose fake EC2 moves the VPC
 * router's NAT and routes about a second after each call, as AWS does. The takeover, the planned
 * handovers and IKE are proven here (no ESP: no tunnel traffic, so the standby's probes through the
 * tunnels cannot pass either); the traffic gap is tests/vm/failover.test.ts's.
 * A missing prerequisite skips with the reason, except under CI (CI=true), where it fails.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { snapshotStack, writeSnapshot } from "../../harness/snapshot";
import { FailoverLab } from "../../lab/failoverLab";
import { type FailoverReport, formatFailover, MAX_FAILOVER_GAP_SECONDS, runFailoverScenario } from "../../lab/failoverScenario";
import { labUnavailable, namespaces } from "../../lab/lab";
import { EVENT_WITHIN_SECONDS } from "../../lab/scenario";
import { assertHandovers, assertTakeover } from "../support/failoverReport";
import { assertGatewayIam } from "../support/gatewayCalls";
import { indent } from "../support/labReport";
import { ciMustRun, stackConfig } from "../unit/fixtures";

describe("failover on this machine's kernel (prod-ha: takeover and IKE)", function () {
    this.timeout(300_000);
    const labId = `efo${process.pid % 1000}`;
    let report: FailoverReport;
    let tmp: string;

    before(async function () {
        const why = labUnavailable();
        if (why) {
            ciMustRun(this, why);
        }
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-e2e-ha-"));
        writeSnapshot(await snapshotStack(stackConfig("prod-ha"), { stack: "prod-ha", revealSecrets: true }), path.join(tmp, "render"));
        report = await runFailoverScenario(new FailoverLab(path.join(tmp, "render"), path.join(tmp, "work"), labId), () => undefined);
        console.log(indent(formatFailover(report)));
    });
    after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }));

    it(`moves the site to the standby when the active dies and has its tunnels up there within ${MAX_FAILOVER_GAP_SECONDS} s, and never moves it back`, () => {
        assert.equal(report.layer, report.kernelHasEsp ? "traffic" : "IKE");
        assertTakeover(report);
        for (const m of [report.hub!, report.spoke!]) {
            console.log(
                `      measured: ${m.killed} killed: Elastic IP on the standby after ${m.ownerMovedSeconds} s, every tunnel established there after ${m.tunnelsBackSeconds} s`,
            );
            // On this kernel the timing is real (no emulation): the whole takeover fits the budget.
            assert.ok(m.tunnelsBackSeconds! <= MAX_FAILOVER_GAP_SECONDS, `${m.killed}: tunnels back after ${m.tunnelsBackSeconds} s`);
        }
        if (!report.kernelHasEsp) {
            // Without ESP the standby's probes through the tunnels cannot pass, so a cut between the two
            // gateways looks like a dead active: exactly one move, then the hold-down stops the flapping.
            console.log(
                "      note: no ESP here: the cut moves the site once (the tunnels carry no probes); traffic is proven by the VM run",
            );
        }
    });

    it("hands the site over for a drain and for each replacement of the active in a rolling replacement of both pairs, and moves nothing on an undrain (control plane)", () => {
        assertHandovers(report);
    });

    it(`puts the failover script's takeover, handover and step-down into CloudWatch Logs within ${EVENT_WITHIN_SECONDS} s (hubspoke-events)`, () => {
        const events = report.events ?? [];
        assert.deepEqual(
            events.map((e) => `${e.event} of ${e.gateway}`),
            ["takeover of virginia-standby", "takeover of sydney-standby", "handover of virginia-standby", "step-down of virginia-standby"],
        );
        const detail = {
            takeover: /^taking over the site: /,
            handover: /^handing the site to virginia: /,
            "step-down": /^stepping down: /,
        };
        for (const e of events) {
            console.log(`      measured: ${e.event} of ${e.gateway} (${e.cause}): in CloudWatch Logs after ${e.seconds ?? "NEVER"} s`);
            assert.ok(
                e.seconds !== undefined && e.seconds <= EVENT_WITHIN_SECONDS,
                `${e.event} of ${e.gateway}: not within ${EVENT_WITHIN_SECONDS} s`,
            );
            assert.match(e.detail ?? "", detail[e.event], `${e.event} of ${e.gateway}: its detail`);
        }
    });

    it("authorizes every call of every gateway with its own rendered policies, and makes no call the unit tests do not replay", () => {
        assertGatewayIam(report.iam);
    });

    it("leaves no namespace behind", () => {
        assert.deepEqual(namespaces(`${labId}-`), []);
    });
});
