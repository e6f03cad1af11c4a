/**
 * End-to-end failover on Pulumi.prod-ha.yaml (a standby in every site), in the failover lab: both
 * gateways of every site in network namespaces, each running its rendered hubspoke-agent and
 * hubspoke-failover against the lab's AWS stand-in, whose fake EC2 moves the VPC router's NAT and
 * routes about a second after each call, as AWS does. Two runs:
 *   - on this machine's kernel: the takeover and IKE are proven (no ESP: no tunnel traffic, so the
 *     standby's probes through the tunnels cannot pass either);
 *   - in the lab's VM (Debian's full kernel): the traffic gap itself, from a continuous ping's sequence.
 * A missing prerequisite skips with the reason, except under CI (CI=true), where it fails.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { snapshotStack, writeSnapshot } from "../../harness/snapshot";
import { FailoverLab } from "../../lab/failoverLab";
import {
    BLIP_SECONDS,
    CUT_HOLD_SECONDS,
    type FailoverReport,
    failoverPassed,
    formatFailover,
    lostOutsideGap,
    MAX_FAILOVER_GAP_SECONDS,
    MAX_HANDOVER_GAP_SECONDS,
    runFailoverScenario,
} from "../../lab/failoverScenario";
import { labUnavailable, namespaces } from "../../lab/lab";
import { assertGatewayIam } from "../support/gatewayCalls";
import { ciMustRun, stackConfig } from "../unit/fixtures";

const REPO = path.join(__dirname, "..", "..");
/** lab/vm.sh's default NODE_COMPILE_CACHE. */
const VM_NODE_COMPILE_CACHE = "/var/cache/hubspoke-vpn-vm/node-compile-cache";
const indent = (text: string) => text.replace(/^/gm, "      | ");

function assertTakeover(r: FailoverReport): void {
    for (const [label, m] of [
        ["hub", r.hub],
        ["spoke", r.spoke],
    ] as const) {
        assert.ok(m, `the ${label} failover did not run`);
        assert.equal(m.tookOver, `${m.killed}-standby`, `${label}: the site is on ${m.tookOver} after ${m.killed} died`);
        assert.ok(m.ownerMovedSeconds !== undefined, `${label}: the standby never took the site's Elastic IP`);
        assert.ok(m.tunnelsBackSeconds !== undefined, `${label}: the tunnels never came up on the standby`);
        assert.ok(m.routesFollowed, `${label}: not every route of the site targets ${m.tookOver} after the takeover`);
        assert.ok(m.routedAfterAssociation, `${label}: a route moved before EC2 had answered the Elastic IP's association`);
    }
    // The failed gateway returns as the standby: nothing moves again, the active's IKE SAs stay.
    assert.ok(r.returned, "the return did not run");
    assert.equal(r.returned.owner, r.hub?.tookOver, "the returned gateway took the site back");
    assert.equal(r.returned.failoversAfter, 0);
    assert.ok(r.returned.tunnelsKept, "the active's IKE SAs changed when the failed gateway returned");
    assert.ok(r.returned.whole.consistent, `after the return the site is not whole: ${JSON.stringify(r.returned.whole)}`);
    // A blip shorter than the takeover's confirmation (BLIP_SECONDS): nothing moves. A control-plane step:
    // run on this machine's kernel only (the VM would only add minutes to it).
    if (!r.kernelHasEsp) {
        assert.ok(r.blip, "the blip did not run");
        assert.equal(r.blip.moves, 0, `a ${BLIP_SECONDS} s blip moved the site`);
        assert.ok(r.blip.whole.consistent, `after the blip the site is not whole: ${JSON.stringify(r.blip.whole)}`);
    }
    // The cut between two healthy gateways: bounded, at most one move.
    assert.ok(r.cut, "the cut did not run");
    assert.ok(r.cut.moves <= 1, `the site moved ${r.cut.moves} times during a ${CUT_HOLD_SECONDS} s cut`);
    // Whoever lost the Elastic IP stepped down: address, routes and the scripts' belief on one gateway.
    assert.ok(r.cut.whole.consistent, `after the cut the site is not whole: ${JSON.stringify(r.cut.whole)}`);
    // A negotiation started on a standby (as its agent does when it adds or re-keys a tunnel): the
    // standby ends it within two of its once-a-minute rounds, and no active's IKE SA changes.
    // Also a control-plane step: on this machine's kernel only.
    if (!r.kernelHasEsp) {
        const n = r.standbyNegotiation;
        assert.ok(n?.started, "no negotiation started on the standby");
        assert.ok(n.endedSeconds !== undefined, `${n.gateway} did not end its own negotiation of ${n.tunnel}`);
        assert.ok(n.tunnelsKept, `an active's IKE SAs changed while ${n.gateway} negotiated ${n.tunnel}`);
    }
    assert.ok(r.metrics, "no metrics");
    assert.equal(r.metrics.virginia.failovers, 1 + r.cut.moves, "Failovers reported for the hub site");
    assert.equal(r.metrics.sydney.failovers, 1, "Failovers reported for the spoke site");
    for (const [site, m] of Object.entries(r.metrics)) {
        assert.ok(m.standbyReady, `${site}'s standby never reported StandbyReady 1`);
    }
    assert.ok(failoverPassed(r));
}

