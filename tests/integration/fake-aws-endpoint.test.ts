/**
 * lab/fake-aws/endpoint.mjs, the local stand-in for SSM Parameter Store, driven by the real AWS CLI v2
 * (`--endpoint-url`), so that what the gateways' scripts get from it is what they would get from AWS:
 * the CLI's own output formatting, pagination, error names and exit codes. Then the protocol details
 * the CLI calls do not reach, over plain HTTP. Then its EC2 and CloudWatch parts through the lab VM's
 * lab/fake-aws/aws-lite (each call of the failover daemon, AWS's errors, the latency), the same calls
 * through the real CLI printing the same, and the data plane: a VPC router namespace's Elastic IP NAT
 * and routes changed before the call returns.
 *
 * Each CLI call costs most of a second of Python start-up, so there are few of them, in parallel where
 * they are independent, and the setup writes the store's files directly.
 */
import { strict as assert } from "node:assert";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import {
    AWS_CLI,
    AWS_LAB,
    AWS_LITE,
    awsCliEnv,
    type Ec2State,
    type FakeAws,
    readEc2State,
    readMetrics,
    startFakeAws,
    writeEc2State,
} from "../../lab/fakeAws";
import { LAB_ACCOUNT, labAccessKey, readAuthz, writePrincipals } from "../../lab/iam";
import { ciMustRun } from "../unit/fixtures";

interface Run {
    status: number;
    stdout: string;
    stderr: string;
}

const PREFIX = "/hubspoke-vpn/test/tunnels";
const DIRECT = Array.from({ length: 5 }, (_, i) => `${PREFIX}/direct-${i}`);
const NESTED = Array.from({ length: 20 }, (_, i) => `${PREFIX}/t/${String(i).padStart(2, "0")}/psk`);

/** The real CLI, to compare against: skipped where it is missing, required under CI (a broken runner otherwise). */
function requireAwsCli(context: Mocha.Context): void {
    if (!fs.existsSync(AWS_CLI)) ciMustRun(context, `${AWS_CLI} (AWS CLI v2) is not installed`);
}

function tempStore(): { dir: string; store: string; log: string } {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fake-aws-"));
    return { dir, store: path.join(dir, "store"), log: path.join(dir, "requests.log") };
}

describe("fake SSM endpoint with the real AWS CLI", function () {
    // CLI start-up is slow on a loaded machine; three sequential calls must fit in one test.
    this.timeout(60_000);
    let tmp: ReturnType<typeof tempStore>;
    let fake: FakeAws;

    const aws = (region: string, ...args: string[]): Promise<Run> =>
        new Promise((resolve) => {
            execFile(
                AWS_CLI,
                ["ssm", ...args, "--region", region, "--endpoint-url", fake.url],
                { encoding: "utf8", env: awsCliEnv(fake.url), timeout: 30_000 },
                (err, stdout, stderr) => {
                    const code = err ? (err as NodeJS.ErrnoException & { code?: unknown }).code : 0;
                    resolve({ status: typeof code === "number" ? code : -1, stdout, stderr });
                },
            );
        });
    const requests = (op: string) =>
        fs.existsSync(tmp.log)
            ? fs
                  .readFileSync(tmp.log, "utf8")
                  .split("\n")
                  .filter((l) => l.includes(` ${op} `)).length
            : 0;

    before(async function () {
        requireAwsCli(this);
        tmp = tempStore();
        fake = await startFakeAws(tmp.store, { log: tmp.log });
        for (const name of [...DIRECT, ...NESTED]) fake.put("us-east-1", name, `value of ${name}`, "SecureString");
        // Neighbours that no listing of PREFIX may return: a sibling sharing the prefix's characters,
        // a parent's parameter, and the same names in another region.
        fake.put("us-east-1", `${PREFIX}-other/x`, "not mine");
        fake.put("us-east-1", "/hubspoke-vpn/test/x", "not mine");
        fake.put("eu-west-1", DIRECT[0], "other region");
        fake.put("eu-west-1", `${PREFIX}/t/99/psk`, "other region");
    });

    afterEach(() => fake?.faults({}));

    after(async () => {
        await fake?.stop();
        if (tmp) fs.rmSync(tmp.dir, { recursive: true, force: true });
    });

    it("get-parameter --output text prints a multi-line SecureString exactly, then one newline", async () => {
        const value = "line one\n  indented\twith a tab\n\nlast line\n";
        fake.put("us-east-1", "/hubspoke-vpn/test/multi", value, "SecureString");
        const r = await aws(
            "us-east-1",
            "get-parameter",
            "--name",
            "/hubspoke-vpn/test/multi",
            "--with-decryption",
            "--query",
            "Parameter.Value",
            "--output",
            "text",
        );
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, value + "\n");
    });

    it("a missing parameter: exit 254 and ParameterNotFound", async () => {
        const r = await aws("us-east-1", "get-parameter", "--name", "/hubspoke-vpn/test/nothing-here");
        assert.equal(r.status, 254);
        assert.match(r.stderr, /An error occurred \(ParameterNotFound\) when calling the GetParameter operation/);
        assert.equal(r.stdout, "");
    });

    it("get-parameters-by-path --recursive: all 25, sorted, over 3 pages the CLI follows", async () => {
        const before = requests("GetParametersByPath");
        const r = await aws(
            "us-east-1",
            "get-parameters-by-path",
            "--path",
            PREFIX,
            "--recursive",
            "--query",
            "Parameters[].[Name,Version]",
            "--output",
            "text",
        );
        assert.equal(r.status, 0, r.stderr);
        const expected = [...DIRECT, ...NESTED].sort().map((n) => `${n}\t1`);
        assert.deepEqual(r.stdout.trimEnd().split("\n"), expected);
        assert.equal(requests("GetParametersByPath") - before, 3, "10 + 10 + 5: the CLI must have followed NextToken twice");
    });

    it("without --recursive only the path's direct children (a trailing / is optional)", async () => {
        const r = await aws(
            "us-east-1",
            "get-parameters-by-path",
            "--path",
            `${PREFIX}/`,
            "--query",
            "Parameters[].[Name]",
            "--output",
            "text",
        );
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(r.stdout.trimEnd().split("\n"), DIRECT);
    });

    it("a changed file is the next version; the same content rewritten is not", async () => {
        const name = "/hubspoke-vpn/test/versioned";
        const file = path.join(tmp.store, "us-east-1", name);
        const get = async () => {
            const r = await aws("us-east-1", "get-parameter", "--name", name, "--query", "Parameter.[Version,Value]", "--output", "text");
            assert.equal(r.status, 0, r.stderr);
            return r.stdout.trimEnd();
        };
        fake.put("us-east-1", name, "first");
        assert.equal(await get(), "1\tfirst");
        fs.writeFileSync(file, "second\n");
        assert.equal(await get(), "2\tsecond");
        fs.writeFileSync(file, "second\n");
        assert.equal(await get(), "2\tsecond");
    });

    it("regions are separate stores: the same name, a different value and ARN in each", async () => {
        const name = "/hubspoke-vpn/test/regional";
        fake.put("us-east-1", name, "virginia");
        fake.put("ap-southeast-2", name, "sydney");
        const query = ["get-parameter", "--name", name, "--query", "Parameter.[Value,ARN]", "--output", "text"];
        const [east, south] = await Promise.all([aws("us-east-1", ...query), aws("ap-southeast-2", ...query)]);
        assert.equal(east.stdout, `virginia\tarn:aws:ssm:us-east-1:123456789012:parameter${name}\n`, east.stderr);
        assert.equal(south.stdout, `sydney\tarn:aws:ssm:ap-southeast-2:123456789012:parameter${name}\n`, south.stderr);
    });

    it("failNext 2 ThrottlingException: two calls fail, the third succeeds", async () => {
        fake.faults({ failNext: 2, error: "ThrottlingException" });
        const get = () =>
            aws("us-east-1", "get-parameter", "--name", DIRECT[1], "--with-decryption", "--query", "Parameter.Value", "--output", "text");
        for (const attempt of [1, 2]) {
            const r = await get();
            assert.notEqual(r.status, 0, `attempt ${attempt} should have failed`);
            assert.match(r.stderr, /ThrottlingException/);
        }
        const r = await get();
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, `value of ${DIRECT[1]}\n`);
        assert.equal(JSON.parse(fs.readFileSync(path.join(tmp.store, ".faults.json"), "utf8")).failNext, 0);
    });

    it("deny: AccessDeniedException for the name, and for a by-path call whose results include it", async () => {
        const denied = NESTED[7];
        fake.faults({ deny: [denied] });
        const [one, byPath] = await Promise.all([
            aws("us-east-1", "get-parameter", "--name", denied, "--with-decryption"),
            aws("us-east-1", "get-parameters-by-path", "--path", PREFIX, "--recursive", "--with-decryption"),
        ]);
        for (const r of [one, byPath]) {
            assert.notEqual(r.status, 0);
            assert.match(r.stderr, /AccessDeniedException/);
            assert.ok(!r.stdout.includes("value of"), "no value may leak from a denied call");
        }
    });

    it("unreachable: the connection closes unanswered and the CLI exits 255", async () => {
        fake.faults({ failNext: 1, error: "unreachable" });
        const r = await aws("us-east-1", "get-parameter", "--name", DIRECT[0]);
        assert.equal(r.status, 255);
        assert.match(r.stderr, /Connection was closed before we received a valid response/);
    });
});

