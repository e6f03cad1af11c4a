/**
 * The gateway's contract (gateway/contract.ts) is the one source of what the program, the scripts on
 * the instance, the lab and the tests agree on. The scripts read it from the rendered env file; these
 * tests fail when a script and the module disagree.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { PSK_GENERATOR } from "../../components/hubSpokeVpn";
import { GATEWAY_PATHS, isUsablePsk, METRIC, PSK, pskCharacterClass, renderGatewayEnv } from "../../gateway/contract";
import { randomKey } from "../../harness/evaluate";

const SCRIPTS = ["hubspoke-agent.sh", "hubspoke-health.sh"].map((f) => ({
    name: f,
    text: fs.readFileSync(path.join(__dirname, "..", "..", "gateway", f), "utf8"),
}));
/** Settings only the lab and the tests set (pluto's socket elsewhere, a local endpoint): never on a gateway. */
const LAB_ONLY = ["HUBSPOKE_ENV", "HUBSPOKE_CTLSOCKET", "HUBSPOKE_AWS_ARGS"];

describe("gateway contract", () => {
    const env = renderGatewayEnv({ stack: "prod", site: "virginia", awsRegion: "us-east-1", parameterPath: "/p/virginia/tunnels" });
    const defined = [...env.matchAll(/^(HUBSPOKE_\w+)=/gm)].map((m) => m[1]);

    for (const script of SCRIPTS) {
        it(`${script.name} reads only settings the env file defines, from the contract's env path`, () => {
            const used = [...new Set([...script.text.matchAll(/\$\{?(HUBSPOKE_\w+)/g)].map((m) => m[1]))];
            assert.deepEqual(
                used.filter((v) => !defined.includes(v) && !LAB_ONLY.includes(v)),
                [],
                "a setting the program does not render",
            );
            assert.ok(script.text.includes(`\${HUBSPOKE_ENV:-${GATEWAY_PATHS.env}}`), "the env file's path is the contract's");
            // No second default: a `${HUBSPOKE_X:-value}` fallback would let the script and the module drift apart.
            assert.deepEqual(
                [...script.text.matchAll(/\$\{(HUBSPOKE_(?!ENV\b)\w+):-(?!\})/g)].map((m) => m[1]),
                [],
            );
        });

        it(`${script.name} names none of the contract's values itself`, () => {
            for (const value of [
                GATEWAY_PATHS.ipsecDir,
                GATEWAY_PATHS.stateDir,
                GATEWAY_PATHS.mssClamp,
                METRIC.namespace,
                pskCharacterClass(),
                `-lt ${PSK.minLength}`,
                `${PSK.minLength} `,
            ]) {
                const code = script.text
                    .split("\n")
                    .filter((l) => !/^\s*#/.test(l))
                    .join("\n");
                assert.ok(!code.includes(value), `${script.name} hard-codes ${JSON.stringify(value)}`);
            }
        });
    }

    it("renders every setting as a shell assignment that bash reads back unchanged", () => {
        for (const line of env.split("\n").filter((l) => l.startsWith("HUBSPOKE_"))) {
            assert.match(line, /^HUBSPOKE_\w+='[^']*'$/);
        }
        assert.ok(env.includes(`HUBSPOKE_PSK_CHARACTERS='${pskCharacterClass()}'`));
    });

    it("generates keys only from the alphabet the gateways accept, at the length the contract says", () => {
        assert.equal(PSK_GENERATOR.length, PSK.length);
        assert.equal(PSK_GENERATOR.overrideSpecial, PSK.special);
        assert.ok(PSK.length >= PSK.minLength);
        // Every character random.RandomPassword may draw with these settings: letters, digits, overrideSpecial.
        const alphabet = `ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789${PSK_GENERATOR.overrideSpecial}`;
        for (const c of alphabet) {
            assert.ok(isUsablePsk(c.repeat(PSK.minLength)), `the generator may draw ${JSON.stringify(c)}, which the gateways refuse`);
        }
        assert.ok(isUsablePsk(randomKey("seed", PSK_GENERATOR.length, PSK_GENERATOR.overrideSpecial)));
    });
});
