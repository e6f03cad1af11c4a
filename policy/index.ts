/**
 * The policy pack: `pulumi preview --policy-pack policy` (and `pulumi up --policy-pack policy`).
 * Its packages come from the repository's root node_modules (`npm ci` at the root).
 */
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("hubspoke-vpn", { policies });
