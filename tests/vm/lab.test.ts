/**
 * The lab in its VM (lab/vm.sh: QEMU booting Debian's full kernel over this machine's root), where
 * Child SAs and traffic are proven: the scenario of tests/e2e/lab.test.ts with ESP, the MSS clamp
 * through a 1500-byte internet, the byte counters against the wire, and day two
 * (tests/e2e/day-two.test.ts) with Child SAs and a continuous ping. Runs alone (npm test runs
 * tests/vm after everything else): other work on the host's two cores distorts the timings it asserts.
 *
 * A missing prerequisite (QEMU or the kernel not installed) skips with the reason printed, except
 * under CI (CI=true): there it FAILS the suite, so that a green CI always means the data plane ran.
 */
import { strict as assert } from "node:assert";
import { TCP_MSS } from "../../gateway/contract";
import type { LabReport } from "../../lab/cli";
import type { Counted } from "../../lab/scenario";
import { assertDayTwo } from "../support/dayTwo";
import { assertCommon, assertEvents, EVENT_DETAIL } from "../support/labReport";
import { runLabInVm } from "../support/vm";

/**
 * What ESP in UDP adds to a packet with the tunnels' AES-GCM, at least and at most: outer IPv4 20 +
 * UDP 8 + ESP 8 + IV 8 + ICV 16 + trailer 2, and 0-3 bytes of padding (to 4 bytes).
 */
const AES_GCM_OVERHEAD = { min: 20 + 8 + 8 + 8 + 16 + 2, max: 20 + 8 + 8 + 8 + 16 + 2 + 3 };

/**
 * How much of a span's traffic a report may miss: the bytes a Child SA carried after the last report
 * and before it was retired are not counted, by design (hubspoke-health; README, Operate). Measured:
 * 5,600 bytes of 1.2 MB after a pluto restart, 18.6 KB of 5.5 MB and 155 KB of 6.5 MB (2.4%) in 5 MB
 * transfers; the issue's own bound is 5%.
 */
const RETIRED_SA_LOSS = 0.05;

/**
 * Per end of a span: the bytes on the wire (the ESP packets, Lab.espPackets) less the bytes reported,
 * a packet: what of ESP in UDP the kernel's SA counters leave out (they count the inner packets).
 */
function encapsulation(c: Counted): { end: string; reported?: number; esp: Counted["espOut"]; perPacket?: number }[] {
    return [
        { end: "TunnelDataOut of the sender", reported: c.senderOut, esp: c.espOut },
        { end: "TunnelDataIn of the receiver", reported: c.receiverIn, esp: c.espIn },
    ].map((e) => ({ ...e, perPacket: e.reported === undefined ? undefined : (e.esp.bytes - e.reported) / e.esp.packets }));
}

/**
 * Asserts that each end's report counted what crossed the tunnel once, against the ground truth: the
 * ESP packets on the wire over the same span (TCP's retransmissions included, which a count from the
 * payload misses: 7% more after a rekey in one CI run). Counted once, a report is the wire's bytes
 * less AES_GCM_OVERHEAD a packet (measured: 64.0 in most spans). Counted twice, it would exceed the
 * wire's bytes: never. Less than that: only by what a retired SA took with it, at most RETIRED_SA_LOSS
 * of the inner bytes; the exact figure is printed.
 */
function assertCountedOnce(span: string, c: Counted, payload: number): void {
    for (const e of encapsulation(c)) {
        assert.ok(e.perPacket !== undefined, `${span}: no ${e.end} reported`);
        assert.ok(e.esp.bytes >= payload, `${span}: ${e.esp.bytes} bytes of ESP on the wire, less than the ${payload} of payload`);
        const inner = e.esp.bytes - AES_GCM_OVERHEAD.max * e.esp.packets;
        const missed = Math.max(0, inner - e.reported!);
        console.log(
            `      measured: ${span}: ${e.end} ${e.reported} bytes; on the wire ${e.esp.bytes} bytes in ${e.esp.packets} ESP packets (${payload} of payload): ` +
                `${e.perPacket.toFixed(1)} bytes a packet not counted (ESP in UDP: ${AES_GCM_OVERHEAD.min}-${AES_GCM_OVERHEAD.max})` +
                (missed > 0 ? `; ${missed} bytes more not counted (a retired SA's)` : ""),
        );
        assert.ok(
            e.perPacket >= AES_GCM_OVERHEAD.min,
            `${span}: ${e.end} ${e.reported} bytes for ${e.esp.bytes} on the wire in ${e.esp.packets} packets: counted more than crossed (twice?)`,
        );
        assert.ok(
            missed <= RETIRED_SA_LOSS * inner,
            `${span}: ${e.end} missed ${missed} of ${inner} inner bytes, more than a retired SA's ${RETIRED_SA_LOSS * 100}%`,
        );
    }
}

