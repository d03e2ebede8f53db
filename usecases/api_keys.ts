/** API key use cases: create (the plain key is shown once), list and revoke. */
import { type Access, type ApiKeyRecord, hashApiKey, type RateLimit } from "../domain/api_key.ts";
import {
  bootstrapApiKey,
  createApiKey as createStoredKey,
  type CreatedKey,
  findApiKey,
  listApiKeys,
  revokeApiKey,
  setKeyRateLimit as setStoredRateLimit,
} from "../storage/api_keys.ts";
import type { Store } from "../storage/store.ts";

export type { CreatedKey };

/** Makes a key for a company (created when new); audited in that company as `actorName`. */
export async function createKey(
  store: Store,
  input: {
    companyId: string;
    companyName?: string;
    userId: number;
    access: Access;
    label?: string;
    actorName: string;
    /** The key's own rate limit (absent: the configured default). */
    rateLimit?: RateLimit | null;
  },
): Promise<CreatedKey> {
  return await createStoredKey(store, input);
}

/** Lists keys (of one company, or all), oldest first. */
export async function listKeys(store: Store, companyId?: string): Promise<ApiKeyRecord[]> {
  return await listApiKeys(store.kv, companyId);
}

/** Revokes a key by its public id; null when there is none. */
export async function revokeKey(
  store: Store,
  id: string,
  options: { actorName: string },
): Promise<ApiKeyRecord | null> {
  const revoked = await revokeApiKey(store, id, options);
  // This process stops taking it at once; others within their AUTH_CACHE_MS.
  store.apiKeys.deleteWhere((record) => record?.id === id);
  return revoked;
}

/** The record of a presented key while the store's memory holds it (null: unknown), else undefined. */
export function cachedKey(store: Store, key: string): ApiKeyRecord | null | undefined {
  return store.apiKeys.get(key);
}

/**
 * The record of a presented key (null: unknown), kept in the store's memory for `maxAgeMs` by the key itself, so a
 * hit costs neither a store read nor a hash, and a revoked key stops within that time.
 */
export async function lookupKey(
  store: Store,
  key: string,
  options: { maxAgeMs: number },
): Promise<ApiKeyRecord | null> {
  const hit = cachedKey(store, key);
  if (hit !== undefined) return hit;
  const record = await findApiKey(store.kv, await hashApiKey(key));
  store.apiKeys.set(key, record, options.maxAgeMs);
  return record;
}

/** Sets a key's own rate limit (null: back to the configured default); null when no key has that id. */
export async function setKeyRateLimit(
  store: Store,
  id: string,
  limit: RateLimit | null,
  options: { actorName: string },
): Promise<ApiKeyRecord | null> {
  const updated = await setStoredRateLimit(store, id, limit, options);
  store.apiKeys.deleteWhere((record) => record?.id === id);
  return updated;
}

/**
 * On a store that never had a key, makes company "default" with a write key and returns the plain key (shown
 * once); null on every later start, and in all but one of many processes starting at once.
 */
export async function firstStartKey(store: Store): Promise<string | null> {
  return await bootstrapApiKey(store);
}