describe("fake SSM endpoint: protocol details", () => {
    let tmp: ReturnType<typeof tempStore>;
    let fake: FakeAws;

    const call = async (op: string, body: object, region = "us-east-1"): Promise<{ status: number; json: any }> => {
        const res = await fetch(fake.url, {
            method: "POST",
            headers: {
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": `AmazonSSM.${op}`,
                Authorization: `AWS4-HMAC-SHA256 Credential=AKIAFAKE/20261126/${region}/ssm/aws4_request, SignedHeaders=host, Signature=0`,
            },
            body: JSON.stringify(body),
        });
        assert.equal(res.headers.get("content-type"), "application/x-amz-json-1.1");
        return { status: res.status, json: await res.json() };
    };

    before(async () => {
        tmp = tempStore();
        fake = await startFakeAws(tmp.store, { log: tmp.log });
        for (let i = 0; i < 7; i++) fake.put("us-east-1", `/p/k${i}`, `v${i}`);
    });

    after(async () => {
        await fake?.stop();
        if (tmp) fs.rmSync(tmp.dir, { recursive: true, force: true });
    });

    it("pages by MaxResults with an opaque NextToken, refuses MaxResults over 10 and a foreign token", async () => {
        const names: string[] = [];
        let token: string | undefined;
        let pages = 0;
        do {
            const { status, json } = await call("GetParametersByPath", { Path: "/p", MaxResults: 3, NextToken: token });
            assert.equal(status, 200);
            names.push(...json.Parameters.map((p: { Name: string }) => p.Name));
            token = json.NextToken;
            pages++;
        } while (token);
        assert.equal(pages, 3);
        assert.deepEqual(names, ["/p/k0", "/p/k1", "/p/k2", "/p/k3", "/p/k4", "/p/k5", "/p/k6"]);

        assert.equal((await call("GetParametersByPath", { Path: "/p", MaxResults: 11 })).json.__type, "ValidationException");
        const first = await call("GetParametersByPath", { Path: "/p", MaxResults: 1 });
        const other = await call("GetParametersByPath", { Path: "/p", Recursive: true, NextToken: first.json.NextToken });
        assert.deepEqual([other.status, other.json.__type], [400, "InvalidNextToken"]);
        assert.equal((await call("GetParametersByPath", { Path: "p" })).json.__type, "ValidationException");
    });

    it("GetParameters: found ones and InvalidParameters", async () => {
        const { json } = await call("GetParameters", { Names: ["/p/k1", "/p/none", "/p/k2"] });
        assert.deepEqual(
            json.Parameters.map((p: { Name: string; Value: string }) => [p.Name, p.Value]),
            [
                ["/p/k1", "v1"],
                ["/p/k2", "v2"],
            ],
        );
        assert.deepEqual(json.InvalidParameters, ["/p/none"]);
    });

    it("PutParameter and DeleteParameter: files, types, versions, and AWS's errors", async () => {
        const name = "/put/secret";
        assert.deepEqual((await call("PutParameter", { Name: name, Value: "s1", Type: "SecureString" })).json, {
            Version: 1,
            Tier: "Standard",
        });
        assert.equal(fs.readFileSync(path.join(tmp.store, "us-east-1", name), "utf8"), "s1");
        const again = await call("PutParameter", { Name: name, Value: "s2" });
        assert.deepEqual([again.status, again.json.__type], [400, "ParameterAlreadyExists"]);
        // AWS counts every overwrite as a version, even of the same value.
        assert.equal((await call("PutParameter", { Name: name, Value: "s1", Overwrite: true })).json.Version, 2);

        const encrypted = (await call("GetParameter", { Name: name })).json.Parameter;
        assert.equal(encrypted.Type, "SecureString");
        assert.notEqual(encrypted.Value, "s1", "without decryption a SecureString is ciphertext");
        const plain = (await call("GetParameter", { Name: name, WithDecryption: true })).json.Parameter;
        assert.deepEqual([plain.Value, plain.Version, plain.DataType], ["s1", 2, "text"]);
        assert.equal(typeof plain.LastModifiedDate, "number");

        assert.equal((await call("DeleteParameter", { Name: name })).status, 200);
        assert.ok(!fs.existsSync(path.join(tmp.store, "us-east-1", name)));
        assert.equal((await call("GetParameter", { Name: name })).json.__type, "ParameterNotFound");
        assert.equal((await call("DeleteParameter", { Name: name })).json.__type, "ParameterNotFound");
    });

    it("refuses names that would leave the store, and unknown operations", async () => {
        for (const Name of ["/p/../../etc/passwd", "/p//k1", "/p/k1;x"]) {
            assert.equal((await call("GetParameter", { Name })).json.__type, "ValidationException", Name);
        }
        const r = await call("DescribeParameters", {});
        assert.deepEqual([r.status, r.json.__type], [400, "InvalidAction"]);
    });

    it("InternalServerError is a 500; latencyMs delays the answer", async () => {
        fake.faults({ failNext: 1, error: "InternalServerError" });
        const r = await call("GetParameter", { Name: "/p/k0" });
        assert.deepEqual([r.status, r.json.__type], [500, "InternalServerError"]);
        fake.faults({ latencyMs: 300 });
        const t0 = Date.now();
        assert.equal((await call("GetParameter", { Name: "/p/k0" })).status, 200);
        assert.ok(Date.now() - t0 >= 290, `answered after ${Date.now() - t0} ms`);
        fake.faults({});
    });

    it("a restarted server continues the versions it counted", async () => {
        fake.put("us-east-1", "/p/k0", "changed");
        assert.equal((await call("GetParameter", { Name: "/p/k0" })).json.Parameter.Version, 2);
        await fake.stop();
        fake = await startFakeAws(tmp.store, { log: tmp.log });
        assert.equal((await call("GetParameter", { Name: "/p/k0" })).json.Parameter.Version, 2);
        fake.put("us-east-1", "/p/k0", "changed again");
        assert.equal((await call("GetParameter", { Name: "/p/k0" })).json.Parameter.Version, 3);
    });

    it("startFakeAws fails with the server's own reason when it cannot listen", async () => {
        const port = Number(new URL(fake.url).port);
        await assert.rejects(startFakeAws(tmp.store, { port }), /exited before listening[\s\S]*EADDRINUSE/);
    });
});

