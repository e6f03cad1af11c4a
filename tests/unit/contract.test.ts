/**
 * The gateway's contract (gateway/contract.ts) is the one source of what the program, the scripts on
 * the instance, the lab and the tests agree on. The scripts read it from the rendered env file; these
 * tests fail when a script and the module disagree.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { PSK_GENERATOR } from "../../components/hubSpokeVpn";
import { DEFAULT_TUNNEL_SETTINGS } from "../../config/validate";
import {
    CONN_KEYS,
    GATEWAY_PATHS,
    isUsablePsk,
    METRIC,
    PSK,
    pskCharacterClass,
    renderGatewayEnv,
    secretsLinePattern,
} from "../../gateway/contract";
import { randomKey } from "../../harness/evaluate";
import { renderConn, renderSecrets } from "../../render/libreswan";

const SCRIPTS = ["hubspoke-agent.sh", "hubspoke-health.sh", "hubspoke-events.sh"].map((f) => ({
    name: f,
    text: fs.readFileSync(path.join(__dirname, "..", "..", "gateway", f), "utf8"),
}));
/** Settings only the lab and the tests set (pluto's socket elsewhere, a local endpoint): never on a gateway. */
const LAB_ONLY = ["HUBSPOKE_ENV", "HUBSPOKE_CTLSOCKET", "HUBSPOKE_AWS_ARGS", "HUBSPOKE_JOURNALCTL"];

describe("gateway contract", () => {
    const env = renderGatewayEnv({ stack: "prod", regionName: "virginia", awsRegion: "us-east-1", parameterPath: "/p/virginia/tunnels" });
    const defined = [...env.matchAll(/^(HUBSPOKE_\w+)=/gm)].map((m) => m[1]);
    // A gateway of a pair has more settings; the agent reads them only when HUBSPOKE_DRAIN_PARAMETER is set.
    const pairEnv = renderGatewayEnv({
        stack: "prod",
        regionName: "virginia",
        awsRegion: "us-east-1",
        parameterPath: "/p/virginia/tunnels",
        failover: { gateway: "virginia", parameter: "/p/virginia/failover" },
    });
    const pairOnly = [...pairEnv.matchAll(/^(HUBSPOKE_\w+)=/gm)].map((m) => m[1]).filter((k) => !defined.includes(k));

    for (const script of SCRIPTS) {
        it(`${script.name} reads only settings the env file defines, from the contract's env path`, () => {
            const used = [...new Set([...script.text.matchAll(/\$\{?(HUBSPOKE_\w+)/g)].map((m) => m[1]))];
            const guarded = /if \[ -n "\$\{HUBSPOKE_DRAIN_PARAMETER:-\}" \]; then/.test(script.text) ? pairOnly : [];
            assert.deepEqual(
                used.filter((v) => !defined.includes(v) && !LAB_ONLY.includes(v) && !guarded.includes(v)),
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

    it("lets a conn hold exactly the keys the renderer writes, and the secrets line match the agent's pattern", () => {
        const end = {
            tunnel: "virginia-to-sydney",
            localElasticIp: "192.0.2.11",
            localCidr: "10.11.0.0/16",
            peerElasticIp: "192.0.2.12",
            peerCidr: "12.11.0.0/16",
            settings: DEFAULT_TUNNEL_SETTINGS,
        };
        const keys = [...renderConn(end).matchAll(/^\s+([a-z0-9-]+)=/gm)].map((m) => m[1]);
        assert.deepEqual([...keys].sort(), [...CONN_KEYS].sort());
        const key = "K".repeat(PSK.length);
        const m = new RegExp(secretsLinePattern()).exec(renderSecrets(end, key).trimEnd());
        assert.equal(m?.[1], key);
        assert.equal(new RegExp(secretsLinePattern()).exec('192.0.2.11 192.0.2.12 : PSK "a b"'), null);
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
