/**
 * Day two in the lab, on this machine's kernel (IKE): a running stack changed as `pulumi up` changes
 * it, every gateway's real agent converging its real pluto (lab/dayTwo.ts). A spoke is added, one
 * tunnel's setting changed at both ends, the spoke removed; the other tunnels must keep their IKE SAs
 * throughout (pluto's serial numbers say so). The VM run (tests/e2e/lab.test.ts) repeats it with Child
 * SAs and a continuous ping across an untouched tunnel, which must lose nothing.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { snapshotStack, writeSnapshot } from "../../harness/snapshot";
import { dayTwoPassed, formatDayTwo } from "../../lab/cli";
import { ADDED_SPOKE, type DayTwoReport, runDayTwo } from "../../lab/dayTwo";
import { Lab, labUnavailable } from "../../lab/lab";
import { ciMustRun, prodConfig, prodWith } from "../unit/fixtures";

const indent = (text: string) => text.replace(/^/gm, "      | ");

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

describe("lab: day two on this machine's kernel (agents converging real pluto daemons)", function () {
    this.timeout(240_000);
    let report: DayTwoReport;
    let tmp: string;

    before(async function () {
        const why = labUnavailable();
        if (why) {
            ciMustRun(this, why);
        }
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-day-two-"));
        const render = async (raw: Record<string, unknown>, dir: string) =>
            writeSnapshot(await snapshotStack(raw, { stack: "prod", revealSecrets: true }), path.join(tmp, dir));
        await render(prodConfig(), "before");
        await render(
            prodWith((c) => c.regions.push(ADDED_SPOKE)),
            "after",
        );
        const lab = new Lab(path.join(tmp, "after"), path.join(tmp, "work"), `d2${process.pid % 10000}`);
        report = await runDayTwo(lab, { before: path.join(tmp, "before"), timeoutSeconds: 60 });
        console.log(indent(formatDayTwo(report)));
    });
    after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }));

    it("adds a spoke, changes one tunnel, removes the spoke, and never touches another tunnel's IKE SA", () => {
        assert.equal(report.target, report.kernelHasEsp ? "Child SA" : "IKE");
        assertDayTwo(report);
        console.log(
            `      measured: ${report.tunnel} up ${report.added.seconds} s after its parameters appeared; ` +
                `re-established ${report.changed.seconds} s after its conn changed (agent runs included; on a gateway its timer adds up to 60 s)`,
        );
    });
});
