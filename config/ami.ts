/**
 * Which Amazon Linux 2023 image a gateway runs: a deterministic function of a pinned release (config
 * `gatewayAmiRelease`), a kernel flavour (`gatewayAmiKernel`), the architecture of the instance type,
 * and the AWS region (AWS publishes each release under the same name in every region). A newer image
 * is taken on purpose, never by surprise.
 */

/**
 * The kernel flavours AL2023 publishes images for (`al2023-ami-<release>-kernel-<flavour>-<arch>`).
 * 6.1 is what every release so far ships by default; AL2023's release notes for 2023.12.20260803 move
 * the default to 6.18. A flavour AWS adds later is one line here.
 */
export const AL2023_KERNELS = ["6.1", "6.12", "6.18"] as const;

/** `arm64` for Graviton types (a `g` in the family suffix, e.g. t4g, c7gn, m6gd; or a1), `x86_64` otherwise. */
export function architectureOf(instanceType: string): "arm64" | "x86_64" {
    const family = instanceType.split(".")[0];
    if (family === "a1" || /^[a-z]+\d+[a-z]*g[a-z]*$/.test(family)) {
        return "arm64";
    }
    return "x86_64";
}

/** The image name of one release and kernel for an instance type, e.g. `al2023-ami-2023.9.20251208.0-kernel-6.1-x86_64`. */
export function al2023AmiName(release: string, kernel: string, instanceType: string): string {
    return `al2023-ami-${release}-kernel-${kernel}-${architectureOf(instanceType)}`;
}
