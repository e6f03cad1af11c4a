/**
 * The failover scenario on a stack whose sites have a standby (Pulumi.prod-ha.yaml), in the
 * FailoverLab: the hub's active gateway dies, then a spoke's, each while a spoke's workload host
 * pings the hub's; the dead hub gateway returns; the link between the hub's two gateways is cut.
 * What it proves depends on the kernel: without ESP, the takeover and IKE; with ESP (the VM), the
 * traffic gap itself, from the ping sequence.
 */

import { FAILOVER } from "../gateway/contract";
import { DPD } from "../render/libreswan";
import { type FailoverLab, LAB_EC2_LATENCY_MS, LAB_STANDBY_ROUND_SECONDS, type LabSite, operatorSide } from "./failoverLab";
import type { SymbolicCall } from "./iam";
import type { PingRun } from "./lab";
import { kernelHasEsp, sleep } from "./lab";
import { EVENT_WITHIN_SECONDS } from "./scenario";

/**
 * The traffic gap the issue allows when a site's active gateway dies: asserted on the ping in the VM,
 * and on the tunnels' return on this machine's kernel (no ESP there).
 */
export const MAX_FAILOVER_GAP_SECONDS = 10;
/**
 * Seconds after a death by which the surviving peers' dead-peer detection has given up on the dead
 * gateway's SAs (DPD.delaySeconds + a 7 s retransmit timeout that fires at 7.5 s, measured 9 s in
 * the VM) and restarted its side once: libreswan 4.10 then restarts every connection to that peer,
 * the new active's fresh SA included (one more exchange). Each failover's ping runs until then, so
 * that what this costs counts in that failover, and the next step starts after it; 5 s of margin.
 */
export const PEER_DPD_AFTERMATH_SECONDS = DPD.delaySeconds + DPD.retransmitTimeoutSeconds + 0.5 + 5;
/** How often a standby's failover script does its slow round in the lab (its StandbyReady check, ending its own negotiations). */
const STANDBY_ROUND_SECONDS = LAB_STANDBY_ROUND_SECONDS;
/** A blip: the link between the hub's gateways down for two probe intervals fewer than a takeover needs. */
export const BLIP_SECONDS = FAILOVER.probeIntervalSeconds * (FAILOVER.confirmProbes - 2);
/** How long the cut between two healthy gateways is held: many times the standby's confirmation window. */
export const CUT_HOLD_SECONDS = 12;

export interface FailoverMeasure {
    /** The gateway killed and the one that took over. */
    readonly killed: string;
    /** When it was killed (ms since the epoch). */
    readonly killedAt: number;
    readonly tookOver?: string;
    /** Seconds from the kill until the fake EC2 had the site's Elastic IP on the standby. */
    readonly ownerMovedSeconds?: number;
    /** Seconds from the kill until every tunnel of the site was established (IKE, and Child SA with ESP) on the new active. */
    readonly tunnelsBackSeconds?: number;
    /** With ESP: the ping run across the kill; its longest gap is the traffic gap. */
    readonly ping?: PingRun;
    /** At the step's end, every route of the site targets the new active. */
    readonly routesFollowed?: boolean;
    /**
     * The endpoint's log: the new active (a ready standby) sent its first ReplaceRoute with the
     * association, not after EC2's answer to it (it was answered less than one EC2 call's time later).
     */
    readonly routedWithAssociation?: boolean;
}

/** A site after a step: its Elastic IP, its routes and the failover scripts' own belief on one gateway. */
export interface SiteWhole {
    readonly owner?: string;
    readonly routes: readonly string[];
    /** The gateways whose failover script holds the site (its `active` file). */
    readonly believers: readonly string[];
    readonly consistent: boolean;
}

export interface FailoverReport {
    readonly kernelHasEsp: boolean;
    /** The layer the run could prove: "IKE" on a kernel without ESP, "traffic" with it. */
    readonly layer: "IKE" | "traffic";
    /** Seconds from the lab's start until every site's primary owned its site and every tunnel was up. */
    readonly initialSeconds?: number;
    readonly hub?: FailoverMeasure;
    readonly spoke?: FailoverMeasure;
    /** The failed hub gateway returns: where the site is after it checked, and the traffic meanwhile. */
    readonly returned?: {
        readonly owner?: string;
        readonly failoversAfter: number;
        readonly ping?: PingRun;
        readonly tunnelsKept: boolean;
        readonly whole: SiteWhole;
    };
    /** The link between the hub's two gateways down for BLIP_SECONDS: nothing may move. */
    readonly blip?: {
        readonly moves: number;
        readonly whole: SiteWhole;
    };
    /** Only the link between the hub's two gateways cut, both healthy. */
    readonly cut?: {
        readonly ownerBefore?: string;
        readonly ownerAfter?: string;
        readonly moves: number;
        readonly ping?: PingRun;
        readonly tunnelsKept: boolean;
        /** After the cut, the gateway that lost the site (if it moved) has stepped down. */
        readonly whole: SiteWhole;
    };
    /**
     * A negotiation started on an untouched site's standby (as its agent does when it adds or re-keys a
     * tunnel): whether it ran, when the standby had ended it (only the active initiates), and whether
     * that site's active and the hub's kept their IKE SAs meanwhile.
     */
    readonly standbyNegotiation?: {
        readonly gateway: string;
        readonly tunnel: string;
        readonly started: boolean;
        readonly endedSeconds?: number;
        readonly tunnelsKept: boolean;
    };
    /** Planned handovers: the hub's active drained and undrained by the operator, then the spoke's active replaced. */
    readonly handovers?: readonly HandoverMeasure[];
    /** What the lab's AWS endpoint decided on the gateways' calls, and which calls they made (named relative to each caller). */
    readonly iam?: { readonly allowed: number; readonly denied: number; readonly calls: readonly SymbolicCall[] };
    /**
     * On this machine's kernel, with every gateway's hubspoke-events running: the failover script's
     * events that a failure or a drain must put into CloudWatch Logs, each with the seconds from its
     * cause until CloudWatch took it.
     */
    readonly events?: readonly FailoverEventCheck[];
    /** Failovers each site's gateways reported to CloudWatch, and whether a standby reported StandbyReady 1. */
    readonly metrics?: Record<string, { readonly failovers: number; readonly standbyReady: boolean }>;
}