/** Runs `cli` (aws-lite or the real CLI) with the gateways' common options; never throws. */
function runAws(
    cli: string,
    fake: FakeAws,
    region: string,
    args: string[],
    env: Record<string, string> = {},
    readTimeoutSeconds = 10,
): Promise<Run & { ms: number }> {
    const t0 = Date.now();
    const common = [
        "--region",
        region,
        "--cli-connect-timeout",
        "2",
        "--cli-read-timeout",
        String(readTimeoutSeconds),
        "--endpoint-url",
        fake.url,
    ];
    return new Promise((resolve) => {
        execFile(
            cli,
            [...args, ...common],
            { encoding: "utf8", env: { ...awsCliEnv(fake.url), ...env }, timeout: 30_000 },
            (err, stdout, stderr) => {
                const code = err ? (err as NodeJS.ErrnoException & { code?: unknown }).code : 0;
                resolve({ status: typeof code === "number" ? code : -1, stdout, stderr, ms: Date.now() - t0 });
            },
        );
    });
}

/** aws-lite and aws-lab failed as the real CLI did: the same exit status and the same words. */
function sameFailure(what: string, real: Run, lite: Run, lab: Run): void {
    for (const [name, mine] of [
        ["aws-lite", lite],
        ["aws-lab", lab],
    ] as const) {
        assert.equal(mine.status, real.status, `${what} (${name}): ${mine.stderr}`);
        assert.equal(mine.stderr.trim(), real.stderr.trim(), `${what} (${name})`);
    }
}

const EAST = "us-east-1";
const LATENCY = 300;

/** Two gateways' interfaces (active .5, standby .6) and one Elastic IP, one route table, in us-east-1. */
function ec2Fixture(netns?: string): Ec2State {
    return {
        addresses: [
            {
                allocationId: "eipalloc-0aaaaaaaaaaaaaaa1",
                publicIp: "192.0.2.11",
                awsRegion: EAST,
                netns: netns ?? null,
                networkInterfaceId: "eni-0aaaaaaaaaaaaaaa1",
                privateIpAddress: "10.11.4.5",
                associationId: "eipassoc-0aaaaaaaaaaaaaaa1",
            },
            {
                allocationId: "eipalloc-0aaaaaaaaaaaaaaa2",
                publicIp: "192.0.2.21",
                awsRegion: EAST,
                netns: netns ?? null,
                networkInterfaceId: null,
                privateIpAddress: null,
                associationId: null,
            },
        ],
        networkInterfaces: [
            { networkInterfaceId: "eni-0aaaaaaaaaaaaaaa1", awsRegion: EAST, privateIpAddresses: ["10.11.4.5"], nextHop: "10.11.4.5" },
            {
                networkInterfaceId: "eni-0bbbbbbbbbbbbbbb2",
                awsRegion: EAST,
                privateIpAddresses: ["10.11.4.6", "10.11.4.7"],
                nextHop: "10.11.4.6",
            },
        ],
        routeTables: [
            {
                routeTableId: "rtb-0aaaaaaaaaaaaaaa1",
                awsRegion: EAST,
                vpcId: "vpc-0aaaaaaaaaaaaaaa1",
                netns: netns ?? null,
                table: 101,
                routes: [
                    { destinationCidrBlock: "12.11.0.0/16", networkInterfaceId: "eni-0aaaaaaaaaaaaaaa1" },
                    { destinationCidrBlock: "13.11.0.0/16", networkInterfaceId: "eni-0aaaaaaaaaaaaaaa1" },
                ],
            },
        ],
    };
}
const [EIP, SPARE_EIP] = ["eipalloc-0aaaaaaaaaaaaaaa1", "eipalloc-0aaaaaaaaaaaaaaa2"];
const [ACTIVE, STANDBY] = ["eni-0aaaaaaaaaaaaaaa1", "eni-0bbbbbbbbbbbbbbb2"];
const RTB = "rtb-0aaaaaaaaaaaaaaa1";
/** The takeover's route move: the spoke's range to the standby's interface. */
const REPLACE_ROUTE = [
    "ec2",
    "replace-route",
    "--route-table-id",
    RTB,
    "--destination-cidr-block",
    "12.11.0.0/16",
    "--network-interface-id",
    STANDBY,
];

