/** Administration use cases: the integrity check of the whole store. */
import {
  type Finding,
  type Progress,
  type VerifyOptions,
  verifyStore as verifyStored,
  type VerifySummary,
} from "../storage/verify.ts";
import type { Store } from "../storage/store.ts";

export type { Finding, Progress, VerifyOptions, VerifySummary };

/**
 * Reads the whole store (or one company) and reports every record, index, counter, sequence and balance that
 * disagrees with another; with `repair`, rebuilds what is derivable and never a balance or ledger entry.
 */
export async function verifyStore(store: Store, options: VerifyOptions = {}): Promise<VerifySummary> {
  return await verifyStored(store.kv, options);
}