/** A planned handover's goal: the longest traffic gap, with a ping every HANDOVER_PING_SECONDS (issue 18). */
export const HANDOVER_GAP_GOAL_SECONDS = 1;
/**
 * What the VM run asserts: the goal plus one pluto retransmission (0.5 s), for IKE sent a moment before
 * the address moved (the new active does not wait for EC2's answer). Measured 0.5-0.7 s (README,
 * Failover); an unplanned failover loses about 3 s there.
 */
export const MAX_HANDOVER_GAP_SECONDS = 1.5;
export const HANDOVER_PING_SECONDS = 0.1;

/** A planned move of a site: an operator's drain or undrain, or the replacement of its active gateway. */
export interface HandoverMeasure {
    readonly kind: "drain" | "undrain" | "replacement";
    readonly site: string;
    /** The gateway drained, undrained or replaced. */
    readonly gateway: string;
    /** Where the site's Elastic IP was before and after. */
    readonly ownerBefore?: string;
    readonly ownerAfter?: string;
    /** Seconds from the request (the drain parameter read by the agent; the shutdown's handover) until EC2 had the Elastic IP elsewhere. */
    readonly movedSeconds?: number;
    /** With ESP: the ping run across it, one every HANDOVER_PING_SECONDS. */
    readonly ping?: PingRun;
    /** Replacement only: when the old instance went, its partner held the site and was running (never both down). */
    readonly partnerHeldAtStop?: boolean;
    /** Both gateways ready at the end: the one holding the site active, the other a ready standby (undrained ones only). */
    readonly bothReady: boolean;
    /** Replacement only, when the new instance was not ready: the last lines of its failover script's log. */
    readonly notReadyLog?: string;
    readonly whole: SiteWhole;
    /** What `hubspoke-failover handover` answered (replacement). */
    readonly answer?: string;
}

/** One event a failure or a drain must put into CloudWatch Logs (FailoverReport.events). */
export interface FailoverEventCheck {
    /** What caused it: "virginia killed", "virginia-standby drained". */
    readonly cause: string;
    readonly gateway: string;
    readonly event: "takeover" | "step-down" | "handover";
    /** Seconds from the cause until CloudWatch Logs took the event; undefined: not within EVENT_WITHIN_SECONDS. */
    readonly seconds?: number;
    /** The event's detail: the failover script's own line. */
    readonly detail?: string;
}

/** An event to look for at the end: FailoverEventCheck's what, and when its cause happened (ms since the epoch). */
interface ExpectedEvent extends Omit<FailoverEventCheck, "seconds" | "detail"> {
    readonly at: number;
}

/** What every step of the scenario works with. */
interface Ctx {
    readonly lab: FailoverLab;
    readonly log: (line: string) => void;
    readonly esp: boolean;
    readonly hub: LabSite;
    readonly spoke: LabSite;
    readonly tunnelsOf: (site: string) => readonly string[];
    /** The events the steps so far must have caused (this machine's kernel only: the VM runs no shipper). */
    readonly expected: ExpectedEvent[];
}

export async function runFailoverScenario(lab: FailoverLab, log: (line: string) => void): Promise<FailoverReport> {
    const start = Date.now();
    // The ESP check runs once up() has built the network (its kernel modules were loaded meanwhile) and
    // written the gateways' files, while the lab's AWS endpoint comes up (seconds in the VM); up() then
    // goes on with the gateways' boot.
    const up = lab.up();
    const esp = kernelHasEsp(lab.id);
    await up;
    const tunnelsOf = (site: string) => lab.sites.find((s) => s.name === site)!.plan.tunnels;
    const ctx: Ctx = { lab, log, esp, hub: lab.sites[0], spoke: lab.sites[1], tunnelsOf, expected: [] };
    // Each gateway's hubspoke-events loop, as on a gateway. Not in the VM, where a loop per gateway
    // would compete with what is measured there.
    if (!esp) lab.startEventShippers();
    const report: { -readonly [K in keyof FailoverReport]: FailoverReport[K] } = { kernelHasEsp: esp, layer: esp ? "traffic" : "IKE" };
    try {
        report.initialSeconds = await primariesUp(ctx, start);
        if (report.initialSeconds === undefined) {
            return report;
        }
        const { hub, spoke } = ctx;
        // The hub's active gateway dies; then a spoke's.
        report.hub = await failover(lab, hub.gateways[0].name, hub.gateways[1].name, hub.name, spoke.name, esp, log);
        report.spoke = await failover(lab, spoke.gateways[0].name, spoke.gateways[1].name, spoke.name, spoke.name, esp, log);
        for (const m of [report.hub, report.spoke]) {
            if (m.tookOver) ctx.expected.push({ cause: `${m.killed} killed`, at: m.killedAt, gateway: m.tookOver, event: "takeover" });
        }
        report.returned = await failedGatewayReturns(ctx);
        report.handovers = [
            ...(await drainAndUndrain(ctx)),
            ...(await rollingReplacement(ctx, hub)),
            ...(await rollingReplacement(ctx, spoke)),
        ];
        // Control-plane steps, proven on this machine's kernel: under the VM's emulation they only add minutes.
        report.blip = esp ? undefined : await blip(ctx);
        report.cut = await cut(ctx);
        report.standbyNegotiation = esp ? undefined : await standbyNegotiation(ctx);
        report.events = esp ? undefined : await failoverEvents(ctx);
        report.metrics = Object.fromEntries(
            lab.sites.map((s) => [
                s.name,
                {
                    failovers: lab.metrics("Failovers", s.name).reduce((a, b) => a + b, 0),
                    standbyReady: lab.metrics("StandbyReady", s.name).includes(1),
                },
            ]),
        );
        return report;
    } finally {
        report.iam = lab.iam.report();
        lab.down();
    }
}

