/**
 * The gateway's contract: every fact that the program, the renderer, the scripts on the instance,
 * the lab and the tests must agree on. Pure values and small pure functions, nothing else.
 *
 * The shell scripts (gateway/*.sh) read these values from the rendered env file `GATEWAY_PATHS.env`
 * (see `renderGatewayEnv`), never from defaults of their own; tests/unit/contract.test.ts fails if
 * a script names a value this module owns.
 */

/** Where things live on the instance. */
export const GATEWAY_PATHS = {
    /** libreswan's include directory: one `<tunnel>.conf` and `<tunnel>.secrets` per tunnel end. */
    ipsecDir: "/etc/ipsec.d",
    /** libreswan's main config, which includes `ipsecDir/*.conf` (Amazon Linux 2023's default). */
    ipsecConf: "/etc/ipsec.conf",
    /** The env file every gateway script sources. */
    env: "/etc/hubspoke-vpn/gateway.env",
    /** hubspoke-bootstrap's settings, the one settings file the user data carries: where the software is. */
    bootstrapEnv: "/etc/hubspoke-vpn/bootstrap.env",
    /** nftables rules that clamp the TCP MSS of forwarded traffic. */
    mssClamp: "/etc/hubspoke-vpn/mss-clamp.nft",
    /** The agent's state: versions applied, tunnels desired, tunnels left out, re-authentications due. */
    stateDir: "/var/lib/hubspoke-vpn",
    agentScript: "/usr/local/sbin/hubspoke-agent",
    /** The one script the user data carries: installs the packages and the software, starts the units. */
    bootstrapScript: "/usr/local/sbin/hubspoke-bootstrap",
    /** The units hubspoke-bootstrap enables and starts, one line, space-separated (part of the software). */
    unitsFile: "/etc/hubspoke-vpn/units",
    healthScript: "/usr/local/sbin/hubspoke-health",
    /** Ships the tunnel events to CloudWatch Logs (hubspoke-events.service runs it every few seconds). */
    eventsScript: "/usr/local/sbin/hubspoke-events",
    /** Only on gateways of a site with a standby: decides which of the two is active, and moves the site to it. */
    failoverScript: "/usr/local/sbin/hubspoke-failover",
    /**
     * Only on gateways of a site with a standby: libreswan defaults for every conn of the gateway
     * (a `conn %default`, included before the tunnels' files; no managed marker, so the agent leaves it).
     */
    pairDefaults: "/etc/ipsec.d/00-hubspoke-pair.conf",
    /** Runtime state (tmpfs, gone at reboot): `active` exists while this gateway owns the site. */
    runDir: "/run/hubspoke-vpn",
    /** pluto's pid file (ipsec.service): a new pid on the active means its conns need initiating again. */
    plutoPid: "/run/pluto/pluto.pid",
    sysctl: "/etc/sysctl.d/90-hubspoke-vpn.conf",
    systemdDir: "/etc/systemd/system",
} as const;

/** The files the agent keeps in `GATEWAY_PATHS.stateDir`. */
export const AGENT_STATE_FILES = {
    /** `<tunnel>.<addedAt>`: when the agent first wrote the tunnel (the health script's grace period starts there). */
    addedAt: "added-at",
    /** `<tunnel>.<upOnce>`: the tunnel has been up at least once since it was added. */
    upOnce: "up-once",
    /** `<parameter name> <version>` per parameter last applied (or last refused as invalid). */
    versions: "versions",
    /** Every tunnel this gateway should terminate, one name a line (the health script reports each). */
    tunnels: "tunnels",
    /** `<tunnel> <reason>` per tunnel left out because its desired state is missing or invalid. */
    leftOut: "left-out",
    /** Exists while the gateway's drain parameter says `drained` (only in a site with a standby). */
    drained: "drained",
    /** `<serial>@<add_time> <tunnel> <inBytes> <outBytes>` per Child SA at hubspoke-health's last report. */
    traffic: "traffic",
    /** hubspoke-events' files: `events.cursor` (the journal's), `events.spool` (not yet delivered), `events.memory`. */
    events: "events",
} as const;

