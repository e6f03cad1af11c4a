import { strict as assert } from "node:assert";
import { awsReservedAddresses, type Cidr, containsCidr, formatIp, isPrivate, overlaps, parseCidr, parseIp } from "../../config/cidr";

const cidr = (t: string) => parseCidr(t) as Cidr;

describe("cidr", () => {
    it("parses addresses and refuses malformed ones", () => {
        assert.equal(parseIp("10.11.4.5"), 0x0a0b0405);
        assert.equal(formatIp(parseIp("255.255.255.255")!), "255.255.255.255");
        for (const bad of ["10.11.4", "10.11.4.256", "10.11.04.5", "a.b.c.d", "10.11.4.5.6", ""]) {
            assert.equal(parseIp(bad), undefined, bad);
        }
    });

    it("parses blocks and explains what is wrong with bad ones", () => {
        assert.deepEqual(cidr("10.11.4.0/24"), { text: "10.11.4.0/24", network: 0x0a0b0400, prefix: 24, size: 256 });
        assert.match(parseCidr("10.11.4.0") as string, /not an IPv4 CIDR block/);
        assert.match(parseCidr("10.11.4.0/33") as string, /larger than \/32/);
        assert.match(parseCidr("10.11.4.300/24") as string, /invalid address part/);
        assert.match(parseCidr("10.11.4.1/24") as string, /host bits set; the block starting there is 10\.11\.4\.0\/24/);
    });

    it("computes containment and overlap", () => {
        assert.ok(containsCidr(cidr("10.11.0.0/16"), cidr("10.11.4.0/24")));
        assert.ok(!containsCidr(cidr("10.11.0.0/16"), cidr("10.12.4.0/24")));
        assert.ok(!containsCidr(cidr("10.11.4.0/24"), cidr("10.11.0.0/16")));
        assert.ok(overlaps(cidr("10.0.0.0/8"), cidr("10.11.0.0/16")));
        assert.ok(!overlaps(cidr("10.11.4.0/24"), cidr("10.11.5.0/24")));
    });

    it("lists the five addresses AWS reserves in a subnet", () => {
        assert.deepEqual(awsReservedAddresses(cidr("10.11.4.0/24")).map(formatIp), [
            "10.11.4.0",
            "10.11.4.1",
            "10.11.4.2",
            "10.11.4.3",
            "10.11.4.255",
        ]);
    });

    it("tells RFC 1918 space from public space", () => {
        assert.ok(isPrivate(cidr("10.11.0.0/16")));
        assert.ok(isPrivate(cidr("172.31.0.0/16")));
        assert.ok(isPrivate(cidr("192.168.0.0/16")));
        assert.ok(!isPrivate(cidr("12.11.0.0/16")));
        assert.ok(!isPrivate(cidr("172.32.0.0/16")));
    });
});
