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
