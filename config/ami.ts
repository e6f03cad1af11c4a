/**
 * Which Amazon Linux 2023 image a gateway runs: a deterministic function of a pinned release (config
 * `gatewayAmiRelease`), the architecture of the instance type, and the AWS region (AWS publishes each
 * release under the same name in every region). A newer image is taken on purpose, never by surprise.
 */

/** `arm64` for Graviton types (a `g` in the family suffix, e.g. t4g, c7gn, m6gd; or a1), `x86_64` otherwise. */
export function architectureOf(instanceType: string): "arm64" | "x86_64" {
    const family = instanceType.split(".")[0];
    if (family === "a1" || /^[a-z]+\d+[a-z]*g[a-z]*$/.test(family)) {
        return "arm64";
    }
    return "x86_64";
}

/** The image name of one release for an instance type, e.g. `al2023-ami-2023.9.20251208.0-kernel-6.1-x86_64`. */
export function al2023AmiName(release: string, instanceType: string): string {
    return `al2023-ami-${release}-kernel-6.1-${architectureOf(instanceType)}`;
}
