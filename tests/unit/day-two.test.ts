/**
 * Day two under the mock runtime: the prod stack evaluated before and after a change, and what a
 * `pulumi up` of that change would do to the running stack (harness/diff.ts). Every list below is
 * printed, so a change to the program that touches more of a running stack shows here first.
 */
import { strict as assert } from "node:assert";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { DEFAULT_GATEWAY_AMI_RELEASE } from "../../config/validate";
import { diffEvaluations, type StackDiff } from "../../harness/diff";
import { AMI_NOT_FOUND, al2023DeprecationTime, type Evaluation, evaluateOffline, mockInvoke, plain } from "../../harness/evaluate";
import { fingerprint, fingerprintDiff } from "../../harness/fingerprint";
import { ADDED_SPOKE } from "../../lab/dayTwo";
import { manySitesSnapshot, prodConfig, prodEvaluation, prodWith, stackConfig } from "./fixtures";

/** Fixed Elastic IPs, so that removing a region does not renumber the others' documentation addresses. */
const EIPS = { virginia: "192.0.2.11", sydney: "192.0.2.12", frankfurt: "192.0.2.13", tokyo: "192.0.2.14" };

const evaluate = (raw: Record<string, unknown>) => evaluateOffline(raw, { stack: "prod", elasticIps: EIPS });
const instances = (ev: Evaluation) =>
    Object.fromEntries(ev.resources.filter((r) => r.type === "aws:ec2/instance:Instance").map((r) => [r.name, plain(r.inputs)]));
const show = (title: string, d: StackDiff) =>
    console.log(
        `      ${title}:\n` +
            [
                ...d.changed.map((c) => `        ${c.action.padEnd(10)} ${c.resource} (${c.inputs.join(", ")})`),
                `        added ${d.added.length}, removed ${d.removed.length}`,
            ].join("\n"),
    );
const names = (list: string[], type: string) =>
    list
        .filter((k) => k.startsWith(`${type}::`))
        .map((k) => k.slice(type.length + 2))
        .sort();

