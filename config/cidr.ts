/**
 * IPv4 address and CIDR arithmetic. Plain values in, plain values out: no Pulumi here.
 */

/** A parsed IPv4 CIDR block: `network` is the first address as an unsigned 32-bit integer. */
export interface Cidr {
    /** The block as written in canonical form, e.g. `10.11.4.0/24`. */
    readonly text: string;
    readonly network: number;
    readonly prefix: number;
    /** Number of addresses in the block. */
    readonly size: number;
}

const OCTET = /^(0|[1-9]\d{0,2})$/;

/** Parses a dotted-quad IPv4 address, or returns undefined when it is not one. */
export function parseIp(text: string): number | undefined {
    const parts = text.split(".");
    if (parts.length !== 4 || !parts.every((p) => OCTET.test(p) && Number(p) <= 255)) {
        return undefined;
    }
    // `>>> 0` keeps the result unsigned.
    return parts.reduce((acc, p) => ((acc << 8) | Number(p)) >>> 0, 0);
}

export function formatIp(value: number): string {
    return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join(".");
}

/**
 * Parses `a.b.c.d/n`. Returns a string describing the problem when the text is not a CIDR
 * block, or when host bits are set (`10.11.4.1/24` is almost always a typo for `10.11.4.0/24`).
 */
export function parseCidr(text: string): Cidr | string {
    const match = /^([^/]+)\/(\d{1,2})$/.exec(text);
    if (!match) {
        return "is not an IPv4 CIDR block (expected a.b.c.d/n)";
    }
    const address = parseIp(match[1]);
    const prefix = Number(match[2]);
    if (address === undefined) {
        return `has an invalid address part "${match[1]}"`;
    }
    if (prefix > 32) {
        return `has prefix length /${prefix}, which is larger than /32`;
    }
    const size = 2 ** (32 - prefix);
    const network = prefix === 0 ? 0 : (address & ~(size - 1)) >>> 0;
    if (network !== address) {
        return `has host bits set; the block starting there is ${formatIp(network)}/${prefix}`;
    }
    return { text: `${formatIp(network)}/${prefix}`, network, prefix, size };
}

export function containsIp(block: Cidr, ip: number): boolean {
    return ip >= block.network && ip < block.network + block.size;
}

/** True when `inner` lies entirely inside `outer`. */
export function containsCidr(outer: Cidr, inner: Cidr): boolean {
    return inner.network >= outer.network && inner.network + inner.size <= outer.network + outer.size;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
    return a.network < b.network + b.size && b.network < a.network + a.size;
}

/**
 * The five addresses AWS reserves in every subnet: network, VPC router (+1), DNS (+2),
 * future use (+3), and broadcast (last).
 */
export function awsReservedAddresses(subnet: Cidr): number[] {
    const n = subnet.network;
    return [n, n + 1, n + 2, n + 3, n + subnet.size - 1];
}

const RFC1918 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].map((t) => parseCidr(t) as Cidr);

/** True when the block lies entirely inside the RFC 1918 private ranges. */
export function isPrivate(block: Cidr): boolean {
    return RFC1918.some((range) => containsCidr(range, block));
}
