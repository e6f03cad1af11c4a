import { strict as assert } from "node:assert";
import { findLivenessFailure, isLivenessFailure } from "../../lab/pluto-log";

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
