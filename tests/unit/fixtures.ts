import { type RawConfig, readStackConfigFile, stackConfigPath } from "../../config/load";
import { type Evaluation, evaluateOffline } from "../../offline/evaluate";
import { type RenderedStack, renderStack } from "../../offline/render";

/** The prod stack's raw config, read from Pulumi.prod.yaml as `pulumi up --stack prod` would. */
export function prodConfig(): RawConfig {
    return readStackConfigFile(stackConfigPath("prod"));
}

/** A deep copy of the prod config with `change` applied to it. */
export function prodWith(change: (raw: any) => void): RawConfig {
    const raw = JSON.parse(JSON.stringify(prodConfig()));
    change(raw);
    return raw;
}

// One evaluation and one render of the prod stack serve every test file that only reads them
// (each takes a second or two under the mock runtime).
let evaluation: Promise<Evaluation> | undefined;
let rendered: Promise<RenderedStack> | undefined;

/** The prod stack evaluated under the mock runtime, shared by the tests that only read it. */
export function prodEvaluation(): Promise<Evaluation> {
    evaluation ??= evaluateOffline(prodConfig(), { stack: "prod" });
    return evaluation;
}

/** The prod stack rendered with keys redacted, shared by the tests that only read it. */
export function prodRender(): Promise<RenderedStack> {
    rendered ??= renderStack(prodConfig(), { stack: "prod" });
    return rendered;
}