/** The planned handovers: a drain moves the site to the ready partner, an undrain moves nothing, a replaced active hands over before it goes. */
function assertHandovers(r: FailoverReport): void {
    assert.equal(r.handovers?.length, 3, "the planned handovers did not all run");
    const [drained, undrained, replaced] = r.handovers!;
    for (const h of r.handovers!) {
        console.log(
            `      measured:${formatFailover({ ...r, handovers: [h] })
                .split("\n")
                .find((l) => l.startsWith(`  ${h.kind} of`))}`,
        );
        assert.ok(h.whole.consistent, `${h.kind} of ${h.gateway}: the site is not whole: ${JSON.stringify(h.whole)}`);
        assert.ok(h.bothReady, `${h.kind} of ${h.gateway}: not both gateways ready at the end`);
    }
    assert.equal(drained.kind, "drain");
    assert.notEqual(drained.ownerAfter, drained.gateway, "the drained gateway kept the site");
    assert.ok(drained.movedSeconds !== undefined, "the drain did not move the site");
    assert.equal(undrained.ownerAfter, undrained.ownerBefore, "the undrain moved the site");
    assert.equal(replaced.answer, `hubspoke-failover handover: handed the site to ${replaced.ownerAfter}`);
    assert.ok(replaced.partnerHeldAtStop, "the replaced gateway's instance went before its partner held the site");
}