/**
 * Pre-shared keys: what the program generates and what the agent accepts. The alphabet is letters,
 * digits and `PSK.special`, all safe inside the quoted PSK of an ipsec.secrets line.
 */
export const PSK = { length: 48, minLength: 32, special: "-_.+=~" } as const;

/** The bracket expression of the key alphabet (`A-Za-z0-9._+=~-`), for regular expressions in TS and bash alike. */
export function pskCharacterClass(): string {
    // `-` last so that it is literal in both languages.
    return `A-Za-z0-9${PSK.special.replace("-", "")}-`;
}

/** Tunnel names (`<hub>-to-<spoke>`, from region names): what the agent accepts as a path component. */
export const TUNNEL_NAME_PATTERN = "[a-z0-9-]+";

/**
 * The secrets line, `<local Elastic IP> <peer Elastic IP> : PSK "<key>"`, as an extended regular
 * expression that bash and JavaScript read alike; its group is the key.
 */
export function secretsLinePattern(): string {
    return `^[0-9.]+ [0-9.]+ : PSK "([${pskCharacterClass()}]+)"$`;
}

/**
 * The only keys a conn from Parameter Store may set: what render/libreswan.ts writes. Anything else
 * (`leftupdown=`, which pluto runs as root, above all) makes the agent refuse the conn, so that write
 * access to a parameter is not a way onto the gateway.
 */
export const CONN_KEYS = [
    "type",
    "authby",
    "ikev2",
    "left",
    "leftid",
    "leftsubnet",
    "right",
    "rightid",
    "rightsubnet",
    "ike",
    "esp",
    "pfs",
    "ikelifetime",
    "salifetime",
    "dpddelay",
    "retransmit-timeout",
    "dpdaction",
    "keyingtries",
    "auto",
] as const;

/**
 * How long the health script keeps quiet about a tunnel that has never been up since the agent added
 * it: the peer's gateway may still be booting (a new spoke's first boot takes minutes). Silence keeps
 * its alarm from paging; a tunnel still not up after this reports down, and pages.
 */
export const NEW_TUNNEL_GRACE_SECONDS = 900;

/** True when `psk` is a key the gateways accept. */
export function isUsablePsk(psk: string): boolean {
    return psk.length >= PSK.minLength && new RegExp(`^[${pskCharacterClass()}]+$`).test(psk);
}

/** The tag that marks what forwards traffic (gateway instances and interfaces); the policy pack checks it. */
export const GATEWAY_TAG = { key: "Role", value: "vpn-gateway" } as const;

/**
 * The gateways' metrics (CloudWatch); the gateways' IAM condition names the namespace too.
 *   TunnelUp      per tunnel end, from the active gateway: 1 up, 0 down
 *   StandbyReady  per site with a standby, from the standby: 1 while it is ready to take over
 *   Failovers     per site with a standby, 1 each time a standby took over the site
 */
export const METRIC = {
    namespace: "HubspokeVpn",
    tunnelUp: "TunnelUp",
    /**
     * Bytes received and sent through a tunnel end in the period, from its Child SAs' counters, which
     * count each ESP packet: the inner packet and its encapsulation (measured +10.1% over a bulk TCP
     * transfer's payload; README, Operations). Named as AWS Site-to-Site VPN names its own, so that
     * dashboards and queries carry over.
     */
    tunnelDataIn: "TunnelDataIn",
    tunnelDataOut: "TunnelDataOut",
    standbyReady: "StandbyReady",
    failovers: "Failovers",
    /** 1 while a gateway's first boot has not finished after `BOOTSTRAP.reportAfterSeconds`; 0 once it has. */
    bootstrapPending: "GatewayBootstrapPending",
} as const;

/** A gateway's first boot (gateway/hubspoke-bootstrap.sh). */
export const BOOTSTRAP = {
    /**
     * Seconds after which a first boot still retrying reports GatewayBootstrapPending 1. A normal
     * first boot (packages, software, units) takes about a minute.
     */
    reportAfterSeconds: 600,
} as const;

