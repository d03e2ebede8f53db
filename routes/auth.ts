import type { MiddlewareHandler } from "hono";
import { type ApiKeyRecord, hashApiKey } from "../domain/api_key.ts";
import { AuthError, ForbiddenError, ValidationError } from "../domain/errors.ts";
import { findApiKey } from "../storage/api_keys.ts";
import type { AppEnv, Deps } from "./context.ts";
import { rawOf } from "./request.ts";

/** Most key lookups (hits and misses) kept in memory at once. */
const CACHE_LIMIT = 10_000;

/** The key of an `X-API-Key` or `Authorization: Bearer` header, if one was sent. */
function headerKey(header: (name: string) => string | undefined): string | undefined {
  const bearer = header("authorization");
  return header("x-api-key") ??
    (bearer && /^bearer\s+/i.test(bearer) ? bearer.replace(/^bearer\s+/i, "").trim() : undefined);
}

/**
 * Proves the caller by API key (header `X-API-Key`, `Authorization: Bearer`, or the `apikey` parameter).
 * Lookups are kept for `authCacheMs`, so a request costs no store read and a revoked key stops within
 * that time.
 */
export function authenticate(deps: Deps): MiddlewareHandler<AppEnv> {
  const cache = new Map<string, { record: ApiKeyRecord | null; expires: number }>();
  return async (c, next) => {
    // The body is read only when the key is in neither a header nor the query string, so an unknown caller
    // with a key there is refused before any body is parsed.
    const fromHeader = headerKey((n) => c.req.header(n));
    const param = c.req.query("apikey") ?? (fromHeader === undefined ? (await rawOf(c)).apikey : undefined);
    if (fromHeader !== undefined && param !== undefined && fromHeader !== param) {
      throw new ValidationError("apikey", "Two different API keys were sent: send one");
    }
    const key = fromHeader ?? param;
    if (!key) throw new AuthError("Missing API key: pass the apikey parameter or an X-API-Key header");
    // Cached by the presented key itself (in memory only: the store holds hashes alone), so a hit costs
    // neither a store read nor a hash.
    const now = Date.now();
    let hit = cache.get(key);
    if (!hit || hit.expires <= now) {
      hit = { record: await findApiKey(deps.kv, await hashApiKey(key)), expires: now + deps.config.authCacheMs };
      cache.delete(key);
      if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
      cache.set(key, hit);
    }
    const record = hit.record;
    if (!record) throw new AuthError("Invalid API key");
    if (record.revoked_date !== null) throw new AuthError(`API key "${record.id}" is revoked`);
    c.set("caller", {
      companyId: record.company_id,
      userId: record.user_id,
      access: record.access,
      keyId: record.id,
      rateLimit: record.rate_limit,
    });
    await next();
  };
}

/** Lets only write keys through. */
export const requireWrite: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.get("caller").access !== "write") {
    throw new ForbiddenError(`API key is read-only: ${c.req.method} ${c.req.path} needs a write key`);
  }
  await next();
};
