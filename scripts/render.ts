/**
 * npm run render -- --stack prod --out DIR [--config FILE] [--eip REGION=IP ...] [--reveal-secrets]
 *
 * Evaluates the program offline (Pulumi's mock runtime: no AWS, no Pulumi CLI) and writes a snapshot
 * of what each gateway will run: DIR/<region>/user-data and the files in it, DIR/<region>/etc/ipsec.d/*
 * (what its agent writes from the desired state), DIR/ssm/ (Parameter Store) and DIR/plan.json.
 * Exit status 0 when written, 1 on bad config (nothing written), 2 on bad usage.
 */

import { parseArgs as parseArgv } from "node:util";
import { parseIp } from "../config/cidr";
import { readStackConfigFile, stackConfigPath } from "../config/load";
import { ConfigError } from "../config/validate";
import { snapshotStack, writeSnapshot } from "../harness/snapshot";

const USAGE = "usage: npm run render -- (--stack NAME | --config FILE) --out DIR [--eip REGION=IP ...] [--reveal-secrets]";

export interface RenderArgs {
    stack: string;
    configFile: string;
    out: string;
    elasticIps: Record<string, string>;
    revealSecrets: boolean;
}

export class UsageError extends Error {}

/** The command line of `npm run render`, checked. Throws `UsageError`. */
export function parseArgs(argv: readonly string[]): RenderArgs {
    let values: { stack?: string; config?: string; out?: string; eip?: string[]; "reveal-secrets"?: boolean };
    try {
        ({ values } = parseArgv({
            args: [...argv],
            options: {
                stack: { type: "string" },
                config: { type: "string" },
                out: { type: "string" },
                eip: { type: "string", multiple: true },
                "reveal-secrets": { type: "boolean" },
            },
            strict: true,
            allowPositionals: false,
        }));
    } catch (e) {
        throw new UsageError((e as Error).message);
    }
    const elasticIps: Record<string, string> = {};
    for (const pair of values.eip ?? []) {
        const [region, ip] = pair.split("=");
        if (!region || !ip || parseIp(ip) === undefined) {
            throw new UsageError(`--eip takes REGION=IPV4, e.g. --eip virginia=203.0.113.10 (got "${pair}")`);
        }
        elasticIps[region] = ip;
    }
    if (!values.out) {
        throw new UsageError("--out DIR is required");
    }
    if (!values.stack && !values.config) {
        throw new UsageError("give --stack NAME (reads Pulumi.NAME.yaml) or --config FILE");
    }
    const stack = values.stack ?? values.config!.replace(/^.*Pulumi\.(.+)\.yaml$/, "$1");
    return {
        stack,
        configFile: values.config ?? stackConfigPath(values.stack!),
        out: values.out,
        elasticIps,
        revealSecrets: values["reveal-secrets"] ?? false,
    };
}

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
        const snapshot = await snapshotStack(readStackConfigFile(args.configFile), {
            stack: args.stack,
            elasticIps: args.elasticIps,
            revealSecrets: args.revealSecrets,
        });
        for (const w of snapshot.warnings) {
            console.error(`warning: ${w}`);
        }
        const unknown = Object.keys(args.elasticIps).filter((r) => !snapshot.plan.gateways.some((g) => g.region === r));
        if (unknown.length > 0) {
            console.error(
                `render: --eip names unknown region(s) ${unknown.join(", ")}; regions are ${snapshot.plan.gateways.map((g) => g.region).join(", ")}`,
            );
            return 2;
        }
        writeSnapshot(snapshot, args.out);
        for (const g of snapshot.plan.gateways) {
            console.log(
                `${g.region} (${g.awsRegion}, ${g.role}): Elastic IP ${g.elasticIp}, private IP ${g.privateIp}, tunnels ${g.tunnels.join(", ")}, user data ${g.userDataBytes} bytes`,
            );
        }
        console.log(`wrote ${snapshot.files.length} files to ${args.out} (keys ${snapshot.plan.secrets})`);
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
