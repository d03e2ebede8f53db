import type { Context, MiddlewareHandler } from "hono";
import { AuthError, ForbiddenError } from "../domain/errors.ts";
import { cachedKey, lookupKey } from "../usecases/api_keys.ts";
import type { AppEnv, Caller, Deps } from "./context.ts";
import type { ApiKeyRecord } from "../domain/api_key.ts";
import { outsideKey, rawOf } from "./request.ts";

/**
 * The caller an API key proves, or the AuthError thrown for a missing, unknown or revoked key: at once for a key in
 * the cache, else once the store has answered.
 */
export type KeyProver = (key: string | undefined) => Caller | Promise<Caller>;

/**
 * Proves callers by key. Lookups are kept for `authCacheMs`; one caller object is made per key record the store's
 * cache holds (the same record object until it is read again), not per request; no code changes a caller.
 */
export function keyProver(deps: Deps): KeyProver {
  const maxAgeMs = deps.config.authCacheMs;
  const callers = new WeakMap<ApiKeyRecord, Caller>();
  const callerOf = (record: ApiKeyRecord | null): Caller => {
    if (!record) throw new AuthError("Invalid API key");
    if (record.revoked_date !== null) throw new AuthError(`API key "${record.id}" is revoked`);
    let caller = callers.get(record);
    if (!caller) {
      caller = {
        companyId: record.company_id,
        userId: record.user_id,
        access: record.access,
        keyId: record.id,
        rateLimit: record.rate_limit,
      };
      callers.set(record, caller);
    }
    return caller;
  };
  return (key) => {
    if (!key) throw new AuthError("Missing API key: pass the apikey parameter or an X-API-Key header");
    const hit = cachedKey(deps.store, key);
    return hit !== undefined ? callerOf(hit) : lookupKey(deps.store, key, { maxAgeMs }).then(callerOf);
  };
}

/**
 * Proves the caller by API key (header `X-API-Key`, `Authorization: Bearer`, or the `apikey` parameter; empty ones
 * are ignored and two different ones refused), for a middleware that runs it among other steps: sets the caller, or
 * throws the error the request gets. Lookups are kept for `authCacheMs`, so a request costs no store read and a
 * revoked key stops within that time.
 */
export function proveCaller(deps: Deps, prove: KeyProver = keyProver(deps)): (c: Context<AppEnv>) => Promise<void> {
  return async (c) => {
    // The body is read only when the key is in neither a header nor the query string, so an unknown caller
    // with a key there is refused before any body is parsed; a different key in the body is refused when the
    // body is read.
    c.set("caller", await prove(outsideKey(c) ?? (await rawOf(c)).apikey));
  };
}

/** Lets only write keys through. */
export const requireWrite: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.get("caller").access !== "write") {
    throw new ForbiddenError(`API key is read-only: ${c.req.method} ${c.req.path} needs a write key`);
  }
  await next();
};
