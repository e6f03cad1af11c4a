/**
 * systemd units of a gateway: the MSS clamp and the agent's boot run before libreswan, the agent's
 * timer, and the health reporter. Everything here runs at every boot: nothing depends on cloud-init's
 * first boot having run again.
 */
import { EVENTS, FAILOVER, GATEWAY_PATHS } from "../gateway/contract";

/** How often the agent converges (plus up to `AGENT_JITTER_SECONDS`): at most every 60 s. */
export const AGENT_INTERVAL_SECONDS = 44;
export const AGENT_JITTER_SECONDS = 15;

export interface UnitFile {
    readonly path: string;
    readonly content: string;
}

const unit = (name: string, lines: string[]): UnitFile => ({
    path: `${GATEWAY_PATHS.systemdDir}/${name}`,
    content: [...lines, ""].join("\n"),
});

/** The units every gateway installs, and the ones cloud-init enables and starts. */
export function renderUnits(): UnitFile[] {
    return [
        unit("hubspoke-mss.service", [
            "[Unit]",
            "Description=hubspoke-vpn: clamp the TCP MSS of forwarded traffic to what fits through the tunnels",
            "Before=ipsec.service",
            "",
            "[Service]",
            "Type=oneshot",
            "RemainAfterExit=yes",
            `ExecStart=/usr/sbin/nft -f ${GATEWAY_PATHS.mssClamp}`,
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ]),
        unit("hubspoke-agent-boot.service", [
            "[Unit]",
            "Description=hubspoke-vpn: fetch this gateway's tunnels from SSM Parameter Store before ipsec starts",
            "Wants=network-online.target",
            "After=network-online.target",
            "Before=ipsec.service",
            "",
            "[Service]",
            "Type=oneshot",
            "RemainAfterExit=yes",
            // A few tries, then ipsec starts from the last good files: an SSM outage must not keep tunnels down.
            "TimeoutStartSec=180",
            `ExecStart=${GATEWAY_PATHS.agentScript} --boot`,
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ]),
        unit("ipsec.service.d/10-hubspoke.conf", [
            "[Unit]",
            // Wants, not Requires: ipsec starts even when the boot fetch failed.
            "Wants=hubspoke-agent-boot.service hubspoke-mss.service",
            "After=hubspoke-agent-boot.service hubspoke-mss.service",
            "",
            // The stock unit restarts only on failure; a gateway's IKE daemon must always come back.
            "[Service]",
            "Restart=always",
            "RestartSec=2",
        ]),
        unit("hubspoke-agent.service", [
            "[Unit]",
            "Description=hubspoke-vpn: converge this gateway's tunnels on the desired state in SSM Parameter Store",
            "After=ipsec.service",
            "",
            "[Service]",
            "Type=oneshot",
            `ExecStart=${GATEWAY_PATHS.agentScript}`,
        ]),
        unit("hubspoke-agent.timer", [
            "[Unit]",
            "Description=hubspoke-vpn: converge the tunnels about every minute",
            "",
            "[Timer]",
            "OnBootSec=1min",
            `OnUnitActiveSec=${AGENT_INTERVAL_SECONDS}s`,
            // systemd would otherwise fire up to a minute late (its default AccuracySec).
            "AccuracySec=1s",
            `RandomizedDelaySec=${AGENT_JITTER_SECONDS}`,
            "",
            "[Install]",
            "WantedBy=timers.target",
        ]),
        unit("hubspoke-health.service", [
            "[Unit]",
            "Description=hubspoke-vpn: report tunnel state to CloudWatch (TunnelUp)",
            "",
            "[Service]",
            "Type=oneshot",
            `ExecStart=${GATEWAY_PATHS.healthScript}`,
        ]),
        unit("hubspoke-health.timer", [
            "[Unit]",
            "Description=hubspoke-vpn: report tunnel state every minute",
            "",
            "[Timer]",
            "OnBootSec=1min",
            "OnUnitActiveSec=1min",
            "AccuracySec=5s",
            "",
            "[Install]",
            "WantedBy=timers.target",
        ]),
        // A loop, not a timer: a timer every few seconds would log two lines of its own each time.
        unit("hubspoke-events.service", [
            "[Unit]",
            "Description=hubspoke-vpn: ship tunnel events to CloudWatch Logs (one JSON line each)",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=simple",
            `ExecStart=/bin/bash -c 'while :; do ${GATEWAY_PATHS.eventsScript}; sleep ${EVENTS.intervalSeconds}; done'`,
            "Restart=always",
            "RestartSec=5",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ]),
    ];
}

