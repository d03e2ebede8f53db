/** Kept for tests written before the kit: everything it held now lives in kit.ts. */
export * from "./kit.ts";