describe("failover on this machine's kernel (prod-ha: takeover and IKE)", function () {
    this.timeout(300_000);
    const labId = `efo${process.pid % 1000}`;
    let report: FailoverReport;
    let tmp: string;

    before(async function () {
        const why =
            labUnavailable() ?? (spawnSync("sh", ["-c", "command -v conntrack"]).status !== 0 ? "conntrack is not installed" : undefined);
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

    it("hands the site over for a drain and for the replacement of its active, and moves nothing on an undrain (control plane)", () => {
        assertHandovers(report);
    });

    it("authorizes every call of every gateway with its own rendered policies, and makes no call the unit tests do not replay", () => {
        assertGatewayIam(report.iam);
    });

    it("leaves no namespace behind", () => {
        assert.deepEqual(namespaces(`${labId}-`), []);
    });
});

describe("failover in the VM (prod-ha: the traffic gap, Debian's full kernel under QEMU)", function () {
    this.timeout(1_000_000);
    let report: FailoverReport;

    before(function () {
        const why =
            labUnavailable() ??
            (spawnSync("sh", [
                "-c",
                "command -v qemu-system-x86_64 && command -v conntrack && ls /boot/vmlinuz-*-amd64 /boot/vmlinuz-*-generic 2>/dev/null | grep -q .",
            ]).status !== 0
                ? "qemu-system-x86, conntrack or linux-image-amd64 is not installed (scripts/install-system-deps.sh installs them)"
                : undefined);
        if (why) {
            ciMustRun(this, why);
        }
        const json = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-vm-ha-")), "report.json");
        const started = Date.now();
        const run = spawnSync("npm", ["run", "-s", "lab", "--", "--stack", "prod-ha", "--vm", "--json", json], {
            cwd: REPO,
            encoding: "utf8",
            timeout: 950_000,
            // The VM's node compile cache (lab/vm.sh), filled here too: the host's node compiles the same
            // modules (node_modules) first, which under the VM's emulation takes several times as long.
            env: { ...process.env, NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? VM_NODE_COMPILE_CACHE },
        });
        console.log(indent(`${run.stdout}${run.stderr}`.trim()));
        console.log(`      (VM run took ${Math.round((Date.now() - started) / 1000)} s including boot)`);
        assert.ok(fs.existsSync(json), `the VM run wrote no report (exit ${run.status})`);
        report = JSON.parse(fs.readFileSync(json, "utf8"));
        fs.rmSync(path.dirname(json), { recursive: true, force: true });
    });

    // The traffic itself: the longest run of unanswered pings (one every 0.2 s) from a spoke's host to the
    // hub's host, across the death of the hub's and then a spoke's active gateway, until the peers' dead-peer
    // detection has restarted their side (PEER_DPD_AFTERMATH_SECONDS): the goal, asserted.
    it(`keeps the traffic gap within ${MAX_FAILOVER_GAP_SECONDS} s when the hub's or a spoke's active gateway dies`, () => {
        assert.ok(report.kernelHasEsp, "the VM's kernel did not install an ESP SA");
        for (const [label, m] of [
            ["hub", report.hub],
            ["spoke", report.spoke],
        ] as const) {
            assert.ok(m?.ping && m.ping.sent > 0, `${label}: no ping ran across the failover`);
            console.log(
                `      measured: ${label} (${m.killed} killed): traffic gap ${m.ping.longestGapSeconds} s (${m.ping.lost}/${m.ping.sent} pings lost, ` +
                    `${lostOutsideGap(m.ping)} of them outside the gap, one every ${m.ping.intervalSeconds} s); ` +
                    `Elastic IP on the standby after ${m.ownerMovedSeconds} s, Child SAs after ${m.tunnelsBackSeconds} s`,
            );
            assert.ok(m.ping.longestGapSeconds <= MAX_FAILOVER_GAP_SECONDS, `${label}: traffic gap ${m.ping.longestGapSeconds} s`);
        }
    });

    it(`loses at most ${MAX_HANDOVER_GAP_SECONDS} s of traffic in a planned handover (a drain, the replacement of an active), and none in an undrain`, () => {
        assertHandovers(report);
        for (const h of report.handovers!) {
            assert.ok(h.ping && h.ping.sent > 0, `${h.kind}: no ping ran across it`);
            const goal = h.kind === "undrain" ? 0 : MAX_HANDOVER_GAP_SECONDS;
            assert.ok(
                h.ping.longestGapSeconds <= goal,
                `${h.kind} of ${h.gateway}: traffic gap ${h.ping.longestGapSeconds} s, goal ${goal} s`,
            );
        }
    });

    it("loses no ping when the failed gateway returns, and keeps traffic flowing through a cut between the two gateways", () => {
        assertTakeover(report);
        const back = report.returned!.ping;
        assert.ok(back && back.sent > 0, "no ping ran across the return");
        console.log(
            `      measured: return: ${back.lost}/${back.sent} pings lost; cut: ${report.cut!.moves} move(s), longest gap ${report.cut!.ping?.longestGapSeconds} s`,
        );
        assert.equal(back.lost, 0, `${back.lost} pings lost while the failed gateway returned`);
        const cut = report.cut!.ping;
        assert.ok(cut && cut.sent > 0, "no ping ran across the cut");
        // With ESP the tunnels carry the standby's probes: nothing moves, and not a ping is late by more than a second.
        assert.equal(report.cut!.moves, 0, "the site moved although the tunnels carried the standby's probes");
        assert.ok(cut.longestGapSeconds <= 1, `traffic stopped for ${cut.longestGapSeconds} s during the cut`);
    });
});
