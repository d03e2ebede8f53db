/** Administration use cases: the integrity check of the whole store, and the store's health. */
import {
  type Finding,
  type Progress,
  type VerifyOptions,
  verifyStore as verifyStored,
  type VerifySummary,
} from "../storage/verify.ts";
import type { Store } from "../storage/store.ts";
import { storeRoundTrip as roundTrip } from "../storage/health.ts";

export type { Finding, Progress, VerifyOptions, VerifySummary };

/**
 * Reads the whole store (or one company) and reports every record, index, counter, sequence and balance that
 * disagrees with another; with `repair`, rebuilds what is derivable and never a balance or ledger entry.
 */
export async function verifyStore(store: Store, options: VerifyOptions = {}): Promise<VerifySummary> {
  return await verifyStored(store.kv, options);
}

/** One real read of the store: its round trip in ms; throws when the store fails or does not answer in time. */
export async function storeRoundTrip(store: Store, options: { timeoutMs: number }): Promise<number> {
  return await roundTrip(store.kv, options);
}
