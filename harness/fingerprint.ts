/**
 * A fingerprint of a stack's resource graph: per URN, a short hash of what `pulumi up` would send
 * (inputs, secrets unwrapped) and of the options that decide how an update is applied. Stored for a
 * released version (tests/unit/fixtures/graph-<commit>.json), it lets a test tell exactly which
 * resources of a stack deployed with that version the next `pulumi up` changes, adds or removes.
 */
import * as crypto from "node:crypto";
import { type Evaluation, plain } from "./evaluate";

/** The options hashed: the ones that decide an update (not resource hooks, which live in state only). */
const OPTIONS = ["ignoreChanges", "deleteBeforeReplace", "replaceOnChanges", "protect", "dependsOn", "aliasNames"] as const;

function stable(v: unknown): unknown {
    if (Array.isArray(v)) {
        return v.map(stable);
    }
    if (typeof v === "object" && v !== null) {
        return Object.fromEntries(
            Object.keys(v)
                .sort()
                .map((k) => [k, stable((v as Record<string, unknown>)[k])]),
        );
    }
    return v;
}

export function fingerprint(ev: Pick<Evaluation, "resources">): Record<string, string> {
    return Object.fromEntries(
        ev.resources.map((r) => {
            const options = Object.fromEntries(OPTIONS.map((o) => [o, (r.options as unknown as Record<string, unknown>)[o]]));
            const text = JSON.stringify(stable({ inputs: plain(r.inputs), options }));
            return [r.urn, crypto.createHash("sha256").update(text).digest("hex").slice(0, 16)];
        }),
    );
}

/** What differs between a stored fingerprint and a new one, by resource name (type::name). */
export function fingerprintDiff(before: Record<string, string>, after: Record<string, string>) {
    // urn:pulumi:<stack>::<project>::<parent types $ type>::<name> -> <type>::<name>
    const name = (urn: string) => {
        const [, , types, ...rest] = urn.split("::");
        return `${types.split("$").pop()}::${rest.join("::")}`;
    };
    return {
        changed: Object.keys(after)
            .filter((u) => u in before && before[u] !== after[u])
            .map(name)
            .sort(),
        added: Object.keys(after)
            .filter((u) => !(u in before))
            .map(name)
            .sort(),
        removed: Object.keys(before)
            .filter((u) => !(u in after))
            .map(name)
            .sort(),
    };
}