describe("fake EC2 and CloudWatch endpoint through aws-lite", function () {
    this.timeout(30_000);
    let tmp: ReturnType<typeof tempStore>;
    let stateFile: string;
    let fake: FakeAws;
    const lite = (args: string[], region = EAST, env: Record<string, string> = {}) => runAws(AWS_LITE, fake, region, args, env);
    const addresses = async (...ids: string[]) => {
        const r = await lite(["ec2", "describe-addresses", "--allocation-ids", ...ids, "--output", "json"]);
        assert.equal(r.status, 0, r.stderr);
        return JSON.parse(r.stdout).Addresses;
    };
    const routes = async () => {
        const r = await lite(["ec2", "describe-route-tables", "--route-table-ids", RTB, "--output", "json"]);
        assert.equal(r.status, 0, r.stderr);
        return JSON.parse(r.stdout).RouteTables[0].Routes.map((x: { DestinationCidrBlock: string; NetworkInterfaceId: string }) => [
            x.DestinationCidrBlock,
            x.NetworkInterfaceId,
        ]);
    };
    const associate = (eni: string, ...more: string[]) =>
        lite(["ec2", "associate-address", "--allocation-id", EIP, "--network-interface-id", eni, ...more, "--output", "json"]);

    before(async () => {
        tmp = tempStore();
        stateFile = path.join(tmp.dir, "ec2.json");
        writeEc2State(stateFile, ec2Fixture());
        fake = await startFakeAws(tmp.store, { log: tmp.log, ec2State: stateFile, ec2LatencyMs: LATENCY });
    });

    beforeEach(() => writeEc2State(stateFile, ec2Fixture()));
    afterEach(() => fake?.faults({}));

    after(async () => {
        await fake?.stop();
        if (tmp) fs.rmSync(tmp.dir, { recursive: true, force: true });
    });

    it("describe-addresses: the CLI's shape, association fields only when associated; after the latency", async () => {
        const r = await lite(["ec2", "describe-addresses", "--allocation-ids", EIP, SPARE_EIP, "--output", "json"]);
        assert.equal(r.status, 0, r.stderr);
        assert.ok(r.ms >= LATENCY, `answered after ${r.ms} ms`);
        assert.deepEqual(JSON.parse(r.stdout), {
            Addresses: [
                {
                    PublicIp: "192.0.2.11",
                    AllocationId: EIP,
                    AssociationId: "eipassoc-0aaaaaaaaaaaaaaa1",
                    Domain: "vpc",
                    NetworkInterfaceId: ACTIVE,
                    NetworkInterfaceOwnerId: "123456789012",
                    PrivateIpAddress: "10.11.4.5",
                    PublicIpv4Pool: "amazon",
                    NetworkBorderGroup: EAST,
                },
                { PublicIp: "192.0.2.21", AllocationId: SPARE_EIP, Domain: "vpc", PublicIpv4Pool: "amazon", NetworkBorderGroup: EAST },
            ],
        });
    });

    it("associate-address: refused while associated, moved with --allow-reassociation, a new AssociationId each time", async () => {
        const refused = await associate(STANDBY, "--private-ip-address", "10.11.4.6");
        assert.equal(refused.status, 254);
        assert.equal(refused.stdout, "");
        assert.match(
            refused.stderr,
            /An error occurred \(Resource\.AlreadyAssociated\) when calling the AssociateAddress operation.*: resource eipalloc-0aaaaaaaaaaaaaaa1 is already associated with associate-id eipassoc-0aaaaaaaaaaaaaaa1/,
        );
        assert.equal(readEc2State(stateFile).addresses[0].networkInterfaceId, ACTIVE, "a refused call changes nothing");

        const moved = await associate(STANDBY, "--private-ip-address", "10.11.4.7", "--allow-reassociation");
        assert.equal(moved.status, 0, moved.stderr);
        assert.ok(moved.ms >= LATENCY, `answered after ${moved.ms} ms`);
        const { AssociationId } = JSON.parse(moved.stdout);
        assert.deepEqual(Object.keys(JSON.parse(moved.stdout)), ["AssociationId"]);
        assert.match(AssociationId, /^eipassoc-[0-9a-f]{17}$/);
        const [address] = await addresses(EIP);
        assert.deepEqual(
            [address.AssociationId, address.NetworkInterfaceId, address.PrivateIpAddress],
            [AssociationId, STANDBY, "10.11.4.7"],
        );
        const saved = readEc2State(stateFile).addresses[0];
        assert.deepEqual([saved.associationId, saved.networkInterfaceId, saved.privateIpAddress], [AssociationId, STANDBY, "10.11.4.7"]);

        // Without --private-ip-address: the interface's primary (first) address.
        const back = await associate(ACTIVE, "--allow-reassociation");
        assert.equal(back.status, 0, back.stderr);
        const again = JSON.parse(back.stdout).AssociationId;
        assert.notEqual(again, AssociationId);
        assert.deepEqual(
            (await addresses(EIP)).map((a: { NetworkInterfaceId: string; PrivateIpAddress: string }) => [
                a.NetworkInterfaceId,
                a.PrivateIpAddress,
            ]),
            [[ACTIVE, "10.11.4.5"]],
        );
    });

    it("replace-route: prints nothing, describe-route-tables shows the new target; an absent route is not created", async () => {
        const r = await lite(REPLACE_ROUTE);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, "");
        const d = await lite(["ec2", "describe-route-tables", "--route-table-ids", RTB, "--output", "json"]);
        assert.equal(d.status, 0, d.stderr);
        assert.deepEqual(JSON.parse(d.stdout), {
            RouteTables: [
                {
                    Associations: [],
                    PropagatingVgws: [],
                    RouteTableId: RTB,
                    Routes: [
                        { DestinationCidrBlock: "12.11.0.0/16", NetworkInterfaceId: STANDBY, Origin: "CreateRoute", State: "active" },
                        { DestinationCidrBlock: "13.11.0.0/16", NetworkInterfaceId: ACTIVE, Origin: "CreateRoute", State: "active" },
                    ],
                    Tags: [],
                    VpcId: "vpc-0aaaaaaaaaaaaaaa1",
                    OwnerId: "123456789012",
                },
            ],
        });
        const absent = await lite([
            "ec2",
            "replace-route",
            "--route-table-id",
            RTB,
            "--destination-cidr-block",
            "14.11.0.0/16",
            "--network-interface-id",
            STANDBY,
        ]);
        assert.equal(absent.status, 254);
        assert.match(
            absent.stderr,
            /\(InvalidRoute\.NotFound\) when calling the ReplaceRoute operation.*: no route with destination-cidr-block 14\.11\.0\.0\/16 in route table rtb-/,
        );
        assert.deepEqual(await routes(), [
            ["12.11.0.0/16", STANDBY],
            ["13.11.0.0/16", ACTIVE],
        ]);
    });

    it("unknown ids and another region: AWS's NotFound errors, exit 254, nothing printed", async () => {
        const cases: [string[], string, string][] = [
            [["ec2", "describe-addresses", "--allocation-ids", EIP, "eipalloc-0ffffffffffffffff"], EAST, "InvalidAllocationID.NotFound"],
            [["ec2", "describe-addresses", "--allocation-ids", EIP], "eu-west-1", "InvalidAllocationID.NotFound"],
            [
                ["ec2", "associate-address", "--allocation-id", EIP, "--network-interface-id", STANDBY],
                "eu-west-1",
                "InvalidAllocationID.NotFound",
            ],
            [
                [
                    "ec2",
                    "associate-address",
                    "--allocation-id",
                    EIP,
                    "--network-interface-id",
                    "eni-0ffffffffffffffff",
                    "--allow-reassociation",
                ],
                EAST,
                "InvalidNetworkInterfaceID.NotFound",
            ],
            [
                [
                    "ec2",
                    "associate-address",
                    "--allocation-id",
                    EIP,
                    "--network-interface-id",
                    STANDBY,
                    "--private-ip-address",
                    "10.11.4.9",
                    "--allow-reassociation",
                ],
                EAST,
                "InvalidParameterValue",
            ],
            [["ec2", "describe-route-tables", "--route-table-ids", "rtb-0ffffffffffffffff"], EAST, "InvalidRouteTableID.NotFound"],
            [REPLACE_ROUTE, "eu-west-1", "InvalidRouteTableID.NotFound"],
            [[...REPLACE_ROUTE.slice(0, -1), "eni-0ffffffffffffffff"], EAST, "InvalidNetworkInterfaceID.NotFound"],
        ];
        const results = await Promise.all(cases.map(([args, region]) => lite([...args, "--output", "json"], region)));
        results.forEach((r, i) => {
            const [args, region, code] = cases[i];
            const what = `${args.slice(0, 2).join(" ")} in ${region}`;
            assert.equal(r.status, 254, `${what}: ${r.stderr}`);
            assert.equal(r.stdout, "", what);
            assert.ok(r.stderr.includes(`An error occurred (${code}) when calling the `), `${what}: ${r.stderr}`);
        });
        assert.equal(readEc2State(stateFile).addresses[0].networkInterfaceId, ACTIVE, "no failed call changed the state");
    });

    it("ec2Deny: UnauthorizedOperation for the listed action only; failNext: RequestLimitExceeded, retried as the CLI retries", async () => {
        fake.faults({ ec2Deny: ["AssociateAddress"] });
        const [denied, allowed] = await Promise.all([
            associate(STANDBY, "--allow-reassociation"),
            lite(["ec2", "describe-addresses", "--allocation-ids", EIP, "--output", "json"]),
        ]);
        assert.equal(denied.status, 254);
        assert.match(
            denied.stderr,
            /An error occurred \(UnauthorizedOperation\) when calling the AssociateAddress operation.*You are not authorized/,
        );
        assert.equal(allowed.status, 0, allowed.stderr);
        assert.equal(readEc2State(stateFile).addresses[0].networkInterfaceId, ACTIVE);

        fake.faults({ failNext: 1 });
        const throttled = await lite(["ec2", "describe-route-tables", "--output", "json"]);
        assert.equal(throttled.status, 254);
        assert.match(
            throttled.stderr,
            /\(RequestLimitExceeded\) when calling the DescribeRouteTables operation \(reached max retries: 0\)/,
        );
        fake.faults({ failNext: 1 });
        const retried = await lite(["ec2", "describe-route-tables", "--output", "json"], EAST, { AWS_MAX_ATTEMPTS: "2" });
        assert.equal(retried.status, 0, retried.stderr);
        assert.equal(JSON.parse(retried.stdout).RouteTables.length, 1);
    });

    it(".faults.json ec2LatencyMs overrides the server's EC2 latency", async () => {
        fake.faults({ ec2LatencyMs: 700 });
        const r = await lite(["ec2", "describe-addresses", "--output", "json"]);
        assert.equal(r.status, 0, r.stderr);
        assert.ok(r.ms >= 700, `answered after ${r.ms} ms`);
        assert.equal(JSON.parse(r.stdout).Addresses.length, 2, "no ids: every address of the region");
    });

    it("put-metric-data: prints nothing; each datum one line of .metrics.jsonl (JSON list and shorthand)", async () => {
        const t0 = Date.now() / 1000;
        const data = [
            {
                MetricName: "GatewayActive",
                Dimensions: [
                    { Name: "Gateway", Value: "virginia-a" },
                    { Name: "Stack", Value: "test" },
                ],
                Value: 1,
                Unit: "Count",
            },
            { MetricName: "FailoverSeconds", Dimensions: [{ Name: "Gateway", Value: "virginia-b" }], Value: 2.5, Unit: "Seconds" },
        ];
        const r = await lite(["cloudwatch", "put-metric-data", "--namespace", "HubspokeVpn", "--metric-data", JSON.stringify(data)]);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout, "");
        const short = await lite(
            [
                "cloudwatch",
                "put-metric-data",
                "--namespace",
                "HubspokeVpn",
                "--metric-data",
                "MetricName=TunnelUp,Dimensions=[{Name=Tunnel,Value=a-to-b}],Value=0,Unit=Count",
            ],
            "ap-southeast-2",
        );
        assert.equal(short.status, 0, short.stderr);
        const metrics = readMetrics(tmp.store);
        assert.deepEqual(
            metrics.map(({ time: _time, ...rest }) => rest),
            [
                {
                    awsRegion: EAST,
                    namespace: "HubspokeVpn",
                    metricName: "GatewayActive",
                    dimensions: { Gateway: "virginia-a", Stack: "test" },
                    value: 1,
                    unit: "Count",
                },
                {
                    awsRegion: EAST,
                    namespace: "HubspokeVpn",
                    metricName: "FailoverSeconds",
                    dimensions: { Gateway: "virginia-b" },
                    value: 2.5,
                    unit: "Seconds",
                },
                {
                    awsRegion: "ap-southeast-2",
                    namespace: "HubspokeVpn",
                    metricName: "TunnelUp",
                    dimensions: { Tunnel: "a-to-b" },
                    value: 0,
                    unit: "Count",
                },
            ],
        );
        for (const m of metrics) assert.ok(m.time >= t0 - 1 && m.time <= Date.now() / 1000 + 1, `time ${m.time}`);

        const bad = await lite([
            "cloudwatch",
            "put-metric-data",
            "--namespace",
            "HubspokeVpn",
            "--metric-data",
            '[{"MetricName":"X","Value":1,"Unit":"Parsecs"}]',
        ]);
        assert.equal(bad.status, 254);
        assert.match(bad.stderr, /\(InvalidParameterValue\) when calling the PutMetricData operation/);
        assert.equal(readMetrics(tmp.store).length, 3, "a refused call records nothing");
    });

    it("ssm get-parameter: the plain String parameter as the CLI prints it; a missing one exits 254", async () => {
        fake.put(EAST, "/hubspoke-vpn/test/standby/peer", "eni-0bbbbbbbbbbbbbbb2");
        const [r, missing] = await Promise.all([
            lite(["ssm", "get-parameter", "--name", "/hubspoke-vpn/test/standby/peer", "--output", "json"]),
            lite(["ssm", "get-parameter", "--name", "/hubspoke-vpn/test/none", "--output", "json"]),
        ]);
        assert.equal(r.status, 0, r.stderr);
        const { Parameter } = JSON.parse(r.stdout);
        assert.deepEqual(Object.keys(Parameter), ["Name", "Type", "Value", "Version", "LastModifiedDate", "ARN", "DataType"]);
        assert.deepEqual(
            [Parameter.Name, Parameter.Type, Parameter.Value, Parameter.Version],
            ["/hubspoke-vpn/test/standby/peer", "String", "eni-0bbbbbbbbbbbbbbb2", 1],
        );
        assert.match(Parameter.LastModifiedDate, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?[+-]\d\d:\d\d$/);
        assert.equal(missing.status, 254);
        assert.match(missing.stderr, /An error occurred \(ParameterNotFound\) when calling the GetParameter operation/);
    });

    it("aws-lite refuses what it does not implement (exit 252), and reports a dead endpoint (255)", async () => {
        const [other, text, noValue] = await Promise.all([
            lite(["ec2", "describe-instances", "--output", "json"]),
            lite(["ec2", "describe-addresses", "--output", "text"]),
            lite(["ec2", "replace-route", "--route-table-id"]),
        ]);
        for (const r of [other, text, noValue]) assert.equal(r.status, 252, r.stderr);
        assert.match(other.stderr, /only .* are supported/);
        const dead = await runAws(AWS_LITE, { ...fake, url: "http://127.0.0.1:9" }, EAST, [
            "ec2",
            "describe-addresses",
            "--output",
            "json",
        ]);
        assert.equal(dead.status, 255);
        assert.match(dead.stderr, /Could not connect to the endpoint URL: "http:\/\/127\.0\.0\.1:9\/"/);
    });

    it("requests are logged one line each: action, ids, result", () => {
        const lines = fs.readFileSync(tmp.log, "utf8").split("\n");
        assert.ok(
            lines.some((l) =>
                / us-east-1 AssociateAddress eipalloc-0aaaaaaaaaaaaaaa1->eni-0bbbbbbbbbbbbbbb2\/10\.11\.4\.7 200 ok eipassoc-/.test(l),
            ),
        );
        assert.ok(
            lines.some((l) =>
                / us-east-1 ReplaceRoute rtb-0aaaaaaaaaaaaaaa1:14\.11\.0\.0\/16->eni-0bbbbbbbbbbbbbbb2 400 InvalidRoute\.NotFound$/.test(l),
            ),
        );
        assert.ok(lines.some((l) => / us-east-1 PutMetricData HubspokeVpn 200 ok GatewayActive=1,FailoverSeconds=2\.5$/.test(l)));
    });
});

