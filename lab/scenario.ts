/**
 * The lab's end-to-end scenario, run by the e2e tests (on this machine's kernel, and in the VM):
 * every tunnel up (and how long it took), hub<->spoke traffic, a full-size TCP transfer through
 * the 1500-byte internet with the gateways' MSS clamp and its black hole without, no spoke<->spoke
 * SA or traffic, recovery after a gateway's pluto is killed and restarted, and a wrong key rejected;
 * each failure's tunnel event in the lab's CloudWatch Logs, at both ends (hubspoke-events).
 * Returns a report; the tests assert on it. Each tunnel's report says which layer was proven.
 */

import * as crypto from "node:crypto";
import { EVENTS, METRIC, type TunnelEvent } from "../gateway/contract";
import type { SymbolicCall } from "./iam";
import { LAB_REAUTH_DELAY_SECONDS, Lab, type Layer, type TransferResult } from "./lab";
import { findLivenessFailure } from "./pluto-log";
import type { LabRegion } from "./topology";

/** The transfer that shows the MSS clamp at work: 5 MB from a spoke's workload host to the hub's. */
export const MTU_TRANSFER = {
    bytes: 5 * 1024 * 1024,
    /** Ample for the emulated VM with the clamp (it takes seconds). */
    withClampDeadlineSeconds: 90,
    /** Without the clamp: no progress in this long is the black hole. */
    withoutClampDeadlineSeconds: 15,
} as const;

/** Seconds since `start` (a process.hrtime.bigint() reading), to a tenth. */
function secondsSince(start: bigint): number {
    return roundSeconds(Number(process.hrtime.bigint() - start) / 1e6);
}

/** Milliseconds as seconds, to a tenth. */
function roundSeconds(ms: number): number {
    return Math.round(ms / 100) / 10;
}

/** A fresh key of the generated kind (letters and digits only here), never printed. */
function newKey(): string {
    return crypto
        .randomBytes(36)
        .toString("base64")
        .replace(/[^A-Za-z0-9]/g, "")
        .slice(0, 40)
        .padEnd(40, "k");
}

export interface TunnelReport {
    /** Seconds from every pluto running (conns loaded) until established at both ends at the target layer. */
    upSeconds?: number;
    ike: boolean;
    child: boolean;
    /** Both ends' IKE SAs run on UDP 4500 (NAT-T through the Elastic IP NAT). */
    natTraversal: boolean;
    /** Each end's log line saying whom it authenticated, and how (hub's first). */
    authentication: string[];
    /** Pings between the hub's and the spoke's workload hosts, both ways. */
    pingHubToSpoke?: boolean;
    pingSpokeToHub?: boolean;
    /** Bytes the hub's Child SA counted after the pings. */
    espBytes?: number;
    /** The highest layer this run proved for the tunnel. */
    proven: Layer;
}