/**
 * How a site's standby watches its active gateway and takes over (gateway/hubspoke-failover.sh).
 * The standby pings twice a second, in parallel: the active's private IP across the VPC, and each
 * peer gateway's private IP through the tunnels (its packets take the VPC's routes to the active).
 * The active is failed only when no target has answered `confirmProbes` echoes in a row (2 s), so a
 * blip shorter than that moves nothing, and a cut between the two gateways alone (the tunnels still
 * carry the probes) moves nothing either. A late answer counts as an answer. The takeover (Elastic
 * IP, routes, IKE) follows at once: the budget is 10 s of lost traffic, and the peers' own dead-peer
 * detection restarts their side about 10 s after the last answer, so the new active should be up first.
 */
export const FAILOVER = {
    /** Seconds between probe rounds (an echo not answered before the next one counts as a miss, until answered). */
    probeIntervalSeconds: 0.5,
    /** Each ping waits this long for its answer. */
    probeTimeoutSeconds: 1,
    /** Echoes in a row that no target answered before the standby takes over (4 rounds: 2 s). */
    confirmProbes: 4,
    /** The active checks this often that the site's Elastic IP is still its own (else it steps down). */
    ownerCheckSeconds: 20,
    /** The standby checks this often where the Elastic IP is (on itself after a restart; on no gateway). */
    standbyOwnerCheckSeconds: 60,
    /** The active checks this often that every route to the peers targets it (and repairs the rest). */
    routeCheckSeconds: 60,
    /**
     * A gateway that stepped down while alive (the other took the site) takes it back only from an
     * active it has seen answer since, or after this long: a partition between the two gateways,
     * where each sees the other dead, moves the site at most once in this time instead of flapping.
     */
    stepDownHoldSeconds: 300,
    /**
     * A standby that has not yet seen the active answer since it started waits this long before it
     * may take over: the start of its own probes (or of the whole host) must not look like a dead active.
     */
    firstSightGraceSeconds: 30,
    /** An Elastic IP on no gateway is claimed at once by the primary, by the standby after this long. */
    unownedGraceSeconds: 60,
    /** The standby reports StandbyReady this often. */
    metricIntervalSeconds: 60,
    /**
     * A planned handover: the active gateway that is drained or shutting down answers its standby's
     * probes with this IP TTL (its kernel's default TTL, set for the handover only). The standby reads
     * it from its ping's own output and, if it is ready, takes over at once instead of after
     * `confirmProbes` missed echoes. It accepts up to 7 less (a router between the two subnets takes
     * one off a hop). No other host sends 170-177: Linux and AL2023 send 64, Windows 128, others 255.
     */
    handoverTtl: 177,
    /** The active waits this long for the standby to take the site; then it keeps it, and says so. */
    handoverWaitSeconds: 20,
    /** A drained active that could not hand over tries again this often. */
    handoverRetrySeconds: 60,
} as const;

/**
 * The tunnel events a gateway ships to CloudWatch Logs (gateway/hubspoke-events.sh), by the name its
 * events carry in `event`, with what each means. The script's catalogue and this list must agree
 * (tests/unit/events.test.ts); docs/events.md quotes the lines each comes from.
 */
export const TUNNEL_EVENTS = {
    established: "the Child SA (and its IKE SA) is established: the tunnel is up",
    rekeyed: "an IKE or Child SA was replaced by a new one before it expired (routine)",
    "deleted-by-peer": "the peer deleted the SA (its pluto stopped or took the tunnel down)",
    "authentication-failed": "the pre-shared keys of the two ends differ",
    "no-proposal-chosen": "the two ends share no IKE or ESP proposal",
    "traffic-selectors-refused": "the two ends' subnets (leftsubnet, rightsubnet) do not match: TS_UNACCEPTABLE",
    "retransmits-exhausted": "the peer never answered: unreachable, or not running",
    "dead-peer": "an established peer stopped answering liveness checks (dead-peer detection)",
    "left-out": "hubspoke-agent left the tunnel out: its parameters are missing or refused",
    "agent-changed": "hubspoke-agent added, changed, re-keyed or removed the tunnel",
    takeover: "this gateway took its site over (hubspoke-failover)",
    "step-down": "this gateway stopped being its site's active gateway",
    handover: "a planned handover of the site: asked, refused, or not taken in time",
} as const;