describe("lab in the VM (Debian's full kernel under QEMU: Child SA and traffic)", function () {
    this.timeout(1_600_000);
    let report: LabReport;

    before(function () {
        report = runLabInVm(this, ["--full"], [], 1_550_000);
    });

    it("installs ESP Child SAs for every hub-spoke tunnel", () => {
        assert.ok(report.kernelHasEsp, "the VM's kernel did not install an ESP SA");
        assertCommon(report);
        for (const [name, t] of Object.entries(report.tunnels)) {
            assert.ok(t.child, `${name}: no Child SA at both ends`);
        }
    });

    it("puts a dead peer's events into CloudWatch Logs within 60 s (layer: Child SA; a wrong key's and a proposal mismatch's are IKE's, proven on this machine's kernel)", () => {
        assertEvents(report, ["deadPeer"], EVENT_DETAIL);
    });

    it("notices a dead peer within 15 s, reports it with the health script, and returns within 5 s of the peer coming back", () => {
        const d = report.deadPeer;
        assert.ok(d && !d.skipped, "the dead-peer case did not run");
        // It starts from a settled tunnel: after the hub's restart, the spokes' IKE SAs of the killed pluto
        // fail their liveness checks and restart the tunnel once more; the lab waits that out first.
        assert.ok(report.restart?.settledSeconds !== undefined, "the tunnels did not settle after the hub's restart");
        console.log(
            `      measured: dead peer noticed after ${d.detectedSeconds} s (${d.detectedLine ?? "no liveness failure logged"}); tunnel back ${d.returnedSeconds} s after the peer returned`,
        );
        // The detection is pluto's liveness failure for this tunnel (dpdaction=restart), and nothing else:
        // not the "DPD=active" of an established Child SA.
        assert.match(
            d.detectedLine ?? "",
            /^[A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d\.\d+: "virginia-to-sydney" #\d+: liveness action - restarting all connections that share this peer$/,
            `the hub logged no liveness failure for ${d.tunnel}; its lines:\n${(d.hubLines ?? []).join("\n")}`,
        );
        assert.ok(
            d.detectedSeconds !== undefined && d.detectedSeconds <= 15,
            `dead peer noticed after ${d.detectedSeconds} s (${d.detectedLine})`,
        );
        assert.ok(d.returnedSeconds !== undefined && d.returnedSeconds <= 5, `tunnel back ${d.returnedSeconds} s after the peer returned`);
        // hubspoke-health --dry-run on the hub, against the real pluto: 1 while up, 0 once the peer is dead, 1 again.
        assert.deepEqual(d.health, { before: 1, whileDead: 0, after: 1 });
        assert.match(d.healthLines[0], /^HubspokeVpn TunnelUp Stack=prod,Region=virginia,Tunnel=virginia-to-sydney 1$/);
    });

    it("moves 5 MB from a spoke's host to the hub's through the 1500-byte internet with the MSS clamp, and stalls without it", () => {
        const m = report.mtu;
        assert.ok(m, "the MTU case did not run");
        const mb = m.withClamp.sent / (1024 * 1024);
        console.log(
            `      measured: ${mb} MB spoke->hub (${m.from}->${m.to}) with MSS clamp ${m.clamp}: ` +
                `${m.withClamp.completed ? `${m.withClamp.seconds} s` : `NOT completed (${m.withClamp.bytes} bytes in ${m.withClamp.seconds} s)`}; ` +
                `without clamp: ${m.withoutClamp.completed ? `completed in ${m.withoutClamp.seconds} s` : `stalled (${m.withoutClamp.bytes} bytes in ${m.withoutClamp.deadlineSeconds} s)`}`,
        );
        assert.equal(m.withClamp.sent, 5 * 1024 * 1024);
        assert.ok(m.settled, "the tunnel had not settled before the transfers (a stale IKE SA's liveness failure could cut them)");
        assert.equal(m.clamp, TCP_MSS, "the gateways did not clamp to the rendered MSS");
        assert.ok(m.withClamp.completed, `5 MB did not arrive with the MSS clamp: ${JSON.stringify(m.withClamp)}`);
        assert.equal(m.withClamp.bytes, m.withClamp.sent);
        // What hubspoke-health reported for it: TunnelDataOut at the sender, TunnelDataIn at the receiver.
        const { senderOut, receiverIn } = m.reported;
        console.log(
            `      measured: TunnelDataOut at ${m.from} ${senderOut} bytes, TunnelDataIn at ${m.to} ${receiverIn} bytes, for ${m.withClamp.sent} bytes of payload ` +
                `(+${(((senderOut ?? 0) / m.withClamp.sent - 1) * 100).toFixed(1)}%, +${(((receiverIn ?? 0) / m.withClamp.sent - 1) * 100).toFixed(1)}%)`,
        );
        assertCountedOnce(`${mb} MB with the clamp`, m.reported, m.withClamp.sent);
        // Without the clamp: the connection opens (small SYNs pass), then full-size segments vanish.
        assert.ok(m.withoutClamp.connected, `the transfer without the clamp never connected: ${JSON.stringify(m.withoutClamp)}`);
        assert.ok(
            !m.withoutClamp.completed,
            `5 MB arrived without the MSS clamp in ${m.withoutClamp.seconds} s: the lab's MTUs are not AWS's`,
        );
        assert.ok(m.withoutClamp.bytes < m.withoutClamp.sent);
        assert.ok(m.clampRestored, "the MSS clamp was not restored on the gateways");
    });

    it("counts TunnelDataIn/Out across a rekey of the Child SA and a restart of pluto: each transfer once, never less, never twice", () => {
        const checks = report.counters ?? [];
        assert.deepEqual(
            checks.map((c) => c.after),
            ["rekey", "restart"],
        );
        for (const c of checks) {
            assert.ok(c.transferred, `1 MiB after the ${c.after} did not arrive`);
            assert.ok(c.newSa, `the ${c.after} gave the tunnel no new Child SA: nothing was proven`);
            assertCountedOnce(`1 MiB after a ${c.after}`, c.counted, c.payload);
        }
    });

    it("passes hub <-> spoke traffic through the tunnels and refuses spoke <-> spoke", () => {
        for (const [name, t] of Object.entries(report.tunnels)) {
            assert.ok(t.pingHubToSpoke && t.pingSpokeToHub, `${name}: pings failed`);
            assert.ok((t.espBytes ?? 0) > 0, `${name}: the pings did not go through the Child SA`);
            assert.equal(t.proven, "traffic");
        }
        assert.deepEqual(report.spokeToSpoke.pings, { "sydney->frankfurt": false, "frankfurt->sydney": false });
    });

    it("converges day two with Child SAs: a spoke added, a tunnel changed, the spoke removed, and not one ping lost across an untouched tunnel", () => {
        const d = report.dayTwo;
        assert.ok(d, "day two did not run in the VM");
        assert.equal(d.target, "Child SA");
        assertDayTwo(d);
        assert.ok(d.ping, "no ping ran across the untouched tunnel");
        console.log(
            `      measured: ${d.tunnel} up ${d.added.seconds} s after its parameters appeared, re-established ${d.changed.seconds} s after its change; ` +
                `ping across an untouched tunnel: ${d.ping.received}/${d.ping.sent} replies, longest gap ${d.ping.longestGapSeconds} s`,
        );
        assert.ok(d.ping.sent > 20, `only ${d.ping.sent} pings were sent`);
        assert.equal(d.ping.lost, 0, `${d.ping.lost} pings lost across an untouched tunnel (longest gap ${d.ping.longestGapSeconds} s)`);
    });
});
