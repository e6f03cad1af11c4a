import type { Context } from "mocha";
import { type RawConfig, readStackConfigFile, stackConfigPath } from "../../config/load";
import { type Evaluation, evaluateOffline } from "../../harness/evaluate";
import { type StackSnapshot, snapshotStack } from "../../harness/snapshot";

/** A stack's raw config, read from Pulumi.<stack>.yaml as `pulumi up --stack <stack>` would. */
export function stackConfig(stack: string): RawConfig {
    return readStackConfigFile(stackConfigPath(stack));
}

/** The prod stack's raw config. */
export function prodConfig(): RawConfig {
    return stackConfig("prod");
}

/** A deep copy of the prod config with `change` applied to it. */
export function prodWith(change: (raw: any) => void): RawConfig {
    const raw = JSON.parse(JSON.stringify(prodConfig()));
    change(raw);
    return raw;
}

// One evaluation and one snapshot of the prod stack serve every test file that only reads them
// (each takes a second or two under the mock runtime).
let evaluation: Promise<Evaluation> | undefined;
let snapshot: Promise<StackSnapshot> | undefined;

/** The prod stack evaluated under the mock runtime, shared by the tests that only read it. */
export function prodEvaluation(): Promise<Evaluation> {
    evaluation ??= evaluateOffline(prodConfig(), { stack: "prod" });
    return evaluation;
}

/** The prod stack's snapshot with keys redacted, shared by the tests that only read it. */
export function prodSnapshot(): Promise<StackSnapshot> {
    snapshot ??= snapshotStack(prodConfig(), { stack: "prod" });
    return snapshot;
}

/**
 * A test whose prerequisite is missing skips on a developer's machine, with the reason printed, and
 * fails under CI (`CI=true`): a green CI must mean the test ran.
 */
export function ciMustRun(context: Context, why: string): void {
    if (process.env.CI === "true") {
        throw new Error(`required under CI: ${why}`);
    }
    console.log(`      skipped: ${why}`);
    context.skip();
}
