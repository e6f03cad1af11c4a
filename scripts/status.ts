/**
 * npm run status -- --stack NAME [--json]
 *
 * What each tunnel is doing, from the operator's machine with their own AWS credentials (the SDK's
 * default chain), read from CloudWatch and EC2 as the gateways report them: per tunnel end, its state
 * (TunnelUp) and since when, the bytes in and out over the last 5 minutes (TunnelDataIn/Out), and which
 * gateway of the site holds it (in a site with a standby: where EC2 has the site's Elastic IP), and its
 * last tunnel event (CloudWatch Logs: the newest of the tunnel's own and its site's takeovers and
 * handovers, from the site's gateways). The tunnels come from the stack's config (Pulumi.NAME.yaml).
 * `--json` prints the same data.
 * Exit status 0 when printed, 1 when AWS refused or could not be reached, 2 on bad usage or config.
 */
import { parseArgs } from "node:util";
import { GetMetricStatisticsCommand } from "@aws-sdk/client-cloudwatch";
import { GetLogEventsCommand, ResourceNotFoundException } from "@aws-sdk/client-cloudwatch-logs";
import { awsFailureText, type HandoverClients, handoverClients, pairGateway, siteHolder } from "../components/gatewayHandover";
import { readStackConfigFile, stackConfigPath } from "../config/load";
import { type StackSpec, siteGatewayNames } from "../config/types";
import { ConfigError, parseStackConfig } from "../config/validate";
import { eventLogGroupName, eventLogStreamName, METRIC, stackParameterPrefix } from "../gateway/contract";

const USAGE = "usage: npm run status -- --stack NAME [--json]";
/** How far back "since when" looks: a state older than this is shown as "since before" it. */
export const LOOKBACK_MINUTES = 180;
/** The window of the byte counts, and how old the last TunnelUp may be before the end counts as silent. */
export const RECENT_MINUTES = 5;

export interface EndStatus {
    /** The region name of this end, e.g. `virginia`. */
    readonly region: string;
    readonly awsRegion: string;
    /** From its last TunnelUp: "up" (1), "down" (0), or "silent" (none in the last RECENT_MINUTES). */
    readonly state: "up" | "down" | "silent";
    /** Start of the minute since which the state holds (ISO), or undefined when it held all LOOKBACK_MINUTES. */
    readonly since?: string;
    /** The last TunnelUp datapoint's minute (ISO), if any in the lookback. */
    readonly lastReport?: string;
    /** Bytes over the last RECENT_MINUTES. */
    readonly bytesIn: number;
    readonly bytesOut: number;
    /** Which gateway holds the site: the region name, or in a site with a standby where EC2 has its Elastic IP. */
    readonly active: string;
    /** The newest tunnel event of this end (its own, or its site's takeover, step-down or handover), if any. */
    readonly lastEvent?: LastEvent;
}

/** A tunnel event as the status shows it (the fields of gateway/hubspoke-events.sh's events it needs). */
export interface LastEvent {
    readonly time: string;
    readonly gateway: string;
    readonly event: string;
    readonly detail: string;
}

/** Events read per gateway stream: the newest this many (a flapping tunnel sends at most a dozen a minute). */
const EVENTS_READ = 200;

export interface TunnelStatus {
    readonly tunnel: string;
    readonly ends: readonly [EndStatus, EndStatus];
}

export interface StackStatus {
    readonly stack: string;
    /** When it was read (ISO). */
    readonly at: string;
    readonly tunnels: readonly TunnelStatus[];
}

type Point = { at: number; value: number };

/**
 * The state and since when, from TunnelUp's per-minute minimums (oldest first): the last value, and
 * the start of the run of equal values it ends. Pure.
 */
export function stateOf(points: readonly Point[], now: number): Pick<EndStatus, "state" | "since" | "lastReport"> {
    const last = points[points.length - 1];
    if (!last) return { state: "silent" };
    const lastReport = new Date(last.at).toISOString();
    if (now - last.at > (RECENT_MINUTES + 1) * 60_000) return { state: "silent", lastReport };
    let i = points.length - 1;
    while (i > 0 && points[i - 1].value >= 1 === last.value >= 1) i--;
    return { state: last.value >= 1 ? "up" : "down", since: i > 0 ? new Date(points[i].at).toISOString() : undefined, lastReport };
}

