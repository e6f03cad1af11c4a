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
import { formatDayTwo } from "../../lab/cli";
import { ADDED_SPOKE, type DayTwoReport, runDayTwo } from "../../lab/dayTwo";
import { Lab, labUnavailable } from "../../lab/lab";
import { assertDayTwo } from "../support/dayTwo";
import { ciMustRun, prodConfig, prodWith } from "../unit/fixtures";

const indent = (text: string) => text.replace(/^/gm, "      | ");

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
