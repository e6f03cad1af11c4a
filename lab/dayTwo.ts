/**
 * The lab's day-two scenario: a running stack changed as `pulumi up` changes it, with every gateway's
 * real agent converging real pluto daemons on the new desired state. The lab is built from the
 * render of the stack *after* the change (so the added spoke's namespaces exist), while its Parameter
 * Store starts as the render of the stack *before* it.
 *   1. the stack before: every tunnel up; in VM mode a continuous ping across an existing tunnel starts;
 *   2. add a spoke: its parameters appear (and the hub's end of its tunnel), its gateway boots, the
 *      hub's agent runs as its timer would: the new tunnel comes up, the others keep their IKE SAs;
 *   3. change one tunnel's setting at both ends: only that tunnel is re-established;
 *   4. remove the spoke: its conn and secrets are gone from the hub, the others are untouched;
 *   5. the ping: no packet lost across the untouched tunnel through all of it (VM mode).
 */
import type { Lab, PingRun } from "./lab";
import type { LabRegion } from "./topology";

/** The spoke the scenario adds and removes: a region of its own, not overlapping the seed's. */
export const ADDED_SPOKE = {
    name: "tokyo",
    awsRegion: "ap-northeast-1",
    role: "spoke",
    vpcCidr: "10.14.0.0/16",
    vpnSubnet: "10.14.4.0/24",
    gatewayPrivateIp: "10.14.4.5",
    workloadSubnets: { fns: { a: "10.14.6.0/24" } },
} as const;

export interface DayTwoReport {
    kernelHasEsp: boolean;
    target: "IKE" | "Child SA";
    /** The tunnel the scenario adds, changes and removes. */
    tunnel: string;
    /** Tunnels of the stack before: they must never be touched. */
    untouched: string[];
    added: {
        /** From the parameters appearing to the new tunnel up at both ends (the agents' runs included). */
        seconds?: number;
        /** What the hub's agent logged. */
        agentLog: string;
        /** Established IKE SA serial per untouched tunnel on the hub, before and after. */
        serialsBefore: Record<string, number[]>;
        serialsAfter: Record<string, number[]>;
    };
    changed: {
        seconds?: number;
        agentLogs: string[];
        /** The changed tunnel's IKE SA serials on the hub before and after (they must differ). */
        tunnelSerialsBefore: number[];
        tunnelSerialsAfter: number[];
        serialsAfter: Record<string, number[]>;
    };
    removed: {
        agentLog: string;
        /** The hub's pluto still knows the conn. */
        connLoaded: boolean;
        /** The hub still has the tunnel's files. */
        filesLeft: string[];
        serialsAfter: Record<string, number[]>;
    };
    /** A ping across an untouched tunnel through all of it (VM mode only). */
    ping?: PingRun;
    logs: Record<string, string>;
}

export interface DayTwoOptions {
    /** Render (revealed keys) of the stack before the change: its ssm/ tree is the Parameter Store at the start. */
    readonly before: string;
    readonly timeoutSeconds?: number;
    readonly log?: (line: string) => void;
}

/**
 * Waits until the tunnels are quiet: with Child SAs, until pluto has nothing more to say about them
 * (`Lab.waitSettled`); on IKE alone, until the IKE SA serials stay the same for 3 s.
 */
async function settle(lab: Lab, tunnels: string[], kernelHasEsp: boolean, serials: () => Record<string, number[]>): Promise<void> {
    if (kernelHasEsp) {
        await Promise.all(tunnels.map((t) => lab.waitSettled(t, 60)));
        return;
    }
    for (let i = 0; i < 10; i++) {
        const before = JSON.stringify(serials());
        await new Promise((done) => setTimeout(done, 3000));
        if (JSON.stringify(serials()) === before) {
            return;
        }
    }
}

const seconds = (start: bigint) => Math.round(Number(process.hrtime.bigint() - start) / 1e8) / 10;

/** Runs the scenario on a lab built from the render after the change. */
/** What the steps of day two work with. */
interface DayTwo {
    readonly lab: Lab;
    readonly report: DayTwoReport;
    readonly log: (line: string) => void;
    readonly timeout: number;
    readonly hub: LabRegion;
    readonly added: LabRegion;
    /** IKE SA serials of the untouched tunnels on the hub. */
    readonly serials: () => Record<string, number[]>;
    /** The render before the change. */
    readonly before: string;
}