export type TunnelEvent = keyof typeof TUNNEL_EVENTS;

/**
 * How a gateway ships its tunnel events (gateway/hubspoke-events.sh). Bounds: one event per kind and
 * tunnel per `coalesceSeconds` (later ones within the window are counted in the next one's
 * `repeats`), so a flapping tunnel sends at most `Object.keys(TUNNEL_EVENTS).length` events a minute.
 */
export const EVENTS = {
    /** hubspoke-events runs this often: an event reaches CloudWatch Logs within this plus a call. */
    intervalSeconds: 10,
    coalesceSeconds: 60,
    /** Events kept while CloudWatch Logs cannot be reached (a day of a flapping tunnel's worth is far more than 10 minutes). */
    spoolMax: 20_000,
    /** Events per PutLogEvents call (AWS allows 10,000 and 1 MB; ours are under 1 KB each). */
    batch: 500,
    /** The units whose journal lines hubspoke-events reads. */
    units: [
        "ipsec.service",
        "hubspoke-agent.service",
        "hubspoke-agent-boot.service",
        "hubspoke-failover.service",
        "hubspoke-handover.service",
    ],
    /** Days CloudWatch Logs keeps the events unless the stack sets `eventLogRetentionDays`. */
    defaultRetentionDays: 90,
} as const;

/** The log group of a gateway's tunnel events, one per gateway (its stream: `eventLogStreamName`). */
export function eventLogGroupName(stack: string, gateway: string): string {
    return `/hubspoke-vpn/${stack}/tunnel-events/${gateway}`;
}

/** The log stream a gateway writes its events to, in its own group: the gateway's name. */
export function eventLogStreamName(gateway: string): string {
    return gateway;
}

/** What the drain parameter holds while its gateway is drained (README, Day two). */
export const DRAINED = "drained";

/**
 * SSM name of a gateway's drain parameter, under its desired-state path so that its agent reads it
 * with the tunnels (no other permission). Written by an operator (`npm run site -- drain`) or by the
 * program's handover hook, never by the program's resources: `pulumi up` leaves it alone.
 */
export function drainParameterName(parameterPath: string): string {
    return `${parameterPath}/drain`;
}

/**
 * TCP MSS the gateways clamp forwarded SYNs to. The path between gateways crosses internet
 * gateways, limited to 1500 bytes, while instances send 9001. The worst case of our ESP proposals
 * in UDP encapsulation (NAT-T) is AES-CBC with SHA-256: outer IPv4 20 + UDP 8 + ESP header 8 +
 * IV 16 + ICV 16 = 68 bytes, and the encrypted part (inner packet + 2 trailer bytes + padding)
 * must be a multiple of 16: 1500 - 68 = 1432 -> 1424 -> inner packet at most 1422 bytes, TCP MSS
 * 1422 - 20 (IPv4) - 20 (TCP) = 1382 (AES-GCM allows 1394). 1360 keeps 22 bytes for IP/TCP
 * options beyond the 12 of timestamps, which Linux already subtracts from the MSS it uses.
 */
export const TCP_MSS = 1360;

/** The first line of every conn the program renders contains this; the agent manages (and may remove) only such files. */
export const MANAGED_MARKER = "managed by hubspoke-vpn";

/** Listing attempts of the agent's boot run (2 and 4 s apart, each call bounded to 20 s) before ipsec starts from the last good files. */
export const BOOT_FETCH_ATTEMPTS = 3;