/**
 * The events the steps caused, as CloudWatch Logs has them (the gateways' hubspoke-events loops run
 * every EVENTS.intervalSeconds): waits until each is there, at most EVENT_WITHIN_SECONDS after the
 * latest cause. The first of its kind since the cause counts.
 */
async function failoverEvents({ lab, log, expected }: Ctx): Promise<FailoverEventCheck[]> {
    const find = (e: ExpectedEvent) => lab.events(e.gateway).find((x) => x.event === e.event && x.ingestionTime >= e.at);
    const latest = Math.max(...expected.map((e) => e.at));
    await lab.waitFor(
        () => expected.every((e) => find(e) !== undefined),
        Math.max(1, (latest - Date.now()) / 1000 + EVENT_WITHIN_SECONDS),
        1000,
    );
    return expected.map((e) => {
        const found = find(e);
        const seconds = found && Math.round((found.ingestionTime - e.at) / 100) / 10;
        log(`lab: ${e.event} of ${e.gateway} (${e.cause}) in CloudWatch Logs ${found ? `after ${seconds} s` : "NEVER"}`);
        return { cause: e.cause, gateway: e.gateway, event: e.event, seconds, detail: found?.detail };
    });
}

/** Seconds until every site's primary owns its site with every tunnel up (and, with ESP, traffic flows); undefined if not. */
async function primariesUp({ lab, log, esp, hub, spoke, tunnelsOf }: Ctx, start: number): Promise<number | undefined> {
    const layer = esp ? "Child SA" : "IKE";
    const onPrimaries = () => lab.sites.every((s) => lab.owner(s.name) === s.gateways[0].name);
    // pluto's own logs say when every SA has come up (polled often: reading a file starts no process in
    // the VM); whack then confirms, at most once a second, that they are all still there.
    let confirmedAt = 0;
    const up = await lab.waitFor(
        () => {
            const logged = lab.sites.every((s) => lab.establishedSince(s.gateways[0].name, tunnelsOf(s.name), layer, start) !== undefined);
            if (!logged || !onPrimaries() || Date.now() - confirmedAt < 1000) {
                return false;
            }
            confirmedAt = Date.now();
            return lab.sites.every((s) => lab.allEstablished(s.gateways[0].name, tunnelsOf(s.name), layer)) && onPrimaries();
        },
        // A setup wait, not a measurement (the time is printed): in the VM it took 38 s alone, and over
        // 90 s while other VMs shared the two cores.
        150,
        200,
    );
    if (up === undefined) {
        log(`lab: the primaries did not come up: owners ${lab.sites.map((s) => lab.owner(s.name)).join(", ")}`);
        return undefined;
    }
    const seconds = (Date.now() - start) / 1000;
    log(`lab: every site on its primary, every tunnel up (${layer}) after ${seconds.toFixed(1)} s`);
    if (esp && (await lab.waitFor(() => lab.ping(spoke.name, hub.name), 60, 1000)) === undefined) {
        log("lab: no traffic between the spoke's host and the hub's before any failure");
        return undefined;
    }
    // Every standby has passed its first check (each gateway boots on its own) before anything fails.
    const standbys = lab.sites.map((s) => s.gateways[1].name);
    if ((await lab.waitFor(() => standbys.every((g) => lab.isReady(g)), 60, 200)) === undefined) {
        log(`lab: not ready as the standby: ${standbys.filter((g) => !lab.isReady(g)).join(", ")}`);
    }
    return seconds;
}

/**
 * The failed hub gateway returns: it must come back as the standby and move nothing. The spoke's
 * failed gateway returns with it (the planned replacement needs it back as the ready standby): both
 * boot at once, and the next steps start once both are ready, so that no boot runs during a handover.
 */
async function failedGatewayReturns({ lab, log, esp, hub, spoke, tunnelsOf }: Ctx): Promise<FailoverReport["returned"]> {
    const failoversBefore = lab.metrics("Failovers", hub.name).length;
    const active = hub.gateways[1].name;
    const serials = ikeSerials(lab, active, tunnelsOf(hub.name));
    const ping = esp ? lab.startPing(spoke.name, hub.name) : undefined;
    const returning = [hub.gateways[0].name, spoke.gateways[0].name].filter((g) => !lab.isRunning(g));
    const revived = Date.now();
    await Promise.all(returning.map((g) => lab.revive(g)));
    // Longer than its boot check and an owner check, and several probe rounds as the standby; and until
    // both returned gateways have passed their first check as the standby (ready).
    await lab.waitFor(() => returning.every((g) => lab.isReady(g)), 60, 500);
    await sleep(Math.max(0, revived + 15_000 - Date.now()));
    const returned = {
        owner: lab.owner(hub.name),
        failoversAfter: lab.metrics("Failovers", hub.name).length - failoversBefore,
        ping: await ping?.stop(),
        tunnelsKept: sameSerials(serials, ikeSerials(lab, active, tunnelsOf(hub.name))),
        whole: lab.siteConsistent(hub.name),
    };
    log(
        `lab: ${hub.gateways[0].name} returned: site on ${returned.owner}, failovers since ${returned.failoversAfter}${pingText(returned.ping)}; ${wholeText(returned.whole)}`,
    );
    return returned;
}

/**
 * The operator drains the hub's active (`npm run site -- drain`, the same function as the program's
 * handover hook): its agent reads the drain parameter (run here at once; its timer does within a
 * minute) and the site moves to the ready partner. Then the undrain: the drained gateway becomes a
 * ready standby again, and nothing moves.
 */