export interface ScenarioReport {
    kernelHasEsp: boolean;
    /** What "established" meant in this run: IKE only on a kernel without ESP. */
    target: "IKE" | "Child SA";
    tunnels: Record<string, TunnelReport>;
    spokeToSpoke: {
        /** Conns any spoke's pluto knows besides its own tunnel: must be empty. */
        foreignConnsOnSpokes: string[];
        /** Spoke log lines that mention another spoke's Elastic IP: must be empty. */
        attemptsInLogs: string[];
        /** Pings between spoke workload hosts (only meaningful with ESP); all must fail. */
        pings: Record<string, boolean>;
    };
    /**
     * VPC links at 9001, the internet at 1500, ICMP "fragmentation needed" dropped before the gateway
     * (lab/topology.ts): 5 MB over TCP from a spoke's workload host to the hub's, with the gateways'
     * rendered MSS clamp, then without it (a fresh connection, path MTUs forgotten). Only with ESP.
     */
    mtu?: {
        /** The MSS the gateways' kernels clamped to (read from their live nftables rules; undefined if they differ or have none). */
        clamp?: number;
        from: string;
        to: string;
        /** The tunnel had settled (`Lab.waitSettled`) before the transfers. */
        settled: boolean;
        withClamp: TransferResult;
        /** What the ends reported for the transfer with the clamp, and the ESP packets on the wire. */
        reported: Counted;
        withoutClamp: TransferResult;
        /** The clamp was back on both gateways afterwards. */
        clampRestored: boolean;
    };
    restart?: {
        region: string;
        /** From the restart until every tunnel of the hub is established at both ends again. */
        seconds?: number;
        /**
         * With ESP: from the restart until each tunnel is settled (`Lab.waitSettled`): the spokes' IKE SAs
         * of the killed pluto gone through their liveness failure, and the restart that follows over.
         */
        settledSeconds?: number;
        tunnels: string[];
    };
    /**
     * A spoke's gateway replaced in a site without a standby (`Lab.replaceGateway`): from the new
     * instance's software installed (what its bootstrap leaves) until its tunnel is up again, and with
     * ESP until a ping from the spoke's host reaches the hub's host. What comes before (the old
     * instance's shutdown, the new one's boot and package installation) the lab cannot measure.
     */
    replacement?: {
        region: string;
        tunnel: string;
        /** Until pluto ran with the conns of the agent's boot run. */
        plutoSeconds: number;
        /** Until the tunnel was established at both ends (the layer this kernel proves). */
        upSeconds?: number;
        /** With ESP: until the spoke's host reached the hub's host again. */
        trafficSeconds?: number;
    };
    /** A spoke's host dies (cut off, pluto killed) and comes back: how long until the hub notices, and until the tunnel returns. */
    deadPeer?: {
        region: string;
        tunnel: string;
        /**
         * From the peer's death to the hub's pluto logging its liveness failure (`detectedLine`, by
         * pluto's clock); undefined when no such line was logged.
         */
        detectedSeconds?: number;
        /** The hub's log line that says so: pluto's "liveness action - ..." for the tunnel, nothing else. */
        detectedLine?: string;
        /** When no liveness failure was found: the hub's lines about the tunnel from the death on (at most 30), to see why. */
        hubLines?: string[];
        /** From the peer's pluto running again to the tunnel established at both ends. */
        returnedSeconds?: number;
        /** Why this run could not prove it. */
        skipped?: string;
        /** hubspoke-health --dry-run on the hub: before, after detection, after return. */
        health: { before?: number; whileDead?: number; after?: number };
        healthLines: string[];
    };
    /** A key rotated in the Parameter Store, picked up by both ends' refresh run. */
    rotation?: {
        tunnel: string;
        /** From the new key in the Parameter Store to the new IKE SA at both ends (the lab's re-authentication delay included). */
        seconds?: number;
        bothEndsRewritten: boolean;
        /** After both agents reread the new key, the running IKE SA was still the same, until the delay passed. */
        saKeptUntilReauth: boolean;
        reauthenticated: boolean;
    };
    wrongKey?: {
        region: string;
        tunnel: string;
        establishedWithin: number | undefined;
        waitedSeconds: number;
        reason?: string;
        otherTunnelsUp: boolean;
    };
    /**
     * With ESP: TunnelDataIn/Out across a rekey of the Child SA and a restart of the hub's pluto: per
     * case, 1 MiB sent right after it, and what each end's next report counted (a rekeyed or restarted
     * SA starts its counters at 0: never negative, never twice).
     */
    counters?: CounterCheck[];
    /** Tunnel events the gateways put to the lab's CloudWatch Logs, per failure the scenario caused. */
    events: Partial<Record<"wrongKey" | "proposalMismatch" | "deadPeer", EventCheck>>;
    logs: Record<string, string>;
    /** What the lab's AWS endpoint decided on the gateways' calls, and which calls they made (named relative to each caller). */
    iam?: { allowed: number; denied: number; calls: SymbolicCall[] };
}

/** One case of `ScenarioReport.counters`. */
export interface CounterCheck {
    readonly after: "rekey" | "restart";
    readonly tunnel: string;
    /** The Child SA was a new one (a serial the end did not have before). */
    readonly newSa: boolean;
    /** Bytes of payload sent through the tunnel after it, before the report. */
    readonly payload: number;
    readonly transferred: boolean;
    /** What the reports right after counted, and the ESP packets on the wire meanwhile. */
    readonly counted: Counted;
}

/**
 * What the two ends' hubspoke-health reported for a span (a report right before it, another right
 * after: the second one's bytes are the span's): the sender's TunnelDataOut and the receiver's
 * TunnelDataIn. With the ground truth over the same span: the ESP packets the sender's gateway sent
 * to the receiver's and those the receiver's got (Lab.espPackets), retransmissions included.
 */
export interface Counted {
    readonly senderOut?: number;
    readonly receiverIn?: number;
    readonly espOut: { readonly packets: number; readonly bytes: number };
    readonly espIn: { readonly packets: number; readonly bytes: number };
}

/** Counts what crosses `tunnel` from `from` to `to` while `span` runs (see Counted). */
async function counting<T>(lab: Lab, tunnel: string, from: string, to: string, span: () => Promise<T>): Promise<[T, Counted]> {
    const esp = () => [lab.espPackets(from, to, "out"), lab.espPackets(to, from, "in")];
    const [out0, in0] = esp();
    for (const r of [from, to]) lab.sendHealth(r);
    const result = await span();
    for (const r of [from, to]) lab.sendHealth(r);
    const [out1, in1] = esp();
    return [
        result,
        {
            senderOut: lab.lastMetric(from, tunnel, METRIC.tunnelDataOut),
            receiverIn: lab.lastMetric(to, tunnel, METRIC.tunnelDataIn),
            espOut: { packets: out1.packets - out0.packets, bytes: out1.bytes - out0.bytes },
            espIn: { packets: in1.packets - in0.packets, bytes: in1.bytes - in0.bytes },
        },
    ];
}

/** The payload of each counter check: large enough that a double count could not hide in the overhead. */
export const COUNTER_PAYLOAD = 1024 * 1024;