/** Seconds between a key change and the re-authentication of its tunnel (both ends must have the new key). */
export const REAUTH_DELAY_SECONDS = 420;

/** Everything the gateway scripts read from `GATEWAY_PATHS.env`. */
export interface GatewayIdentity {
    readonly stack: string;
    /** The region name (config `regions[].name`), e.g. `virginia`. */
    readonly regionName: string;
    readonly awsRegion: string;
    /** SSM path of this gateway's desired state, e.g. `/hubspoke-vpn/prod/virginia/tunnels`. */
    readonly parameterPath: string;
    /** Only in a site with a standby: this gateway's name in the site's failover layout, and where that layout is. */
    readonly failover?: { readonly gateway: string; readonly parameter: string };
}

/** A gateway's software in SSM (render/software.ts): the gateway's name, the path of its parts, the sha256 of the gzip file they make. */
export interface SoftwareRef {
    /** `virginia`, `virginia-standby`. */
    readonly gateway: string;
    readonly path: string;
    readonly sha256: string;
}

/** Where every version of a gateway's software lives: `<prefix>/<gateway>/software` (its role may read below it). */
export function softwareParameterRoot(prefix: string, gateway: string): string {
    return `${prefix}/${gateway}/software`;
}

/** The software root of the gateway whose desired-state path is `parameterPath` (both under `<prefix>/<gateway>/`). */
export function softwareRootOf(parameterPath: string): string {
    if (!parameterPath.endsWith("/tunnels")) {
        throw new Error(`${parameterPath} is not a gateway's desired-state path (<prefix>/<gateway>/tunnels)`);
    }
    return `${parameterPath.slice(0, -"/tunnels".length)}/software`;
}

/** SSM path of one version of a gateway's software: `<prefix>/<gateway>/software/<first 16 hex of its sha256>`. */
export function softwareParameterPath(prefix: string, gateway: string, sha256: string): string {
    return `${softwareParameterRoot(prefix, gateway)}/${sha256.slice(0, 16)}`;
}

/** SSM name of a site's failover layout (both gateways read it): `<prefix>/<region name>/failover`. */
export function failoverParameterName(prefix: string, regionName: string): string {
    return `${prefix}/${regionName}/failover`;
}

/** The stack's SSM path prefix: every parameter of the stack is under it. */
export function stackParameterPrefix(stack: string): string {
    return `/hubspoke-vpn/${stack}`;
}

/** SSM path of one gateway's tunnel ends: `<prefix>/<region name>/tunnels`. */
export function gatewayParameterPath(prefix: string, regionName: string): string {
    return `${prefix}/${regionName}/tunnels`;
}

/** The two parameters of one tunnel end under its gateway's path: the conn (String) and the secrets line (SecureString). */
export function tunnelParameterNames(parameterPath: string, tunnel: string): { conf: string; secrets: string } {
    return { conf: `${parameterPath}/${tunnel}/conf`, secrets: `${parameterPath}/${tunnel}/secrets` };
}

/** SSM standard parameters hold at most 4 KB. */
export const SSM_STANDARD_MAX_BYTES = 4096;

/** A gateway's name: its site's region name, or its name in the site's failover layout (`virginia-standby`). */
export function gatewayNameOf(id: Pick<GatewayIdentity, "regionName" | "failover">): string {
    return id.failover?.gateway ?? id.regionName;
}

