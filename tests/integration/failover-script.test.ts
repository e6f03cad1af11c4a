/**
 * gateway/hubspoke-failover.sh, run for real against the lab's AWS endpoint (fake EC2 and SSM, with
 * IAM enforced from the program's own rendered policies) through lab/fake-aws/aws-lab, with
 * stand-ins only for what needs a host: `ip` (the instance's addresses), `ipsec`/whack (pluto, which
 * says nothing) and `ping` (the active answers while a file exists). No namespace, no pluto: the
 * decisions the script makes on EC2's answers, each in a few seconds. Layer proven: the control plane
 * (EC2 and IAM); the tunnels are the failover lab's (tests/e2e/failover.test.ts).
 */
import { strict as assert } from "node:assert";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { drain, handoverClients, pairGateway, undrain, waitReady } from "../../components/gatewayHandover";
import { eventLogGroupName, eventLogStreamName, renderGatewayEnv } from "../../gateway/contract";
import {
    AWS_LAB,
    awsCliEnv,
    type Ec2State,
    type FakeAws,
    LAB_JOURNALCTL,
    readEc2State,
    readLogEvents,
    readMetrics,
    startFakeAws,
    writeEc2State,
} from "../../lab/fakeAws";
import { editPrincipal, type IamGateway, LAB_ACCOUNT, LAB_OPERATOR, labAccessKey, readAuthz, writePrincipals } from "../../lab/iam";
import { sleep } from "../../lab/lab";
import { failoverPolicy, gatewayPolicy } from "../../render/awsDocuments";
import { renderFailoverLayout } from "../../render/failover";

const SCRIPT = path.join(__dirname, "..", "..", "gateway", "hubspoke-failover.sh");
const EVENTS_SCRIPT = path.join(__dirname, "..", "..", "gateway", "hubspoke-events.sh");
const SITE_SCRIPT = path.join(__dirname, "..", "..", "scripts", "site.ts");
const REGION = "us-east-1";
const ALLOCATION = "eipalloc-0site0000000000001";
const ROUTE_TABLE = "rtb-0site00000000000001";
const LAYOUT = "/hubspoke-vpn/prod-ha/virginia/failover";
const PEER = "12.11.0.0/16";
const GATEWAYS = [
    { name: "virginia", networkInterfaceId: "eni-0primary00000000001", privateIp: "10.11.4.5", siteIp: "10.11.4.6" },
    { name: "virginia-standby", networkInterfaceId: "eni-0standby00000000001", privateIp: "10.11.5.5", siteIp: "10.11.5.6" },
] as const;
type Name = (typeof GATEWAYS)[number]["name"];

/** Both gateways' policies, exactly as the program renders them for this site. */
function renderedPolicies(): IamGateway[] {
    return GATEWAYS.map((g) => ({
        name: g.name,
        policies: [
            {
                name: `${g.name}-policy`,
                document: JSON.parse(
                    gatewayPolicy({
                        partition: "aws",
                        accountId: LAB_ACCOUNT,
                        awsRegion: REGION,
                        parameterPath: `/hubspoke-vpn/prod-ha/${g.name}/tunnels`,
                        softwareRoot: `/hubspoke-vpn/prod-ha/${g.name}/software`,
                        eventLogGroup: eventLogGroupName("prod-ha", g.name),
                        eventLogStream: eventLogStreamName(g.name),
                    }),
                ),
            },
            {
                name: `failover-${g.name}-policy`,
                document: JSON.parse(
                    failoverPolicy({
                        partition: "aws",
                        accountId: LAB_ACCOUNT,
                        awsRegion: REGION,
                        allocationId: ALLOCATION,
                        networkInterfaceIds: GATEWAYS.map((x) => x.networkInterfaceId),
                        routeTableIds: [ROUTE_TABLE],
                        layoutParameter: LAYOUT,
                    }),
                ),
            },
        ],
    }));
}

/** The site's EC2 state; the Elastic IP at `at` (an interface and one of its addresses), or on no gateway. */
function ec2State(at?: { networkInterfaceId: string; privateIp: string }): Ec2State {
    return {
        addresses: [
            {
                allocationId: ALLOCATION,
                publicIp: "192.0.2.11",
                awsRegion: REGION,
                networkInterfaceId: at?.networkInterfaceId ?? null,
                privateIpAddress: at?.privateIp ?? null,
                associationId: at ? "eipassoc-0before0000000001" : null,
            },
        ],
        networkInterfaces: GATEWAYS.map((g) => ({
            networkInterfaceId: g.networkInterfaceId,
            awsRegion: REGION,
            privateIpAddresses: [g.privateIp, g.siteIp],
        })),
        routeTables: [
            {
                routeTableId: ROUTE_TABLE,
                awsRegion: REGION,
                routes: [{ destinationCidrBlock: PEER, networkInterfaceId: GATEWAYS[0].networkInterfaceId }],
            },
        ],
    } as unknown as Ec2State;
}