async function drainAndUndrain(ctx: Ctx): Promise<HandoverMeasure[]> {
    const { lab, hub } = ctx;
    const active = lab.owner(hub.name)!;
    const partner = hub.gateways.find((g) => g.name !== active)!.name;
    await lab.waitFor(() => lab.isReady(partner), 60, 500);
    const operator = await operatorSide();
    const c = await lab.operatorClients(hub.name);
    try {
        const drained = await drainStep(ctx, c, operator.drain, active, partner);
        return [drained, await undrainStep(ctx, c, operator.undrain, active, partner, drained)];
    } finally {
        c.destroy();
    }
}

type Operator = Awaited<ReturnType<typeof operatorSide>>;
type OperatorClients = Awaited<ReturnType<FailoverLab["operatorClients"]>>;

async function drainStep(
    { lab, log, esp, hub, spoke, expected }: Ctx,
    c: OperatorClients,
    drain: Operator["drain"],
    active: string,
    partner: string,
): Promise<HandoverMeasure> {
    const site = hub.name;
    const ping = esp ? lab.startPing(spoke.name, hub.name, HANDOVER_PING_SECONDS) : undefined;
    await sleep(1000);
    const g = lab.pairGateway(active);
    const logFrom = lab.plutoLogSize(partner);
    const draining = drain(c, g, { timeoutMs: 60_000, pollMs: 200 }).catch((e: Error) => e);
    await lab.waitFor(() => lab.parameterExists(site, g.drainParameter), 10, 100);
    const requested = Date.now();
    // The drained gateway says why the site leaves it. (The partner's takeover may fall within a
    // minute of its own boot's, which hubspoke-events coalesces: the failovers check takeovers.)
    for (const event of ["handover", "step-down"] as const)
        expected.push({ cause: `${active} drained`, at: requested, gateway: active, event });
    await lab.runAgent(active);
    const outcome = await draining;
    const moved = lab.owner(site) === partner ? (Date.now() - requested) / 1000 : undefined;
    if (esp) await lab.waitFor(() => lab.ping(spoke.name, hub.name, 1), 20, 500);
    await sleep(3000);
    const drained: HandoverMeasure = {
        kind: "drain",
        site,
        gateway: active,
        ownerBefore: active,
        ownerAfter: lab.owner(site),
        movedSeconds: outcome instanceof Error || moved === undefined ? undefined : Math.round(moved * 10) / 10,
        ping: await ping?.stop(),
        bothReady: lab.believesActive(partner),
        whole: await settledWhole(lab, site),
    };
    log(
        `lab: ${active} drained: site on ${drained.ownerAfter} after ${drained.movedSeconds ?? "-"} s${pingText(drained.ping)}${outcome instanceof Error ? `; ${outcome.message}` : ""}; ${wholeText(drained.whole)}`,
    );
    log(handoverTimes(lab, site, partner, requested, logFrom));
    if (esp) {
        // The peers' dead-peer detection on their SAs with the drained gateway restarts their side once,
        // some 10 s after the move (PEER_DPD_AFTERMATH_SECONDS): the drain's doing, not the undrain's.
        const movedAt = lab.ec2Answers(site, partner, requested).associated ?? Date.now();
        await sleep(Math.max(0, movedAt + PEER_DPD_AFTERMATH_SECONDS * 1000 - Date.now()));
    }
    return drained;
}

async function undrainStep(
    { lab, log, esp, hub, spoke }: Ctx,
    c: OperatorClients,
    undrain: Operator["undrain"],
    active: string,
    partner: string,
    drained: HandoverMeasure,
): Promise<HandoverMeasure> {
    const site = hub.name;
    const ping = esp ? lab.startPing(spoke.name, hub.name, HANDOVER_PING_SECONDS) : undefined;
    await undrain(c, lab.pairGateway(active));
    await lab.runAgent(active);
    const ready = await lab.waitFor(() => lab.isReady(active), LAB_STANDBY_ROUND_SECONDS + 10, 500);
    const undrained: HandoverMeasure = {
        kind: "undrain",
        site,
        gateway: active,
        ownerBefore: drained.ownerAfter,
        ownerAfter: lab.owner(site),
        ping: await ping?.stop(),
        bothReady: ready !== undefined && lab.believesActive(partner),
        whole: await settledWhole(lab, site),
    };
    log(
        `lab: ${active} undrained: ready as the standby ${ready === undefined ? "NOT" : `after ${ready.toFixed(1)} s`}, site on ${undrained.ownerAfter}${pingText(undrained.ping)}`,
    );
    return undrained;
}

/**
 * A site's pair replaced as one `pulumi up` replaces it (README, Rolling replacement): the primary, then
 * the standby (the program's dependsOn), each only once its partner holds the site or is a ready
 * standby. Replacing the gateway that holds the site is a planned handover; replacing the other moves
 * nothing.
 */
async function rollingReplacement(ctx: Ctx, site: LabSite): Promise<HandoverMeasure[]> {
    // A gateway killed in an earlier step comes back first: the update starts from a whole pair.
    for (const g of site.gateways) if (!ctx.lab.isRunning(g.name)) await ctx.lab.revive(g.name);
    const out: HandoverMeasure[] = [];
    for (const g of site.gateways) out.push(await replaceGateway(ctx, site, g.name));
    return out;
}