async function statistics(
    c: HandoverClients,
    metric: string,
    dimensions: Record<string, string>,
    minutes: number,
    period: number,
    stat: "Minimum" | "Sum",
) {
    const now = Date.now();
    const answer = await c.cloudwatch.send(
        new GetMetricStatisticsCommand({
            Namespace: METRIC.namespace,
            MetricName: metric,
            Dimensions: Object.entries(dimensions).map(([Name, Value]) => ({ Name, Value })),
            StartTime: new Date(now - minutes * 60_000),
            EndTime: new Date(now),
            Period: period,
            Statistics: [stat],
        }),
    );
    return (answer.Datapoints ?? [])
        .filter((p) => p.Timestamp && p[stat] !== undefined)
        .map((p) => ({ at: p.Timestamp!.getTime(), value: p[stat]! }))
        .sort((a, b) => a.at - b.at);
}

/**
 * The newest event of `tunnel`, or of its site (no tunnel), among `events` (JSON messages of the
 * gateways' streams, any order). Pure.
 */
export function lastEventOf(messages: readonly string[], tunnel: string): LastEvent | undefined {
    let last: LastEvent | undefined;
    for (const m of messages) {
        let e: { time?: string; gateway?: string; event?: string; tunnel?: string | null; detail?: string };
        try {
            e = JSON.parse(m);
        } catch {
            continue;
        }
        if (!e.time || !e.event || (e.tunnel !== tunnel && e.tunnel !== null)) continue;
        if (!last || e.time > last.time) last = { time: e.time, gateway: e.gateway ?? "?", event: e.event, detail: e.detail ?? "" };
    }
    return last;
}

/** The newest EVENTS_READ events of each gateway of a site, as messages; a gateway without its log yet has none. */
async function siteEvents(c: HandoverClients, stack: string, gateways: readonly string[]): Promise<string[]> {
    const perGateway = await Promise.all(
        gateways.map(async (g) => {
            try {
                const answer = await c.logs.send(
                    new GetLogEventsCommand({
                        logGroupName: eventLogGroupName(stack, g),
                        logStreamName: eventLogStreamName(g),
                        startFromHead: false,
                        limit: EVENTS_READ,
                    }),
                );
                return (answer.events ?? []).map((e) => e.message ?? "");
            } catch (e) {
                // A stack deployed before its gateways shipped events: nothing to show, not a failure.
                if (e instanceof ResourceNotFoundException) return [];
                throw e;
            }
        }),
    );
    return perGateway.flat();
}

/** Reads every tunnel end's status. `clientsOf` gives the SDK clients of an AWS region. */
export async function readStatus(spec: StackSpec, stack: string, clientsOf: (awsRegion: string) => HandoverClients): Promise<StackStatus> {
    const now = Date.now();
    const holders = new Map<string, Promise<string>>();
    const holderOf = (regionName: string) => {
        const r = spec.regions.find((x) => x.name === regionName)!;
        if (!holders.has(r.name)) {
            holders.set(
                r.name,
                r.standby
                    ? siteHolder(clientsOf(r.awsRegion), pairGateway(stack, stackParameterPrefix(stack), r, r.name)).then((h) => h.holder)
                    : Promise.resolve(r.name),
            );
        }
        return holders.get(r.name)!;
    };
    const events = new Map<string, Promise<string[]>>();
    const eventsOf = (regionName: string) => {
        const r = spec.regions.find((x) => x.name === regionName)!;
        if (!events.has(r.name)) events.set(r.name, siteEvents(clientsOf(r.awsRegion), stack, siteGatewayNames(r)));
        return events.get(r.name)!;
    };
    const endOf = async (tunnel: string, regionName: string): Promise<EndStatus> => {
        const r = spec.regions.find((x) => x.name === regionName)!;
        const c = clientsOf(r.awsRegion);
        const dims = { Stack: stack, Region: r.name, Tunnel: tunnel };
        const [up, bytesIn, bytesOut, active, messages] = await Promise.all([
            statistics(c, METRIC.tunnelUp, dims, LOOKBACK_MINUTES, 60, "Minimum"),
            statistics(c, METRIC.tunnelDataIn, dims, RECENT_MINUTES, RECENT_MINUTES * 60, "Sum"),
            statistics(c, METRIC.tunnelDataOut, dims, RECENT_MINUTES, RECENT_MINUTES * 60, "Sum"),
            holderOf(r.name),
            eventsOf(r.name),
        ]);
        const sum = (ps: readonly Point[]) => ps.reduce((a, p) => a + p.value, 0);
        const lastEvent = lastEventOf(messages, tunnel);
        return {
            region: r.name,
            awsRegion: r.awsRegion,
            ...stateOf(up, now),
            bytesIn: sum(bytesIn),
            bytesOut: sum(bytesOut),
            active,
            ...(lastEvent ? { lastEvent } : {}),
        };
    };
    const tunnels = await Promise.all(
        spec.tunnels.map(async (t) => ({ tunnel: t.name, ends: [await endOf(t.name, t.hub), await endOf(t.name, t.spoke)] as const })),
    );
    return { stack, at: new Date(now).toISOString(), tunnels };
}

