/**
 * Entry point of `pulumi up` / `pulumi preview`: reads this stack's config and builds the network.
 * See README.md for the configuration reference.
 */
import * as pulumi from "@pulumi/pulumi";
import { readRuntimeConfig } from "./config/load";
import { hubSpokeProgram } from "./program";

const result = hubSpokeProgram(readRuntimeConfig(pulumi.runtime.allConfig()), pulumi.getStack());

/**
 * Per region: VPC id and range, gateway Elastic IP, private IP and instance id, tunnel names, the
 * Session Manager commands for a shell and for tunnel status, the alarm topic and alarm names.
 */
export const regions = result.regions;
/** Every hub-spoke tunnel, named `<hub>-to-<spoke>` at both ends. */
export const tunnels = result.tunnels;
/** The CloudWatch dashboard with every tunnel end. */
export const dashboardName = result.dashboardName;
