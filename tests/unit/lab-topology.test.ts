import { strict as assert } from "node:assert";
import { labTopology, setupPlan } from "../../lab/topology";
import type { renderStack } from "../../offline/render";
import { prodRender } from "./fixtures";

describe("lab topology (from the prod render's plan)", () => {
    let plan: Awaited<ReturnType<typeof renderStack>>["plan"];
    before(async () => {
        plan = (await prodRender()).plan;
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

    it("refuses what it cannot lay out", () => {
        assert.throws(() => labTopology(plan, "Bad-Id"), /id "Bad-Id" must be 1-8 lowercase letters or digits/);
        const spread = { ...plan, gateways: plan.gateways.map((g, i) => ({ ...g, elasticIp: i ? g.elasticIp : "203.0.113.5" })) };
        assert.throws(() => labTopology(spread, "t1"), /Elastic IPs must share one \/24/);
    });
});