describe("fake EC2 endpoint: the defaults, and the real CLI printing what aws-lite (and aws-lab) prints", function () {
    this.timeout(60_000);
    let tmp: ReturnType<typeof tempStore>;
    const stopped: FakeAws[] = [];

    before(() => {
        tmp = tempStore();
    });

    after(async () => {
        for (const f of stopped) await f.stop();
        if (tmp) fs.rmSync(tmp.dir, { recursive: true, force: true });
    });

    it("without --ec2-state EC2 calls fail, after the default latency of 1000 ms", async () => {
        const fake = await startFakeAws(tmp.store, {});
        stopped.push(fake);
        const r = await runAws(AWS_LITE, fake, EAST, ["ec2", "describe-addresses", "--output", "json"]);
        assert.equal(r.status, 254);
        assert.match(r.stderr, /\(UnsupportedOperation\) .*no EC2 state was given/);
        assert.ok(r.ms >= 1000, `answered after ${r.ms} ms`);
    });

    /** An endpoint of its own over the EC2 fixture, answering after 50 ms; stopped after the tests. */
    const ec2Fake = async (name: string): Promise<FakeAws> => {
        const stateFile = path.join(tmp.dir, `${name}-ec2.json`);
        writeEc2State(stateFile, ec2Fixture());
        const fake = await startFakeAws(path.join(tmp.dir, name), { ec2State: stateFile, ec2LatencyMs: 50 });
        stopped.push(fake);
        return fake;
    };

    it("the real AWS CLI v2 prints exactly what aws-lite and the failover lab's aws-lab print for each EC2 and CloudWatch call", async function () {
        requireAwsCli(this);
        const fake = await ec2Fake("store2");
        const same = (real: Run, mine: Run, what: string, mask = (s: string) => s) => {
            assert.equal(real.status, mine.status, `${what}: exit status (real CLI: ${real.stderr})`);
            // Key order included: both print the service model's order.
            assert.equal(mask(mine.stdout), mask(real.stdout), what);
            assert.equal(mask(mine.stderr).trim(), mask(real.stderr).trim(), what);
        };
        const ids = (s: string) => s.replace(/eipassoc-[0-9a-f]{17}/g, "eipassoc-X");
        const calls: [string, string[]][] = [
            ["describe-addresses", ["ec2", "describe-addresses", "--allocation-ids", EIP, SPARE_EIP, "--output", "json"]],
            ["describe-route-tables", ["ec2", "describe-route-tables", "--route-table-ids", RTB, "--output", "json"]],
            [
                "associate-address",
                [
                    "ec2",
                    "associate-address",
                    "--allocation-id",
                    EIP,
                    "--network-interface-id",
                    STANDBY,
                    "--private-ip-address",
                    "10.11.4.6",
                    "--allow-reassociation",
                    "--output",
                    "json",
                ],
            ],
            [
                "associate-address refused",
                ["ec2", "associate-address", "--allocation-id", EIP, "--network-interface-id", ACTIVE, "--output", "json"],
            ],
            ["replace-route", REPLACE_ROUTE],
            [
                "replace-route absent",
                [
                    "ec2",
                    "replace-route",
                    "--route-table-id",
                    RTB,
                    "--destination-cidr-block",
                    "14.11.0.0/16",
                    "--network-interface-id",
                    STANDBY,
                ],
            ],
            [
                "describe-route-tables unknown",
                ["ec2", "describe-route-tables", "--route-table-ids", "rtb-0ffffffffffffffff", "--output", "json"],
            ],
            [
                "put-metric-data",
                [
                    "cloudwatch",
                    "put-metric-data",
                    "--namespace",
                    "HubspokeVpn",
                    "--metric-data",
                    '[{"MetricName":"GatewayActive","Dimensions":[{"Name":"Gateway","Value":"a"}],"Value":1,"Unit":"Count"}]',
                ],
            ],
        ];
        // First the reads and the refused calls, all at once; then the two changes, each twice (both
        // CLIs), which leave the same state whichever comes first.
        const changes = new Set(["associate-address", "replace-route"]);
        for (const phase of [calls.filter(([what]) => !changes.has(what)), calls.filter(([what]) => changes.has(what))]) {
            const results = await Promise.all(
                phase.map(([, args]) =>
                    Promise.all([runAws(AWS_CLI, fake, EAST, args), runAws(AWS_LITE, fake, EAST, args), runAws(AWS_LAB, fake, EAST, args)]),
                ),
            );
            for (const [i, [real, lite, lab]] of results.entries()) {
                same(real, lite, phase[i][0], ids);
                same(real, lab, `${phase[i][0]} (aws-lab)`, ids);
            }
        }
        // The three put-metric-data calls arrived the same.
        const [a, b, c] = readMetrics(path.join(tmp.dir, "store2")).map(({ time: _t, ...rest }) => rest);
        assert.deepEqual(a, b);
        assert.deepEqual(a, c);
    });

    it("with IAM enforced, the three print the same refusals (EC2 UnauthorizedOperation, CloudWatch AccessDenied, SSM AccessDeniedException, an unknown key) and the same DryRunOperation", async function () {
        requireAwsCli(this);
        const stateFile = path.join(tmp.dir, "iam-ec2.json");
        writeEc2State(stateFile, ec2Fixture());
        const store = path.join(tmp.dir, "iam-store");
        fs.mkdirSync(path.join(store, EAST, "allowed"), { recursive: true });
        fs.mkdirSync(path.join(store, EAST, "denied"), { recursive: true });
        fs.writeFileSync(path.join(store, EAST, "denied", "x"), "secret-ish");
        const iam = path.join(tmp.dir, "iam.json");
        // One gateway whose policy allows moving the Elastic IP to the standby's interface only, reading
        // /allowed/*, and metrics in one namespace.
        writePrincipals(iam, [
            {
                name: "gw",
                policies: [
                    {
                        name: "p",
                        document: {
                            Version: "2012-10-17",
                            Statement: [
                                {
                                    Effect: "Allow",
                                    Action: "ec2:AssociateAddress",
                                    Resource: [
                                        `arn:aws:ec2:${EAST}:${LAB_ACCOUNT}:elastic-ip/${EIP}`,
                                        `arn:aws:ec2:${EAST}:${LAB_ACCOUNT}:network-interface/${STANDBY}`,
                                    ],
                                },
                                { Effect: "Allow", Action: "ec2:DescribeAddresses", Resource: "*" },
                                {
                                    Effect: "Allow",
                                    Action: "ssm:GetParameter",
                                    Resource: `arn:aws:ssm:${EAST}:${LAB_ACCOUNT}:parameter/allowed/*`,
                                },
                                {
                                    Effect: "Allow",
                                    Action: "cloudwatch:PutMetricData",
                                    Resource: "*",
                                    Condition: { StringEquals: { "cloudwatch:namespace": "HubspokeVpn" } },
                                },
                            ],
                        },
                    },
                ],
            },
        ]);
        const fake = await startFakeAws(store, { ec2State: stateFile, ec2LatencyMs: 50, iam });
        stopped.push(fake);
        const associate = (eni: string) => [
            "ec2",
            "associate-address",
            "--allocation-id",
            EIP,
            "--network-interface-id",
            eni,
            "--allow-reassociation",
        ];
        const metric = (ns: string) => [
            "cloudwatch",
            "put-metric-data",
            "--namespace",
            ns,
            "--metric-data",
            '[{"MetricName":"X","Value":1}]',
        ];
        const calls: [string, string[], string, Record<string, string>][] = [
            ["dry run allowed", [...associate(STANDBY), "--dry-run", "--output", "json"], "DryRunOperation", {}],
            ["dry run denied", [...associate(ACTIVE), "--dry-run", "--output", "json"], "UnauthorizedOperation", {}],
            ["associate denied", [...associate(ACTIVE), "--output", "json"], "UnauthorizedOperation", {}],
            ["replace-route denied", [...REPLACE_ROUTE, "--dry-run"], "UnauthorizedOperation", {}],
            ["metric in another namespace", metric("Elsewhere"), "AccessDenied", {}],
            [
                "parameter outside its path",
                ["ssm", "get-parameter", "--name", "/denied/x", "--output", "json"],
                "AccessDeniedException",
                {},
            ],
            [
                "a key IAM does not know",
                ["ec2", "describe-addresses", "--output", "json"],
                "AuthFailure",
                { AWS_ACCESS_KEY_ID: "AKIAUNKNOWNUNKNOWN01" },
            ],
        ];
        const key = { AWS_ACCESS_KEY_ID: labAccessKey("gw") };
        for (const [what, args, code, env] of calls) {
            const [real, lite, lab] = await Promise.all(
                [AWS_CLI, AWS_LITE, AWS_LAB].map((cli) => runAws(cli, fake, EAST, args, { ...key, ...env })),
            );
            assert.equal(real.status, 254, `${what}: the real CLI exited ${real.status}: ${real.stderr}`);
            assert.match(real.stderr, new RegExp(`An error occurred \\(${code}\\) when calling the`), `${what}: ${real.stderr}`);
            sameFailure(what, real, lite, lab);
        }
        // Nothing moved, and every decision was journalled: dry runs and refusals alike.
        assert.equal(readEc2State(stateFile).addresses[0].networkInterfaceId, ACTIVE);
        const decisions = readAuthz(store);
        assert.equal(decisions.filter((d) => d.decision === "allowed").length, 3, JSON.stringify(decisions));
        assert.ok(decisions.every((d) => d.principal === "gw"));
    });

    it("the three fail alike when the endpoint is down, answers too late, or closes or resets the connection unanswered (exit 255, the CLI's words)", async function () {
        requireAwsCli(this);
        const fake = await ec2Fake("store3");
        const route = REPLACE_ROUTE;
        // One attempt each (awsCliEnv: AWS_MAX_ATTEMPTS=1), so three failures cover the three CLIs.
        fake.faults({ failNext: 3, error: "unreachable" });
        const closed = await Promise.all([AWS_CLI, AWS_LITE, AWS_LAB].map((cli) => runAws(cli, fake, EAST, route)));
        // An answer later than --cli-read-timeout (1 s).
        fake.faults({ ec2LatencyMs: 2500 });
        const slow = await Promise.all([AWS_CLI, AWS_LITE, AWS_LAB].map((cli) => runAws(cli, fake, EAST, route, {}, 1)));
        fake.faults({});
        await fake.stop();
        const down = await Promise.all([AWS_CLI, AWS_LITE, AWS_LAB].map((cli) => runAws(cli, fake, EAST, route)));
        // A server that resets the connection (TCP RST) once the request arrived: an endpoint that crashed.
        const resetter = net.createServer((socket) => socket.once("data", () => socket.resetAndDestroy()));
        await new Promise<void>((listening) => resetter.listen(0, "127.0.0.1", listening));
        const at = { ...fake, url: `http://127.0.0.1:${(resetter.address() as net.AddressInfo).port}` };
        const reset = await Promise.all([AWS_CLI, AWS_LITE, AWS_LAB].map((cli) => runAws(cli, at, EAST, route)));
        resetter.close();
        for (const [what, runs, words] of [
            ["closed unanswered", closed, /Connection was closed before we received a valid response from endpoint URL/],
            ["reset", reset, /Connection was closed before we received a valid response from endpoint URL/],
            ["read timeout", slow, /Read timeout on endpoint URL/],
            ["endpoint down", down, /Could not connect to the endpoint URL/],
        ] as const) {
            const [real, lite, lab] = runs;
            assert.equal(real.status, 255, `${what}: the real CLI (${real.stderr})`);
            assert.match(real.stderr, words, what);
            sameFailure(what, real, lite, lab);
            for (const [name, mine] of [
                ["aws-lite", lite],
                ["aws-lab", lab],
            ] as const) {
                assert.equal(mine.stdout, "", `${what} (${name})`);
            }
        }
    });
});

