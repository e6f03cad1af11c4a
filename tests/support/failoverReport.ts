/**
 * What the failover scenario must show on any kernel (tests/e2e/failover.test.ts on this machine's,
 * tests/vm/failover.test.ts in the VM): the takeovers and the planned handovers.
 */
import { strict as assert } from "node:assert";
import {
    BLIP_SECONDS,
    CUT_HOLD_SECONDS,
    type FailoverReport,
    failoverPassed,
    formatFailover,
    HANDOVER_STEPS,
} from "../../lab/failoverScenario";

export function assertTakeover(r: FailoverReport): void {
    for (const [label, m] of [
        ["hub", r.hub],
        ["spoke", r.spoke],
    ] as const) {
        assert.ok(m, `the ${label} failover did not run`);
        assert.equal(m.tookOver, `${m.killed}-standby`, `${label}: the site is on ${m.tookOver} after ${m.killed} died`);
        assert.ok(m.ownerMovedSeconds !== undefined, `${label}: the standby never took the site's Elastic IP`);
        assert.ok(m.tunnelsBackSeconds !== undefined, `${label}: the tunnels never came up on the standby`);
        assert.ok(m.routesFollowed, `${label}: not every route of the site targets ${m.tookOver} after the takeover`);
        assert.ok(m.routedWithAssociation, `${label}: the routes waited for EC2's answer to the Elastic IP's association`);
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

/**
 * The planned handovers: a drain moves the site to the ready partner, an undrain moves nothing; then each
 * site's pair is replaced one gateway after the other (the primary first), the one holding the site
 * handing it over before its instance goes, and never both down at once.
 */
export function assertHandovers(r: FailoverReport): void {
    assert.equal(r.handovers?.length, HANDOVER_STEPS, "the planned handovers did not all run");
    const [drained, undrained, ...replaced] = r.handovers!;
    for (const h of r.handovers!) {
        console.log(
            `      measured:${formatFailover({ ...r, handovers: [h] })
                .split("\n")
                .find((l) => l.startsWith(`  ${h.kind} of`))}`,
        );
        assert.ok(h.whole.consistent, `${h.kind} of ${h.gateway}: the site is not whole: ${JSON.stringify(h.whole)}`);
        assert.ok(
            h.bothReady,
            `${h.kind} of ${h.gateway}: not both gateways ready at the end${h.notReadyLog ? `; its failover log ends:\n${h.notReadyLog}` : ""}`,
        );
    }
    assert.equal(drained.kind, "drain");
    assert.notEqual(drained.ownerAfter, drained.gateway, "the drained gateway kept the site");
    assert.ok(drained.movedSeconds !== undefined, "the drain did not move the site");
    assert.equal(undrained.ownerAfter, undrained.ownerBefore, "the undrain moved the site");
    // Both gateways of both sites, each site's primary first; every site kept a gateway throughout.
    assert.deepEqual(
        replaced.map((h) => h.gateway),
        [r.hub!.killed, `${r.hub!.killed}-standby`, r.spoke!.killed, `${r.spoke!.killed}-standby`],
        "not every gateway was replaced, or not in the pair's order",
    );
    for (const h of replaced) {
        assert.equal(h.kind, "replacement");
        assert.ok(h.partnerHeldAtStop, `${h.gateway}'s instance went before its partner held the site`);
        if (h.ownerBefore === h.gateway) {
            assert.equal(h.answer, `hubspoke-failover handover: handed the site to ${h.ownerAfter}`);
        } else {
            assert.equal(h.answer, "hubspoke-failover handover: not active: nothing to hand over");
            assert.equal(h.ownerAfter, h.ownerBefore, `replacing ${h.gateway}, which did not hold the site, moved it`);
        }
    }
    // At least one handover per site (the primary held the hub's site, the standby the spoke's).
    for (const site of [r.hub!.killed, r.spoke!.killed]) {
        assert.ok(
            replaced.some((h) => h.site === site && h.ownerBefore === h.gateway && h.movedSeconds !== undefined),
            `no replacement in ${site} was a handover`,
        );
    }
}
