export * from "./cloudInit";
export * from "./libreswan";
export * from "./sysctl";
export * from "./systemd";