/** One gateway's instance replaced: its shutdown's handover (if it holds the site), the instance gone, a new one booted, until it is a ready standby. */
async function replaceGateway({ lab, log, esp, hub, spoke }: Ctx, s: LabSite, gateway: string): Promise<HandoverMeasure> {
    const site = s.name;
    const partner = s.gateways.find((g) => g.name !== gateway)!.name;
    await lab.waitFor(() => lab.isReady(partner) || lab.believesActive(partner), 60, 500);
    const ownerBefore = lab.owner(site);
    const ping = esp ? lab.startPing(spoke.name, hub.name, HANDOVER_PING_SECONDS) : undefined;
    await sleep(1000);
    const logFrom = lab.plutoLogSize(partner);
    const requested = Date.now();
    const answer = await lab.handoverOnShutdown(gateway);
    const moved = ownerBefore === gateway && lab.owner(site) === partner ? (Date.now() - requested) / 1000 : undefined;
    // The instance goes: both down at once only if its partner did not hold the site by now.
    const partnerHeldAtStop = lab.owner(site) === partner && lab.isRunning(partner) && lab.believesActive(partner);
    lab.kill(gateway);
    // Traffic flows through the partner before the new instance boots. (The ping runs on until that
    // instance is ready: an outage its boot caused would show in the same run.)
    if (esp) await lab.waitFor(() => lab.ping(spoke.name, hub.name, 1), 20, 500);
    await lab.revive(gateway);
    // Its first standby checks, a round (STANDBY_ROUND_SECONDS) apart: the first can come before EC2
    // has answered its first describe-addresses or its probes have an answer. Three rounds: once, two
    // were not enough while the other test files ran beside this one.
    const ready = await lab.waitFor(() => lab.isReady(gateway), 3 * STANDBY_ROUND_SECONDS + 10, 500);
    const notReadyLog = ready === undefined ? lab.failoverLog(gateway).trimEnd().split("\n").slice(-12).join("\n") : undefined;
    const m: HandoverMeasure = {
        kind: "replacement",
        site,
        gateway,
        ownerBefore,
        ownerAfter: lab.owner(site),
        movedSeconds: moved === undefined ? undefined : Math.round(moved * 10) / 10,
        ping: await ping?.stop(),
        partnerHeldAtStop,
        bothReady: ready !== undefined && lab.believesActive(partner),
        notReadyLog,
        whole: await settledWhole(lab, site),
        answer: answer.text.trim(),
    };
    if (ownerBefore === gateway) log(handoverTimes(lab, site, partner, requested, logFrom));
    log(
        `lab: ${gateway} replaced: "${m.answer}", site on ${m.ownerAfter}${m.movedSeconds !== undefined ? ` after ${m.movedSeconds} s` : ""}, partner held it when the instance went: ${partnerHeldAtStop}${pingText(m.ping)}; new instance ready: ${ready !== undefined}; ${wholeText(m.whole)}`,
    );
    return m;
}

function handoverTimes(lab: FailoverLab, site: string, to: string, requested: number, logFrom: number): string {
    const ec2 = lab.ec2Answers(site, to, requested);
    const tunnels = lab.sites.find((s) => s.name === site)!.plan.tunnels;
    const back = lab.establishedSince(to, tunnels, kernelHasEsp(lab.id) ? "Child SA" : "IKE", requested, logFrom);
    const after = (t?: number) => (t === undefined ? "-" : `${((t - requested) / 1000).toFixed(1)} s`);
    return `lab: handover to ${to}: EC2 answered associate-address after ${after(ec2.associated)}, every tunnel established on ${to} after ${after(back)}, the last replace-route answered after ${after(ec2.routed)} (from the request)`;
}

/** A blip on the link between the hub's gateways, shorter than a takeover's confirmation: nothing moves. */
async function blip({ lab, log, hub }: Ctx): Promise<FailoverReport["blip"]> {
    const failoversAtBlip = lab.metrics("Failovers", hub.name).length;
    lab.cut(hub.name, true);
    await sleep(BLIP_SECONDS * 1000);
    lab.cut(hub.name, false);
    // Longer than a takeover would take, had the blip started one.
    await sleep(8000);
    const result = { moves: lab.metrics("Failovers", hub.name).length - failoversAtBlip, whole: lab.siteConsistent(hub.name) };
    log(`lab: link between the hub's gateways down for ${BLIP_SECONDS} s: ${result.moves} move(s); ${wholeText(result.whole)}`);
    return result;
}

/**
 * Only the link between the hub's two gateways is cut, both healthy: the standby still sees the
 * active through the tunnels, so nothing should move (at most once, and traffic keeps flowing).
 */
async function cut({ lab, log, esp, hub, spoke, tunnelsOf }: Ctx): Promise<FailoverReport["cut"]> {
    const ownerBefore = lab.owner(hub.name);
    const failoversAtCut = lab.metrics("Failovers", hub.name).length;
    const active = ownerBefore ?? hub.gateways[1].name;
    const cutSerials = ikeSerials(lab, active, tunnelsOf(hub.name));
    const cutPing = esp ? lab.startPing(spoke.name, hub.name) : undefined;
    lab.cut(hub.name, true);
    await sleep(CUT_HOLD_SECONDS * 1000);
    lab.cut(hub.name, false);
    await sleep(2000);
    const result = {
        ownerBefore,
        ownerAfter: lab.owner(hub.name),
        moves: lab.metrics("Failovers", hub.name).length - failoversAtCut,
        ping: await cutPing?.stop(),
        tunnelsKept: sameSerials(cutSerials, ikeSerials(lab, active, tunnelsOf(hub.name))),
        whole: await settledWhole(lab, hub.name),
    };
    log(
        `lab: link between the hub's gateways cut for ${CUT_HOLD_SECONDS} s: site ${result.ownerBefore} -> ${result.ownerAfter}, ${result.moves} move(s)${pingText(result.ping)}; ${wholeText(result.whole)}`,
    );
    return result;
}

/**
 * The agent initiates a tunnel it adds or re-keys on a standby too (it cannot tell): the standby's
 * failover script ends such a negotiation at its next round, touching nothing else.
 */
