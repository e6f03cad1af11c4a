/**
 * Planned handovers from the user's machine, with the user's AWS credentials: drain and undrain a
 * gateway of a site with a standby (`npm run site`), and the two resource hooks that make a
 * replacement of a pair rolling (README, Day two; engine facts in docs/lifecycle.md):
 *
 *   - `beforeDelete` (HANDOVER_HOOK): before a pair gateway's instance is deleted (replaced), if it
 *     holds the site, drain it and wait until its partner holds the site; then lift the drain, so the
 *     replacement does not boot drained. If the partner is not ready, it refuses: the update stops, and
 *     the gateway keeps the site.
 *   - `afterCreate` (READY_HOOK): after a pair gateway's new instance is created, wait until it is
 *     ready (it holds the site, or reports StandbyReady 1). The partner `dependsOn` this instance, so the
 *     engine replaces the partner only after this hook has returned.
 *
 * The gateway's side (gateway/hubspoke-failover.sh): its agent mirrors the drain parameter; a drained
 * active signals its standby, which takes the site at once if it is ready.
 */

import * as http from "node:http";
import * as net from "node:net";
import { CloudWatchClient, GetMetricStatisticsCommand } from "@aws-sdk/client-cloudwatch";
import { CloudWatchLogsClient } from "@aws-sdk/client-cloudwatch-logs";
import { DescribeAddressesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { DeleteParameterCommand, GetParameterCommand, PutParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import * as pulumi from "@pulumi/pulumi";
import { DRAINED, drainParameterName, failoverParameterName, gatewayParameterPath, METRIC } from "../gateway/contract";
import type { FailoverLayout } from "../render/failover";

/** The hooks' names: the engine keeps them in each pair instance's state and calls them by name. */
export const HANDOVER_HOOK = "hubspoke-gateway-handover";
export const READY_HOOK = "hubspoke-gateway-ready";
export const HANDOVER_BEFORE_STOP_HOOK = "hubspoke-gateway-handover-before-stop";
export const READY_AFTER_START_HOOK = "hubspoke-gateway-ready-after-start";

/** One gateway of a site with a standby, as the handover needs to know it. */
export interface PairGateway {
    readonly stack: string;
    /** The site (region name), e.g. `virginia`: the metrics' Region dimension. */
    readonly site: string;
    readonly awsRegion: string;
    /** Its name in the site: `virginia` or `virginia-standby`. */
    readonly gateway: string;
    /** Its drain parameter (`drainParameterName`). */
    readonly drainParameter: string;
    /** The site's failover layout parameter: both gateways' interfaces and the site's Elastic IP. */
    readonly layoutParameter: string;
}

/** A gateway of a site with a standby, from the stack's names (the program's and `npm run site`'s one convention). */
export function pairGateway(
    stack: string,
    parameterPrefix: string,
    site: { name: string; awsRegion: string },
    gateway: string,
): PairGateway {
    return {
        stack,
        site: site.name,
        awsRegion: site.awsRegion,
        gateway,
        drainParameter: drainParameterName(gatewayParameterPath(parameterPrefix, gateway)),
        layoutParameter: failoverParameterName(parameterPrefix, site.name),
    };
}

/** The SDK clients, in the gateway's AWS region. */
export interface HandoverClients {
    readonly ec2: EC2Client;
    readonly ssm: SSMClient;
    readonly cloudwatch: CloudWatchClient;
    /** Only `npm run status` reads it (the gateways' tunnel events). */
    readonly logs: CloudWatchLogsClient;
}

/**
 * The SDK clients in `awsRegion`, with the default credential chain; `lab` points them at the lab's
 * endpoint with a key of its own instead.
 */
export function handoverClients(
    awsRegion: string,
    lab?: { endpoint: string; credentials: { accessKeyId: string; secretAccessKey: string }; socketPath?: string },
): HandoverClients & { destroy(): void } {
    // The lab's endpoint may listen in a network namespace: then it is reached through its unix socket.
    const agent = lab?.socketPath ? Object.assign(new http.Agent(), { createConnection: () => net.connect(lab.socketPath!) }) : undefined;
    const config = {
        region: awsRegion,
        ...(lab ? { endpoint: lab.endpoint, credentials: lab.credentials, maxAttempts: 1 } : {}),
        ...(agent ? { requestHandler: { httpAgent: agent } } : {}),
    };
    const clients = {
        ec2: new EC2Client(config),
        ssm: new SSMClient(config),
        cloudwatch: new CloudWatchClient(config),
        logs: new CloudWatchLogsClient(config),
    };
    return {
        ...clients,
        destroy: () => {
            for (const c of Object.values(clients)) c.destroy();
        },
    };
}

export interface WaitOptions {
    /** How long to wait (ms). */
    readonly timeoutMs?: number;
    /** Between checks (ms). */
    readonly pollMs?: number;
    readonly log?: (message: string) => void;
}

/** Which gateway of the site holds its Elastic IP: a gateway name, "none", or another interface's id. */
export async function siteHolder(c: HandoverClients, g: PairGateway): Promise<{ holder: string; layout: FailoverLayout }> {
    let raw: { Parameter?: { Value?: string } };
    try {
        raw = await c.ssm.send(new GetParameterCommand({ Name: g.layoutParameter }));
    } catch (e) {
        if ((e as { name?: string }).name === "ParameterNotFound") {
            throw new Error(
                `site ${g.site}'s failover layout ${g.layoutParameter} is not in Parameter Store in ${g.awsRegion}: is stack ${g.stack} deployed there, with a standby in ${g.site}?`,
            );
        }
        throw e;
    }
    const layout = JSON.parse(raw.Parameter?.Value ?? "{}") as FailoverLayout;
    const address = (await c.ec2.send(new DescribeAddressesCommand({ AllocationIds: [layout.allocationId] }))).Addresses?.[0];
    if (!address?.NetworkInterfaceId) {
        return { holder: "none", layout };
    }
    const holder = layout.gateways.find(
        (x) => x.networkInterfaceId === address.NetworkInterfaceId && x.siteIp === address.PrivateIpAddress,
    );
    return { holder: holder?.name ?? `${address.NetworkInterfaceId}/${address.PrivateIpAddress}`, layout };
}

/**
 * The site's latest StandbyReady datapoint (its maximum over a minute) since `since`, or undefined.
 * Whichever gateway of the site is the standby reports it once a minute.
 */
export async function latestStandbyReady(
    c: HandoverClients,
    g: PairGateway,
    since: Date,
): Promise<{ at: Date; value: number } | undefined> {
    const now = new Date();
    const answer = await c.cloudwatch.send(
        new GetMetricStatisticsCommand({
            Namespace: METRIC.namespace,
            MetricName: METRIC.standbyReady,
            Dimensions: [
                { Name: "Stack", Value: g.stack },
                { Name: "Region", Value: g.site },
            ],
            StartTime: since,
            EndTime: now,
            Period: 60,
            Statistics: ["Maximum"],
        }),
    );
    const points = (answer.Datapoints ?? [])
        .filter((p) => p.Timestamp && p.Timestamp.getTime() >= since.getTime() && p.Maximum !== undefined)
        .sort((a, b) => a.Timestamp!.getTime() - b.Timestamp!.getTime());
    const last = points[points.length - 1];
    return last ? { at: last.Timestamp!, value: last.Maximum! } : undefined;
}

export type DrainOutcome =
    | { readonly kind: "handed-over"; readonly to: string; readonly seconds: number }
    | { readonly kind: "not-holding"; readonly holder: string };

/**
 * Drains `g`: writes its drain parameter, and, if it holds the site, waits until its partner does.
 * Throws, saying why and what to do, when the partner reported not ready in the last 3 minutes (before
 * anything is written) or did not take the site in time. The parameter stays (a drained gateway never
 * takes the site) unless `liftAfter`, for a replacement: then it is deleted in every case.
 */
export async function drain(
    c: HandoverClients,
    g: PairGateway,
    options: WaitOptions & { liftAfter?: boolean } = {},
): Promise<DrainOutcome> {
    const { timeoutMs = 180_000, pollMs = 2000, log = () => {}, liftAfter = false } = options;
    const { holder, layout } = await siteHolder(c, g);
    const partner = layout.gateways.find((x) => x.name !== g.gateway)?.name ?? "its partner";
    if (holder === g.gateway) {
        const ready = await latestStandbyReady(c, g, new Date(Date.now() - 180_000));
        if (ready && ready.value < 1) {
            throw new Error(
                `gateway ${g.gateway} keeps site ${g.site}: its partner ${partner} reported StandbyReady 0 at ${ready.at.toISOString()}, ` +
                    `so it would not take the site. Its failover log says why (journalctl -u hubspoke-failover on ${partner}); fix that, then try again.`,
            );
        }
    }
    await c.ssm.send(
        new PutParameterCommand({
            Name: g.drainParameter,
            Value: DRAINED,
            Type: "String",
            Overwrite: true,
            Description: `hubspoke-vpn: gateway ${g.gateway} is drained (npm run site -- undrain ${g.gateway} lifts it)`,
        }),
    );
    try {
        if (holder !== g.gateway) {
            log(`${g.gateway} is drained; the site is on ${holder}`);
            return { kind: "not-holding", holder };
        }
        log(`${g.gateway} is drained: waiting until ${partner} holds site ${g.site} (its agent reads the drain within a minute)`);
        const started = Date.now();
        for (;;) {
            const now = await retrying(() => siteHolder(c, g).then((x) => x.holder), log);
            if (now !== undefined && now !== g.gateway && now !== "none") {
                return { kind: "handed-over", to: now, seconds: Math.round((Date.now() - started) / 100) / 10 };
            }
            if (Date.now() - started > timeoutMs) {
                const ready = await retrying(() => latestStandbyReady(c, g, new Date(started - 180_000)), log);
                throw new Error(
                    `gateway ${g.gateway} keeps site ${g.site}: ${partner} did not take it within ${timeoutMs / 1000} s ` +
                        `(its last StandbyReady: ${ready ? `${ready.value} at ${ready.at.toISOString()}` : "none in the last 3 minutes"}). ` +
                        "The failover logs of both gateways say why (journalctl -u hubspoke-failover); fix that, then try again." +
                        (liftAfter
                            ? ""
                            : ` ${g.gateway} stays drained: it hands the site over as soon as ${partner} is ready (npm run site -- --stack ${g.stack} undrain ${g.gateway} cancels).`),
                );
            }
            await sleep(pollMs);
        }
    } finally {
        if (liftAfter) await undrain(c, g);
    }
}

/** Lifts the drain: the gateway becomes an ordinary standby within a minute (it does not take the site back). */
export async function undrain(c: HandoverClients, g: PairGateway): Promise<boolean> {
    try {
        await c.ssm.send(new DeleteParameterCommand({ Name: g.drainParameter }));
        return true;
    } catch (e) {
        if ((e as { name?: string }).name === "ParameterNotFound") return false;
        throw e;
    }
}

/**
 * Waits until `g` is ready, as judged since `since`: it holds the site, or the site reported
 * StandbyReady 1 in a minute that starts at `since` or later (its partner holds the site, so this one
 * is the standby that reports). Returns how; throws, saying what to do, after the timeout.
 */
export async function waitReady(c: HandoverClients, g: PairGateway, since: Date, options: WaitOptions = {}): Promise<string> {
    const { timeoutMs = 20 * 60_000, pollMs = 15_000, log = () => {} } = options;
    const started = Date.now();
    let last: { at: Date; value: number } | undefined;
    log(`waiting until gateway ${g.gateway} is ready (it holds site ${g.site}, or reports StandbyReady 1)`);
    let holder: string | undefined;
    for (;;) {
        // A new stack's layout may not be there yet, and AWS may throttle: only the timeout ends the wait.
        holder = (await retrying(() => siteHolder(c, g).then((x) => x.holder), log)) ?? holder;
        if (holder === g.gateway) return `${g.gateway} holds site ${g.site}`;
        last = (await retrying(() => latestStandbyReady(c, g, since), log)) ?? last;
        if (last?.value === 1 && holder !== undefined && holder !== "none") {
            return `${g.gateway} reported StandbyReady 1 at ${last.at.toISOString()}; ${holder} holds the site`;
        }
        if (Date.now() - started > timeoutMs) {
            throw new Error(
                `gateway ${g.gateway}'s new instance was not ready within ${Math.round(timeoutMs / 60_000)} min ` +
                    `(site ${g.site} on ${holder ?? "unknown: AWS did not answer"}; StandbyReady since it was created: ${last ? `${last.value} at ${last.at.toISOString()}` : "none"}). ` +
                    "Its partner was not replaced. Look at its first boot (the <gateway>-bootstrap alarm, " +
                    "journalctl -u hubspoke-bootstrap -u hubspoke-failover), fix it, then run `pulumi up` again.",
            );
        }
        await sleep(pollMs);
    }
}

/** What an operator's command says when AWS failed it: no credentials as such, else the SDK's error name and message. */
export function awsFailureText(e: unknown, awsRegion?: string): string {
    const err = e as Error & { name?: string };
    if (err.name === "CredentialsProviderError") {
        return `no AWS credentials${awsRegion ? ` for ${awsRegion}` : ""} (${err.message}); set AWS_PROFILE or run aws sso login`;
    }
    return `${err.name && err.name !== "Error" ? `${err.name}: ` : ""}${err.message}`;
}

/** One try of `f`; an error is logged and answered with undefined, for a polling loop to try again. */
async function retrying<T>(f: () => Promise<T>, log: (m: string) => void): Promise<T | undefined> {
    try {
        return await f();
    } catch (e) {
        log(`(will try again) ${(e as Error).message}`);
        return undefined;
    }
}

function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
}

/**
 * The named hooks of every pair gateway's instance. They find the gateway by the instance's resource
 * name in `gateways` (filled by the program for the current config). An instance not in it (a single
 * gateway, or a site removed from the config) is left to the engine as it is: there is no partner to
 * hand over to. Registered on every run, whatever the config, since the engine calls a name kept in
 * state. They run in the program's process, with the credentials of the process that runs `pulumi`,
 * never in a preview.
 *
 *   - `handover` (beforeDelete): hand the site over before the instance goes. Not when its partner's
 *     instance went earlier in the same update (`pulumi destroy`, both gateways going): there is no one
 *     to hand over to.
 *   - `ready` (afterCreate): wait until the new instance is ready.
 *   - `handoverBeforeStop` / `readyAfterStart` (beforeUpdate / afterUpdate): the same around an update
 *     that stops and starts the instance (another instance type of the same architecture); nothing for
 *     an update that does not (tags).
 */
export function gatewayHooks(
    gateways: ReadonlyMap<string, PairGateway>,
): Record<"handover" | "ready" | "handoverBeforeStop" | "readyAfterStart", pulumi.ResourceHook> {
    const log = (m: string) => pulumi.log.info(m);
    const warn = (m: string) => pulumi.log.warn(m);
    // The gateways whose instance this update has started to delete (this process runs the whole update).
    const going = new Set<string>();
    const stopsAndStarts = (args: pulumi.ResourceHookArgs) => args.oldInputs?.instanceType !== args.newInputs?.instanceType;
    const handOver = async (g: PairGateway) => {
        const c = handoverClients(g.awsRegion);
        try {
            const outcome = await drain(c, g, { liftAfter: true, log });
            log(
                outcome.kind === "handed-over"
                    ? `${g.gateway} handed site ${g.site} to ${outcome.to} in ${outcome.seconds} s`
                    : `${g.gateway} did not hold the site (${outcome.holder} does)`,
            );
        } finally {
            c.destroy();
        }
    };
    const awaitReady = async (g: PairGateway) => {
        const c = handoverClients(g.awsRegion);
        try {
            log(await waitReady(c, g, new Date(), { log }));
        } finally {
            c.destroy();
        }
    };
    return {
        handover: new pulumi.ResourceHook(HANDOVER_HOOK, async (args) => {
            const g = gateways.get(args.name);
            if (!g) return;
            going.add(g.gateway);
            const partner = g.gateway.endsWith("-standby") ? g.site : `${g.site}-standby`;
            if (going.has(partner)) {
                warn(`${g.gateway}: its partner ${partner} went earlier in this update: no handover (site ${g.site} has no gateway now)`);
                return;
            }
            await handOver(g);
        }),
        ready: new pulumi.ResourceHook(READY_HOOK, async (args) => {
            const g = gateways.get(args.name);
            if (g) await awaitReady(g);
        }),
        handoverBeforeStop: new pulumi.ResourceHook(HANDOVER_BEFORE_STOP_HOOK, async (args) => {
            const g = gateways.get(args.name);
            if (g && stopsAndStarts(args)) await handOver(g);
        }),
        readyAfterStart: new pulumi.ResourceHook(READY_AFTER_START_HOOK, async (args) => {
            const g = gateways.get(args.name);
            if (g && stopsAndStarts(args)) await awaitReady(g);
        }),
    };
}