/** A failure's event as each end put it to CloudWatch Logs. */
export interface EventCheck {
    readonly tunnel: string;
    readonly event: TunnelEvent;
    /** Per end (region name): seconds from the failure to CloudWatch Logs taking the event; undefined: none within the wait. */
    readonly seconds: Record<string, number | undefined>;
    /** Per end: the event's detail (pluto's line). */
    readonly detail: Record<string, string | undefined>;
}

/** How long a failure's event may take to reach CloudWatch Logs (issue 19: within 60 s). */
export const EVENT_WITHIN_SECONDS = 60;

export interface ScenarioOptions {
    /** Also kill and restart the hub's pluto, kill a spoke, rotate a key, and try a wrong key (steps 4 to 7). */
    readonly full?: boolean;
    /** Seconds to wait for tunnels to come up (and back). */
    readonly timeoutSeconds?: number;
    /** Runs after the checks, before teardown (the CLI's --hold waits here). */
    readonly beforeTeardown?: () => Promise<void>;
    readonly log?: (line: string) => void;
}

export async function runScenario(lab: Lab, options: ScenarioOptions = {}): Promise<ScenarioReport> {
    const log = options.log ?? (() => undefined);
    const timeout = options.timeoutSeconds ?? 60;
    const { topology } = lab;
    const hub = topology.regions.find((r) => r.role === "hub")!;
    const spokes = topology.regions.filter((r) => r.role === "spoke");

    await lab.up();
    const kernelHasEsp = lab.kernelHasEsp();
    // Each gateway's hubspoke-events loop, as on a gateway. Not in the VM, where its processes every 10 s
    // per gateway would compete with pluto's liveness checks under emulation: there the steps that wait
    // for an event run it at the same cadence while they wait (waitForEvent).
    if (!kernelHasEsp) lab.startEventShippers();
    const target = kernelHasEsp ? "Child SA" : "IKE";
    log(`kernel ${kernelHasEsp ? "installs ESP SAs: proving Child SA and traffic" : "has no ESP: proving IKE only"}`);

    const report: ScenarioReport = {
        kernelHasEsp,
        target,
        tunnels: {},
        spokeToSpoke: { foreignConnsOnSpokes: [], attemptsInLogs: [], pings: {} },
        events: {},
        logs: {},
    };
    try {
        const ctx: Step = { lab, report, log, timeout, target, kernelHasEsp, hub, spokes, topology };
        await bringUp(ctx);
        await proveTraffic(ctx);
        await proveMtu(ctx);
        await proveSpokesApart(ctx);
        if (!options.full) {
            await options.beforeTeardown?.();
            return report;
        }

        await countAcross(ctx, "rekey", () => rekeyHubChild(ctx));
        await countAcross(ctx, "restart", () => restartHub(ctx));
        await deadPeer(ctx);
        // The key's and the proposals' cases are decided in IKE_AUTH, before any Child SA: this machine's
        // kernel proves them; the VM, whose every step costs many times more, skips them.
        if (!kernelHasEsp) {
            await rotateKey(ctx);
            await proposalMismatch(ctx);
            await wrongKey(ctx);
        }
        // Last: the hub may keep the old instance's IKE SA until its liveness check gives up on it.
        await replaceWithoutStandby(ctx);
        await options.beforeTeardown?.();
    } finally {
        for (const r of topology.regions) {
            report.logs[r.region] = lab.logTail(r.region, 40);
        }
        report.iam = lab.iam.report();
        lab.down();
    }
    return report;
}

/** What every step of the scenario works with. */
interface Step {
    readonly lab: Lab;
    readonly report: ScenarioReport;
    readonly log: (line: string) => void;
    readonly timeout: number;
    readonly target: "IKE" | "Child SA";
    readonly kernelHasEsp: boolean;
    readonly hub: LabRegion;
    readonly spokes: readonly LabRegion[];
    readonly topology: Lab["topology"];
}