/**
 * The extra units of a gateway in a site with a standby: hubspoke-failover, and a condition that
 * keeps the tunnel metrics off while the gateway is not the active one. pluto runs on both (warm: a
 * takeover does not wait for it to start); the conns load without starting (auto=add) and
 * hubspoke-failover initiates them on the active. `/run` is empty after a reboot: every gateway
 * boots as the standby until it has checked.
 */
export function renderFailoverUnits(): UnitFile[] {
    return [
        unit("hubspoke-failover.service", [
            "[Unit]",
            "Description=hubspoke-vpn: keep one gateway of the site active, take over when it fails",
            // Never give up restarting it: a gateway without it can neither take over nor step down.
            "StartLimitIntervalSec=0",
            "Wants=network-online.target ipsec.service",
            "After=network-online.target hubspoke-agent-boot.service ipsec.service",
            "",
            "[Service]",
            "Type=simple",
            `ExecStart=${GATEWAY_PATHS.failoverScript}`,
            "Restart=always",
            "RestartSec=2",
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ]),
        // Stopped only at shutdown (an instance stop or termination is an orderly shutdown: AWS docs,
        // "Stop and start Amazon EC2 instances"), and, being ordered after hubspoke-failover, ipsec and
        // the network, stopped before them: the active hands the site over while it still forwards.
        unit("hubspoke-handover.service", [
            "[Unit]",
            "Description=hubspoke-vpn: at shutdown, hand the site to the partner before this gateway stops forwarding",
            "Wants=network-online.target",
            "After=network-online.target ipsec.service hubspoke-failover.service",
            "",
            "[Service]",
            "Type=oneshot",
            "RemainAfterExit=yes",
            "ExecStart=/bin/true",
            `ExecStop=${GATEWAY_PATHS.failoverScript} handover`,
            `TimeoutStopSec=${FAILOVER.handoverWaitSeconds + 15}`,
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ]),
        unit("hubspoke-health.service.d/20-hubspoke-failover.conf", [
            "[Service]",
            `ExecCondition=/usr/bin/test -f ${GATEWAY_PATHS.runDir}/active`,
        ]),
    ];
}

/** Units enabled at first boot (they come back at every boot), in start order. */
export const ENABLED_UNITS = [
    "hubspoke-mss.service",
    "hubspoke-agent-boot.service",
    "ipsec.service",
    "hubspoke-agent.timer",
    "hubspoke-health.timer",
    "hubspoke-events.service",
];

/** Also enabled on a gateway of a site with a standby. */
export const FAILOVER_ENABLED_UNITS = ["hubspoke-failover.service", "hubspoke-handover.service"];

/**
 * hubspoke-bootstrap's unit, the one the user data enables: it runs at every boot until the script
 * has finished once for the software the user data names (the script checks its own marker).
 */
export function renderBootstrapUnit(): UnitFile {
    return unit("hubspoke-bootstrap.service", [
        "[Unit]",
        "Description=hubspoke-vpn: install this gateway's packages and software, then start its units",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        // It retries each step itself, for as long as it takes.
        "TimeoutStartSec=infinity",
        `ExecStart=${GATEWAY_PATHS.bootstrapScript}`,
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]);
}
