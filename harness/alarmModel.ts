/**
 * CloudWatch's documented alarm evaluation, for one datapoint a period, as a model to state and test
 * what an alarm of this program does over a timeline (AWS docs, "Evaluating an alarm" and
 * "Configuring how CloudWatch alarms treat missing data"):
 *   - a new alarm starts in INSUFFICIENT_DATA and acts only when its state changes;
 *   - each period it looks at the last `evaluationPeriods` datapoints; ALARM when at least
 *     `datapointsToAlarm` of them breach;
 *   - missing datapoints count as breaching (`breaching`) or not (`notBreaching`); with `missing`,
 *     INSUFFICIENT_DATA when every one is missing; with `ignore`, the state is kept then; otherwise
 *     only the present ones count.
 * Where the docs leave the outcome open (some present but too few to decide), the model keeps the
 * state. The model looks back exactly `evaluationPeriods`; CloudWatch's evaluation range can reach
 * further back, so a change the model makes at period t comes at t or later on AWS. Periods before
 * the first report count as missing (a new metric).
 */

/** What one gateway reported in one period, if anything. */
export type Report = number | undefined;

export type AlarmState = "OK" | "ALARM" | "INSUFFICIENT_DATA";

export interface ModelledAlarm {
    readonly statistic: string;
    readonly evaluationPeriods: number;
    readonly datapointsToAlarm?: number;
    readonly threshold: number;
    readonly comparisonOperator: string;
    readonly treatMissingData: string;
    readonly alarmActions?: readonly unknown[];
    readonly okActions?: readonly unknown[];
    readonly insufficientDataActions?: readonly unknown[];
}

export interface AlarmRun {
    /** The state after each period. */
    readonly states: AlarmState[];
    /** Every state change that had an action: the period it happened in and the new state. */
    readonly notifications: { readonly period: number; readonly state: AlarmState }[];
}

const COMPARE: Record<string, (v: number, t: number) => boolean> = {
    LessThanThreshold: (v, t) => v < t,
    LessThanOrEqualToThreshold: (v, t) => v <= t,
    GreaterThanThreshold: (v, t) => v > t,
    GreaterThanOrEqualToThreshold: (v, t) => v >= t,
};

/** The statistic of one period holding at most one report. */
function datapoint(statistic: string, r: Report): number | undefined {
    if (r === undefined) {
        return undefined;
    }
    switch (statistic) {
        case "SampleCount":
            return 1;
        case "Maximum":
        case "Minimum":
        case "Average":
        case "Sum":
            return r;
        default:
            throw new Error(`alarm model: statistic ${statistic} is not modelled`);
    }
}

/** Runs an alarm over one report (or none) per period, from the period it was created in. */
export function runAlarm(alarm: ModelledAlarm, reports: readonly Report[]): AlarmRun {
    const breaches = COMPARE[alarm.comparisonOperator];
    if (!breaches || !["breaching", "notBreaching", "missing", "ignore"].includes(alarm.treatMissingData)) {
        throw new Error(`alarm model: ${alarm.comparisonOperator} / ${alarm.treatMissingData} is not modelled`);
    }
    const n = alarm.evaluationPeriods;
    const m = alarm.datapointsToAlarm ?? n;
    const points = reports.map((r) => datapoint(alarm.statistic, r));
    const actions: Record<AlarmState, readonly unknown[] | undefined> = {
        ALARM: alarm.alarmActions,
        OK: alarm.okActions,
        INSUFFICIENT_DATA: alarm.insufficientDataActions,
    };
    let state: AlarmState = "INSUFFICIENT_DATA";
    const states: AlarmState[] = [];
    const notifications: { period: number; state: AlarmState }[] = [];
    for (let t = 0; t < points.length; t++) {
        const window = Array.from({ length: n }, (_, i) => points[t - n + 1 + i]);
        const present = window.filter((p): p is number => p !== undefined);
        const missing = n - present.length;
        const breaching = present.filter((p) => breaches(p, alarm.threshold)).length;
        let next: AlarmState = state;
        if (alarm.treatMissingData === "breaching") {
            next = breaching + missing >= m ? "ALARM" : "OK";
        } else if (alarm.treatMissingData === "notBreaching") {
            next = breaching >= m ? "ALARM" : "OK";
        } else if (present.length === 0) {
            next = alarm.treatMissingData === "missing" ? "INSUFFICIENT_DATA" : state;
        } else if (breaching >= m) {
            next = "ALARM";
        } else if (present.length - breaching > n - m) {
            next = "OK"; // ALARM is out of reach even if every missing one breached
        }
        if (next !== state && (actions[next]?.length ?? 0) > 0) {
            notifications.push({ period: t, state: next });
        }
        state = next;
        states.push(state);
    }
    return { states, notifications };
}

/** The notifications an on-call engineer is paged for: into ALARM, or into INSUFFICIENT_DATA where that has an action. */
export function pages(run: AlarmRun): { period: number; state: AlarmState }[] {
    return run.notifications.filter((n) => n.state !== "OK");
}
