/**
 * systemd units that order key delivery before libreswan and refresh keys after rotation.
 * Everything here runs at every boot: nothing depends on cloud-init's first boot having run again.
 */
import { GATEWAY_PATHS } from "../gateway/contract";

export const PSK_SCRIPT_PATH = "/usr/local/sbin/hubspoke-psk";
export const HEALTH_SCRIPT_PATH = "/usr/local/sbin/hubspoke-health";
export const HEALTH_CONF_PATH = "/etc/hubspoke-vpn/health.conf";
export const TUNNELS_PATH = "/etc/hubspoke-vpn/tunnels";
/** How often a gateway re-reads its keys, so a rotation reaches both ends within this period. */
export const PSK_REFRESH_MINUTES = 5;

export interface UnitFile {
    readonly path: string;
    readonly content: string;
}

export function renderUnits(): UnitFile[] {
    return [
        {
            path: "/etc/systemd/system/hubspoke-mss.service",
            content: [
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
                "",
            ].join("\n"),
        },
        {
            path: "/etc/systemd/system/hubspoke-psk.service",
            content: [
                "[Unit]",
                "Description=hubspoke-vpn: fetch IPsec pre-shared keys from SSM Parameter Store",
                "Wants=network-online.target",
                "After=network-online.target",
                "Before=ipsec.service",
                "",
                "[Service]",
                "Type=oneshot",
                "RemainAfterExit=yes",
                // Retries until every key is fetched: ipsec must not start with a missing key.
                "TimeoutStartSec=infinity",
                `ExecStart=${PSK_SCRIPT_PATH}`,
                "",
                "[Install]",
                "WantedBy=multi-user.target",
                "",
            ].join("\n"),
        },
        {
            path: "/etc/systemd/system/ipsec.service.d/10-hubspoke.conf",
            content: [
                "[Unit]",
                "Requires=hubspoke-psk.service",
                "After=hubspoke-psk.service",
                "",
                // The stock unit restarts only on failure; a gateway's IKE daemon must always come back.
                "[Service]",
                "Restart=always",
                "RestartSec=2",
                "",
            ].join("\n"),
        },
        {
            path: "/etc/systemd/system/hubspoke-psk-refresh.service",
            content: [
                "[Unit]",
                "Description=hubspoke-vpn: pick up rotated IPsec pre-shared keys",
                "After=ipsec.service",
                "",
                "[Service]",
                "Type=oneshot",
                `ExecStart=${PSK_SCRIPT_PATH} --reload`,
                "",
            ].join("\n"),
        },
        {
            path: "/etc/systemd/system/hubspoke-psk-refresh.timer",
            content: [
                "[Unit]",
                "Description=hubspoke-vpn: re-read IPsec pre-shared keys periodically",
                "",
                "[Timer]",
                `OnBootSec=${PSK_REFRESH_MINUTES}min`,
                `OnUnitActiveSec=${PSK_REFRESH_MINUTES}min`,
                "RandomizedDelaySec=30",
                "",
                "[Install]",
                "WantedBy=timers.target",
                "",
            ].join("\n"),
        },
        {
            path: "/etc/systemd/system/hubspoke-health.service",
            content: [
                "[Unit]",
                "Description=hubspoke-vpn: report tunnel state to CloudWatch (TunnelUp)",
                "",
                "[Service]",
                "Type=oneshot",
                `ExecStart=${HEALTH_SCRIPT_PATH}`,
                "",
            ].join("\n"),
        },
        {
            path: "/etc/systemd/system/hubspoke-health.timer",
            content: [
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
                "",
            ].join("\n"),
        },
    ];
}
