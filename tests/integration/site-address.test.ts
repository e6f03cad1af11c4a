/**
 * Removing a site with a standby, or `pulumi destroy`, releases its Elastic IP, which the failover
 * script (not Pulumi) associated. EC2 refuses to release an associated address, so the program's
 * `beforeDelete` hook disassociates it first. Here the hook the program registers runs with the
 * AWS SDK against the lab's fake EC2, which refuses the release as AWS does. The engine's part
 * (the hook runs right before the address's delete, after its dependents) cannot run here: no
 * Pulumi CLI. The mock tests check that every site address carries the hook.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { AssociateAddressCommand, DisassociateAddressCommand, EC2Client, ReleaseAddressCommand } from "@aws-sdk/client-ec2";
import { type AddressApi, disassociateUntilFree, SITE_ADDRESS_HOOK } from "../../components/siteAddressHook";
import { evaluateOffline } from "../../harness/evaluate";
import { type Ec2State, type FakeAws, readEc2State, startFakeAws, writeEc2State } from "../../lab/fakeAws";
import { stackConfig } from "../unit/fixtures";

const REGION = "us-east-1";
const SITE_EIP = "eipalloc-0site0000000000001";
const PRIMARY = "eni-0primary00000000001";
const STANDBY = "eni-0standby00000000001";

function state(associated: boolean): Ec2State {
    return {
        addresses: [
            {
                allocationId: SITE_EIP,
                publicIp: "192.0.2.11",
                awsRegion: REGION,
                networkInterfaceId: associated ? STANDBY : null,
                privateIpAddress: associated ? "10.11.4.7" : null,
                associationId: associated ? "eipassoc-0failover000000001" : null,
            },
        ],
        networkInterfaces: [
            { networkInterfaceId: PRIMARY, awsRegion: REGION, privateIpAddresses: ["10.11.4.5", "10.11.4.6"] },
            { networkInterfaceId: STANDBY, awsRegion: REGION, privateIpAddresses: ["10.11.5.5", "10.11.4.7"] },
        ],
        routeTables: [],
    } as unknown as Ec2State;
}

describe("a site's Elastic IP, released after the failover script associated it (AWS SDK, fake EC2)", function () {
    this.timeout(60_000);
    let dir: string;
    let stateFile: string;
    let log: string;
    let fake: FakeAws | undefined;
    let ec2: EC2Client;
    const saved = { ...process.env };

    const start = async (associated: boolean, writeState = true) => {
        if (writeState) writeEc2State(stateFile, state(associated));
        fake = await startFakeAws(path.join(dir, "store"), { ec2State: stateFile, ec2LatencyMs: 20, log });
        // The SDK's own way to another endpoint, as the hook's EC2Client will see it.
        Object.assign(process.env, {
            AWS_ENDPOINT_URL_EC2: fake.url,
            AWS_ACCESS_KEY_ID: "AKIAFAKEFAKEFAKEFAKE",
            AWS_SECRET_ACCESS_KEY: "fake",
            AWS_REGION: REGION,
        });
        ec2 = new EC2Client({ region: REGION, maxAttempts: 1 });
    };
    const ops = () =>
        fs
            .readFileSync(log, "utf8")
            .split("\n")
            .filter(Boolean)
            .map((l) => l.split(" ").slice(2, 4).join(" ")) // <time> <region> <op> <subject> ...
            .filter((l) => /Address/.test(l));

    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "site-address-"));
        stateFile = path.join(dir, "ec2.json");
        log = path.join(dir, "requests.log");
    });
    afterEach(async () => {
        ec2?.destroy();
        await fake?.stop();
        fake = undefined;
        process.env = { ...saved };
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("EC2 refuses to release an associated address (InvalidIPAddress.InUse), as AWS does", async () => {
        await start(true);
        await assert.rejects(ec2.send(new ReleaseAddressCommand({ AllocationId: SITE_EIP })), { name: "InvalidIPAddress.InUse" });
        assert.equal(readEc2State(stateFile).addresses.length, 1);
    });

    it("the program's beforeDelete hook disassociates it, then the release succeeds; in that order", async () => {
        await start(true);
        const ev = await evaluateOffline(stackConfig("prod-ha"), { stack: "prod-ha" });
        const hook = ev.hooks[SITE_ADDRESS_HOOK];
        assert.ok(hook, `the program registers ${SITE_ADDRESS_HOOK}`);
        // What the engine passes a beforeDelete hook: the address's last inputs and outputs.
        await hook.callback({
            urn: "urn:pulumi:prod-ha::hubspoke-vpn::hubspoke:index:HubSpokeVpn$aws:ec2/eip:Eip::hubspoke-virginia-eip",
            id: SITE_EIP,
            name: "hubspoke-virginia-eip",
            type: "aws:ec2/eip:Eip",
            oldInputs: { domain: "vpc" },
            oldOutputs: { allocationId: SITE_EIP, region: REGION, publicIp: "192.0.2.11", domain: "vpc" },
        });
        await ec2.send(new ReleaseAddressCommand({ AllocationId: SITE_EIP }));
        assert.deepEqual(readEc2State(stateFile).addresses, []);
        const calls = ops();
        assert.deepEqual(
            calls.map((c) => c.split(" ")[0]),
            ["DescribeAddresses", "DisassociateAddress", "DescribeAddresses", "ReleaseAddress"],
            calls.join("\n"),
        );
    });

    /**
     * The SDK client, with what a gateway does meanwhile: `after` runs right after each
     * DisassociateAddress has answered (or right before, with `before`), deterministically.
     */
    const withGateway = (hooks: { before?: () => Promise<unknown>; after?: () => Promise<unknown> }): AddressApi => ({
        send: (async (command: any) => {
            const disassociate = command instanceof DisassociateAddressCommand;
            if (disassociate && hooks.before) await hooks.before();
            const answer = await ec2.send(command);
            if (disassociate && hooks.after) await hooks.after();
            return answer;
        }) as AddressApi["send"],
    });
    const takeBack = () =>
        ec2.send(new AssociateAddressCommand({ AllocationId: SITE_EIP, NetworkInterfaceId: PRIMARY, PrivateIpAddress: "10.11.4.6" }));

    it("an address taken back right after (a gateway's last takeover) is disassociated again; one always taken back stops with what to do", async () => {
        await start(true);
        let times = 1;
        const once = withGateway({ after: async () => (times-- > 0 ? takeBack() : undefined) });
        assert.equal(await disassociateUntilFree(once, SITE_EIP, { settleMs: 10 }), 2);
        assert.equal(readEc2State(stateFile).addresses[0].associationId, null);

        await takeBack();
        const always = withGateway({ after: takeBack });
        await assert.rejects(disassociateUntilFree(always, SITE_EIP, { settleMs: 10, attempts: 2 }), (e: Error) => {
            assert.ok(readEc2State(stateFile).addresses[0].associationId, "the address was taken back");
            assert.match(e.message, /eipalloc-0site0000000000001 was associated again after each of 2 disassociations/);
            assert.match(e.message, /Stop the site's gateways, or detach the failover policy from their roles/);
            return true;
        });
    });

    it("an association gone between the check and the call (its interface deleted) is no failure: checked again, free", async () => {
        await start(true);
        const gone = withGateway({
            before: async () => {
                const [a] = readEc2State(stateFile).addresses;
                await ec2.send(new DisassociateAddressCommand({ AssociationId: a.associationId! }));
            },
        });
        assert.equal(await disassociateUntilFree(gone, SITE_EIP, { settleMs: 10 }), 1);
        assert.ok(ops().includes("DisassociateAddress eipassoc-0failover000000001"));
    });

    it("an address already released outside Pulumi is no failure (the provider's delete treats it as done)", async () => {
        writeEc2State(stateFile, { ...state(false), addresses: [] });
        await start(false, false);
        assert.equal(await disassociateUntilFree(ec2, SITE_EIP), 0);
        assert.deepEqual(ops(), [`DescribeAddresses ${SITE_EIP}`]);
    });

    it("an unassociated address (a site without a standby) costs one call and changes nothing", async () => {
        await start(false);
        assert.equal(await disassociateUntilFree(ec2, SITE_EIP), 0);
        assert.deepEqual(ops(), [`DescribeAddresses ${SITE_EIP}`]);
    });
});
