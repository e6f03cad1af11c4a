/**
 * Before Pulumi releases a site's Elastic IP, disassociate it from whatever holds it. In a site with
 * a standby, the failover script associates the address (so the provider has no association in
 * state and only calls ReleaseAddress), and EC2 refuses to release an associated address
 * (`InvalidIPAddress.InUse`, EC2 API reference, ReleaseAddress). Without this, removing such a site,
 * or `pulumi destroy`, stopped halfway.
 *
 * Ordering (engine source cited in docs/lifecycle.md): a `beforeDelete` hook runs right before the
 * provider's Delete of its resource, and the engine deletes a resource only after every resource that
 * depends on it. Both gateways' instances (through their tunnel parameters) and the site's failover
 * policies depend on the address, so by the time this runs no gateway can associate it again. The
 * checks after a pause are a safety net (IAM's eventual consistency, a script outside Pulumi).
 */
import { DescribeAddressesCommand, DisassociateAddressCommand, EC2Client } from "@aws-sdk/client-ec2";
import * as pulumi from "@pulumi/pulumi";

/** The hook's name: the engine keeps it in each address's state and calls it by name on delete. */
export const SITE_ADDRESS_HOOK = "hubspoke-disassociate-site-address";

/** The two EC2 calls the hook makes (the SDK's EC2Client, or a stand-in). */
export interface AddressApi {
    send(command: DescribeAddressesCommand): Promise<{ Addresses?: { AssociationId?: string; PublicIp?: string }[] }>;
    send(command: DisassociateAddressCommand): Promise<unknown>;
}

export interface DisassociateOptions {
    /** Pause before checking that it stayed free (ms). */
    readonly settleMs?: number;
    /** How many disassociations before giving up. */
    readonly attempts?: number;
    readonly log?: (message: string) => void;
}

/**
 * Disassociates the address until a check after a pause finds it free. Returns how many associations
 * it removed. Throws, saying what to do, if it is associated again after `attempts` of them.
 */
export async function disassociateUntilFree(ec2: AddressApi, allocationId: string, options: DisassociateOptions = {}): Promise<number> {
    const { settleMs = 5000, attempts = 5, log = () => {} } = options;
    for (let removed = 0; ; removed++) {
        let addresses: { AssociationId?: string; PublicIp?: string }[];
        try {
            addresses = (await ec2.send(new DescribeAddressesCommand({ AllocationIds: [allocationId] }))).Addresses ?? [];
        } catch (e) {
            // Already released (outside Pulumi): nothing to free, and the provider's delete treats it as done.
            if (errorCode(e) === "InvalidAllocationID.NotFound") {
                return removed;
            }
            throw e;
        }
        const associationId = addresses[0]?.AssociationId;
        if (!associationId) {
            return removed;
        }
        if (removed === attempts) {
            throw new Error(
                `Elastic IP ${allocationId} was associated again after each of ${removed} disassociations before its release: ` +
                    "something still holds permission to move it (a gateway of the site, or a script). Stop the site's " +
                    "gateways, or detach the failover policy from their roles, then run the same pulumi command again.",
            );
        }
        log(`${allocationId} (${addresses[0]?.PublicIp}): disassociating ${associationId} before its release`);
        try {
            await ec2.send(new DisassociateAddressCommand({ AssociationId: associationId }));
        } catch (e) {
            // Gone meanwhile: its network interface deleted, or the address moved (a new association id).
            if (errorCode(e) !== "InvalidAssociationID.NotFound") {
                throw e;
            }
        }
        await new Promise((r) => setTimeout(r, settleMs));
    }
}

/** The AWS error code of an SDK v3 error (its `name`), if it is one. */
function errorCode(e: unknown): string | undefined {
    return typeof e === "object" && e !== null && "name" in e ? String((e as { name: unknown }).name) : undefined;
}

/**
 * The named hook for every site Elastic IP. It reads only the address's last outputs (its
 * allocation id and AWS region), so it also works for the address of a site that has been removed
 * from the config. It uses the AWS credentials of the process that runs `pulumi`.
 */
export function siteAddressHook(): pulumi.ResourceHook {
    return new pulumi.ResourceHook(SITE_ADDRESS_HOOK, async (args) => {
        const allocationId = args.oldOutputs?.allocationId as string | undefined;
        const region = args.oldOutputs?.region as string | undefined;
        if (!allocationId || !region) {
            return; // never allocated, or no state to go by: the provider's own delete decides
        }
        const ec2 = new EC2Client({ region });
        try {
            await disassociateUntilFree(ec2, allocationId, { log: (m) => pulumi.log.info(m) });
        } finally {
            ec2.destroy();
        }
    });
}