describe("failover script against the lab's EC2 and IAM (hubspoke-failover, control plane)", function () {
    this.timeout(60_000);
    let dir: string;
    let fake: FakeAws | undefined;
    const scripts: ChildProcess[] = [];
    const at = (...p: string[]) => path.join(dir, ...p);
    const iamFile = () => at("iam.json");
    const logOf = (g: Name) => (fs.existsSync(at(g, "failover.log")) ? fs.readFileSync(at(g, "failover.log"), "utf8") : "");
    const site = () => readEc2State(at("ec2.json")).addresses[0];
    const requests = () => (fs.existsSync(at("requests.log")) ? fs.readFileSync(at("requests.log"), "utf8").split("\n") : []);
    const standbyReady = () =>
        readMetrics(at("ssm"))
            .filter((m) => m.metricName === "StandbyReady")
            .map((m) => m.value);

    async function waitFor(what: string, check: () => boolean, seconds: number): Promise<void> {
        const until = Date.now() + seconds * 1000;
        while (!check()) {
            if (Date.now() > until) {
                assert.fail(
                    `${what} within ${seconds} s; primary said:\n${logOf("virginia")}\nstandby said:\n${logOf("virginia-standby")}`,
                );
            }
            await sleep(200);
        }
    }

    /** A gateway's host: its addresses, a silent pluto, a ping that the partner answers while `<dir>/alive` exists. */
    function host(g: (typeof GATEWAYS)[number]): void {
        const bin = at(g.name, "bin");
        fs.mkdirSync(bin, { recursive: true });
        fs.mkdirSync(at(g.name, "state"));
        fs.writeFileSync(at(g.name, "addrs"), `${g.privateIp}/24\n`);
        fs.writeFileSync(
            path.join(bin, "ip"),
            `#!/bin/bash\ncase "$*" in\n  "-4 -o addr show"*) while read -r a; do echo "2: eth0    inet $a brd 0.0.0.0 scope global eth0"; done <${at(g.name, "addrs")} ;;\n  "addr add "*) echo "$3" >>${at(g.name, "addrs")} ;;\nesac\n`,
            { mode: 0o755 },
        );
        fs.writeFileSync(path.join(bin, "ipsec"), `#!/bin/sh\necho ${bin}\n`, { mode: 0o755 });
        fs.writeFileSync(path.join(bin, "whack"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
        // The partner's answers carry its kernel's default TTL (its file here): a handover's signal.
        const partner = GATEWAYS.find((x) => x.name !== g.name)!;
        fs.writeFileSync(at(g.name, "ttl"), "64\n");
        fs.writeFileSync(
            path.join(bin, "ping"),
            [
                "#!/bin/bash",
                `target=\${!#}`, // the last argument: the target
                "for ((i = 1; ; i++)); do",
                `  if [ -e ${at("alive")} ]; then`,
                // One router between the two subnets: one less than the partner sent.
                `    ttl=64; [ "$target" = ${partner.privateIp} ] && read -r ttl <${at(partner.name, "ttl")} && ttl=$((ttl - 1))`,
                '    echo "64 bytes from $target: icmp_seq=$i ttl=$ttl time=0.1 ms"',
                '  else echo "no answer yet for icmp_seq=$i"; fi',
                "  sleep 0.5",
                "done",
                "",
            ].join("\n"),
            { mode: 0o755 },
        );
        fs.symlinkSync(AWS_LAB, path.join(bin, "aws"));
        fs.writeFileSync(at(g.name, "state", "tunnels"), "virginia-to-sydney\n");
        fs.writeFileSync(at(g.name, "pluto.pid"), "4242\n");
        const env = renderGatewayEnv(
            {
                stack: "prod-ha",
                regionName: "virginia",
                awsRegion: REGION,
                parameterPath: `/hubspoke-vpn/prod-ha/${g.name}/tunnels`,
                failover: { gateway: g.name, parameter: LAYOUT },
            },
            {
                stateDir: at(g.name, "state"),
                runDir: at(g.name, "run"),
                plutoPid: at(g.name, "pluto.pid"),
                ipsecDir: at(g.name, "ipsec.d"),
            },
        );
        fs.mkdirSync(at(g.name, "ipsec.d"));
        fs.writeFileSync(at(g.name, "ipsec.d", "virginia-to-sydney.conf"), "conn virginia-to-sydney\n");
        fs.writeFileSync(
            at(g.name, "gateway.env"),
            `${env}HUBSPOKE_AWS_ARGS='--endpoint-url ${fake!.url}'\nHUBSPOKE_IPSEC_START=true\nHUBSPOKE_IPSEC_STOP=true\n` +
                // Rounds of seconds, not minutes: the decisions are the same, the test is short.
                "HUBSPOKE_METRIC_INTERVAL='1'\nHUBSPOKE_FIRST_SIGHT_GRACE='0'\nHUBSPOKE_OWNER_CHECK='2'\n" +
                `HUBSPOKE_HANDOVER_WAIT='5'\nHUBSPOKE_HANDOVER_RETRY='3'\nHUBSPOKE_TTL_SYSCTL='${at(g.name, "ttl")}'\n`,
        );
    }

    function start(g: (typeof GATEWAYS)[number]): void {
        const log = fs.openSync(at(g.name, "failover.log"), "a");
        const child = spawn("bash", [SCRIPT], {
            env: {
                ...awsCliEnv(fake!.url),
                // As on a gateway: the script's own retry setting, not the lab's single attempt.
                AWS_MAX_ATTEMPTS: "",
                AWS_ACCESS_KEY_ID: labAccessKey(g.name),
                PATH: `${at(g.name, "bin")}:${process.env.PATH}`,
                HUBSPOKE_ENV: at(g.name, "gateway.env"),
            },
            stdio: ["ignore", log, log],
            detached: true,
        });
        scripts.push(child);
    }

    async function rig(initial: Ec2State): Promise<void> {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "hubspoke-failover-script-"));
        fs.mkdirSync(at("ssm", REGION, "hubspoke-vpn", "prod-ha", "virginia"), { recursive: true });
        fs.writeFileSync(
            at("ssm", `${REGION}${LAYOUT}`),
            renderFailoverLayout("virginia", {
                allocationId: ALLOCATION,
                routeTables: [ROUTE_TABLE],
                peerCidrs: [PEER],
                probeTargets: [],
                gateways: GATEWAYS,
            }),
        );
        fs.writeFileSync(at("ec2.json"), JSON.stringify(initial));
        writePrincipals(iamFile(), renderedPolicies());
        fake = await startFakeAws(at("ssm"), { ec2State: at("ec2.json"), ec2LatencyMs: 50, log: at("requests.log"), iam: iamFile() });
        for (const g of GATEWAYS) {
            host(g);
            fake.logStream(REGION, eventLogGroupName("prod-ha", g.name), eventLogStreamName(g.name));
        }
    }

    afterEach(() => {
        for (const c of scripts.splice(0)) {
            try {
                process.kill(-c.pid!, "SIGKILL");
            } catch {
                // already gone
            }
        }
        fake?.stop?.();
        fake = undefined;
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it("moves the site's Elastic IP from the primary IP to the site address while a standby is added (owner() compares the private IP)", async () => {
        // A running single-gateway site gains a standby: the Elastic IP still sits on the first
        // gateway's primary IP, on the same interface as its new site address.
        await rig(ec2State({ networkInterfaceId: GATEWAYS[0].networkInterfaceId, privateIp: GATEWAYS[0].privateIp }));
        fs.writeFileSync(at("alive"), "");
        start(GATEWAYS[0]);
        start(GATEWAYS[1]);
        await waitFor("the Elastic IP on the primary's site address", () => site().privateIpAddress === GATEWAYS[0].siteIp, 15);
        await waitFor("the standby's verdict", () => logOf("virginia-standby").includes("standby: the site is on"), 10);
        assert.match(logOf("virginia-standby"), /standby: the site is on eni-0primary00000000001\/10\.11\.4\.[56]\n/);
        // Its first activation done (its routes written back by the endpoint): the state is edited below,
        // and an edit between the endpoint's read and write of the same file would be lost.
        await waitFor("the primary's routes", () => /every route to .* targets eni-0primary00000000001/.test(logOf("virginia")), 10);
        // Later, while the primary is active, the update's own association puts the address back on the
        // primary IP (the single-gateway association, applied before Pulumi deletes it): the active's
        // next owner check must see that its site address lost it.
        const state = readEc2State(at("ec2.json"));
        Object.assign(state.addresses[0], { privateIpAddress: GATEWAYS[0].privateIp, associationId: "eipassoc-0update0000000001" });
        writeEc2State(at("ec2.json"), state);
        await waitFor("the Elastic IP back on the site address", () => site().privateIpAddress === GATEWAYS[0].siteIp, 10);
        // Twice: at start, and by the active's owner check (not by a step-down and a new start).
        const claims = logOf("virginia").match(
            /taking over the site: the site's Elastic IP is on this gateway's 10\.11\.4\.5, not its site address 10\.11\.4\.6/g,
        );
        assert.equal(claims?.length, 2, logOf("virginia"));
        assert.doesNotMatch(logOf("virginia"), /stepping down/);
        assert.equal(site().networkInterfaceId, GATEWAYS[0].networkInterfaceId);
        assert.ok(fs.existsSync(at("virginia", "run", "active")), "the primary does not hold the site");
        assert.ok(!fs.existsSync(at("virginia-standby", "run", "active")), "the standby believes it holds the site");
    });

    it("reports StandbyReady 0 with the reason while its policy could not move the Elastic IP, and 1 again once it can (dry runs)", async () => {
        await pairOnPrimary();
        editPrincipal(iamFile(), renderedPolicies(), "virginia-standby", "MoveSiteElasticIp");
        const before = standbyReady().length;
        await waitFor("StandbyReady 0", () => standbyReady().slice(before).includes(0), 15);
        assert.match(
            logOf("virginia-standby"),
            /standby: could not take over: associate-address --dry-run: +An error occurred \(UnauthorizedOperation\) when calling the AssociateAddress operation: You are not authorized to perform this operation\. User: arn:aws:sts::123456789012:assumed-role\/virginia-standby-gateway\/i-[0-9a-f]+ is not authorized to perform: ec2:AssociateAddress on resource: arn:aws:ec2:us-east-1:123456789012:elastic-ip\/eipalloc-0site0000000000001 because no identity-based policy allows the ec2:AssociateAddress action/,
        );
        editPrincipal(iamFile(), renderedPolicies(), "virginia-standby");
        const denied = standbyReady().length;
        await waitFor("StandbyReady 1 again", () => standbyReady().slice(denied).includes(1), 15);
        assert.match(logOf("virginia-standby"), /standby: ready to take over again/);
        // The dry runs moved nothing.
        assert.equal(site().networkInterfaceId, GATEWAYS[0].networkInterfaceId);
        const dryRuns = readAuthz(at("ssm")).filter((r) => r.dryRun && r.principal === "virginia-standby");
        assert.ok(
            dryRuns.some((r) => r.action === "ec2:ReplaceRoute" && r.decision === "allowed"),
            "no replace-route dry run allowed",
        );
    });

    it("moves no route when IAM refuses the Elastic IP's association, and takes over once it is allowed", async () => {
        await rig(ec2State({ networkInterfaceId: GATEWAYS[0].networkInterfaceId, privateIp: GATEWAYS[0].siteIp }));
        editPrincipal(iamFile(), renderedPolicies(), "virginia-standby", "MoveSiteElasticIp");
        fs.writeFileSync(at("alive"), "");
        start(GATEWAYS[1]);
        await waitFor("the standby's first round", () => logOf("virginia-standby").includes("could not take over"), 15);
        // The active dies (its echoes go unanswered; it runs no script here).
        fs.rmSync(at("alive"));
        await waitFor("a refused takeover", () => /associate-address failed: .*UnauthorizedOperation/.test(logOf("virginia-standby")), 15);
        await sleep(3000);
        assert.ok(!requests().some((l) => / ReplaceRoute /.test(l)), "a route was replaced although the Elastic IP did not move");
        assert.equal(site().networkInterfaceId, GATEWAYS[0].networkInterfaceId, "the Elastic IP moved although IAM refused");
        editPrincipal(iamFile(), renderedPolicies(), "virginia-standby");
        await waitFor("the takeover", () => site().networkInterfaceId === GATEWAYS[1].networkInterfaceId, 20);
        await waitFor(
            "the routes",
            () => readEc2State(at("ec2.json")).routeTables[0].routes[0].networkInterfaceId === GATEWAYS[1].networkInterfaceId,
            10,
        );
        // The endpoint logs a call when it answers, after its latency: the state changes first.
        await waitFor("the route's answer", () => requests().some((l) => / ReplaceRoute \S+ 200 /.test(l)), 5);
        const lines = requests();
        const associated = lines.findIndex((l) => / AssociateAddress \S+ 200 /.test(l));
        const routed = lines.findIndex((l) => / ReplaceRoute \S+ 200 /.test(l));
        assert.ok(associated >= 0 && routed > associated, `the first ReplaceRoute did not follow the association:\n${lines.join("\n")}`);
    });
    /**
     * Both gateways running, the site on the primary, and the standby's first verdict reported:
     * StandbyReady 1, or 0 when its policy lacks the statement `narrowed`.
     */
    /** Runs `g`'s hubspoke-events once over its failover script's log, as its journal; the site events it put, [event, detail]. */
    function shippedEvents(g: Name): string[][] {
        const r = spawnSync("bash", [EVENTS_SCRIPT], {
            encoding: "utf8",
            env: {
                ...awsCliEnv(fake!.url),
                AWS_ACCESS_KEY_ID: labAccessKey(g),
                PATH: `${at(g, "bin")}:${process.env.PATH}`,
                HUBSPOKE_ENV: at(g, "gateway.env"),
                HUBSPOKE_JOURNALCTL: LAB_JOURNALCTL,
                LAB_JOURNAL: `hubspoke-failover.service=${at(g, "failover.log")}`,
            },
        });
        assert.equal(r.status, 0, r.stderr);
        return readLogEvents(fake!.store, REGION, eventLogGroupName("prod-ha", g), eventLogStreamName(g))
            .map((e) => JSON.parse(e.message))
            .filter((e) => e.tunnel === null)
            .map((e) => [e.event, e.detail]);
    }

    async function pairOnPrimary(narrowed?: string): Promise<void> {
        await rig(ec2State({ networkInterfaceId: GATEWAYS[0].networkInterfaceId, privateIp: GATEWAYS[0].siteIp }));
        if (narrowed) editPrincipal(iamFile(), renderedPolicies(), "virginia-standby", narrowed);
        fs.writeFileSync(at("alive"), "");
        start(GATEWAYS[0]);
        start(GATEWAYS[1]);
        const verdict = narrowed ? 0 : 1;
        await waitFor(`a first StandbyReady ${verdict}`, () => standbyReady().includes(verdict), 15);
    }

    /** What the drain parameter's agent does on the gateway: the drained file, and a wake-up. */
    const setDrained = (g: Name, on: boolean) => {
        if (on) fs.writeFileSync(at(g, "state", "drained"), "");
        else fs.rmSync(at(g, "state", "drained"), { force: true });
        fs.writeFileSync(at(g, "run", "tick"), "\n");
    };
    const holder = () =>
        GATEWAYS.find((g) => g.networkInterfaceId === site().networkInterfaceId && g.siteIp === site().privateIpAddress)?.name;

    it("a drained active hands the site to its ready standby at once (no missed echo), steps down, and the drained gateway never takes it back", async () => {
        await pairOnPrimary();
        const drainedAt = Date.now();
        setDrained("virginia", true);
        await waitFor("the site on the standby", () => holder() === "virginia-standby", 10);
        const seconds = (Date.now() - drainedAt) / 1000;
        console.log(`      control plane: drained -> Elastic IP on the standby in ${seconds.toFixed(1)} s (stand-in ping every 0.5 s)`);
        assert.match(logOf("virginia-standby"), /taking over the site: virginia hands the site over\n/);
        assert.doesNotMatch(logOf("virginia-standby"), /answered none of/, "a takeover on missed echoes, not the handover");
        await waitFor("the primary's step-down", () => /stepping down: handed the site to virginia-standby/.test(logOf("virginia")), 10);
        await waitFor(
            "the routes",
            () => readEc2State(at("ec2.json")).routeTables[0].routes[0].networkInterfaceId === GATEWAYS[1].networkInterfaceId,
            10,
        );
        assert.equal(fs.readFileSync(at("virginia", "ttl"), "utf8").trim(), "64", "the handover's TTL stayed on");
        // What on-call reads in CloudWatch Logs: each gateway's hubspoke-events, over its failover script's journal.
        assert.deepEqual(shippedEvents("virginia"), [
            // At its start: it found the site's address on itself (pairOnPrimary).
            ["takeover", "taking over the site: the site's Elastic IP is already on this gateway"],
            ["handover", "handing the site to virginia-standby: this gateway is drained (/hubspoke-vpn/prod-ha/virginia/tunnels/drain)"],
            ["step-down", "stepping down: handed the site to virginia-standby (the Elastic IP is on eni-0standby00000000001/10.11.5.6)"],
        ]);
        assert.deepEqual(shippedEvents("virginia-standby"), [["takeover", "taking over the site: virginia hands the site over"]]);
        // The new active dies: the drained gateway sees it and stays out.
        fs.rmSync(at("alive"));
        await waitFor(
            "the drained gateway's refusal",
            () => /the active does not answer, but this gateway is drained: not taking over/.test(logOf("virginia")),
            10,
        );
        await sleep(2000);
        assert.equal(holder(), "virginia-standby", "a drained gateway took the site");
        assert.ok(!fs.existsSync(at("virginia", "run", "active")));
    });

    it("refuses the handover when the standby is not ready: the active keeps the site, both say why, and it goes once the standby is ready", async () => {
        await pairOnPrimary("MoveSiteElasticIp");
        setDrained("virginia", true);
        await waitFor("the refusal", () => /virginia-standby did not take the site within 5s .*: keeping it/.test(logOf("virginia")), 15);
        assert.match(
            logOf("virginia-standby"),
            /virginia asks to hand the site over; refused: associate-address --dry-run UnauthorizedOperation/,
        );
        assert.equal(holder(), "virginia");
        assert.equal(fs.readFileSync(at("virginia", "ttl"), "utf8").trim(), "64");
        // Ready again: the drained active tries again (every HUBSPOKE_HANDOVER_RETRY s) and hands over.
        editPrincipal(iamFile(), renderedPolicies(), "virginia-standby");
        await waitFor("the handover once ready", () => holder() === "virginia-standby", 25);
        assert.match(logOf("virginia-standby"), /taking over the site: virginia hands the site over/);
    });

    it("a ready standby moves the routes with the Elastic IP, not after it; refused after its dry run passed, it gives them back and keeps nothing", async () => {
        await pairOnPrimary();
        // EC2 throttles the real association (its dry run passes), both of the CLI's attempts
        // (AWS_MAX_ATTEMPTS=2): the handover's first takeover fails.
        fake!.faults({ ec2FailNext: { AssociateAddress: 2 } });
        setDrained("virginia", true);
        await waitFor(
            "the refused takeover",
            () =>
                /associate-address failed: .*RequestLimitExceeded.*; routes given back to virginia, tunnels ended, next attempt in 2s/.test(
                    logOf("virginia-standby"),
                ),
            15,
        );
        // From EC2's log (its answers, in order): the route went to the standby and back, while the
        // Elastic IP stayed on the primary (a second attempt may already be under way: the drained active
        // still asks).
        const refused = requests();
        const routedTo = (g: number, after: number) =>
            refused.findIndex((l, i) => i > after && new RegExp(` ReplaceRoute \\S+->${GATEWAYS[g].networkInterfaceId} 200 `).test(l));
        const toStandby = routedTo(1, -1);
        const back = routedTo(0, toStandby);
        assert.ok(toStandby >= 0 && back > toStandby, `the route did not go to the standby and back:\n${refused.join("\n")}`);
        assert.ok(
            !refused.slice(0, back).some((l) => new RegExp(` AssociateAddress \\S+->${GATEWAYS[1].networkInterfaceId}\\S* 200 `).test(l)),
            `the Elastic IP moved although EC2 refused:\n${refused.join("\n")}`,
        );
        // The drained active still asks (and again every HUBSPOKE_HANDOVER_RETRY s): the site moves whole.
        // Each EC2 call now takes 1 s: a route sent only after the association's answer would be answered a
        // second after it, one sent with it about when it is (however slow the CLI starts beside other tests).
        fake!.faults({ ec2LatencyMs: 1000 });
        await waitFor("the handover's second attempt", () => holder() === "virginia-standby", 25);
        await waitFor(
            "the route",
            () => readEc2State(at("ec2.json")).routeTables[0].routes[0].networkInterfaceId === GATEWAYS[1].networkInterfaceId,
            10,
        );
        // The endpoint logs a call when it answers, after its latency: the state changes first.
        const routeAnswered = new RegExp(` ReplaceRoute \\S+->${GATEWAYS[1].networkInterfaceId} 200 `);
        const answered = (re: RegExp) => requests().some((l, i) => i > back && re.test(l));
        await waitFor("both answers", () => answered(routeAnswered) && answered(/ AssociateAddress \S+ 200 /), 5);
        const lines = requests();
        const associated = lines.findIndex((l, i) => i > back && / AssociateAddress \S+ 200 /.test(l));
        const routed = lines.findIndex((l, i) => i > back && routeAnswered.test(l));
        const answeredAt = (l: string) => Date.parse(l.split(" ")[0]);
        assert.ok(
            associated > back && routed > back && answeredAt(lines[routed]) < answeredAt(lines[associated]) + 1000,
            `the route waited for the association's answer:\n${lines.slice(back).join("\n")}`,
        );
    });

    it("`hubspoke-failover handover` (at shutdown) hands the site over and says so; on the standby it has nothing to do", async () => {
        await pairOnPrimary();
        const run = (g: (typeof GATEWAYS)[number]) =>
            spawnSync("bash", [SCRIPT, "handover"], {
                encoding: "utf8",
                env: { ...process.env, HUBSPOKE_ENV: at(g.name, "gateway.env"), PATH: `${at(g.name, "bin")}:${process.env.PATH}` },
            });
        const standby = run(GATEWAYS[1]);
        assert.equal(standby.status, 0, standby.stderr);
        assert.equal(standby.stdout, "hubspoke-failover handover: not active: nothing to hand over\n");
        const active = run(GATEWAYS[0]);
        assert.equal(active.status, 0, active.stderr);
        assert.equal(active.stdout, "hubspoke-failover handover: handed the site to virginia-standby\n");
        assert.equal(holder(), "virginia-standby");
        assert.match(logOf("virginia"), /handing the site to virginia-standby: this gateway is shutting down\n/);
        assert.match(logOf("virginia"), /stepping down: handed the site to virginia-standby/);
    });
    describe("the program's handover and ready hooks, with the AWS SDK and the operator's key", () => {
        const saved = { ...process.env };
        const primary = pairGateway("prod-ha", "/hubspoke-vpn/prod-ha", { name: "virginia", awsRegion: REGION }, "virginia");
        const standby = pairGateway("prod-ha", "/hubspoke-vpn/prod-ha", { name: "virginia", awsRegion: REGION }, "virginia-standby");
        let clients: ReturnType<typeof handoverClients> | undefined;
        let mirror: NodeJS.Timeout | undefined;
        const sdk = () => {
            Object.assign(process.env, {
                AWS_ENDPOINT_URL: fake!.url,
                AWS_ACCESS_KEY_ID: labAccessKey(LAB_OPERATOR),
                AWS_SECRET_ACCESS_KEY: "lab",
                AWS_MAX_ATTEMPTS: "1",
            });
            clients = handoverClients(REGION);
            return clients;
        };
        /** Stand-in for each gateway's agent (its mirroring is agent.test.ts's): the drain parameter to the drained file, every 200 ms. */
        const mirrorDrains = () => {
            mirror = setInterval(() => {
                for (const g of [primary, standby]) {
                    const published = fs.existsSync(at("ssm", `${REGION}${g.drainParameter}`));
                    if (published !== fs.existsSync(at(g.gateway, "state", "drained"))) setDrained(g.gateway as Name, published);
                }
            }, 200);
        };
        afterEach(() => {
            clearInterval(mirror);
            clients?.destroy();
            process.env = { ...saved };
        });

        it("drain with liftAfter (the beforeDelete hook) hands the site over and lifts the drain; drain and undrain (npm run site) move it back", async () => {
            await rig(ec2State({ networkInterfaceId: GATEWAYS[0].networkInterfaceId, privateIp: GATEWAYS[0].siteIp }));
            fs.writeFileSync(at("alive"), "");
            start(GATEWAYS[0]);
            start(GATEWAYS[1]);
            mirrorDrains();
            await waitFor("a first StandbyReady 1", () => standbyReady().includes(1), 15);
            const c = sdk();
            const hook = await drain(c, primary, { liftAfter: true, pollMs: 200 });
            assert.deepEqual({ ...hook, seconds: undefined }, { kind: "handed-over", to: "virginia-standby", seconds: undefined });
            assert.ok(!fs.existsSync(at("ssm", `${REGION}${primary.drainParameter}`)), "the drain outlived the replacement's hook");
            await waitFor("virginia no longer drained", () => !fs.existsSync(at("virginia", "state", "drained")), 5);
            // The operator's drain of the new active: it moves back once virginia is a ready standby again.
            await waitFor(
                "virginia ready as the standby",
                () => /stepping down/.test(logOf("virginia")) && standbyReady().slice(-1)[0] === 1,
                15,
            );
            const back = await drain(c, standby, { pollMs: 200 });
            assert.equal(back.kind === "handed-over" && back.to, "virginia");
            assert.ok(fs.existsSync(at("ssm", `${REGION}${standby.drainParameter}`)), "an operator's drain stays until undrain");
            assert.equal((await drain(c, standby, { pollMs: 200 })).kind, "not-holding", "draining a standby moves nothing");
            assert.equal(await undrain(c, standby), true);
            assert.equal(await undrain(c, standby), false, "undrain of an undrained gateway");
            // The operator's calls are the operator's: the gateways' IAM record holds none of them.
            assert.ok(readAuthz(at("ssm")).some((r) => r.principal === LAB_OPERATOR && r.action === "ssm:PutParameter"));
        });

        it("drain refuses at once, writing nothing, when the partner last reported StandbyReady 0", async () => {
            await pairOnPrimary("MoveSiteElasticIp");
            await assert.rejects(
                drain(sdk(), primary, { liftAfter: true }),
                /gateway virginia keeps site virginia: its partner virginia-standby reported StandbyReady 0 at .*journalctl -u hubspoke-failover on virginia-standby/,
            );
            assert.ok(!fs.existsSync(at("ssm", `${REGION}${primary.drainParameter}`)));
            assert.equal(holder(), "virginia");
        });

        it("npm run site drains and undrains with the operator's credentials, and without credentials says so (exit 1)", async () => {
            await rig(ec2State({ networkInterfaceId: GATEWAYS[0].networkInterfaceId, privateIp: GATEWAYS[0].siteIp }));
            const site = (env: Record<string, string | undefined>, ...args: string[]) =>
                spawnSync(
                    process.execPath,
                    [require.resolve("ts-node/dist/bin"), "--transpile-only", SITE_SCRIPT, "--stack", "prod-ha", ...args],
                    {
                        encoding: "utf8",
                        env: { PATH: process.env.PATH, HOME: dir, AWS_EC2_METADATA_DISABLED: "true", ...env },
                    },
                );
            const operator = { AWS_ENDPOINT_URL: fake!.url, AWS_ACCESS_KEY_ID: labAccessKey(LAB_OPERATOR), AWS_SECRET_ACCESS_KEY: "lab" };
            let r = site(operator, "drain", "virginia-standby");
            assert.equal(r.status, 0, r.stderr);
            assert.match(
                r.stdout,
                /^virginia-standby: drained; it did not hold site virginia \(virginia does\)\nundo with: npm run site -- --stack prod-ha undrain virginia-standby\n$/m,
            );
            assert.ok(fs.existsSync(at("ssm", `${REGION}${standby.drainParameter}`)));
            r = site(operator, "undrain", "virginia-standby");
            assert.equal(r.status, 0, r.stderr);
            assert.match(r.stdout, /virginia-standby: undrained; within a minute it is an ordinary standby again/);
            assert.ok(!fs.existsSync(at("ssm", `${REGION}${standby.drainParameter}`)));
            r = site({}, "drain", "virginia");
            assert.equal(r.status, 1);
            assert.match(r.stderr, /^site: no AWS credentials for us-east-1 .*; set AWS_PROFILE or run aws sso login\n$/);
        });

        it("waitReady (the afterCreate hook) counts only a StandbyReady 1 from a minute that starts after the create", async () => {
            await rig(ec2State({ networkInterfaceId: GATEWAYS[1].networkInterfaceId, privateIp: GATEWAYS[1].siteIp }));
            const since = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 5 * 60_000 + 30_000); // half a minute into a minute, 5 minutes ago
            const record = (secondsAfterSince: number, value: number) =>
                fs.appendFileSync(
                    at("ssm", ".metrics.jsonl"),
                    `${JSON.stringify({ time: since.getTime() / 1000 + secondsAfterSince, awsRegion: REGION, namespace: "HubspokeVpn", metricName: "StandbyReady", dimensions: { Stack: "prod-ha", Region: "virginia" }, value, unit: "Count" })}\n`,
                );
            record(-20, 1); // the old standby, before the handover: a minute that started before the create
            record(10, 1); // the same minute as the create: could be either gateway's
            await assert.rejects(
                waitReady(sdk(), primary, since, { timeoutMs: 300, pollMs: 100 }),
                /gateway virginia's new instance was not ready within 0 min \(site virginia on virginia-standby; StandbyReady since it was created: none\)\. Its partner was not replaced/,
            );
            record(95, 0);
            await assert.rejects(
                waitReady(clients!, primary, since, { timeoutMs: 300, pollMs: 100 }),
                /StandbyReady since it was created: 0 at /,
            );
            record(155, 1);
            assert.match(
                await waitReady(clients!, primary, since, { pollMs: 100 }),
                /^virginia reported StandbyReady 1 at .*; virginia-standby holds the site$/,
            );
            assert.equal(await waitReady(clients!, standby, since, { pollMs: 100 }), "virginia-standby holds site virginia");
        });
    });
});
