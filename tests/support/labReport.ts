/**
 * What the lab's scenario must show on any kernel (tests/e2e/lab.test.ts on this machine's, tests/vm/lab.test.ts
 * in the VM): the tunnels, spoke isolation, recovery, a replacement without a standby, rotation, a wrong
 * key, and the failures' events.
 */
import { strict as assert } from "node:assert";
import { EVENT_WITHIN_SECONDS, type ScenarioReport } from "../../lab/scenario";

/** A run's printed output, indented under its test. */
export const indent = (text: string) => text.replace(/^/gm, "      | ");

export function assertCommon(r: ScenarioReport): void {
    assert.deepEqual(Object.keys(r.tunnels).sort(), ["virginia-to-frankfurt", "virginia-to-sydney"]);
    for (const [name, t] of Object.entries(r.tunnels)) {
        assert.ok(t.upSeconds !== undefined, `${name} did not come up:\n${JSON.stringify(r.logs, null, 1)}`);
        assert.ok(t.ike, `${name}: no IKE SA at both ends`);
    }
    // Spokes never talk to each other: no SA, no attempt in their logs, no traffic.
    assert.deepEqual(r.spokeToSpoke.foreignConnsOnSpokes, []);
    assert.deepEqual(r.spokeToSpoke.attemptsInLogs, []);
    assert.ok(!Object.values(r.spokeToSpoke.pings).some(Boolean), `spoke-to-spoke ping passed: ${JSON.stringify(r.spokeToSpoke.pings)}`);
    // Recovery: the hub's pluto killed and restarted, its tunnels come back by themselves.
    assert.ok(
        r.restart && r.restart.seconds !== undefined,
        `tunnels did not come back after restarting ${r.restart?.region}'s pluto:\n${r.logs.virginia}`,
    );
    // A spoke's gateway replaced without a standby: the new instance's agent and pluto bring its tunnel back.
    const x = r.replacement;
    assert.ok(x, "the replacement without a standby did not run");
    console.log(
        `      measured: replacement of ${x.region}'s gateway (no standby), from its software installed: ${x.tunnel} up after ${x.upSeconds ?? "NEVER"} s` +
            (r.kernelHasEsp ? `, traffic back after ${x.trafficSeconds ?? "NEVER"} s` : ` (layer: IKE)`),
    );
    assert.ok(x.upSeconds !== undefined, `${x.tunnel} did not come back after ${x.region}'s gateway was replaced:\n${r.logs[x.region]}`);
    if (r.kernelHasEsp) assert.ok(x.trafficSeconds !== undefined, `no traffic from ${x.region}'s host after its gateway was replaced`);
}

/** The key's cases, IKE's (this machine's kernel proves them; the VM skips them): rotation and a wrong key. */
export function assertKeyCases(r: ScenarioReport): void {
    // Key rotation: both ends' refresh runs rewrite the key from the Parameter Store and the tunnel
    // returns with a new IKE SA authenticated by the new key.
    assert.ok(r.rotation, "the rotation case did not run");
    assert.ok(r.rotation.bothEndsRewritten, "an end did not rewrite its secrets file with the rotated key");
    assert.ok(r.rotation.saKeptUntilReauth, "the running IKE SA did not stay up until the re-authentication was due");
    assert.ok(
        r.rotation.reauthenticated && r.rotation.seconds !== undefined,
        `the tunnel did not return after rotation:\n${r.logs.virginia}`,
    );
    // A wrong key: never established, and the log says why.
    assert.ok(r.wrongKey, "the wrong-key case did not run");
    assert.equal(r.wrongKey.establishedWithin, undefined, "a tunnel came up with mismatched keys");
    assert.match(r.wrongKey.reason ?? "", /authentication failed|AUTHENTICATION_FAILED/i);
    assert.ok(r.wrongKey.otherTunnelsUp, "the other tunnels went down while one key was wrong");
}

/**
 * Each failure the scenario caused put its event into the lab's CloudWatch Logs (hubspoke-events, the
 * endpoint's PutLogEvents) at every end that can see it, within EVENT_WITHIN_SECONDS of the failure,
 * with pluto's own line as its detail. Prints the seconds (failure to CloudWatch taking the event).
 */
export function assertEvents(r: ScenarioReport, checks: readonly (keyof ScenarioReport["events"])[], detail: Record<string, RegExp>): void {
    for (const name of checks) {
        const check = r.events[name];
        assert.ok(check, `the ${name} case put no event check in the report`);
        for (const [end, seconds] of Object.entries(check.seconds)) {
            console.log(`      measured: ${check.event} of ${check.tunnel} at ${end}: in CloudWatch Logs after ${seconds ?? "NEVER"} s`);
            assert.ok(
                seconds !== undefined && seconds <= EVENT_WITHIN_SECONDS,
                `${end}: no ${check.event} event within ${EVENT_WITHIN_SECONDS} s`,
            );
            assert.match(check.detail[end] ?? "", detail[check.event], `${end}'s ${check.event} detail`);
        }
    }
}

/** pluto's words for each event, at either end (tests/unit/fixtures/pluto-events has the full lines). */
export const EVENT_DETAIL: Record<string, RegExp> = {
    "authentication-failed": /authentication failed|AUTHENTICATION_FAILED/,
    "no-proposal-chosen": /NO_PROPOSAL_CHOSEN/,
    "dead-peer": /^liveness action - /,
};
