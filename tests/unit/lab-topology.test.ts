import { strict as assert } from "node:assert";
import type { snapshotStack } from "../../harness/snapshot";
import { LAB_MTU, labTopology, setupPlan } from "../../lab/topology";
import { prodSnapshot } from "./fixtures";

describe("lab topology (from the prod render's plan)", () => {
    let plan: Awaited<ReturnType<typeof snapshotStack>>["plan"];
    before(async () => {
        plan = (await prodSnapshot()).plan;
    });

    it("puts each gateway at its static IP behind a VPC router at the subnet's +1, and a workload host in each VPC", () => {
        const t = labTopology(plan, "t1");
        assert.deepEqual(
            t.regions.map((r) => [r.region, r.gateway.ip, r.gateway.router, r.host.ip, r.host.router, r.host.onVpnSubnet]),
            [
                ["virginia", "10.11.4.5", "10.11.4.1", "10.11.4.10", "10.11.4.1", true],
                ["sydney", "12.11.4.5", "12.11.4.1", "12.11.6.10", "12.11.6.1", false],
                ["frankfurt", "13.11.4.5", "13.11.4.1", "13.11.6.10", "13.11.6.1", false],
            ],
        );
        assert.deepEqual(t.regions[0].ns, { vpc: "t1-virginia-vpc", gw: "t1-virginia-gw", host: "t1-virginia-host" });
    });

    it("routes only the program's peer ranges to each gateway, and NATs its Elastic IP 1:1", () => {
        const p = setupPlan(labTopology(plan, "t1"));
        assert.deepEqual(
            p.ip["t1-virginia-vpc"].filter((l) => l.startsWith("route")),
            ["route add 12.11.0.0/16 via 10.11.4.5", "route add 13.11.0.0/16 via 10.11.4.5"],
        );
        assert.deepEqual(
            p.ip["t1-sydney-vpc"].filter((l) => l.startsWith("route")),
            ["route add 10.11.0.0/16 via 12.11.4.5"],
        );
        assert.match(
            p.iptables["t1-sydney-vpc"],
            /-A PREROUTING -i wan -d 192\.0\.2\.12 -j DNAT --to-destination 12\.11\.4\.5\n-A POSTROUTING -o wan -s 12\.11\.4\.5 -j SNAT --to-source 192\.0\.2\.12/,
        );
        // Every namespace it creates carries the lab's prefix, so teardown finds them all.
        for (const line of p.root.filter((l) => l.startsWith("netns add"))) {
            assert.match(line, /^netns add t1-/);
        }
    });

    it("runs every VPC-side link at EC2's MTU 9001 and the internet at 1500, as on AWS", () => {
        assert.deepEqual(LAB_MTU, { vpc: 9001, internet: 1500 });
        const p = setupPlan(labTopology(plan, "t1"));
        // Per namespace, the MTU the plan gives each interface it creates (veth ends come from the root batch).
        const mtus: Record<string, Record<string, number | undefined>> = {};
        const set = (ns: string, dev: string, mtu: number | undefined) => {
            mtus[ns] = { ...mtus[ns], [dev]: mtu };
        };
        for (const line of p.root) {
            const m = /^link add (\S+) netns (\S+) type veth peer name (\S+) netns (\S+)$/.exec(line);
            if (m) {
                set(m[2], m[1], undefined);
                set(m[4], m[3], undefined);
            }
        }
        for (const [ns, lines] of Object.entries(p.ip)) {
            for (const line of lines) {
                const m = /^link (?:add|set) (\S+) (?:.* )?mtu (\d+)\b/.exec(line) ?? /^link add (\S+) type bridge$/.exec(line);
                if (m) {
                    set(ns, m[1], m[2] === undefined ? undefined : Number(m[2]));
                }
            }
        }
        const vpcSide = (r: string) => ({ [`t1-${r}-gw`]: { eth0: 9001 }, [`t1-${r}-host`]: { eth0: 9001 } });
        assert.deepEqual(mtus, {
            "t1-inet": { inet: 1500, r0: 1500, r1: 1500, r2: 1500 },
            // Virginia's workload host shares the VPN subnet (no workload subnet): no `wl` bridge there.
            "t1-virginia-vpc": { wan: 1500, vpn: 9001, gw: 9001, host: 9001 },
            ...vpcSide("virginia"),
            "t1-sydney-vpc": { wan: 1500, vpn: 9001, wl: 9001, gw: 9001, host: 9001 },
            ...vpcSide("sydney"),
            "t1-frankfurt-vpc": { wan: 1500, vpn: 9001, wl: 9001, gw: 9001, host: 9001 },
            ...vpcSide("frankfurt"),
        });
    });

    it("drops ICMP fragmentation-needed headed to the gateway at its VPC router, as its security group does", () => {
        const p = setupPlan(labTopology(plan, "t1"));
        for (const [region, gw] of [
            ["virginia", "10.11.4.5"],
            ["sydney", "12.11.4.5"],
            ["frankfurt", "13.11.4.5"],
        ]) {
            const rules = p.iptables[`t1-${region}-vpc`];
            const filter = rules.slice(rules.indexOf("*filter"));
            assert.ok(rules.includes("*filter"), `${region}: no filter table`);
            const escaped = gw.replace(/\./g, "\\.");
            // The one the router itself sends (a 9001-byte packet meeting the 1500-byte internet) ...
            assert.match(filter, new RegExp(`^-A OUTPUT -d ${escaped} -p icmp --icmp-type fragmentation-needed -j DROP$`, "m"));
            // ... and any arriving from the internet, after the Elastic IP's NAT.
            assert.match(filter, new RegExp(`^-A FORWARD -d ${escaped} -p icmp --icmp-type fragmentation-needed -j DROP$`, "m"));
            assert.match(filter, /\nCOMMIT\n$/);
        }
    });

    it("refuses what it cannot lay out", () => {
        assert.throws(() => labTopology(plan, "Bad-Id"), /id "Bad-Id" must be 1-8 lowercase letters or digits/);
        const spread = { ...plan, gateways: plan.gateways.map((g, i) => ({ ...g, elasticIp: i ? g.elasticIp : "203.0.113.5" })) };
        assert.throws(() => labTopology(spread, "t1"), /Elastic IPs must share one \/24/);
    });
});