/** The env file of one gateway, sourced by hubspoke-agent and hubspoke-health. */
export function renderGatewayEnv(id: GatewayIdentity, paths: Partial<Record<keyof typeof GATEWAY_PATHS, string>> = {}): string {
    const p = { ...GATEWAY_PATHS, ...paths };
    const lines: Record<string, string | number> = {
        HUBSPOKE_STACK: id.stack,
        HUBSPOKE_REGION_NAME: id.regionName,
        HUBSPOKE_AWS_REGION: id.awsRegion,
        HUBSPOKE_PARAMETER_PATH: id.parameterPath,
        HUBSPOKE_IPSEC_D: p.ipsecDir,
        HUBSPOKE_IPSEC_CONF: p.ipsecConf,
        HUBSPOKE_STATE_DIR: p.stateDir,
        HUBSPOKE_PSK_MIN_LENGTH: PSK.minLength,
        HUBSPOKE_PSK_CHARACTERS: pskCharacterClass(),
        HUBSPOKE_SECRETS_LINE: secretsLinePattern(),
        HUBSPOKE_TUNNEL_NAME: TUNNEL_NAME_PATTERN,
        HUBSPOKE_CONN_KEYS: CONN_KEYS.join(" "),
        HUBSPOKE_NEW_TUNNEL_GRACE: NEW_TUNNEL_GRACE_SECONDS,
        HUBSPOKE_METRIC_NAMESPACE: METRIC.namespace,
        HUBSPOKE_METRIC_NAME: METRIC.tunnelUp,
        HUBSPOKE_METRIC_DATA_IN: METRIC.tunnelDataIn,
        HUBSPOKE_METRIC_DATA_OUT: METRIC.tunnelDataOut,
        HUBSPOKE_STATE_TRAFFIC: AGENT_STATE_FILES.traffic,
        HUBSPOKE_REAUTH_DELAY: REAUTH_DELAY_SECONDS,
        HUBSPOKE_BOOT_ATTEMPTS: BOOT_FETCH_ATTEMPTS,
        HUBSPOKE_MANAGED_MARKER: MANAGED_MARKER,
        HUBSPOKE_STATE_VERSIONS: AGENT_STATE_FILES.versions,
        HUBSPOKE_STATE_TUNNELS: AGENT_STATE_FILES.tunnels,
        HUBSPOKE_STATE_LEFT_OUT: AGENT_STATE_FILES.leftOut,
        HUBSPOKE_STATE_ADDED_AT: AGENT_STATE_FILES.addedAt,
        HUBSPOKE_STATE_UP_ONCE: AGENT_STATE_FILES.upOnce,
        HUBSPOKE_STATE_EVENTS: AGENT_STATE_FILES.events,
        HUBSPOKE_EVENTS_LOG_GROUP: eventLogGroupName(id.stack, gatewayNameOf(id)),
        HUBSPOKE_EVENTS_LOG_STREAM: eventLogStreamName(gatewayNameOf(id)),
        HUBSPOKE_EVENTS_UNITS: EVENTS.units.join(" "),
        HUBSPOKE_EVENTS_COALESCE: EVENTS.coalesceSeconds,
        HUBSPOKE_EVENTS_SPOOL_MAX: EVENTS.spoolMax,
        HUBSPOKE_EVENTS_BATCH: EVENTS.batch,
        // Only in a site with a standby, so that a single gateway's settings stay as they were.
        ...(id.failover
            ? {
                  HUBSPOKE_GATEWAY: id.failover.gateway,
                  HUBSPOKE_FAILOVER_PARAMETER: id.failover.parameter,
                  HUBSPOKE_RUN_DIR: p.runDir,
                  HUBSPOKE_PLUTO_PID: p.plutoPid,
                  HUBSPOKE_IPSEC_START: "systemctl start ipsec.service",
                  HUBSPOKE_IPSEC_STOP: "systemctl stop ipsec.service",
                  HUBSPOKE_PROBE_INTERVAL: FAILOVER.probeIntervalSeconds,
                  HUBSPOKE_PROBE_TIMEOUT: FAILOVER.probeTimeoutSeconds,
                  HUBSPOKE_CONFIRM_PROBES: FAILOVER.confirmProbes,
                  HUBSPOKE_OWNER_CHECK: FAILOVER.ownerCheckSeconds,
                  HUBSPOKE_STANDBY_OWNER_CHECK: FAILOVER.standbyOwnerCheckSeconds,
                  HUBSPOKE_ROUTE_CHECK: FAILOVER.routeCheckSeconds,
                  HUBSPOKE_UNOWNED_GRACE: FAILOVER.unownedGraceSeconds,
                  HUBSPOKE_STEP_DOWN_HOLD: FAILOVER.stepDownHoldSeconds,
                  HUBSPOKE_FIRST_SIGHT_GRACE: FAILOVER.firstSightGraceSeconds,
                  HUBSPOKE_METRIC_INTERVAL: FAILOVER.metricIntervalSeconds,
                  HUBSPOKE_METRIC_STANDBY_READY: METRIC.standbyReady,
                  HUBSPOKE_METRIC_FAILOVERS: METRIC.failovers,
                  HUBSPOKE_DRAIN_PARAMETER: drainParameterName(id.parameterPath),
                  HUBSPOKE_DRAINED: DRAINED,
                  HUBSPOKE_STATE_DRAINED: AGENT_STATE_FILES.drained,
                  HUBSPOKE_HANDOVER_TTL: FAILOVER.handoverTtl,
                  HUBSPOKE_HANDOVER_WAIT: FAILOVER.handoverWaitSeconds,
                  HUBSPOKE_HANDOVER_RETRY: FAILOVER.handoverRetrySeconds,
              }
            : {}),
    };
    return renderEnvFile("# hubspoke-vpn gateway settings, read by hubspoke-agent and hubspoke-health (rendered by the program)", lines);
}