/** Bytes as people read them: 950 B, 12.3 KB, 4.5 MB (powers of 1000). */
export function humanBytes(n: number): string {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let i = 0;
    let v = n;
    while (v >= 1000 && i < units.length - 1) {
        v /= 1000;
        i++;
    }
    return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** The status as text, every line at most 80 columns. Pure. */
export function formatStatus(s: StackStatus): string[] {
    const hhmm = (iso?: string) => (iso ? `${iso.slice(11, 16)} UTC` : "");
    const cut = (text: string, width: number) => (text.length > width ? `${text.slice(0, width - 1)}~` : text.padEnd(width));
    const lines = [`stack ${s.stack} at ${s.at.slice(0, 16).replace("T", " ")} UTC: TunnelUp, and bytes over ${RECENT_MINUTES} min`];
    for (const t of s.tunnels) {
        lines.push(cut(t.tunnel, 80).trimEnd());
        for (const e of t.ends) {
            const since =
                e.state === "silent"
                    ? e.lastReport
                        ? `last ${hhmm(e.lastReport)}`
                        : "no report"
                    : e.since
                      ? `since ${hhmm(e.since)}`
                      : `${LOOKBACK_MINUTES / 60} h+`;
            const line =
                `  ${cut(e.region, 10)} ${cut(e.state, 6)} ${cut(since, 15)} ` +
                `in ${cut(humanBytes(e.bytesIn), 8)} out ${cut(humanBytes(e.bytesOut), 8)} on ${cut(e.active, 15)}`;
            lines.push(line.trimEnd());
            if (e.lastEvent) {
                const ev = e.lastEvent;
                lines.push(cut(`    ${hhmm(ev.time)} ${ev.event} (${ev.gateway}): ${ev.detail}`, 80).trimEnd());
            }
        }
    }
    return lines;
}

async function main(): Promise<number> {
    let stack: string;
    let json: boolean;
    let spec: StackSpec;
    try {
        const { values, positionals } = parseArgs({
            args: process.argv.slice(2),
            options: { stack: { type: "string" }, json: { type: "boolean" } },
            allowPositionals: true,
            strict: true,
        });
        if (!values.stack || positionals.length > 0)
            throw new Error(values.stack ? `unexpected "${positionals.join(" ")}"` : "--stack NAME is required");
        stack = values.stack;
        json = values.json ?? false;
        spec = parseStackConfig(readStackConfigFile(stackConfigPath(stack))).spec;
    } catch (e) {
        console.error(`status: ${(e as Error).message}${e instanceof ConfigError ? "" : `\n${USAGE}`}`);
        return 2;
    }
    const clients = new Map<string, ReturnType<typeof handoverClients>>();
    const clientsOf = (awsRegion: string) => {
        if (!clients.has(awsRegion)) clients.set(awsRegion, handoverClients(awsRegion));
        return clients.get(awsRegion)!;
    };
    try {
        const status = await readStatus(spec, stack, clientsOf);
        console.log(json ? JSON.stringify(status, null, 2) : formatStatus(status).join("\n"));
        return 0;
    } catch (e) {
        console.error(`status: ${awsFailureText(e)}`);
        return 1;
    } finally {
        for (const c of clients.values()) c.destroy();
    }
}

if (require.main === module) {
    main().then((code) => process.exit(code));
}
