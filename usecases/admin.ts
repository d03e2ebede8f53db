/** Administration use cases: the integrity check of the whole store, the store's health, and expiry of points. */
import {
  type Finding,
  type Progress,
  type VerifyOptions,
  verifyStore as verifyStored,
  type VerifySummary,
} from "../storage/verify.ts";
import type { Store } from "../storage/store.ts";
import { storeRoundTrip as roundTrip } from "../storage/health.ts";
import { expireDueLots, type ExpiryOptions, type ExpirySummary, releaseLease, takeLease } from "../storage/expiry.ts";
import type { Actor } from "../domain/audit.ts";

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

export type { ExpiryOptions, ExpirySummary };

/**
 * Writes off every lot that has expired with points left (one `expire` ledger entry per lot), in every company or
 * one, as of `options.now`: what the next write to each balance would do, for balances nobody touches. Safe to run
 * twice and beside the service.
 */
export async function expirePoints(
  store: Store,
  actor: Actor,
  options: ExpiryOptions = {},
): Promise<ExpirySummary> {
  return await expireDueLots(store, actor, options);
}

/**
 * Runs expirePoints under the job's lease, so that of several processes only one runs it at a time: null when
 * another holds the lease. The lease outlives a crashed holder by at most `leaseMs`.
 */
export async function expirePointsLeased(
  store: Store,
  actor: Actor,
  options: ExpiryOptions & { holder: string; leaseMs: number },
): Promise<ExpirySummary | null> {
  if (!await takeLease(store, options.holder, { ttlMs: options.leaseMs })) return null;
  try {
    return await expireDueLots(store, actor, options);
  } finally {
    await releaseLease(store, options.holder);
  }
}
