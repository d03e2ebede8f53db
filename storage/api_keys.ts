import {
  type Access,
  type ApiKeyRecord,
  type Company,
  constantTimeEqual,
  generateApiKey,
  hashApiKey,
  type RateLimit,
} from "../domain/api_key.ts";
import { ConflictError } from "../domain/errors.ts";
import { RETRY, withRetry, Write } from "./commit.ts";
import { keys } from "./keys.ts";
import { type Store, storeOf } from "./store.ts";

/** A new key: the plain key (shown once) and what is stored of it. */
export interface CreatedKey {
  key: string;
  record: ApiKeyRecord;
  companyCreated: boolean;
}

/** What an API key record shows in the audit trail: never its hash. */
function auditedKey(record: ApiKeyRecord): Omit<ApiKeyRecord, "hash"> {
  const { hash: _, ...rest } = record;
  return rest;
}

/**
 * Creates an API key for a company, creating the company in the same atomic operation when it is new; audited in
 * that company as made by `actorName` (default "task:apikey").
 */
export async function createApiKey(
  kvOrStore: Deno.Kv | Store,
  options: {
    companyId: string;
    companyName?: string;
    userId: number;
    access: Access;
    label?: string;
    actorName?: string;
    /** Time of creation, epoch ms (default: the store's clock). */
    now?: number;
    /** The key's own rate limit; absent for the configured default. */
    rateLimit?: RateLimit | null;
  },
): Promise<CreatedKey> {
  const store = storeOf(kvOrStore);
  const { kv } = store;
  const now = options.now ?? store.clock();
  const key = generateApiKey();
  const hash = await hashApiKey(key);
  const record: ApiKeyRecord = {
    id: hash.slice(0, 12),
    hash,
    company_id: options.companyId,
    user_id: options.userId,
    access: options.access,
    label: options.label ?? null,
    created_date: now,
    revoked_date: null,
  };
  if (options.rateLimit) record.rate_limit = options.rateLimit;
  const company = await kv.get<Company>(keys.company(options.companyId));
  const actor = { companyId: options.companyId, name: options.actorName ?? "task:apikey", userId: options.userId };
  const write = new Write(store, actor)
    .check({ key: keys.apiKey(hash), versionstamp: null })
    .set(keys.apiKey(hash), record);
  write.audit({ entity: "api_key", entityId: record.id, before: null, after: auditedKey(record) });
  if (company.value === null) {
    write.check(company).set(
      keys.company(options.companyId),
      {
        id: options.companyId,
        name: options.companyName ?? options.companyId,
        created_date: now,
      } satisfies Company,
    );
  }
  if (!await write.commit("create API key")) {
    throw new ConflictError("Cannot create API key: the company was created concurrently, try again");
  }
  return { key, record, companyCreated: company.value === null };
}

/** Finds the live or revoked record of a key by the SHA-256 hash of the presented key. */
export async function findApiKey(kv: Deno.Kv, hash: string): Promise<ApiKeyRecord | null> {
  const record = (await kv.get<ApiKeyRecord>(keys.apiKey(hash))).value;
  return record && constantTimeEqual(record.hash, hash) ? record : null;
}

/** Lists keys (of one company, or all), newest last. */
export async function listApiKeys(kv: Deno.Kv, companyId?: string): Promise<ApiKeyRecord[]> {
  const out: ApiKeyRecord[] = [];
  for await (const e of kv.list<ApiKeyRecord>({ prefix: keys.apiKeys() })) {
    if (!companyId || e.value.company_id === companyId) out.push(e.value);
  }
  return out.sort((a, b) => a.created_date - b.created_date);
}

/** Lists the companies. */
export async function listCompanies(kv: Deno.Kv): Promise<Company[]> {
  const out: Company[] = [];
  for await (const e of kv.list<Company>({ prefix: keys.companies() })) out.push(e.value);
  return out;
}

/**
 * Changes the key with this public id to what `change` makes of it (the same record: nothing to write), audited
 * as `actorName` in the key's company; null when no key has that id.
 */
async function changeKey(
  kvOrStore: Deno.Kv | Store,
  id: string,
  options: { actorName?: string; what: string; change: (record: ApiKeyRecord, now: number) => ApiKeyRecord },
): Promise<ApiKeyRecord | null> {
  const store = storeOf(kvOrStore);
  return await withRetry(async () => {
    for await (const e of store.kv.list<ApiKeyRecord>({ prefix: keys.apiKeys() })) {
      if (e.value.id !== id) continue;
      const changed = options.change(e.value, store.clock());
      if (changed === e.value) return e.value;
      const actor = {
        companyId: e.value.company_id,
        name: options.actorName ?? "task:apikey",
        userId: e.value.user_id,
      };
      const write = new Write(store, actor).check(e).set(e.key, changed);
      write.audit({ entity: "api_key", entityId: id, before: auditedKey(e.value), after: auditedKey(changed) });
      return await write.commit(options.what) ? changed : RETRY;
    }
    return null;
  }, { message: `Cannot ${options.what}: it was changed concurrently, try again` });
}

/** Revokes the key with this public id (audited as `actorName`); returns it, or null when no key has that id. */
export async function revokeApiKey(
  kvOrStore: Deno.Kv | Store,
  id: string,
  options: { actorName?: string } = {},
): Promise<ApiKeyRecord | null> {
  return await changeKey(kvOrStore, id, {
    actorName: options.actorName,
    what: "revoke API key",
    change: (record, now) => record.revoked_date !== null ? record : { ...record, revoked_date: now },
  });
}

/**
 * Sets the rate limit of the key with this public id (null goes back to the configured default); returns the
 * updated record, or null when no key has that id. Running servers apply it within their AUTH_CACHE_MS.
 */
export async function setKeyRateLimit(
  kvOrStore: Deno.Kv | Store,
  id: string,
  limit: RateLimit | null,
  options: { actorName?: string } = {},
): Promise<ApiKeyRecord | null> {
  return await changeKey(kvOrStore, id, {
    actorName: options.actorName,
    what: `set the rate limit of key "${id}"`,
    change: (record) => {
      const { rate_limit: _old, ...rest } = record;
      return limit ? { ...rest, rate_limit: limit } : rest;
    },
  });
}

/**
 * On a store that never had a key, creates company "default" with a write key for user 1 and returns the
 * plain key; returns null on every later start. Safe when many processes start at once: one wins.
 */
export async function bootstrapApiKey(store: Store): Promise<string | null> {
  const { kv } = store;
  const now = store.clock();
  const marker = await kv.get(keys.bootstrap());
  if (marker.value !== null) return null;
  for await (const _ of kv.list({ prefix: keys.apiKeys() }, { limit: 1 })) return null;
  const key = generateApiKey();
  const hash = await hashApiKey(key);
  const record: ApiKeyRecord = {
    id: hash.slice(0, 12),
    hash,
    company_id: "default",
    user_id: 1,
    access: "write",
    label: "first key, made at first start",
    created_date: now,
    revoked_date: null,
  };
  const company = await kv.get<Company>(keys.company("default"));
  const write = new Write(store, { companyId: "default", name: "system:first-start", userId: 1 })
    .check(marker)
    .set(keys.bootstrap(), { created_date: now })
    .set(keys.apiKey(hash), record);
  write.audit({ entity: "api_key", entityId: record.id, before: null, after: auditedKey(record) });
  if (company.value === null) {
    write.check(company).set(keys.company("default"), { id: "default", name: "default", created_date: now });
  }
  return await write.commit("create the first API key") ? key : null;
}
