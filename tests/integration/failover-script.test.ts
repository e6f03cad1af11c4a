/**
 * gateway/hubspoke-failover.sh, run for real against the lab's AWS endpoint (fake EC2 and SSM, with
 * IAM enforced from the program's own rendered policies) through lab/fake-aws/aws-lab, with
 * stand-ins only for what needs a host: `ip` (the instance's addresses), `ipsec`/whack (pluto, which
 * says nothing) and `ping` (the active answers while a file exists). No namespace, no pluto: the
 * decisions the script makes on EC2's answers, each in a few seconds. Layer proven: the control plane
 * (EC2 and IAM); the tunnels are the failover lab's (tests/e2e/failover.test.ts).
 */
import { strict as assert } from "node:assert";
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { renderGatewayEnv } from "../../gateway/contract";
import { AWS_LAB, awsCliEnv, type Ec2State, type FakeAws, readEc2State, readMetrics, startFakeAws, writeEc2State } from "../../lab/fakeAws";
import { editPrincipal, type IamGateway, LAB_ACCOUNT, labAccessKey, readAuthz, writePrincipals } from "../../lab/iam";
import { sleep } from "../../lab/lab";
import { failoverPolicy, gatewayPolicy } from "../../render/awsDocuments";
import { renderFailoverLayout } from "../../render/failover";

const SCRIPT = path.join(__dirname, "..", "..", "gateway", "hubspoke-failover.sh");
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
        fs.writeFileSync(
            path.join(bin, "ping"),
            `#!/bin/bash\nfor ((i = 1; ; i++)); do if [ -e ${at("alive")} ]; then echo "64 bytes from \${!#}: icmp_seq=$i ttl=64 time=0.1 ms"; else echo "no answer yet for icmp_seq=$i"; fi; sleep 0.5; done\n`,
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
                "HUBSPOKE_METRIC_INTERVAL='1'\nHUBSPOKE_FIRST_SIGHT_GRACE='0'\nHUBSPOKE_OWNER_CHECK='2'\n",
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
        for (const g of GATEWAYS) host(g);
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
        await rig(ec2State({ networkInterfaceId: GATEWAYS[0].networkInterfaceId, privateIp: GATEWAYS[0].siteIp }));
        fs.writeFileSync(at("alive"), "");
        start(GATEWAYS[0]);
        start(GATEWAYS[1]);
        await waitFor("a first StandbyReady 1", () => standbyReady().includes(1), 15);
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
});
