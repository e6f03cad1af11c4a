/**
 * A gateway's software (its scripts, units and settings files: everything but the few files its user
 * data carries) as it travels to the gateway: one gzip file of the files as JSON, base64, cut into
 * parts that each fit a standard SSM parameter. The user data names the file's sha256, so that a part
 * changed in SSM cannot be installed. Plain values in and out; deterministic (pako, fixed header), so
 * the same software gives the same parts, digest and parameter names on every machine.
 */
import { createHash } from "node:crypto";
import * as pako from "pako";
import { SSM_STANDARD_MAX_BYTES } from "../gateway/contract";
import type { GatewayFile } from "./bootstrap";

export interface PackedSoftware {
    /** The base64 of the gzip file, in order: part i is parameter `<path>/<i, two digits>`. */
    readonly parts: readonly string[];
    /** sha256 of the gzip file, hex. */
    readonly sha256: string;
    /** Bytes of the gzip file. */
    readonly bytes: number;
}

export function packSoftware(files: readonly GatewayFile[]): PackedSoftware {
    const json = JSON.stringify(files.map((f) => ({ path: f.path, permissions: f.permissions, content: f.content })));
    const gz = Buffer.from(pako.gzip(Buffer.from(json), { level: 9 }));
    const base64 = gz.toString("base64");
    const parts: string[] = [];
    // Standard-tier parameters (free; advanced ones hold 8 KB at a monthly price). base64 is ASCII: a byte a character.
    for (let i = 0; i < base64.length; i += SSM_STANDARD_MAX_BYTES) {
        parts.push(base64.slice(i, i + SSM_STANDARD_MAX_BYTES));
    }
    if (parts.length > 99) {
        throw new Error(`gateway software: ${gz.length} bytes compressed need ${parts.length} parameters; at most 99 are named`);
    }
    return { parts, sha256: createHash("sha256").update(gz).digest("hex"), bytes: gz.length };
}

/** The SSM name of part `i` under `path`. */
export function softwarePartName(path: string, i: number): string {
    return `${path}/${String(i).padStart(2, "0")}`;
}

/** The files back from the parts, as the gateway unpacks them; throws when they do not make `sha256`. */
export function unpackSoftware(parts: readonly string[], sha256: string): GatewayFile[] {
    const gz = Buffer.from(parts.join(""), "base64");
    const actual = createHash("sha256").update(gz).digest("hex");
    if (actual !== sha256) {
        throw new Error(`gateway software: the parts make sha256 ${actual}, not ${sha256}`);
    }
    return JSON.parse(Buffer.from(pako.ungzip(gz)).toString("utf8")) as GatewayFile[];
}
