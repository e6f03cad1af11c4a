/**
 * npm run render -- --stack prod --out DIR [--config FILE] [--eip REGION=IP ...] [--reveal-secrets]
 *
 * Evaluates the program offline (Pulumi's mock runtime: no AWS, no Pulumi CLI) and writes what
 * each gateway will run: DIR/<region>/etc/ipsec.d/*, DIR/<region>/etc/sysctl.d/*, DIR/<region>/user-data,
 * and DIR/plan.json. Exit status 0 when written, 1 on bad config (nothing written), 2 on bad usage.
 */

import { parseIp } from "../config/cidr";
import { readStackConfigFile, stackConfigPath } from "../config/load";
import { ConfigError } from "../config/validate";
import { renderStack, writeRendered } from "../offline/render";

const USAGE = "usage: npm run render -- (--stack NAME | --config FILE) --out DIR [--eip REGION=IP ...] [--reveal-secrets]";

export interface RenderArgs {
    stack: string;
    configFile: string;
    out: string;
    elasticIps: Record<string, string>;
    revealSecrets: boolean;
}

export function parseArgs(argv: readonly string[]): RenderArgs {
    let stack: string | undefined;
    let configFile: string | undefined;
    let out: string | undefined;
    const elasticIps: Record<string, string> = {};
    let revealSecrets = false;
    for (let i = 0; i < argv.length; i++) {
        const value = () => {
            const v = argv[++i];
            if (v === undefined || v.startsWith("--")) {
                throw new UsageError(`${argv[i - 1]} needs a value`);
            }
            return v;
        };
        switch (argv[i]) {
            case "--stack":
                stack = value();
                break;
            case "--config":
                configFile = value();
                break;
            case "--out":
                out = value();
                break;
            case "--eip": {
                const [region, ip] = value().split("=");
                if (!region || !ip || parseIp(ip) === undefined) {
                    throw new UsageError(`--eip takes REGION=IPV4, e.g. --eip virginia=203.0.113.10 (got "${argv[i]}")`);
                }
                elasticIps[region] = ip;
                break;
            }
            case "--reveal-secrets":
                revealSecrets = true;
                break;
            default:
                throw new UsageError(`unknown argument "${argv[i]}"`);
        }
    }
    if (!out) {
        throw new UsageError("--out DIR is required");
    }
    if (!stack && !configFile) {
        throw new UsageError("give --stack NAME (reads Pulumi.NAME.yaml) or --config FILE");
    }
    const name = stack ?? configFile!.replace(/^.*Pulumi\.(.+)\.yaml$/, "$1");
    return { stack: name, configFile: configFile ?? stackConfigPath(stack!), out, elasticIps, revealSecrets };
}

class UsageError extends Error {}

async function main(): Promise<number> {
    let args: RenderArgs;
    try {
        args = parseArgs(process.argv.slice(2));
    } catch (e) {
        if (e instanceof UsageError) {
            console.error(`render: ${e.message}\n${USAGE}`);
            return 2;
        }
        throw e;
    }
    try {
        const rendered = await renderStack(readStackConfigFile(args.configFile), {
            stack: args.stack,
            elasticIps: args.elasticIps,
            revealSecrets: args.revealSecrets,
        });
        for (const w of rendered.warnings) {
            console.error(`warning: ${w}`);
        }
        const unknown = Object.keys(args.elasticIps).filter((r) => !rendered.plan.gateways.some((g) => g.region === r));
        if (unknown.length > 0) {
            console.error(
                `render: --eip names unknown region(s) ${unknown.join(", ")}; regions are ${rendered.plan.gateways.map((g) => g.region).join(", ")}`,
            );
            return 2;
        }
        writeRendered(rendered, args.out);
        for (const g of rendered.plan.gateways) {
            console.log(
                `${g.region} (${g.awsRegion}, ${g.role}): Elastic IP ${g.elasticIp}, private IP ${g.privateIp}, tunnels ${g.tunnels.join(", ")}`,
            );
        }
        console.log(`wrote ${rendered.files.length} files to ${args.out} (keys ${rendered.plan.secrets})`);
        return 0;
    } catch (e) {
        if (e instanceof ConfigError) {
            console.error(`render: ${args.configFile}: ${e.message}\nnothing written.`);
            return 1;
        }
        console.error(`render: ${(e as Error).message}`);
        return 1;
    }
}

if (require.main === module) {
    main().then((code) => process.exit(code));
}
