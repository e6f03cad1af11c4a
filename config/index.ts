export * from "./ami";
export * from "./cidr";
export * from "./load";
export * from "./types";
export * from "./validate";