describe("day two: what a change does to a running stack (mock runtime)", function () {
    this.timeout(60_000);
    let prod: Evaluation;
    before(async () => {
        prod = await evaluate(prodConfig());
    });

    it("adding a spoke adds its resources and the hub's tunnel end, and changes no existing instance", async () => {
        const after = await evaluate(prodWith((c) => c.regions.push(ADDED_SPOKE)));
        const d = diffEvaluations(prod, after);
        show("prod + spoke tokyo", d);
        // The one existing resource that changes: the dashboard gains the tunnel's graph.
        assert.deepEqual(
            d.changed.map((c) => [c.resource, c.action]),
            [["aws:cloudwatch/dashboard:Dashboard::hubspoke-virginia-dashboard", "update"]],
        );
        assert.deepEqual(d.removed, []);
        for (const [name, inputs] of Object.entries(instances(prod))) {
            assert.deepEqual(instances(after)[name], inputs, `${name}'s inputs changed`);
        }
        // The hub gets exactly the new tunnel's end: its desired state, its security group rules, its alarm, its route.
        assert.deepEqual(
            names(d.added, "aws:ssm/parameter:Parameter").filter((n) => !/^hubspoke-tokyo-gw-software-\d+$/.test(n)),
            [
                "hubspoke-tokyo-gw-virginia-to-tokyo-conf",
                "hubspoke-tokyo-gw-virginia-to-tokyo-secrets",
                "hubspoke-virginia-gw-virginia-to-tokyo-conf",
                "hubspoke-virginia-gw-virginia-to-tokyo-secrets",
            ],
        );
        assert.deepEqual(
            d.added.filter((k) => k.includes("hubspoke-virginia")),
            [
                "aws:cloudwatch/metricAlarm:MetricAlarm::hubspoke-virginia-gw-virginia-to-tokyo-down",
                // Its "why is it down" query at the hub's end.
                "aws:cloudwatch/queryDefinition:QueryDefinition::hubspoke-virginia-virginia-to-tokyo-events-query",
                "aws:ec2/route:Route::hubspoke-virginia-rt0-to-tokyo",
                "aws:ssm/parameter:Parameter::hubspoke-virginia-gw-virginia-to-tokyo-conf",
                "aws:ssm/parameter:Parameter::hubspoke-virginia-gw-virginia-to-tokyo-secrets",
                ...["esp", "ike", "natt"].flatMap((p) => [
                    `aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule::hubspoke-virginia-gw-virginia-to-tokyo-${p}-out`,
                    `aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule::hubspoke-virginia-gw-virginia-to-tokyo-${p}-in`,
                ]),
                // The tunnel's key, shared by both ends.
                "random:index/randomPassword:RandomPassword::hubspoke-virginia-to-tokyo-psk",
            ].sort(),
        );
        assert.ok(d.added.includes("aws:ec2/instance:Instance::hubspoke-tokyo-gw-instance"));
        assert.ok(d.added.includes("pulumi:providers:aws::ap-northeast-1"));
    });

    it("changing a tunnel setting changes only the tunnel ends' conn parameters", async () => {
        const after = await evaluate({ ...prodConfig(), espProposals: "aes_gcm256" });
        const d = diffEvaluations(prod, after);
        show("prod with espProposals aes_gcm256", d);
        assert.deepEqual(d.added, []);
        assert.deepEqual(d.removed, []);
        assert.deepEqual(
            d.changed.map((c) => `${c.action} ${c.resource} ${c.inputs}`),
            [
                "hubspoke-frankfurt-gw-virginia-to-frankfurt-conf",
                "hubspoke-sydney-gw-virginia-to-sydney-conf",
                "hubspoke-virginia-gw-virginia-to-frankfurt-conf",
                "hubspoke-virginia-gw-virginia-to-sydney-conf",
            ].map((n) => `update aws:ssm/parameter:Parameter::${n} insecureValue`),
        );
    });

    it("rotating the keys replaces the keys and updates the secrets parameters, nothing else", async () => {
        const d = diffEvaluations(prod, await evaluate({ ...prodConfig(), pskRotation: 1 }));
        show("prod with pskRotation 1", d);
        assert.deepEqual(
            d.changed.map((c) => `${c.action} ${c.resource}`),
            [
                ...[
                    "hubspoke-frankfurt-gw-virginia-to-frankfurt-secrets",
                    "hubspoke-sydney-gw-virginia-to-sydney-secrets",
                    "hubspoke-virginia-gw-virginia-to-frankfurt-secrets",
                    "hubspoke-virginia-gw-virginia-to-sydney-secrets",
                ].map((n) => `update aws:ssm/parameter:Parameter::${n}`),
                "replace random:index/randomPassword:RandomPassword::hubspoke-virginia-to-frankfurt-psk",
                "replace random:index/randomPassword:RandomPassword::hubspoke-virginia-to-sydney-psk",
            ],
        );
    });

    it("a stack on a release AWS has deprecated still previews, on the same image (getAmi includes deprecated images)", async () => {
        // AWS deprecates public images two years after creation at the latest; DescribeImages then
        // leaves them out unless asked, and the mock answers as AWS does (harness/evaluate.ts).
        const afterDeprecation = new Date(
            al2023DeprecationTime(`al2023-ami-${DEFAULT_GATEWAY_AMI_RELEASE}-kernel-6.1-x86_64`).getTime() + 86400e3,
        );
        assert.throws(
            () =>
                mockInvoke(
                    "aws:ec2/getAmi:getAmi",
                    { filters: [{ name: "name", values: [`al2023-ami-${DEFAULT_GATEWAY_AMI_RELEASE}-kernel-6.1-x86_64`] }] },
                    "us-east-1",
                    afterDeprecation,
                ),
            { message: AMI_NOT_FOUND },
        );
        const later = await evaluateOffline(prodConfig(), { stack: "prod", elasticIps: EIPS, today: afterDeprecation });
        const lookups = later.invokes.filter((i) => i.token === "aws:ec2/getAmi:getAmi");
        assert.equal(lookups.length, 3);
        assert.ok(lookups.every((i) => i.inputs.includeDeprecated === true && i.inputs.owners[0] === "amazon"));
        assert.deepEqual(diffEvaluations(prod, later).changed, [], "the same image, so nothing changes");
    });

    it("the kernel flavour names the image: another flavour replaces the gateways, like a release", async () => {
        const gateways = ["frankfurt", "sydney", "virginia"].map((r) => `aws:ec2/instance:Instance::hubspoke-${r}-gw-instance`);
        const kernel = await evaluate({ ...prodConfig(), gatewayAmiKernel: "6.12" });
        const names = kernel.invokes
            .filter((i) => i.token === "aws:ec2/getAmi:getAmi")
            .map((i) => i.inputs.filters.find((f: any) => f.name === "name").values[0]);
        assert.deepEqual(new Set(names), new Set([`al2023-ami-${DEFAULT_GATEWAY_AMI_RELEASE}-kernel-6.12-x86_64`]));
        assert.deepEqual(
            diffEvaluations(prod, kernel).changed.map((c) => `${c.action} ${c.resource} ${c.inputs}`),
            gateways.map((g) => `replace ${g} ami`),
        );
    });

    it("a new image release or another architecture replaces the gateways, and nothing their routes and addresses hang on", async () => {
        const gateways = ["frankfurt", "sydney", "virginia"].map((r) => `aws:ec2/instance:Instance::hubspoke-${r}-gw-instance`);
        const release = diffEvaluations(prod, await evaluate({ ...prodConfig(), gatewayAmiRelease: "2023.9.20260101.0" }));
        show("prod with gatewayAmiRelease 2023.9.20260101.0", release);
        assert.deepEqual(
            release.changed.map((c) => `${c.action} ${c.resource} ${c.inputs}`),
            gateways.map((g) => `replace ${g} ami`),
        );
        const graviton = diffEvaluations(prod, await evaluate({ ...prodConfig(), gatewayInstanceType: "t4g.small" }));
        show("prod with gatewayInstanceType t4g.small", graviton);
        assert.deepEqual(
            graviton.changed.map((c) => `${c.action} ${c.resource} ${c.inputs}`),
            gateways.map((g) => `replace ${g} ami,instanceType`),
            "an arm64 image, so a replacement (an in-place type change would leave the instance stopped)",
        );
        // Replacing a protected instance needs forceDestroy already in state: every gateway carries it.
        for (const inputs of Object.values(instances(prod))) {
            assert.equal(inputs.forceDestroy, true);
            assert.equal(inputs.disableApiTermination, true);
        }
        for (const d of [release, graviton]) {
            assert.deepEqual(d.added, []);
            assert.deepEqual(d.removed, []);
        }
    });

    it("a same-architecture instance type change is a stop/start, said so", async () => {
        const d = diffEvaluations(prod, await evaluate({ ...prodConfig(), gatewayInstanceType: "t3.medium" }));
        show("prod with gatewayInstanceType t3.medium", d);
        assert.deepEqual(
            d.changed.map((c) => `${c.action} ${c.resource} ${c.inputs}`),
            ["frankfurt", "sydney", "virginia"].map((r) => `stop-start aws:ec2/instance:Instance::hubspoke-${r}-gw-instance instanceType`),
        );
    });

    it("removing a spoke removes it and the hub's end of its tunnel, and changes no other instance", async () => {
        const after = await evaluate(prodWith((c) => c.regions.splice(2, 1)));
        const d = diffEvaluations(prod, after);
        show("prod without frankfurt", d);
        assert.deepEqual(d.added, []);
        assert.deepEqual(
            d.changed.map((c) => c.resource),
            ["aws:cloudwatch/dashboard:Dashboard::hubspoke-virginia-dashboard"],
        );
        assert.ok(d.removed.includes("aws:ec2/instance:Instance::hubspoke-frankfurt-gw-instance"));
        assert.ok(d.removed.includes("aws:ssm/parameter:Parameter::hubspoke-virginia-gw-virginia-to-frankfurt-secrets"));
        assert.ok(d.removed.includes("pulumi:providers:aws::eu-central-1"));
        assert.deepEqual(
            d.removed.filter((k) => k.includes("virginia") && !k.includes("frankfurt")),
            [],
            "nothing of the hub but the frankfurt tunnel's end",
        );
        for (const name of ["hubspoke-virginia-gw-instance", "hubspoke-sydney-gw-instance"]) {
            assert.deepEqual(instances(after)[name], instances(prod)[name]);
        }
    });

    it("sends EC2 the same user data bytes as the reviewed ones: a change here replaces every gateway", async () => {
        // userDataReplaceOnChange: any byte of difference replaces the instance. The bytes must not depend on
        // the machine running `pulumi up` (pako, not Node's zlib); when a bootstrap change is meant, update
        // these hashes in the same commit, knowing each gateway will be replaced (README, Day two).
        const sha = (ev: Evaluation) =>
            Object.fromEntries(
                ev.resources
                    .filter((r) => r.type === "aws:ec2/instance:Instance")
                    .map((r) => [r.name, crypto.createHash("sha256").update(plain(r.inputs.userDataBase64)).digest("hex")]),
            );
        assert.deepEqual(sha(await prodEvaluation()), {
            "hubspoke-virginia-gw-instance": "a7cf00c7e6f89a7377ea25bf9cf5312505fdbefe81f6dc058b4353871d6ffa3f",
            "hubspoke-sydney-gw-instance": "710c1e8f28c5f9dff484e0d5891bb8a5e6706a72a88fea84103c787b93ee7e3e",
            "hubspoke-frankfurt-gw-instance": "50432049d97eebb847721fbfe1d3b721c5701f6c2eedeff5e6d7f4994cde0f86",
        });
    });

    it("registers no resource twice", async () => {
        const ev = await prodEvaluation();
        const urns = ev.resources.map((r) => r.urn);
        assert.equal(new Set(urns).size, urns.length);
        assert.ok(!urns.some((u) => u.startsWith("unrecorded::")), "every registration is one of the program's objects");
    });

    it("keeps every resource of a stack deployed before this version, by URN or alias, except the old key parameters", async () => {
        const before: string[] = JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures/prod-urns-0.1.json"), "utf8"));
        const ev = await prodEvaluation();
        const now = new Set(ev.resources.map((r) => r.urn));
        const aliased = new Set(ev.resources.flatMap((r) => r.options.aliasNames.map((a) => `${r.type}::${a}`)));
        const gone = before.filter((urn) => !now.has(urn) && !aliased.has(urn.slice(urn.lastIndexOf("::", urn.lastIndexOf("::") - 1) + 2)));
        // Keys now travel inside each gateway's own desired state (`<prefix>/<region>/tunnels/<tunnel>/secrets`);
        // the per-tunnel key parameters of 0.1 are deleted by the upgrade. Nothing else goes.
        assert.deepEqual(
            gone.map((u) => u.slice(u.lastIndexOf("::") + 2)),
            [
                "hubspoke-frankfurt-virginia-to-frankfurt-psk",
                "hubspoke-sydney-virginia-to-sydney-psk",
                "hubspoke-virginia-virginia-to-frankfurt-psk",
                "hubspoke-virginia-virginia-to-sydney-psk",
            ],
        );
        assert.ok(gone.every((u) => u.includes("aws:ssm/parameter:Parameter")));
    });

    /**
     * fixtures/graph-7b318a8.json: harness/fingerprint.ts run over prod and prod-ha at commit 7b318a8
     * (the version before this one: @pulumi/pulumi 3.248, Node.js 20). When a change alters the graph
     * on purpose, list it here; at a release, regenerate the fixture from the released commit.
     */
    it("upgrading a stack deployed with 7b318a8 changes only what this version meant to: every gateway's bootstrap, its policy and alarms, the dashboard, prod-ha's redundancy alarms", async () => {
        const before = JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures/graph-7b318a8.json"), "utf8"));
        const ha = await evaluateOffline(stackConfig("prod-ha"), { stack: "prod-ha" });
        const sites = ["frankfurt", "sydney", "virginia"];
        // Every gateway: replaced (its user data is now the small bootstrap, naming its software in SSM),
        // its role policy updated in place (it may read its own software), its software's parameters and
        // its first-boot alarm added. README "Upgrading" says to replace a pair's gateways one at a time.
        const gatewayChanges = (gateways: string[], parts: Record<string, number>) => ({
            changed: gateways.flatMap((g) => [
                `aws:ec2/instance:Instance::hubspoke-${g}-gw-instance`,
                `aws:iam/rolePolicy:RolePolicy::hubspoke-${g}-gw-policy`,
            ]),
            added: gateways.flatMap((g) => [
                `aws:cloudwatch/metricAlarm:MetricAlarm::hubspoke-${g}-gw-bootstrap`,
                // Its tunnel-event log (issue 19).
                `aws:cloudwatch/logGroup:LogGroup::hubspoke-${g}-gw-events`,
                `aws:cloudwatch/logStream:LogStream::hubspoke-${g}-gw-events-stream`,
                ...Array.from({ length: parts[g] }, (_, i) => `aws:ssm/parameter:Parameter::hubspoke-${g}-gw-software-${i}`),
            ]),
        });
        const partsOf = (ev: Evaluation) =>
            Object.fromEntries(
                ev.resources
                    .filter((r) => /-gw-instance$/.test(r.name))
                    .map((r) => {
                        const g = r.name.replace(/^hubspoke-/, "").replace(/-gw-instance$/, "");
                        return [g, ev.resources.filter((x) => x.name.startsWith(`hubspoke-${g}-gw-software-`)).length];
                    }),
            );
        const prod = await prodEvaluation();
        const single = gatewayChanges(sites, partsOf(prod));
        // Per tunnel end, its saved "why is it down" query.
        const queries = ["frankfurt", "sydney"].flatMap((spoke) =>
            [spoke, "virginia"].map(
                (end) => `aws:cloudwatch/queryDefinition:QueryDefinition::hubspoke-${end}-virginia-to-${spoke}-events-query`,
            ),
        );
        // In place: the dashboard gains each tunnel's bytes (TunnelDataIn/TunnelDataOut).
        const dashboard = "aws:cloudwatch/dashboard:Dashboard::hubspoke-virginia-dashboard";
        assert.deepEqual(fingerprintDiff(before.prod, fingerprint(prod)), {
            changed: [...single.changed, dashboard].sort(),
            added: [...single.added, ...queries].sort(),
            removed: [],
        });
        const pairs = gatewayChanges(
            sites.flatMap((s) => [s, `${s}-standby`]),
            partsOf(ha),
        );
        assert.deepEqual(fingerprintDiff(before["prod-ha"], fingerprint(ha)), {
            changed: [
                // In place (an alarm's settings): missing data no longer pages at birth or during a replacement.
                ...sites.map((s) => `aws:cloudwatch/metricAlarm:MetricAlarm::hubspoke-${s}-failover-redundancy`),
                ...pairs.changed,
                dashboard,
            ].sort(),
            added: [
                ...sites.map((s) => `aws:cloudwatch/metricAlarm:MetricAlarm::hubspoke-${s}-failover-standby-silent`),
                ...pairs.added,
                ...queries,
            ].sort(),
            removed: [],
        });
    });

    /**
     * fixtures/graph-8e986e6.json: harness/fingerprint.ts over prod and prod-ha at 8e986e6 (the last
     * landing before the planned handover's new order). The failover script runs on pair gateways only.
     */
    it("upgrading a stack deployed with 8e986e6: prod unchanged; prod-ha's gateways replaced for the failover script (one pair gateway after the other), their software parameters updated, nothing else", async () => {
        const before = JSON.parse(fs.readFileSync(path.join(__dirname, "fixtures/graph-8e986e6.json"), "utf8"));
        assert.deepEqual(fingerprintDiff(before.prod, fingerprint(await prodEvaluation())), { changed: [], added: [], removed: [] });
        const ha = await evaluateOffline(stackConfig("prod-ha"), { stack: "prod-ha" });
        const gateways = ["frankfurt", "sydney", "virginia"].flatMap((s) => [s, `${s}-standby`]);
        const software = (g: string) =>
            ha.resources
                .filter((r) => r.name.startsWith(`hubspoke-${g}-gw-software-`))
                .map((r) => `aws:ssm/parameter:Parameter::${r.name}`);
        assert.deepEqual(fingerprintDiff(before["prod-ha"], fingerprint(ha)), {
            changed: gateways.flatMap((g) => [`aws:ec2/instance:Instance::hubspoke-${g}-gw-instance`, ...software(g)]).sort(),
            added: [],
            removed: [],
        });
    });

    it("evaluates and renders 50 sites (every second one with a standby), several per AWS region; the hub's user data does not grow with its tunnels", async function () {
        this.timeout(120_000);
        const started = Date.now();
        const snapshot = await manySitesSnapshot();
        const sizes = snapshot.plan.gateways.map((g) => g.userDataBytes);
        console.log(
            `      50 sites: ${snapshot.plan.gateways.length} sites in ${new Set(snapshot.plan.gateways.map((g) => g.awsRegion)).size} AWS regions, ` +
                `user data ${Math.min(...sizes)}-${Math.max(...sizes)} bytes (hub ${sizes[0]}), evaluated and rendered in ${((Date.now() - started) / 1000).toFixed(1)} s (0 s: shared with another test)`,
        );
        assert.equal(snapshot.plan.gateways.length, 50);
        assert.equal(snapshot.plan.gateways[0].tunnels.length, 49);
        // The hub's user data is the same size as a spoke's (render.test.ts holds every one to its budget).
        assert.ok(Math.abs(sizes[0] - sizes[2]) < 20, `hub ${sizes[0]} vs spoke ${sizes[2]}`);
    });
});