export async function runDayTwo(lab: Lab, options: DayTwoOptions): Promise<DayTwoReport> {
    const log = options.log ?? (() => undefined);
    const timeout = options.timeoutSeconds ?? 60;
    const hub = lab.topology.regions.find((r) => r.role === "hub")!;
    const added = lab.region(ADDED_SPOKE.name);
    const tunnel = lab.topology.tunnels.find((t) => t.spoke === added.region)!.name;
    const existing = lab.topology.regions.filter((r) => r !== added);
    const untouched = lab.topology.tunnels.filter((t) => t.name !== tunnel).map((t) => t.name);
    const pingPair = { from: existing.find((r) => r.role === "spoke")!.region, to: hub.region };

    await lab.up({ parameters: options.before });
    const kernelHasEsp = lab.kernelHasEsp();
    const target = kernelHasEsp ? "Child SA" : "IKE";
    const report: DayTwoReport = {
        kernelHasEsp,
        target,
        tunnel,
        untouched,
        added: { agentLog: "", serialsBefore: {}, serialsAfter: {} },
        changed: { agentLogs: [], tunnelSerialsBefore: [], tunnelSerialsAfter: [], serialsAfter: {} },
        removed: { agentLog: "", connLoaded: true, filesLeft: [], serialsAfter: {} },
        logs: {},
    };
    const ctx: DayTwo = {
        lab,
        report,
        log,
        timeout,
        hub,
        added,
        serials: () => lab.ikeSerials(hub.region, untouched),
        before: options.before,
    };
    try {
        // 1. The stack before the change; crossed initiations (both ends start each tunnel) settle before the serials are taken.
        await Promise.all(existing.map((r) => lab.startPluto(r.region)));
        if ((await lab.waitFor(() => untouched.every((t) => lab.established(t, target)), timeout)) === undefined) {
            throw new Error(`day two: the stack before the change did not come up within ${timeout} s`);
        }
        await settle(lab, untouched, kernelHasEsp, ctx.serials);
        const ping = kernelHasEsp ? lab.startPing(pingPair.from, pingPair.to) : undefined;
        await addSpoke(ctx);
        await changeTunnel(ctx);
        await removeSpoke(ctx);
        // 5. The ping across an untouched tunnel.
        if (ping) {
            report.ping = await ping.stop();
            log(
                `day two: ping ${pingPair.from} -> ${pingPair.to}: ${report.ping.received}/${report.ping.sent} replies, longest gap ${report.ping.longestGapSeconds} s`,
            );
        }
    } finally {
        for (const r of lab.topology.regions) {
            report.logs[r.region] = lab.logTail(r.region, 40);
        }
        lab.down();
    }
    return report;
}

/** 2. `pulumi up` publishes the spoke's parameters (and the hub's end); its gateway boots; the hub's timer fires. */
async function addSpoke({ lab, report, log, timeout, hub, added, serials }: DayTwo): Promise<void> {
    report.added.serialsBefore = serials();
    const t0 = process.hrtime.bigint();
    lab.publish();
    // The new gateway boots after its parameters exist (its instance depends on them).
    await lab.runAgent(added.region, { boot: true });
    await lab.startPluto(added.region);
    report.added.agentLog = await lab.runAgent(hub.region);
    const up = await lab.waitFor(() => lab.established(report.tunnel, report.target), timeout);
    report.added.seconds = up === undefined ? undefined : seconds(t0);
    report.added.serialsAfter = serials();
    log(`day two: ${report.tunnel} added, up ${report.added.seconds ?? "NEVER"} s after its parameters appeared`);
}

/** 3. One setting of the new tunnel changes at both ends, as a changed config would change it. */
async function changeTunnel({ lab, report, log, timeout, hub, added, serials }: DayTwo): Promise<void> {
    const { tunnel } = report;
    const tunnelSerials = () => lab.ikeSerials(hub.region, [tunnel])[tunnel] ?? [];
    report.changed.tunnelSerialsBefore = tunnelSerials();
    const t1 = process.hrtime.bigint();
    for (const r of [hub, added]) {
        lab.editParameter(r.region, tunnel, "conf", (conf) => conf.replace("salifetime=1h", "salifetime=2h"));
    }
    report.changed.agentLogs = await Promise.all([lab.runAgent(hub.region), lab.runAgent(added.region)]);
    const up = await lab.waitFor(() => {
        const now = tunnelSerials();
        return lab.established(tunnel, report.target) && now.length > 0 && !now.some((s) => report.changed.tunnelSerialsBefore.includes(s));
    }, timeout);
    report.changed.seconds = up === undefined ? undefined : seconds(t1);
    report.changed.tunnelSerialsAfter = tunnelSerials();
    report.changed.serialsAfter = serials();
    log(`day two: ${tunnel} changed, re-established after ${report.changed.seconds ?? "NEVER"} s`);
}

/** 4. Back to the parameters before; the hub's timer fires; the spoke's gateway is destroyed. */
async function removeSpoke({ lab, report, log, hub, added, serials, before }: DayTwo): Promise<void> {
    const { tunnel } = report;
    lab.publish(before);
    report.removed.agentLog = await lab.runAgent(hub.region);
    await lab.killPluto(added.region);
    report.removed.connLoaded = lab.conns(hub.region).includes(tunnel);
    report.removed.filesLeft = lab.tunnelFiles(hub.region).filter((f) => f.startsWith(`${tunnel}.`));
    // Give a wrongly touched tunnel time to show it.
    await new Promise((done) => setTimeout(done, 3000));
    report.removed.serialsAfter = serials();
    log(`day two: ${tunnel} removed; hub still loads it: ${report.removed.connLoaded}; files left: ${report.removed.filesLeft}`);
}
