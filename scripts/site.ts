/**
 * npm run site -- --stack NAME drain GATEWAY | undrain GATEWAY
 *
 * Drains a gateway of a site with a standby for maintenance, from the operator's machine with their
 * own AWS credentials (the SDK's default chain: AWS_PROFILE, AWS_ACCESS_KEY_ID, ~/.aws, SSO): it
 * writes the gateway's drain parameter and, if the gateway holds its site, waits until the partner
 * has taken it (a planned handover, README "Day two"). A drained gateway never takes the site. Undrain
 * deletes the parameter: the gateway is an ordinary standby again within a minute, and does not take
 * the site back.
 * Exit status 0 when done, 1 when AWS refused or the partner did not take the site, 2 on bad usage or config.
 */
import { parseArgs } from "node:util";
import { awsFailureText, drain, handoverClients, type PairGateway, pairGateway, undrain } from "../components/gatewayHandover";
import { readStackConfigFile, stackConfigPath } from "../config/load";
import { ConfigError, parseStackConfig } from "../config/validate";
import { stackParameterPrefix } from "../gateway/contract";

const USAGE = "usage: npm run site -- --stack NAME (drain | undrain) GATEWAY   e.g. npm run site -- --stack prod-ha drain virginia";

class UsageError extends Error {}

/** The command line and the stack's config, checked: which gateway, and what to do with it. */
export function parseSiteArgs(argv: readonly string[]): { action: "drain" | "undrain"; gateway: PairGateway; timeoutMs: number } {
    let parsed: { values: { stack?: string; "timeout-seconds"?: string }; positionals: string[] };
    try {
        parsed = parseArgs({
            args: [...argv],
            options: { stack: { type: "string" }, "timeout-seconds": { type: "string" } },
            allowPositionals: true,
            strict: true,
        });
    } catch (e) {
        throw new UsageError((e as Error).message);
    }
    const { stack, "timeout-seconds": timeout = "180" } = parsed.values;
    const [action, name, ...rest] = parsed.positionals;
    if (!stack) throw new UsageError("--stack NAME is required");
    if ((action !== "drain" && action !== "undrain") || !name || rest.length > 0) {
        throw new UsageError(`expected "drain GATEWAY" or "undrain GATEWAY", got "${parsed.positionals.join(" ")}"`);
    }
    if (!/^[1-9][0-9]*$/.test(timeout)) throw new UsageError(`--timeout-seconds takes a whole number of seconds, got "${timeout}"`);
    const { spec } = parseStackConfig(readStackConfigFile(stackConfigPath(stack)));
    const pairs = spec.regions.filter((r) => r.standby).flatMap((r) => [r.name, `${r.name}-standby`]);
    const site = spec.regions.find((r) => r.standby && (name === r.name || name === `${r.name}-standby`));
    if (!site) {
        throw new UsageError(
            `stack ${stack} has no gateway "${name}" in a site with a standby (only those can be drained); ` +
                (pairs.length ? `its pair gateways are ${pairs.join(", ")}` : "none of its sites has a standby (regions.<name>.standby)"),
        );
    }
    return { action, gateway: pairGateway(stack, stackParameterPrefix(stack), site, name), timeoutMs: Number(timeout) * 1000 };
}

async function main(): Promise<number> {
    let args: ReturnType<typeof parseSiteArgs>;
    try {
        args = parseSiteArgs(process.argv.slice(2));
    } catch (e) {
        if (e instanceof UsageError) {
            console.error(`site: ${e.message}\n${USAGE}`);
            return 2;
        }
        if (e instanceof ConfigError) {
            console.error(`site: ${e.message}`);
            return 2;
        }
        throw e;
    }
    const g = args.gateway;
    const c = handoverClients(g.awsRegion);
    try {
        if (args.action === "undrain") {
            const was = await undrain(c, g);
            console.log(
                was
                    ? `${g.gateway}: undrained; within a minute it is an ordinary standby again (it does not take the site back)`
                    : `${g.gateway}: was not drained (no ${g.drainParameter})`,
            );
            return 0;
        }
        const outcome = await drain(c, g, { timeoutMs: args.timeoutMs, log: (m) => console.log(m) });
        console.log(
            outcome.kind === "handed-over"
                ? `${g.gateway}: drained; site ${g.site} handed to ${outcome.to} after ${outcome.seconds} s`
                : `${g.gateway}: drained; it did not hold site ${g.site} (${outcome.holder} does)`,
        );
        console.log(`undo with: npm run site -- --stack ${g.stack} undrain ${g.gateway}`);
        return 0;
    } catch (e) {
        console.error(`site: ${awsFailureText(e, g.awsRegion)}`);
        return 1;
    } finally {
        c.destroy();
    }
}

if (require.main === module) {
    main().then((code) => process.exit(code));
}
