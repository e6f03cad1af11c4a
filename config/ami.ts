/**
 * Which Amazon Linux 2023 image fits an instance type. AWS publishes the latest AMI ids as
 * public SSM parameters, one per architecture.
 */

/** `arm64` for Graviton types (a `g` in the family suffix, e.g. t4g, c7gn, m6gd; or a1), `x86_64` otherwise. */
export function architectureOf(instanceType: string): "arm64" | "x86_64" {
    const family = instanceType.split(".")[0];
    if (family === "a1" || /^[a-z]+\d+[a-z]*g[a-z]*$/.test(family)) {
        return "arm64";
    }
    return "x86_64";
}

export function al2023AmiParameter(instanceType: string): string {
    return `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${architectureOf(instanceType)}`;
}
