/**
 * Kernel settings an IPsec gateway needs, persisted under /etc/sysctl.d so they survive reboots.
 */

export function renderSysctl(): string {
    return [
        "# hubspoke-vpn: this host routes between its VPC and the IPsec tunnels.",
        "net.ipv4.ip_forward = 1",
        // Redirects would tell hosts to bypass the gateway, and the tunnel with it.
        "net.ipv4.conf.all.accept_redirects = 0",
        "net.ipv4.conf.default.accept_redirects = 0",
        "net.ipv4.conf.all.send_redirects = 0",
        "net.ipv4.conf.default.send_redirects = 0",
        // libreswan requires reverse-path filtering off: decrypted packets arrive on an
        // interface that is not the route back to their source.
        "net.ipv4.conf.all.rp_filter = 0",
        "net.ipv4.conf.default.rp_filter = 0",
        "net.ipv4.conf.*.rp_filter = 0",
        "",
    ].join("\n");
}
