/**
 * The use cases: one set of application functions that routes, tasks, the importer, webhook processors and the
 * back office all call. Each takes the store, the actor and typed input and returns typed results; none knows HTTP.
 */
export * from "./customers.ts";
export * from "./cards.ts";
export * from "./bonuses.ts";
export * from "./directories.ts";
export * from "./history.ts";
export * from "./api_keys.ts";
export * from "./admin.ts";
export * from "./purchases.ts";
export * from "./export.ts";
export * from "./admin_users.ts";
export * from "./back_office.ts";
export * from "./import.ts";
export * from "./connections.ts";
export * from "./webhooks.ts";
export * from "./admin_import.ts";