/** Brings every gateway up and times each tunnel, from the moment every pluto runs with its conns loaded. */
async function bringUp(ctx: Step): Promise<void> {
    const { lab, report, log, timeout, target, topology } = ctx;
    // 1. Bring every gateway up and time each tunnel, from the moment every pluto runs with its conns loaded.
    await Promise.all(topology.regions.map((r) => lab.startPluto(r.region)));
    const started = process.hrtime.bigint();
    await Promise.all(
        topology.tunnels.map(async (t) => {
            const waited = await lab.waitFor(() => lab.established(t.name, target), timeout);
            const sinceStart = secondsSince(started);
            report.tunnels[t.name] = {
                upSeconds: waited === undefined ? undefined : sinceStart,
                // What was observed at both ends when the wait ended. Read again a moment later, the
                // answer can flicker while crossed initiations (both ends start the tunnel) settle.
                ike: waited !== undefined || lab.established(t.name, "IKE"),
                child: waited !== undefined && target === "Child SA",
                natTraversal: [t.hub, t.spoke].every((r) => lab.states(r)[t.name]?.natTraversal),
                authentication: [t.hub, t.spoke].map(
                    (r) =>
                        lab
                            .logOf(r)
                            .split("\n")
                            .find((l) => l.includes(`"${t.name}"`) && /established IKE SA; authenticated peer/.test(l))
                            ?.replace(/^.*?: "/, '"') ?? "",
                ),
                proven: "none",
            };
            log(
                `${t.name}: ${waited === undefined ? `NOT established within ${timeout} s` : `${target} established after ${report.tunnels[t.name].upSeconds} s`}`,
            );
        }),
    );
    // Each gateway's health timer, once: its TunnelUp reaches the lab's CloudWatch under its own role
    // (on this machine's kernel only: in the VM each run of the CLI stand-in costs seconds of Python start).
    if (!ctx.kernelHasEsp) {
        for (const r of topology.regions) {
            lab.sendHealth(r.region);
        }
    }
}

/** Traffic between workload hosts, through the tunnels; the layer each tunnel proved. */
async function proveTraffic(ctx: Step): Promise<void> {
    const { lab, report, log, kernelHasEsp, topology } = ctx;
    // 2. Traffic between workload hosts, through the tunnels.
    for (const t of topology.tunnels) {
        const tr = report.tunnels[t.name];
        if (kernelHasEsp) {
            // Right after establishment crossed initiations may still be settling: pings that passed over a
            // Child SA deleted meanwhile leave the surviving one's counters at 0. Pinging again then counts
            // on the surviving one; a tunnel that passes no traffic never gets there.
            for (let attempt = 1; attempt <= 3 && !(tr.espBytes ?? 0); attempt++) {
                tr.pingHubToSpoke = await lab.pingWithin(t.hub, t.spoke, 30);
                tr.pingSpokeToHub = await lab.pingWithin(t.spoke, t.hub, 30);
                const counted = lab.traffic(t.hub)[t.name];
                tr.espBytes = (counted?.inBytes ?? 0) + (counted?.outBytes ?? 0);
            }
        }
        tr.proven =
            tr.child && tr.pingHubToSpoke && tr.pingSpokeToHub && (tr.espBytes ?? 0) > 0
                ? "traffic"
                : tr.child
                  ? "Child SA"
                  : tr.ike
                    ? "IKE"
                    : "none";
        log(
            `${t.name}: proven up to ${tr.proven}${kernelHasEsp ? ` (pings ${tr.pingHubToSpoke ? "pass" : "FAIL"}/${tr.pingSpokeToHub ? "pass" : "FAIL"}, ESP bytes ${tr.espBytes})` : ""}`,
        );
    }
}

/** MTU: full-size TCP segments from a spoke's host to the hub's, through the 1500-byte internet. */
async function proveMtu(ctx: Step): Promise<void> {
    const { lab, report, log, timeout, kernelHasEsp, hub, spokes } = ctx;
    // 2b. MTU: full-size TCP segments from a spoke's host to the hub's, through the 1500-byte internet.
    if (kernelHasEsp) {
        report.mtu = await measureMssClamp(lab, spokes[0].tunnels[0], spokes[0].region, hub.region, log, timeout);
    }
}

/** Spokes never talk to each other: no SA, no attempt, no traffic. */
async function proveSpokesApart(ctx: Step): Promise<void> {
    const { lab, report, log, kernelHasEsp, spokes } = ctx;
    // 3. Spokes never talk to each other: no SA, no attempt, no traffic.
    for (const s of spokes) {
        report.spokeToSpoke.foreignConnsOnSpokes.push(...Object.keys(lab.states(s.region)).filter((c) => !s.tunnels.includes(c)));
        for (const other of spokes.filter((o) => o !== s)) {
            report.spokeToSpoke.attemptsInLogs.push(
                ...lab
                    .logOf(s.region)
                    .split("\n")
                    .filter((l) => l.includes(other.elasticIp)),
            );
            if (kernelHasEsp) {
                report.spokeToSpoke.pings[`${s.region}->${other.region}`] = lab.ping(s.region, other.region, 2);
            }
        }
    }
    log(
        `spoke to spoke: foreign conns ${JSON.stringify(report.spokeToSpoke.foreignConnsOnSpokes)}, pings ${JSON.stringify(report.spokeToSpoke.pings)}`,
    );
}

/** Kills the hub's pluto (it carries every tunnel), restarts it, times the recovery. */
async function restartHub(ctx: Step): Promise<void> {
    const { lab, report, log, timeout, target, kernelHasEsp, hub } = ctx;
    // 4. Kill the hub's pluto (it carries every tunnel), restart it, time the recovery.
    await lab.killPluto(hub.region);
    const restarted = process.hrtime.bigint();
    await lab.startPluto(hub.region);
    const back = await lab.waitFor(() => hub.tunnels.every((t) => lab.established(t, target)), timeout);
    report.restart = {
        region: hub.region,
        seconds: back === undefined ? undefined : secondsSince(restarted),
        tunnels: [...hub.tunnels],
    };
    log(
        `restart of ${hub.region}'s pluto: ${back === undefined ? `tunnels NOT back within ${timeout} s` : `all tunnels back after ${report.restart.seconds} s`}`,
    );
    if (kernelHasEsp && back !== undefined) {
        // The spokes still hold IKE SAs of the killed pluto; their liveness checks fail some seconds
        // later and restart the tunnel once more. Later steps (the dead peer's timing above all)
        // must start from a settled tunnel, not in the middle of that.
        const waitedFrom = Number(process.hrtime.bigint() - restarted) / 1e6;
        const settled = await Promise.all(hub.tunnels.map((t) => lab.waitSettled(t, timeout)));
        report.restart.settledSeconds = settled.every((x) => x !== undefined)
            ? roundSeconds(waitedFrom + Math.max(...(settled as number[])) * 1000)
            : undefined;
        log(
            `restart of ${hub.region}'s pluto: ${report.restart.settledSeconds === undefined ? `tunnels NOT settled within ${timeout} s` : `settled (no stale IKE SA left) after ${report.restart.settledSeconds} s`}`,
        );
    }
}

/** A spoke's gateway replaced, its site without a standby: how long from the new instance's software until its tunnel (and traffic) is back. */
async function replaceWithoutStandby(ctx: Step): Promise<void> {
    const { lab, report, log, timeout, target, kernelHasEsp, hub, spokes } = ctx;
    const spoke = spokes[spokes.length - 1];
    const tunnel = spoke.tunnels[0];
    const started = process.hrtime.bigint();
    await lab.replaceGateway(spoke.region);
    const plutoSeconds = secondsSince(started);
    const up = await lab.waitFor(() => lab.established(tunnel, target), timeout);
    const upSeconds = up === undefined ? undefined : secondsSince(started);
    let trafficSeconds: number | undefined;
    if (kernelHasEsp && up !== undefined) {
        const back = await lab.waitFor(() => lab.ping(spoke.region, hub.region, 1), timeout);
        trafficSeconds = back === undefined ? undefined : secondsSince(started);
    }
    report.replacement = { region: spoke.region, tunnel, plutoSeconds, upSeconds, trafficSeconds };
    log(
        `replacement of ${spoke.region}'s gateway (no standby): pluto with the agent's conns after ${plutoSeconds} s, ${tunnel} ${upSeconds === undefined ? `NOT back within ${timeout} s` : `${target} after ${upSeconds} s`}` +
            (kernelHasEsp ? `, traffic ${trafficSeconds === undefined ? "NOT back" : `back after ${trafficSeconds} s`}` : ""),
    );
}

/** Dead peer: a spoke's host dies; the hub notices and reports it; the tunnel returns. */
async function deadPeer(ctx: Step): Promise<void> {
    const { lab, report, log, kernelHasEsp, hub, spokes } = ctx;
    // 5. Dead peer: a spoke's host dies. The hub must notice (liveness) and report the tunnel down
    // (hubspoke-health); when the spoke comes back, the tunnel must return on its own.
    if (!kernelHasEsp) {
        const spoke = spokes[0];
        const tunnel = spoke.tunnels[0];
        const h = lab.health(hub.region);
        report.deadPeer = {
            region: spoke.region,
            tunnel,
            skipped: "libreswan runs liveness checks on the Child SA, which this kernel cannot install",
            health: { before: h.values[tunnel] },
            healthLines: h.lines,
        };
        log(`dead peer: not provable here (${report.deadPeer.skipped}); hub's TunnelUp is ${h.values[tunnel]} (no Child SA)`);
    } else {
        await measureDeadPeer(ctx);
    }
}

/** With Child SAs: the spoke isolated and its pluto killed; the hub's liveness failure timed from pluto's log; the return. */
async function measureDeadPeer(ctx: Step): Promise<void> {
    const { lab, report, log, timeout, target, hub, spokes } = ctx;
    const spoke = spokes[0];
    const tunnel = spoke.tunnels[0];
    const before = lab.health(hub.region);
    const mark = lab.logOf(hub.region).length;
    const diedAt = Date.now();
    lab.isolate(spoke.region, true);
    await lab.killPluto(spoke.region);
    // The hub's pluto logs its liveness failure ("liveness action - restarting ...") and drops the IKE SA.
    const livenessLine = () => findLivenessFailure(lab.logOf(hub.region).slice(mark), tunnel);
    await lab.waitFor(() => livenessLine() !== undefined && !lab.states(hub.region)[tunnel]?.ike, timeout);
    const detectedLine = livenessLine();
    const detectedAt = detectedLine ? Lab.logTime(detectedLine) : undefined;
    const whileDead = lab.health(hub.region);
    lab.isolate(spoke.region, false);
    const marks = { hub: lab.logOf(hub.region).length, spoke: lab.logOf(spoke.region).length };
    await lab.startPluto(spoke.region);
    const cameBack = process.hrtime.bigint();
    const cameBackAt = Date.now();
    const returned = await lab.waitFor(() => lab.established(tunnel, target), timeout);
    // When both ends logged the new Child SA: pluto's time, not the (slow, in the VM) polling's.
    const establishedAt = [lab.logOf(hub.region).slice(marks.hub), lab.logOf(spoke.region).slice(marks.spoke)].map((text) => {
        const line = text.split("\n").find((l) => l.includes(`"${tunnel}"`) && /established Child SA/.test(l));
        return line ? Lab.logTime(line) : undefined;
    });
    const after = lab.health(hub.region);
    // The dead end says nothing (it is dead): the hub's event is the one on-call reads. Waited for only
    // now, so that the return is timed as before (its event was shipped meanwhile, or is now).
    report.events.deadPeer = await waitForEvent(lab, tunnel, "dead-peer", [hub.region], diedAt);
    log(describeEvent(report.events.deadPeer));
    report.deadPeer = {
        region: spoke.region,
        tunnel,
        // Only pluto's own word counts: no line, no detection (never the polling's time).
        detectedSeconds: detectedAt === undefined ? undefined : roundSeconds(detectedAt - diedAt),
        detectedLine,
        hubLines: detectedLine
            ? undefined
            : lab
                  .logOf(hub.region)
                  .slice(mark)
                  .split("\n")
                  .filter((l) => l.includes(`"${tunnel}"`))
                  .slice(0, 30),
        returnedSeconds:
            returned === undefined
                ? undefined
                : establishedAt.every((t) => t !== undefined)
                  ? roundSeconds(Math.max(...(establishedAt as number[])) - cameBackAt)
                  : secondsSince(cameBack),
        health: { before: before.values[tunnel], whileDead: whileDead.values[tunnel], after: after.values[tunnel] },
        healthLines: [...before.lines, ...whileDead.lines, ...after.lines].filter((l) => l.includes(tunnel)),
    };
    log(
        `dead peer ${spoke.region}: hub noticed after ${report.deadPeer.detectedSeconds ?? "NEVER"} s (${detectedLine ?? "no liveness failure in the hub's log"}); tunnel back ${returned === undefined ? "NEVER" : `${report.deadPeer.returnedSeconds} s`} after the peer returned; ` +
            `TunnelUp on the hub ${report.deadPeer.health.before} -> ${report.deadPeer.health.whileDead} -> ${report.deadPeer.health.after}`,
    );
}

/** The hub rekeys its first spoke's Child SA now, and waits until the new SA has replaced the old one. */
async function rekeyHubChild(ctx: Step): Promise<void> {
    const { lab, timeout, hub, spokes } = ctx;
    const tunnel = spokes[0].tunnels[0];
    const before = lab.childSerials(hub.region, tunnel);
    lab.rekeyChild(hub.region, tunnel);
    await lab.waitFor(() => lab.childSerials(hub.region, tunnel).some((s) => !before.includes(s)), timeout);
    // The old SA is deleted right after its replacement: traffic takes the new one.
    await lab.waitFor(() => lab.childSerials(hub.region, tunnel).length === 1, 10);
}

/**
 * With ESP: each end reports (hubspoke-health), then `change` (a rekey of the Child SA, a restart of
 * the hub's pluto); 1 MiB goes from the spoke's host to the hub's; each end reports again. The second
 * reports must count that transfer once: not less, not twice. Without ESP: only `change`.
 */
/**
 * A transfer's bytes checked after a change. A rekey happens inside the counted span (between the two
 * reports). A pluto restart happens before it: the span starts with the first report after the
 * restart, because while the restart settles the peers replace their stale SAs once more, and a Child
 * SA retired between two reports takes the bytes it carried since the first with it, by design
 * (hubspoke-health; README, Operate): once, that made the hub's report 5,600
 * bytes short.
 */
async function countAcross(ctx: Step, after: CounterCheck["after"], change: () => Promise<void>): Promise<void> {
    const { lab, report, log, kernelHasEsp, hub, spokes } = ctx;
    if (!kernelHasEsp) return change();
    const spoke = spokes[0];
    const tunnel = spoke.tunnels[0];
    const before = lab.childSerials(hub.region, tunnel);
    const changeInSpan = after === "rekey";
    if (!changeInSpan) await change();
    const [sent, counted] = await counting(lab, tunnel, spoke.region, hub.region, async () => {
        if (changeInSpan) await change();
        return lab.transfer(spoke.region, hub.region, COUNTER_PAYLOAD, MTU_TRANSFER.withClampDeadlineSeconds);
    });
    const newSa = lab.childSerials(hub.region, tunnel).some((s) => !before.includes(s));
    const check: CounterCheck = { after, tunnel, newSa, payload: COUNTER_PAYLOAD, transferred: sent.completed, counted };
    report.counters = [...(report.counters ?? []), check];
    log(
        `bytes after a ${after}${newSa ? " (a new Child SA)" : " (NO new Child SA)"}: 1 MiB sent${sent.completed ? "" : " INCOMPLETE"}; ${countedText(counted, spoke.region, hub.region)}`,
    );
}

function countedText(c: Counted, from: string, to: string): string {
    return (
        `reported ${c.senderOut ?? "-"} bytes out of ${from}, ${c.receiverIn ?? "-"} into ${to}; on the wire ` +
        `${c.espOut.packets} ESP packets (${c.espOut.bytes} bytes) out of ${from}, ${c.espIn.packets} (${c.espIn.bytes} bytes) into ${to}`
    );
}

/** Rotates one tunnel's key in the Parameter Store. */
async function rotateKey(ctx: Step): Promise<void> {
    const { lab, report, log, timeout, target, hub, spokes } = ctx;
    // 6. Rotate one tunnel's key in the Parameter Store (as `pulumi up` with a new pskRotation does):
    // each end's agent rewrites its secrets and rereads them, the running IKE SA stays up; once the
    // re-authentication delay has passed (the lab's is short), their next runs start a new IKE SA
    // with the new key.
    {
        const spoke = spokes[0];
        const tunnel = spoke.tunnels[0];
        const key = newKey();
        for (const r of [hub, spoke]) {
            lab.setKey(r.region, tunnel, key);
        }
        const mark = { [hub.region]: lab.logOf(hub.region).length, [spoke.region]: lab.logOf(spoke.region).length };
        const reauthenticated = () =>
            [hub.region, spoke.region].every((r) =>
                lab
                    .logOf(r)
                    .slice(mark[r])
                    .split("\n")
                    .some((l) => l.includes(`"${tunnel}"`) && /established IKE SA; authenticated peer/.test(l)),
            );
        const serials = () => JSON.stringify(lab.ikeSerials(hub.region, [tunnel]));
        const serialsBefore = serials();
        const rotated = process.hrtime.bigint();
        await Promise.all([lab.runAgent(hub.region), lab.runAgent(spoke.region)]);
        const saKeptUntilReauth = serials() === serialsBefore && lab.established(tunnel, "IKE") && !reauthenticated();
        await new Promise((done) => setTimeout(done, LAB_REAUTH_DELAY_SECONDS * 1000));
        await Promise.all([lab.runAgent(hub.region), lab.runAgent(spoke.region)]);
        const back = await lab.waitFor(() => reauthenticated() && lab.established(tunnel, target), timeout);
        report.rotation = {
            tunnel,
            seconds: back === undefined ? undefined : secondsSince(rotated),
            bothEndsRewritten: [hub.region, spoke.region].every((r) => lab.secretsOf(r, tunnel).includes(`"${key}"`)),
            saKeptUntilReauth,
            reauthenticated: reauthenticated(),
        };
        log(
            `rotation of ${tunnel}'s key: ${back === undefined ? `NOT re-established within ${timeout} s` : `re-authenticated with the new key after ${report.rotation.seconds} s`}`,
        );
    }
}

/**
 * Waits until each of `ends` has put `event` for `tunnel` to CloudWatch Logs after `since` (ms), at most
 * EVENT_WITHIN_SECONDS; the seconds from `since` to CloudWatch taking it, per end.
 */
async function waitForEvent(lab: Lab, tunnel: string, event: TunnelEvent, ends: readonly string[], since: number): Promise<EventCheck> {
    const found = (end: string) =>
        lab.events(end).find((e) => e.tunnel === tunnel && e.event === event && Date.parse(e.time) >= since - 1000);
    let nextRun = 0;
    await lab.waitFor(() => {
        if (!lab.shippingEvents && Date.now() >= nextRun) {
            for (const end of ends) lab.shipEvents(end);
            nextRun = Date.now() + EVENTS.intervalSeconds * 1000;
        }
        return ends.every((end) => found(end) !== undefined);
    }, EVENT_WITHIN_SECONDS);
    const seconds: Record<string, number | undefined> = {};
    const detail: Record<string, string | undefined> = {};
    for (const end of ends) {
        const e = found(end);
        seconds[end] = e ? roundSeconds(e.ingestionTime - since) : undefined;
        detail[end] = e?.detail;
    }
    return { tunnel, event, seconds, detail };
}

function describeEvent(check: EventCheck): string {
    return `${check.event} of ${check.tunnel} in CloudWatch Logs: ${Object.entries(check.seconds)
        .map(([end, s]) => `${end} ${s === undefined ? `NOT within ${EVENT_WITHIN_SECONDS} s` : `after ${s} s`}`)
        .join(", ")}`;
}

/**
 * A spoke's ESP proposals changed to one the hub does not offer (its conf parameter, as a bad
 * `espProposals` would): the Child SA cannot be negotiated, and both ends say "no proposal chosen".
 * Then the proposals are put back and the tunnel returns.
 */
async function proposalMismatch(ctx: Step): Promise<void> {
    const { lab, report, log, timeout, target, hub, spokes } = ctx;
    const spoke = spokes[0];
    const tunnel = spoke.tunnels[0];
    let original = "";
    lab.editParameter(spoke.region, tunnel, "conf", (conf) => {
        original = conf;
        return conf.replace(/^(\s*esp=).*$/m, "$1aes128-sha2_512");
    });
    const since = Date.now();
    await lab.runAgent(spoke.region);
    report.events.proposalMismatch = await waitForEvent(lab, tunnel, "no-proposal-chosen", [hub.region, spoke.region], since);
    log(describeEvent(report.events.proposalMismatch));
    lab.editParameter(spoke.region, tunnel, "conf", () => original);
    await lab.runAgent(spoke.region);
    const back = await lab.waitFor(() => lab.established(tunnel, target), timeout);
    log(
        `${tunnel}: ESP proposals put back: ${back === undefined ? `NOT re-established within ${timeout} s` : `re-established after ${back} s`}`,
    );
}

/** A spoke fetches a key that differs from the hub's: authentication fails, and the log says so. */
async function wrongKey(ctx: Step): Promise<void> {
    const { lab, report, log, target, hub, spokes, topology } = ctx;
    // 7. A spoke fetches a key that differs from the hub's: authentication fails, and the log says so.
    const victim = spokes[spokes.length - 1];
    const tunnel = victim.tunnels[0];
    const rightKey = lab.key(victim.region, tunnel);
    await lab.killPluto(victim.region);
    lab.setKey(victim.region, tunnel, newKey());
    await lab.runAgent(victim.region, { boot: true });
    const before = { hub: lab.logOf(hub.region).length, victim: lab.logOf(victim.region).length };
    const startedAt = Date.now();
    await lab.startPluto(victim.region);
    const waitedSeconds = 10;
    const establishedWithin = await lab.waitFor(() => lab.established(tunnel, "IKE"), waitedSeconds);
    const newLines = lab.logOf(hub.region).slice(before.hub) + lab.logOf(victim.region).slice(before.victim);
    const reason = newLines.split("\n").find((l) => /AUTHENTICATION_FAILED|authentication failed|failed to authenticate/i.test(l));
    const others = topology.tunnels.filter((t) => t.name !== tunnel).map((t) => t.name);
    // Observed, not sampled once: a single read can land in a moment of SA replacement.
    const othersUp = (await lab.waitFor(() => others.every((t) => lab.established(t, target)), 20)) !== undefined;
    report.wrongKey = {
        region: victim.region,
        tunnel,
        establishedWithin,
        waitedSeconds,
        reason: reason?.trim(),
        otherTunnelsUp: othersUp,
    };
    log(
        `wrong key on ${victim.region}: ${establishedWithin === undefined ? "not established" : "ESTABLISHED (wrong)"}; log: ${reason ?? "(no reason logged)"}`,
    );
    report.events.wrongKey = await waitForEvent(lab, tunnel, "authentication-failed", [hub.region, victim.region], startedAt);
    log(describeEvent(report.events.wrongKey));
    // The operator's fix, in the Parameter Store only: what a new instance of this gateway fetches.
    lab.setKey(victim.region, tunnel, rightKey);
}

/**
 * Sends 5 MB from `from`'s workload host to `to`'s with the gateways' MSS clamp (must complete),
 * then with the clamp removed from both gateways (must stall: the 9001-byte segments' ESP packets
 * cannot cross the 1500-byte internet, and the ICMP that would say so never reaches the gateway),
 * then puts the clamp back.
 */
async function measureMssClamp(
    lab: Lab,
    tunnel: string,
    from: string,
    to: string,
    log: (line: string) => void,
    timeout: number,
): Promise<NonNullable<ScenarioReport["mtu"]>> {
    // Right after start-up, crossed initiations can leave a stale IKE SA whose liveness failure restarts
    // the tunnel some seconds later: measure on a settled tunnel, not across that.
    const settledAfter = await lab.waitSettled(tunnel, timeout);
    if (settledAfter === undefined) {
        log(`${tunnel}: NOT settled within ${timeout} s; measuring anyway`);
    }
    const gateways = [from, to];
    const clamps = gateways.map((r) => lab.mssClamp(r));
    const clamp = clamps.every((c) => c !== undefined && c === clamps[0]) ? clamps[0] : undefined;
    const mb = MTU_TRANSFER.bytes / (1024 * 1024);
    const fresh = () => {
        for (const r of gateways) {
            lab.forgetPathMtu(r);
        }
    };
    fresh();
    const [withClamp, reported] = await counting(lab, tunnel, from, to, () =>
        lab.transfer(from, to, MTU_TRANSFER.bytes, MTU_TRANSFER.withClampDeadlineSeconds),
    );
    log(`${tunnel}: hubspoke-health ${countedText(reported, from, to)}`);
    log(
        `${mb} MB ${from}->${to} with MSS clamp ${clamp}: ${withClamp.completed ? `${withClamp.seconds} s` : `NOT completed (${withClamp.bytes} bytes in ${withClamp.seconds} s${withClamp.error ? `, ${withClamp.error}` : ""})`}`,
    );
    let withoutClamp: TransferResult;
    try {
        for (const r of gateways) {
            lab.removeMssClamp(r);
        }
        fresh();
        withoutClamp = await lab.transfer(from, to, MTU_TRANSFER.bytes, MTU_TRANSFER.withoutClampDeadlineSeconds);
    } finally {
        for (const r of gateways) {
            lab.applyMssClamp(r);
        }
        fresh();
    }
    log(
        `${mb} MB ${from}->${to} without clamp: ${withoutClamp.completed ? `COMPLETED in ${withoutClamp.seconds} s (expected a stall)` : `stalled (${withoutClamp.bytes} bytes in ${withoutClamp.seconds} s${withoutClamp.connected ? "" : `; never connected: ${withoutClamp.error}`})`}`,
    );
    return {
        clamp,
        from,
        to,
        settled: settledAfter !== undefined,
        withClamp,
        reported,
        withoutClamp,
        clampRestored: gateways.every((r) => lab.mssClamp(r) === clamp),
    };
}
