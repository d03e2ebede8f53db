/** API key use cases: create (the plain key is shown once), list and revoke. */
import type { Access, ApiKeyRecord } from "../domain/api_key.ts";
import { createApiKey as createStoredKey, type CreatedKey, listApiKeys, revokeApiKey } from "../storage/api_keys.ts";
import type { Store } from "../storage/store.ts";

export type { CreatedKey };

/** Makes a key for a company (created when new); audited in that company as `actorName`. */
export async function createKey(
  store: Store,
  input: { companyId: string; companyName?: string; userId: number; access: Access; label?: string; actorName: string },
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
  return await revokeApiKey(store, id, options);
}
