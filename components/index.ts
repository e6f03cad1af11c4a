export * from "./hubSpokeVpn";
export * from "./openSwanGateway";
export * from "./regionalVpc";