/** A settings file the scripts source: a comment line, then one `KEY='value'` a line. */
function renderEnvFile(header: string, lines: Record<string, string | number>): string {
    return `${header}\n${Object.entries(lines)
        .map(([k, v]) => `${k}='${String(v)}'`)
        .join("\n")}\n`;
}

/**
 * hubspoke-bootstrap's settings (`GATEWAY_PATHS.bootstrapEnv`), in the user data: just enough to find,
 * check and install the software, which carries every other setting (`gateway.env` included).
 */
export function renderBootstrapEnv(
    id: Pick<GatewayIdentity, "stack" | "awsRegion">,
    software: SoftwareRef,
    paths: Partial<Record<keyof typeof GATEWAY_PATHS, string>> = {},
): string {
    const p = { ...GATEWAY_PATHS, ...paths };
    const lines: Record<string, string | number> = {
        HUBSPOKE_STACK: id.stack,
        HUBSPOKE_AWS_REGION: id.awsRegion,
        HUBSPOKE_GATEWAY_NAME: software.gateway,
        HUBSPOKE_SOFTWARE_PATH: software.path,
        HUBSPOKE_SOFTWARE_SHA256: software.sha256,
        HUBSPOKE_STATE_DIR: p.stateDir,
        HUBSPOKE_UNITS_FILE: p.unitsFile,
        HUBSPOKE_BOOTSTRAP_REPORT_AFTER: BOOTSTRAP.reportAfterSeconds,
        HUBSPOKE_METRIC_NAMESPACE: METRIC.namespace,
        HUBSPOKE_METRIC_BOOTSTRAP_PENDING: METRIC.bootstrapPending,
    };
    return renderEnvFile("# hubspoke-vpn bootstrap settings, read by hubspoke-bootstrap (rendered by the program)", lines);
}

/** The nftables rules that clamp forwarded TCP SYNs to `TCP_MSS` (loaded by hubspoke-mss.service, idempotently). */
export function renderMssClamp(mss: number = TCP_MSS): string {
    return [
        "# hubspoke-vpn: clamp the TCP MSS of forwarded connections so that their segments fit through",
        `# ESP-in-UDP over a 1500-byte internet path (see gateway/contract.ts, TCP_MSS). Loaded by hubspoke-mss.service.`,
        // Creating then flushing makes a reload replace the rules instead of adding a second copy.
        "table inet hubspoke_mss",
        "flush table inet hubspoke_mss",
        "table inet hubspoke_mss {",
        "    chain forward {",
        "        type filter hook forward priority mangle; policy accept;",
        `        tcp flags & (syn | rst) == syn tcp option maxseg size > ${mss} tcp option maxseg size set ${mss}`,
        "    }",
        "}",
        "",
    ].join("\n");
}