async function standbyNegotiation({ lab, log, hub, tunnelsOf }: Ctx): Promise<FailoverReport["standbyNegotiation"]> {
    const quiet = lab.sites[2];
    const [quietActive, quietStandby] = quiet.gateways.map((g) => g.name);
    const tunnel = tunnelsOf(quiet.name)[0];
    const hubActive = lab.owner(hub.name) ?? hub.gateways[1].name;
    const serials = () => `${ikeSerials(lab, quietActive, tunnelsOf(quiet.name))} ${ikeSerials(lab, hubActive, tunnelsOf(hub.name))}`;
    const before = serials();
    lab.initiate(quietStandby, tunnel);
    const started = (await lab.waitFor(() => lab.hasStates(quietStandby, tunnel), 10)) !== undefined;
    // Within two of its rounds: under the VM's emulation one run (CI-like, 3a391f6) still had states 79 s
    // after the initiation; the cause was not found, so a run that ends none now says what both ends did.
    const ended = started ? await lab.waitFor(() => !lab.hasStates(quietStandby, tunnel), 2 * STANDBY_ROUND_SECONDS + 15, 1000) : undefined;
    const result = {
        gateway: quietStandby,
        tunnel,
        started,
        endedSeconds: ended === undefined ? undefined : Math.round(ended),
        tunnelsKept: sameSerials(before, serials()),
    };
    log(
        `lab: ${tunnel} initiated on ${quietStandby}: ${started ? (ended === undefined ? "still negotiating" : `ended after ${Math.round(ended)} s`) : "no negotiation started"}; the actives' IKE SAs kept: ${result.tunnelsKept}`,
    );
    if (started && ended === undefined) {
        const tail = (text: string, n: number) => text.split("\n").slice(-n).join("\n");
        log(`lab: ${quietStandby}'s hubspoke-failover said:\n${tail(lab.failoverLog(quietStandby), 15)}`);
        log(`lab: ${quietStandby}'s pluto said:\n${tail(lab.plutoLog(quietStandby), 25)}`);
        log(`lab: state at ${quietStandby}:\n${lab.diagnose(quietStandby)}`);
    }
    return result;
}

async function failover(
    lab: FailoverLab,
    victim: string,
    standby: string,
    site: string,
    pingFrom: string,
    esp: boolean,
    log: (line: string) => void,
): Promise<FailoverMeasure> {
    const hub = lab.sites[0].name;
    const ping = esp ? lab.startPing(pingFrom, hub) : undefined;
    await sleep(2000);
    // Only what pluto logs from here on is read while the VM is measured.
    const logFrom = lab.plutoLogSize(standby);
    const failoversBefore = lab.metrics("Failovers", site).length;
    const killedAt = Date.now();
    lab.kill(victim);
    const moved = await lab.waitFor(() => lab.owner(site) === standby, 30);
    // From pluto's own log (its timestamps), read four times a second: polling with whack would start processes
    // in the VM it measures.
    const tunnels = lab.sites.find((s) => s.name === site)!.plan.tunnels;
    const backAtNow = () => lab.establishedSince(standby, tunnels, esp ? "Child SA" : "IKE", killedAt, logFrom);
    await lab.waitFor(() => backAtNow() !== undefined, 60, 250);
    const backAt = backAtNow();
    let trafficBack: number | undefined;
    if (esp) {
        // Traffic must flow again; then a few seconds more, so that a second outage would show.
        trafficBack = await lab.waitFor(() => lab.ping(pingFrom, hub, 1), 30, 1000);
        await sleep(5000);
    }
    const run = await ping?.stop();
    await settleFailover(lab, { standby, site, killedAt, failoversBefore });
    const ec2 = lab.ec2Answers(site, standby, killedAt);
    const after = (t?: number) => (t === undefined ? "-" : `${((t - killedAt) / 1000).toFixed(1)} s`);
    // Routes only: the dead gateway still has its `active` file (nothing ran on it to remove it).
    const routes = lab.routeTargets(site);
    const m: FailoverMeasure = {
        killed: victim,
        killedAt,
        tookOver: lab.owner(site),
        ownerMovedSeconds: moved === undefined ? undefined : Math.round(moved * 10) / 10,
        tunnelsBackSeconds: backAt === undefined ? undefined : Math.round((backAt - killedAt) / 100) / 10,
        ping: run,
        routesFollowed: routes.length > 0 && routes.every((r) => r === standby),
        routedWithAssociation:
            ec2.associated !== undefined && ec2.firstRouted !== undefined && ec2.firstRouted < ec2.associated + LAB_EC2_LATENCY_MS,
    };
    // Then where the time went, from the events themselves: the EC2 answers (the data plane had moved by then).
    log(
        `lab: ${victim} killed: site ${site} on ${m.tookOver} after ${m.ownerMovedSeconds ?? "-"} s, tunnels up on it after ${m.tunnelsBackSeconds ?? "-"} s${pingText(run)}; routes on ${[...new Set(routes)].join(",")}\n` +
            `lab: ${victim} killed: EC2 answered associate-address after ${after(ec2.associated)}, the last replace-route after ${after(ec2.routed)}; every tunnel established on ${standby} after ${after(backAt)}`,
    );
    if (
        m.ownerMovedSeconds === undefined ||
        m.tunnelsBackSeconds === undefined ||
        (esp && trafficBack === undefined) ||
        (run && run.longestGapSeconds > MAX_FAILOVER_GAP_SECONDS)
    ) {
        explainFailover(lab, { standby, site, pingFrom, trafficLost: esp && trafficBack === undefined }, log);
    }
    return m;
}

/**
 * Waits until a failover is over: past the peers' dead-peer detection, which restarts their side once
 * (PEER_DPD_AFTERMATH_SECONDS), every route moved, and the failover counted by the new active (once
 * the routes have moved, off the traffic's path), so that the next step counts only its own.
 */
async function settleFailover(
    lab: FailoverLab,
    f: { readonly standby: string; readonly site: string; readonly killedAt: number; readonly failoversBefore: number },
): Promise<void> {
    // Meanwhile the operator's side loads (seconds in the VM), which the planned handovers need: nothing
    // is measured while this waits.
    const loading = operatorSide();
    await sleep(Math.max(0, f.killedAt + PEER_DPD_AFTERMATH_SECONDS * 1000 - Date.now()));
    await loading;
    await lab.waitFor(() => lab.ec2Answers(f.site, f.standby, f.killedAt).routed !== undefined, 15, 500);
    await lab.waitFor(() => lab.metrics("Failovers", f.site).length > f.failoversBefore, 60, 500);
}

