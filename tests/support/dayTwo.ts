import { strict as assert } from "node:assert";
import { dayTwoPassed } from "../../lab/cli";
import type { DayTwoReport } from "../../lab/dayTwo";

/** Checks a day-two report, whichever layer it ran at (also used for the VM's report). */
export function assertDayTwo(d: DayTwoReport): void {
    const logs = () => JSON.stringify(d.logs, null, 1);
    assert.deepEqual(d.untouched.sort(), ["virginia-to-frankfurt", "virginia-to-sydney"]);
    assert.ok(
        Object.values(d.added.serialsBefore).every((s) => s.length > 0),
        `the stack before did not have every IKE SA: ${JSON.stringify(d.added.serialsBefore)}`,
    );
    // Added: the new tunnel comes up, and no other tunnel gets a new IKE SA.
    assert.ok(d.added.seconds !== undefined, `the added tunnel did not come up:\n${d.added.agentLog}\n${logs()}`);
    assert.match(d.added.agentLog, /^hubspoke-agent: virginia-to-tokyo: added and initiated$/m);
    assert.deepEqual(d.added.serialsAfter, d.added.serialsBefore, "adding a spoke touched another tunnel's IKE SA");
    // Changed: only that tunnel is re-established.
    assert.ok(d.changed.seconds !== undefined, `the changed tunnel was not re-established:\n${logs()}`);
    assert.ok(d.changed.tunnelSerialsAfter.length > 0 && d.changed.tunnelSerialsBefore.length > 0);
    assert.ok(d.changed.tunnelSerialsAfter.every((s) => !d.changed.tunnelSerialsBefore.includes(s)));
    assert.match(d.changed.agentLogs[0], /virginia-to-tokyo: conn changed: replaced and re-established/);
    assert.deepEqual(d.changed.serialsAfter, d.added.serialsBefore, "changing one tunnel touched another's IKE SA");
    // Removed: conn and secrets gone from the hub; the others untouched.
    assert.match(d.removed.agentLog, /virginia-to-tokyo: removed \(conn deleted, secrets removed\)/);
    assert.equal(d.removed.connLoaded, false, "the hub's pluto still has the removed conn");
    assert.deepEqual(d.removed.filesLeft, []);
    assert.deepEqual(d.removed.serialsAfter, d.added.serialsBefore, "removing a spoke touched another tunnel's IKE SA");
    assert.ok(dayTwoPassed(d));
}