/** The data plane: a VPC router namespace of its own, as the lab builds one. */
describe("fake EC2 endpoint: the VPC router's NAT and routes follow the calls", function () {
    this.timeout(30_000);
    const ns = `fakeaws${process.pid}-vpc`;
    let tmp: ReturnType<typeof tempStore>;
    let stateFile: string;
    let fake: FakeAws | undefined;
    let created = false;
    /** The rules of the router's Elastic IP NAT (nft table ip hubspoke_eip): the way in, and the way out. */
    const natRules = (dir: "in" | "out") => {
        const listed = spawnSync("ip", ["netns", "exec", ns, "nft", "list", "table", "ip", "hubspoke_eip"], { encoding: "utf8" });
        return listed.stdout
            .split("\n")
            .map((l) => l.trim())
            .filter((l) => l.startsWith(dir === "in" ? 'iifname "wan"' : 'oifname "wan"'));
    };
    const table101 = () =>
        execFileSync("ip", ["-n", ns, "route", "show", "table", "101"], { encoding: "utf8" })
            .trim()
            .split("\n")
            .map((l) => l.trim());

    before(function () {
        const missing =
            process.getuid?.() !== 0
                ? "not root"
                : spawnSync("ip", ["netns", "list"]).status !== 0
                  ? "`ip netns` is unavailable"
                  : spawnSync("nft", ["--version"]).status !== 0
                    ? "nft is not installed (scripts/install-system-deps.sh)"
                    : "";
        if (missing) {
            if (process.env.CI === "true") throw new Error(`${missing}, and CI must run the data-plane test`);
            console.log(`      skipped: ${missing}`);
            this.skip();
        }
        tmp = tempStore();
        stateFile = path.join(tmp.dir, "ec2.json");
        const sh = (...argv: string[]) => execFileSync(argv[0], argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
        sh("ip", "netns", "add", ns);
        created = true;
        // `wan` to the "internet" (TEST-NET-1 only), `lan` the VPN subnet with both gateways on it.
        sh("ip", "-n", ns, "link", "add", "wan", "type", "veth", "peer", "name", "lan");
        sh("ip", "-n", ns, "addr", "add", "192.0.2.1/24", "dev", "wan");
        sh("ip", "-n", ns, "addr", "add", "10.11.4.1/24", "dev", "lan");
        sh("ip", "-n", ns, "link", "set", "wan", "up");
        sh("ip", "-n", ns, "link", "set", "lan", "up");
    });

    after(async () => {
        await fake?.stop();
        if (created) spawnSync("ip", ["netns", "del", ns]);
        if (tmp) fs.rmSync(tmp.dir, { recursive: true, force: true });
    });

    it("at start the whole state is applied; associate-address and replace-route change the router before they return", async () => {
        writeEc2State(stateFile, ec2Fixture(ns));
        assert.deepEqual(natRules("in"), []);
        fake = await startFakeAws(tmp.store, { ec2State: stateFile, ec2LatencyMs: LATENCY, log: tmp.log });
        // Stateless, as AWS's 1:1 NAT: the way in is not tracked, so no flow outlives a move or remaps a port.
        assert.deepEqual(natRules("in"), ['iifname "wan" ip daddr 192.0.2.11 notrack ip daddr set 10.11.4.5']);
        assert.deepEqual(natRules("out"), ['oifname "wan" ip saddr 10.11.4.5 ip saddr set 192.0.2.11']);
        assert.deepEqual(table101(), ["12.11.0.0/16 via 10.11.4.5 dev lan", "13.11.0.0/16 via 10.11.4.5 dev lan"]);

        const lite = (args: string[]) => runAws(AWS_LITE, fake!, EAST, args);
        const moved = await lite([
            "ec2",
            "associate-address",
            "--allocation-id",
            EIP,
            "--network-interface-id",
            STANDBY,
            "--private-ip-address",
            "10.11.4.6",
            "--allow-reassociation",
            "--output",
            "json",
        ]);
        assert.equal(moved.status, 0, moved.stderr);
        assert.deepEqual(natRules("in"), ['iifname "wan" ip daddr 192.0.2.11 notrack ip daddr set 10.11.4.6']);
        assert.deepEqual(natRules("out"), ['oifname "wan" ip saddr 10.11.4.6 ip saddr set 192.0.2.11']);

        const replaced = await lite(REPLACE_ROUTE);
        assert.equal(replaced.status, 0, replaced.stderr);
        assert.deepEqual(table101(), ["12.11.0.0/16 via 10.11.4.6 dev lan", "13.11.0.0/16 via 10.11.4.5 dev lan"]);

        // The spare address onto the standby's private IP: the first one is disassociated there, as AWS does.
        const spare = await lite([
            "ec2",
            "associate-address",
            "--allocation-id",
            SPARE_EIP,
            "--network-interface-id",
            STANDBY,
            "--private-ip-address",
            "10.11.4.6",
            "--output",
            "json",
        ]);
        assert.equal(spare.status, 0, spare.stderr);
        assert.deepEqual(natRules("in"), ['iifname "wan" ip daddr 192.0.2.21 notrack ip daddr set 10.11.4.6']);
        assert.equal(readEc2State(stateFile).addresses[0].associationId, null);
    });

    it("a state naming a namespace that does not exist: the endpoint does not start, and says why", async () => {
        const bad = path.join(tmp.dir, "bad.json");
        const state = ec2Fixture(`${ns}-missing`);
        writeEc2State(bad, state);
        await assert.rejects(
            startFakeAws(path.join(tmp.dir, "store-bad"), { ec2State: bad }),
            /exited before listening[\s\S]*cannot apply the EC2 state/,
        );
    });
});