/** Why a failover missed its goal: what the new active's failover script and pluto said, and the other end's view. */
function explainFailover(
    lab: FailoverLab,
    w: { readonly standby: string; readonly site: string; readonly pingFrom: string; readonly trafficLost: boolean },
    log: (line: string) => void,
): void {
    const tail = (text: string, n: number) =>
        text
            .split("\n")
            .filter((l) => !/adjusting|dumpdir|^Terminated/.test(l))
            .slice(-n)
            .join("\n");
    log(
        `lab: ${w.trafficLost ? "traffic did not come back; " : ""}${w.standby}'s hubspoke-failover said:\n${tail(lab.failoverLog(w.standby), 12)}`,
    );
    log(`lab: ${w.standby}'s pluto said:\n${tail(lab.plutoLog(w.standby), 25)}`);
    // The other end of the pinged tunnel, and the kernel's view at both ends.
    const hub = lab.sites[0].name;
    const peerSite = w.site === hub ? w.pingFrom : hub;
    const peer = lab.owner(peerSite);
    if (peer !== undefined) {
        log(`lab: ${peer}'s pluto said:\n${tail(lab.plutoLog(peer), 25)}`);
    }
    log(`lab: state at both ends:\n${lab.diagnose(w.standby)}${peer === undefined ? "" : `\n${lab.diagnose(peer)}`}`);
}

/**
 * The site once the failover scripts have had their say: a gateway that lost the Elastic IP steps
 * down at its next owner check (every `ownerCheckSeconds`), so wait up to one of those.
 */
async function settledWhole(lab: FailoverLab, site: string): Promise<SiteWhole> {
    await lab.waitFor(() => lab.siteConsistent(site).consistent, FAILOVER.ownerCheckSeconds + 15, 1000);
    return lab.siteConsistent(site);
}

function wholeText(w: SiteWhole): string {
    return w.consistent
        ? `Elastic IP, routes and belief on ${w.owner}`
        : `NOT whole: Elastic IP on ${w.owner ?? "none"}, routes on ${[...new Set(w.routes)].join(",")}, active per its script: ${w.believers.join(",") || "none"}`;
}

/** Pings lost apart from the longest gap: a second, shorter outage (the peers' dead-peer detection restarting, say). */
export function lostOutsideGap(p: PingRun): number {
    return p.lost - Math.round(p.longestGapSeconds / p.intervalSeconds);
}

function pingText(p?: PingRun): string {
    return p ? `; ping ${p.received}/${p.sent} answered, longest gap ${p.longestGapSeconds} s` : "";
}

/** Per tunnel, the serials of the gateway's established IKE SAs, and pluto's pid: unchanged means untouched SAs. */
function ikeSerials(lab: FailoverLab, gateway: string, tunnels: readonly string[]): string {
    return `${lab.plutoPid(gateway)} ${tunnels.map((t) => `${t}:${lab.ikeSerials(gateway, t).join(",")}`).join(" ")}`;
}

function sameSerials(a: string, b: string): boolean {
    return a === b && !/:( |$)/.test(a);
}

/** True when the report shows every check passing at the layer the kernel could prove. */
export function failoverPassed(r: FailoverReport): boolean {
    const measured = (m?: FailoverMeasure) =>
        m !== undefined &&
        m.tookOver !== m.killed &&
        m.ownerMovedSeconds !== undefined &&
        m.tunnelsBackSeconds !== undefined &&
        m.routesFollowed === true &&
        m.routedWithAssociation === true &&
        (r.kernelHasEsp
            ? m.ping !== undefined && m.ping.sent > 0 && m.ping.longestGapSeconds <= MAX_FAILOVER_GAP_SECONDS
            : m.tunnelsBackSeconds <= MAX_FAILOVER_GAP_SECONDS);
    return (
        r.initialSeconds !== undefined &&
        measured(r.hub) &&
        measured(r.spoke) &&
        r.returned !== undefined &&
        r.returned.owner === r.hub?.tookOver &&
        r.returned.failoversAfter === 0 &&
        r.returned.tunnelsKept &&
        r.returned.whole.consistent &&
        (r.kernelHasEsp || (r.blip?.moves === 0 && r.blip.whole.consistent)) &&
        (!r.kernelHasEsp || (r.returned.ping !== undefined && r.returned.ping.sent > 0 && r.returned.ping.lost === 0)) &&
        r.cut !== undefined &&
        r.cut.moves <= 1 &&
        r.cut.whole.consistent &&
        (!r.kernelHasEsp || (r.cut.ping !== undefined && r.cut.ping.sent > 0 && r.cut.ping.longestGapSeconds <= 1)) &&
        (r.kernelHasEsp ||
            (r.standbyNegotiation?.started === true &&
                r.standbyNegotiation.endedSeconds !== undefined &&
                r.standbyNegotiation.tunnelsKept)) &&
        handoversPassed(r) &&
        r.metrics !== undefined &&
        // The hub's failover, plus the cut's move if there was one: every move counted once (the blip's: none).
        r.metrics[r.hub!.killed.replace(/-standby$/, "")]?.failovers === 1 + r.cut.moves
    );
}

/** Each planned handover moved the site where it should, within the goal (with ESP), never leaving the site without a gateway. */
/** A drain, or the replacement of the gateway that held the site: a handover. An undrain, or the replacement of the other: nothing moves. */
function movesSite(h: HandoverMeasure): boolean {
    return h.ownerBefore === h.gateway;
}

/** The longest traffic gap allowed (the test's bound) and hoped for (the goal): none where nothing moves. */
export function handoverGapLimits(h: HandoverMeasure): { goal: number; bound: number } {
    return movesSite(h) ? { goal: HANDOVER_GAP_GOAL_SECONDS, bound: MAX_HANDOVER_GAP_SECONDS } : { goal: 0, bound: 0 };
}

