/**
 * Reads raw stack configuration from where it lives: the Pulumi runtime (`pulumi up`) or a
 * Pulumi.<stack>.yaml file (the offline `render` command and the tests). Both feed `parseStackConfig`.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import * as YAML from "yaml";
import { PROJECT, STRING_KEYS } from "./validate";

/** Raw values of this project's config keys, keyed without the `hubspoke-vpn:` prefix. */
export type RawConfig = Record<string, unknown>;

/**
 * Reads this project's keys from a Pulumi.<stack>.yaml file. Keys of other namespaces
 * (`aws:`, `pulumi:`) are left out; they are not ours to validate.
 */
export function readStackConfigFile(file: string): RawConfig {
    const doc = YAML.parse(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> } | null;
    const raw: RawConfig = {};
    for (const [k, v] of Object.entries(doc?.config ?? {})) {
        if (k.startsWith(`${PROJECT}:`)) {
            raw[k.slice(PROJECT.length + 1)] = v;
        }
    }
    return raw;
}

/** The stack file of a named stack in this repository, e.g. `prod` -> `<repo>/Pulumi.prod.yaml`. */
export function stackConfigPath(stack: string): string {
    return path.join(__dirname, "..", `Pulumi.${stack}.yaml`);
}

/**
 * Reads this project's keys from the Pulumi runtime's config (`pulumi.runtime.allConfig()`, keyed
 * `project:key`, every value as text). Text keys (STRING_KEYS) stay as given; the others' values
 * (lists, maps, numbers, booleans) arrive as JSON text and are parsed, or stay text if they are not JSON.
 */
export function readRuntimeConfig(all: Readonly<Record<string, string>>): RawConfig {
    const raw: RawConfig = {};
    for (const [k, text] of Object.entries(all)) {
        if (!k.startsWith(`${PROJECT}:`)) {
            continue;
        }
        const name = k.slice(PROJECT.length + 1);
        if (STRING_KEYS.includes(name)) {
            raw[name] = text;
            continue;
        }
        try {
            raw[name] = JSON.parse(text);
        } catch {
            raw[name] = text;
        }
    }
    return raw;
}
