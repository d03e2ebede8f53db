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
import { keys } from "./keys.ts";

/** A new key: the plain key (shown once) and what is stored of it. */
export interface CreatedKey {
  key: string;
  record: ApiKeyRecord;
  companyCreated: boolean;
}

/** Creates an API key for a company, creating the company in the same atomic operation when it is new. */
export async function createApiKey(
  kv: Deno.Kv,
  options: {
    companyId: string;
    companyName?: string;
    userId: number;
    access: Access;
    label?: string;
    now: number;
    /** The key's own rate limit; absent for the configured default. */
    rateLimit?: RateLimit | null;
  },
): Promise<CreatedKey> {
  const key = generateApiKey();
  const hash = await hashApiKey(key);
  const record: ApiKeyRecord = {
    id: hash.slice(0, 12),
    hash,
    company_id: options.companyId,
    user_id: options.userId,
    access: options.access,
    label: options.label ?? null,
    created_date: options.now,
    revoked_date: null,
  };
  if (options.rateLimit) record.rate_limit = options.rateLimit;
  const company = await kv.get<Company>(keys.company(options.companyId));
  const op = kv.atomic().check({ key: keys.apiKey(hash), versionstamp: null }).set(keys.apiKey(hash), record);
  if (company.value === null) {
    op.check(company).set(
      keys.company(options.companyId),
      {
        id: options.companyId,
        name: options.companyName ?? options.companyId,
        created_date: options.now,
      } satisfies Company,
    );
  }
  const res = await op.commit();
  if (!res.ok) throw new ConflictError("Cannot create API key: the company was created concurrently, try again");
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

/** Revokes the key with this public id; returns it, or null when no key has that id. */
export async function revokeApiKey(kv: Deno.Kv, id: string, now: number): Promise<ApiKeyRecord | null> {
  for await (const e of kv.list<ApiKeyRecord>({ prefix: keys.apiKeys() })) {
    if (e.value.id !== id) continue;
    if (e.value.revoked_date !== null) return e.value;
    const revoked = { ...e.value, revoked_date: now };
    const res = await kv.atomic().check(e).set(e.key, revoked).commit();
    return res.ok ? revoked : await revokeApiKey(kv, id, now);
  }
  return null;
}

/**
 * Sets the rate limit of the key with this public id (null goes back to the configured default); returns the
 * updated record, or null when no key has that id. Running servers apply it within their AUTH_CACHE_MS.
 */
export async function setKeyRateLimit(kv: Deno.Kv, id: string, limit: RateLimit | null): Promise<ApiKeyRecord | null> {
  for (let attempt = 0; attempt < 10; attempt++) {
    let found: Deno.KvEntry<ApiKeyRecord> | undefined;
    for await (const e of kv.list<ApiKeyRecord>({ prefix: keys.apiKeys() })) {
      if (e.value.id === id) {
        found = e;
        break;
      }
    }
    if (!found) return null;
    const { rate_limit: _old, ...rest } = found.value;
    const updated: ApiKeyRecord = limit ? { ...rest, rate_limit: limit } : rest;
    const res = await kv.atomic().check(found).set(found.key, updated).commit();
    if (res.ok) return updated;
  }
  throw new ConflictError(`Cannot set the rate limit of key "${id}": it keeps changing, try again`);
}

/**
 * On a store that never had a key, creates company "default" with a write key for user 1 and returns the
 * plain key; returns null on every later start. Safe when many processes start at once: one wins.
 */
export async function bootstrapApiKey(kv: Deno.Kv, now: number): Promise<string | null> {
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
  const op = kv.atomic().check(marker).set(keys.bootstrap(), { created_date: now }).set(keys.apiKey(hash), record);
  if (company.value === null) {
    op.check(company).set(keys.company("default"), { id: "default", name: "default", created_date: now });
  }
  const res = await op.commit();
  return res.ok ? key : null;
}
