/**
 * Reading pluto's log (libreswan 4.x). Pure: text in, facts out.
 */

/**
 * What pluto logs, on the IKE SA of a conn, when a liveness check (IKEv2 dead peer detection) went
 * unanswered past `retransmit-timeout`: `liveness action - ` and the conn's `dpdaction`
 * (restart: "restarting all connections that share this peer"; hold: "putting connection into
 * hold"; clear: "clearing connection kind CK_..."). libreswan's own test suite waits for this line.
 * Nothing else counts: in particular not the `DPD=active` that every established Child SA's line
 * carries, nor a retransmit timeout of some other exchange.
 */
const LIVENESS_FAILURE =
    /^(?:[A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d\.\d+: )?"([^"]+)"(?:\[\d+\])?(?: \S+)? #\d+: liveness action - (?:restarting all connections that share this peer|putting connection into hold|clearing connection kind \S+)$/;

/** True when `line` is pluto's liveness failure (a dead peer detected) for the conn `tunnel`. */
export function isLivenessFailure(line: string, tunnel: string): boolean {
    return LIVENESS_FAILURE.exec(line.trim())?.[1] === tunnel;
}

/** The first liveness failure of `tunnel` in a piece of pluto's log, trimmed; undefined when there is none. */
export function findLivenessFailure(log: string, tunnel: string): string | undefined {
    return log
        .split("\n")
        .find((l) => isLivenessFailure(l, tunnel))
        ?.trim();
}

/** pluto's "established" lines: its timestamp (local time, to the microsecond), the conn, and the SA's kind. */
const ESTABLISHED = /^(\w{3} +\d+ \d\d:\d\d:\d\d\.\d+): "([^"]+)"[^ ]* #\d+: (?:initiator|responder) established (IKE SA|Child SA)/gm;

/**
 * When (ms since the epoch) every one of `tunnels` had an IKE SA, and with "Child SA" also a Child SA,
 * established at or after `sinceMs`, by pluto's own timestamps in `log`: the time of the last of them
 * to come up; undefined while one is missing. pluto logs no year: it is taken from `sinceMs`.
 */
export function allEstablishedAt(log: string, tunnels: readonly string[], layer: "IKE" | "Child SA", sinceMs: number): number | undefined {
    const year = new Date(sinceMs).getFullYear();
    const first = new Map<string, number>();
    for (const m of log.matchAll(ESTABLISHED)) {
        // Date parses the first three decimals of the seconds.
        const at = new Date(m[1].replace(/(\.\d{3})\d*$/, "$1").replace(/^(\w{3} +\d+)/, `$1 ${year}`)).getTime();
        const key = `${m[2]} ${m[3]}`;
        if (at >= sinceMs && !first.has(key)) {
            first.set(key, at);
        }
    }
    const times = tunnels.flatMap((t) => (layer === "IKE" ? [`${t} IKE SA`] : [`${t} IKE SA`, `${t} Child SA`]).map((k) => first.get(k)));
    return times.every((x) => x !== undefined) ? Math.max(...(times as number[])) : undefined;
}
