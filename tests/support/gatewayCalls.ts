/**
 * The calls the gateways' scripts make, as the lab's AWS endpoint saw them (named relative to each
 * caller: lab/iam.ts symbolicCalls), kept in tests/unit/fixtures/gateway-calls.json, which the unit
 * tests replay against every gateway's rendered policies (tests/unit/iam.test.ts). The host-kernel
 * labs compare what they saw with it: a call the fixture lacks fails them, until the fixture is
 * refreshed with HUBSPOKE_UPDATE_FIXTURES=1 (and reviewed: a new call is a new permission).
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import type { SymbolicCall } from "../../lab/iam";

export const GATEWAY_CALLS_FIXTURE = path.join(__dirname, "..", "unit", "fixtures", "gateway-calls.json");

const key = (c: SymbolicCall) => JSON.stringify({ kind: c.kind, action: c.action, resources: c.resources, context: c.context ?? {} });

export function readGatewayCalls(): SymbolicCall[] {
    return JSON.parse(fs.readFileSync(GATEWAY_CALLS_FIXTURE, "utf8")).calls as SymbolicCall[];
}

/**
 * The calls in `seen` that the fixture lacks. With HUBSPOKE_UPDATE_FIXTURES=1 they are added to it
 * instead (and none is reported).
 */
export function callsMissingFromFixture(seen: readonly SymbolicCall[]): SymbolicCall[] {
    const known = fs.existsSync(GATEWAY_CALLS_FIXTURE) ? readGatewayCalls() : [];
    const have = new Set(known.map(key));
    const missing = seen.filter((c) => !have.has(key(c)));
    if (missing.length > 0 && process.env.HUBSPOKE_UPDATE_FIXTURES === "1") {
        const all = [...known, ...missing].sort((a, b) => key(a).localeCompare(key(b)));
        const note =
            "The AWS calls the gateways' scripts make, as the host-kernel labs recorded them (tests/support/gatewayCalls.ts); " +
            "refreshed with HUBSPOKE_UPDATE_FIXTURES=1. tests/unit/iam.test.ts replays each against every gateway's rendered policies.";
        fs.writeFileSync(GATEWAY_CALLS_FIXTURE, `${JSON.stringify({ note, calls: all }, null, 2)}\n`);
        return [];
    }
    return missing;
}

/**
 * A lab run's IAM, as every host-kernel lab asserts it: calls were authorized (IAM was enforced),
 * none denied (each gateway's own rendered policies allow what its scripts do), and every call is in
 * the fixture the unit tests replay. Prints the counts.
 */
export function assertGatewayIam(iam: { allowed: number; denied: number; calls: readonly SymbolicCall[] } | undefined): void {
    assert.ok(iam, "no IAM decisions recorded");
    console.log(`      measured: IAM: ${iam.allowed} calls authorized, ${iam.denied} denied`);
    assert.ok(iam.allowed > 0, "the lab's endpoint authorized no call: is IAM enforced?");
    assert.equal(iam.denied, 0, "a gateway's call was denied by its own rendered policies");
    assert.deepEqual(
        callsMissingFromFixture(iam.calls),
        [],
        "calls not in tests/unit/fixtures/gateway-calls.json (refresh with HUBSPOKE_UPDATE_FIXTURES=1)",
    );
}
