import { type RawConfig, readStackConfigFile, stackConfigPath } from "../../config/load";

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
