import { strict as assert } from "node:assert";
import { allEstablishedAt, findLivenessFailure, isLivenessFailure } from "../../lab/pluto-log";

// Lines from the hub's pluto (libreswan 4.10) in a VM run of the lab.
const LIVENESS = 'Nov 26 11:09:33.262058: "virginia-to-sydney" #9: liveness action - restarting all connections that share this peer';
const CHILD_SA_DPD_ACTIVE =
    'Nov 26 11:10:24.294764: "virginia-to-sydney" #14: responder established Child SA using #11; IPsec tunnel ' +
    "[12.11.0.0-12.11.255.255:0-65535 0] -> [10.11.0.0-10.11.255.255:0-65535 0] " +
    "{ESPinUDP/ESN=>0x99b539f2 <0xd6133a7b xfrm=AES_GCM_16_256-NONE-DH19 NATD=192.0.2.11:4500 DPD=active}";

describe("lab: reading pluto's log", () => {
    it("recognises pluto's liveness failure (a dead peer) for the tunnel", () => {
        assert.ok(isLivenessFailure(LIVENESS, "virginia-to-sydney"));
        // Whichever dpdaction the conn has.
        assert.ok(isLivenessFailure('"virginia-to-sydney" #3: liveness action - putting connection into hold', "virginia-to-sydney"));
        assert.ok(
            isLivenessFailure('"virginia-to-sydney" #3: liveness action - clearing connection kind CK_PERMANENT', "virginia-to-sydney"),
        );
    });

    it("does not take the DPD=active of an established Child SA, or another tunnel's failure, for it", () => {
        assert.ok(!isLivenessFailure(CHILD_SA_DPD_ACTIVE, "virginia-to-sydney"));
        assert.ok(!isLivenessFailure(LIVENESS, "virginia-to-frankfurt"));
        assert.ok(!isLivenessFailure(LIVENESS.replace("virginia-to-sydney", "virginia-to-sydney-2"), "virginia-to-sydney"));
        // Other liveness chatter is not a failure.
        for (const line of [
            'Nov 26 11:09:30.1: "virginia-to-sydney" #9: ESTABLISHED_IKE_SA: retransmission; will wait 1 seconds for response',
            'Nov 26 11:09:30.1: "virginia-to-sydney" #9: received an INFORMATIONAL liveness check request',
        ]) {
            assert.ok(!isLivenessFailure(line, "virginia-to-sydney"), line);
        }
    });

    it("finds the first liveness failure in a log, or none", () => {
        const log = [CHILD_SA_DPD_ACTIVE, `${LIVENESS}  `, LIVENESS.replace("#9", "#12")].join("\n");
        assert.equal(findLivenessFailure(log, "virginia-to-sydney"), LIVENESS);
        assert.equal(findLivenessFailure(CHILD_SA_DPD_ACTIVE, "virginia-to-sydney"), undefined);
        assert.equal(findLivenessFailure("", "virginia-to-sydney"), undefined);
    });
});

describe("lab: when pluto's log says every tunnel was established", () => {
    // A takeover's lines from the new active's pluto (libreswan 4.10, the lab's VM), abridged after the SA's kind.
    const log = [
        'Nov 26 19:37:12.221051: "virginia-to-sydney" #9: responder established IKE SA; authenticated peer using authby=secret',
        'Nov 26 19:37:12.228226: "virginia-to-sydney" #12: responder established Child SA using #9; IPsec tunnel [...]',
        'Nov 26 19:37:16.241412: "virginia-to-frankfurt" #8: STATE_V2_ESTABLISHED_IKE_SA: retransmission; will wait 2 seconds for response',
        'Nov 26 19:37:16.650231: "virginia-to-frankfurt" #13: initiator established IKE SA; authenticated peer using authby=secret',
        'Nov 26 19:37:16.653976: "virginia-to-frankfurt" #14: initiator established Child SA using #13; IPsec tunnel [...]',
        'Nov 26 19:37:22.455723: "virginia-to-sydney" #15: initiator established IKE SA; authenticated peer using authby=secret',
    ].join("\n");
    // pluto logs local time without a year: the same local time, here.
    const at = (h: number, m: number, s: number, ms: number) => new Date(2026, 10, 26, h, m, s, ms).getTime();
    const both = ["virginia-to-sydney", "virginia-to-frankfurt"];

    it("is the time of the last tunnel to come up, at the layer asked for", () => {
        assert.equal(allEstablishedAt(log, both, "IKE", at(19, 37, 0, 0)), at(19, 37, 16, 650));
        assert.equal(allEstablishedAt(log, both, "Child SA", at(19, 37, 0, 0)), at(19, 37, 16, 653));
        assert.equal(allEstablishedAt(log, ["virginia-to-sydney"], "Child SA", at(19, 37, 0, 0)), at(19, 37, 12, 228));
    });

    it("counts only SAs established since the moment given, and nothing while a tunnel is missing", () => {
        // After 19:37:13 only sydney's second IKE SA came up: no Child SA of it, and frankfurt's came later.
        assert.equal(allEstablishedAt(log, ["virginia-to-sydney"], "IKE", at(19, 37, 13, 0)), at(19, 37, 22, 455));
        assert.equal(allEstablishedAt(log, ["virginia-to-sydney"], "Child SA", at(19, 37, 13, 0)), undefined);
        assert.equal(allEstablishedAt(log, [...both, "virginia-to-tokyo"], "IKE", at(19, 37, 0, 0)), undefined);
        // A retransmission of an established IKE SA is not an establishment.
        assert.equal(allEstablishedAt(log.split("\n")[2], ["virginia-to-frankfurt"], "IKE", at(19, 37, 0, 0)), undefined);
    });
});
