/**
 * lab/fake-aws/endpoint.mjs, the local stand-in for SSM Parameter Store, driven by the real AWS CLI v2
 * (`--endpoint-url`), so that what the gateways' scripts get from it is what they would get from AWS:
 * the CLI's own output formatting, pagination, error names and exit codes. Then the protocol details
 * the CLI calls do not reach, over plain HTTP.
 *
 * Each CLI call costs most of a second of Python start-up, so there are few of them, in parallel where
 * they are independent, and the setup writes the store's files directly.
 */
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { AWS_CLI, awsCliEnv, type FakeAws, startFakeAws } from "../../lab/fakeAws";

interface Run {
    status: number;
    stdout: string;
    stderr: string;
}

const PREFIX = "/hubspoke-vpn/test/tunnels";
const DIRECT = Array.from({ length: 5 }, (_, i) => `${PREFIX}/direct-${i}`);
const NESTED = Array.from({ length: 20 }, (_, i) => `${PREFIX}/t/${String(i).padStart(2, "0")}/psk`);

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
        if (!fs.existsSync(AWS_CLI)) {
            const why = `${AWS_CLI} (AWS CLI v2) is not installed`;
            // CI installs it: there a missing CLI is a broken runner, not a reason to pass quietly.
            if (process.env.CI === "true") throw new Error(`${why}, and CI must run these tests`);
            console.log(`      skipped: ${why}`);
            this.skip();
        }
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