export function handoverPassed(h: HandoverMeasure, esp: boolean): boolean {
    return (
        (movesSite(h) ? h.ownerAfter !== h.gateway && h.movedSeconds !== undefined : h.ownerAfter === h.ownerBefore) &&
        (h.kind !== "replacement" || h.partnerHeldAtStop === true) &&
        h.bothReady &&
        h.whole.consistent &&
        (!esp || (h.ping !== undefined && h.ping.sent > 0 && h.ping.longestGapSeconds <= handoverGapLimits(h).bound))
    );
}

/** The drain, the undrain, then the rolling replacement of the hub's pair and of the spoke's. */
export const HANDOVER_STEPS = 6;

function handoversPassed(r: FailoverReport): boolean {
    return r.handovers?.length === HANDOVER_STEPS && r.handovers.every((h) => handoverPassed(h, r.kernelHasEsp));
}

function handoverText(h: HandoverMeasure, esp: boolean): string {
    const { goal, bound } = handoverGapLimits(h);
    const gap = h.ping
        ? `; traffic gap ${h.ping.longestGapSeconds} s (${h.ping.lost} of ${h.ping.sent} pings lost, one every ${h.ping.intervalSeconds} s; goal ${goal} s ${h.ping.longestGapSeconds <= goal ? "met" : "NOT met"}, bound ${bound} s ${handoverPassed(h, esp) ? "kept" : "NOT kept"})`
        : "";
    const stop = h.kind === "replacement" ? `, partner held the site when the instance went: ${h.partnerHeldAtStop}` : "";
    return `  ${h.kind} of ${h.gateway}: site ${h.ownerBefore} -> ${h.ownerAfter}${h.movedSeconds !== undefined ? ` after ${h.movedSeconds} s` : ""}${stop}, both ready: ${h.bothReady}${gap}; ${wholeText(h.whole)}`;
}

export function formatFailover(r: FailoverReport): string {
    const m = (label: string, x?: FailoverMeasure) =>
        x
            ? `  ${label}: ${x.killed} killed -> ${x.tookOver} active; Elastic IP moved after ${x.ownerMovedSeconds ?? "-"} s, tunnels up after ${x.tunnelsBackSeconds ?? "-"} s; ` +
              `routes followed: ${x.routesFollowed}, first route sent with the association: ${x.routedWithAssociation}` +
              (x.ping
                  ? `; traffic gap ${x.ping.longestGapSeconds} s (${x.ping.lost} of ${x.ping.sent} pings lost, ${lostOutsideGap(x.ping)} of them outside it, one every ${x.ping.intervalSeconds} s; ` +
                    `goal ${MAX_FAILOVER_GAP_SECONDS} s ${x.ping.longestGapSeconds <= MAX_FAILOVER_GAP_SECONDS ? "met" : "NOT met"})`
                  : "")
            : `  ${label}: not reached`;
    return [
        `failover (layer proven: ${r.layer}${r.kernelHasEsp ? "" : "; traffic needs --vm"})`,
        m("hub failover", r.hub),
        m("spoke failover", r.spoke),
        r.returned
            ? `  return: site on ${r.returned.owner}, ${r.returned.failoversAfter} further failover(s), active's IKE SAs kept: ${r.returned.tunnelsKept}${r.returned.ping ? `, ${r.returned.ping.lost} of ${r.returned.ping.sent} pings lost` : ""}; ${wholeText(r.returned.whole)}`
            : "  return: not reached",
        ...(r.handovers ? r.handovers.map((h) => handoverText(h, r.kernelHasEsp)) : ["  planned handovers: not reached"]),
        r.blip
            ? `  blip between the hub's gateways (${BLIP_SECONDS} s): ${r.blip.moves} move(s); ${wholeText(r.blip.whole)}`
            : r.kernelHasEsp
              ? "  blip: proven on this machine's kernel (control plane only)"
              : "  blip: not reached",
        r.cut
            ? `  cut between the hub's gateways (${CUT_HOLD_SECONDS} s): ${r.cut.moves} move(s), site ${r.cut.ownerBefore} -> ${r.cut.ownerAfter}, IKE SAs kept: ${r.cut.tunnelsKept}${r.cut.ping ? `, longest gap ${r.cut.ping.longestGapSeconds} s` : ""}; ${wholeText(r.cut.whole)}`
            : "  cut: not reached",
        r.standbyNegotiation
            ? `  negotiation on a standby (${r.standbyNegotiation.tunnel} on ${r.standbyNegotiation.gateway}): ${r.standbyNegotiation.started ? `ended after ${r.standbyNegotiation.endedSeconds ?? "-"} s` : "did not start"}, the actives' IKE SAs kept: ${r.standbyNegotiation.tunnelsKept}`
            : r.kernelHasEsp
              ? "  negotiation on a standby: proven on this machine's kernel (control plane only)"
              : "  negotiation on a standby: not reached",
        r.events
            ? `  events in CloudWatch Logs: ${r.events.map((e) => `${e.event} of ${e.gateway} (${e.cause}) ${e.seconds === undefined ? "NEVER" : `after ${e.seconds} s`}`).join("; ")}`
            : r.kernelHasEsp
              ? "  events in CloudWatch Logs: proven on this machine's kernel"
              : "",
        r.metrics
            ? `  metrics: ${Object.entries(r.metrics)
                  .map(([s, v]) => `${s} Failovers ${v.failovers}, StandbyReady ${v.standbyReady ? 1 : "-"}`)
                  .join("; ")}`
            : "",
        r.iam ? `  IAM: ${r.iam.allowed} calls authorized, ${r.iam.denied} denied (each gateway's rendered policies)` : "",
        `  ${failoverPassed(r) ? "PASSED" : "FAILED"}`,
    ].join("\n");
}
