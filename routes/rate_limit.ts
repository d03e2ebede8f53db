import type { Context, MiddlewareHandler } from "hono";
import type { RateLimit } from "../domain/api_key.ts";
import type { AppEnv, Deps } from "./context.ts";
import { render } from "./reply.ts";

/** Most token buckets (one per API key) and bad-key counters (one per address) kept in memory at once. */
export const MAX_TRACKED = 10_000;

/** Token buckets by name, at most `max` of them: the least recently used is dropped (it refills to full). */
export class TokenBuckets {
  #buckets = new Map<string, { tokens: number; at: number }>();
  constructor(readonly max = MAX_TRACKED) {}

  /** Takes one token from the bucket `name`; returns 0 when taken, or the ms to wait until one is there. */
  take(name: string, limit: RateLimit, now: number): number {
    let bucket = this.#buckets.get(name);
    if (bucket) {
      this.#buckets.delete(name);
      bucket.tokens = Math.min(limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * limit.per_second);
      bucket.at = now;
    } else {
      if (this.#buckets.size >= this.max) this.#buckets.delete(this.#buckets.keys().next().value!);
      bucket = { tokens: limit.burst, at: now };
    }
    this.#buckets.set(name, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) / limit.per_second) * 1000);
  }

  /** How many buckets are kept now. */
  get size(): number {
    return this.#buckets.size;
  }
}

/** Failed key checks by address within a window, at most `max` addresses (the oldest dropped first). */
export class FailureWindows {
  #windows = new Map<string, { count: number; ends: number }>();
  constructor(readonly max = MAX_TRACKED) {}

  /** The ms until `name` may try again when it has used up `limit` failures, else 0. */
  blockedFor(name: string, limit: number, now: number): number {
    const w = this.#windows.get(name);
    if (!w) return 0;
    if (w.ends <= now) {
      this.#windows.delete(name);
      return 0;
    }
    return w.count >= limit ? w.ends - now : 0;
  }

  /** Counts one failure of `name`; a window opens at its first failure and lasts `windowMs`. */
  fail(name: string, windowMs: number, now: number): void {
    let w = this.#windows.get(name);
    if (!w || w.ends <= now) {
      this.#windows.delete(name);
      if (this.#windows.size >= this.max) this.#windows.delete(this.#windows.keys().next().value!);
      w = { count: 0, ends: now + windowMs };
      this.#windows.set(name, w);
    }
    w.count++;
  }

  /** How many addresses are tracked now. */
  get size(): number {
    return this.#windows.size;
  }
}

/** The peer address of a request served by Deno (`deno serve`, Deno.serve, Deno Deploy), if known. */
function remoteAddress(c: Context<AppEnv>): string | undefined {
  try {
    const addr = (c.env as Deno.ServeHandlerInfo | undefined)?.remoteAddr;
    return addr && "hostname" in addr ? addr.hostname : undefined;
  } catch {
    return undefined;
  }
}

function tooMany(c: Context<AppEnv>, info: string, waitMs: number): Response {
  const res = render(c.get("format") ?? "json", { success: 0, info }, 429);
  res.headers.set("Retry-After", String(Math.max(1, Math.ceil(waitMs / 1000))));
  return res;
}

/**
 * Slows down guessing: an address whose requests were refused 401 (no, unknown or revoked key)
 * `config.badKeyLimit` times within `config.badKeyWindowMs` gets 429 with `Retry-After` for every API request
 * until that window ends. Requests whose address is unknown (in-process calls) are not counted.
 */
export function badKeyLimit(deps: Deps, windows = new FailureWindows()): MiddlewareHandler<AppEnv> {
  const { badKeyLimit: limit, badKeyWindowMs: windowMs } = deps.config;
  return async (c, next) => {
    const address = limit > 0 ? remoteAddress(c) : undefined;
    if (address === undefined) return await next();
    const wait = windows.blockedFor(address, limit, deps.now());
    if (wait > 0) {
      return tooMany(c, `Too many requests with an invalid API key from this address: try again in a while`, wait);
    }
    await next();
    if (c.res.status === 401) windows.fail(address, windowMs, deps.now());
  };
}

/**
 * Limits each API key to its token bucket: the key's own `rate_limit` (set with `deno task apikey`), else
 * `config.rateLimitPerSecond` and `config.rateLimitBurst`. Over the limit a request gets 429 with `Retry-After`
 * and changes nothing. Runs after authentication; the buckets live in this process only.
 */
export function keyRateLimit(deps: Deps, buckets = new TokenBuckets()): MiddlewareHandler<AppEnv> {
  const refusal = keyRateRefusal(deps, buckets);
  return async (c, next) => {
    const refused = refusal(c);
    if (refused) return refused;
    await next();
  };
}

/** The check of `keyRateLimit` on its own: takes a token of the caller's key, or gives the 429 reply. */
function keyRateRefusal(deps: Deps, buckets: TokenBuckets): (c: Context<AppEnv>) => Response | undefined {
  const fallback: RateLimit = { per_second: deps.config.rateLimitPerSecond, burst: deps.config.rateLimitBurst };
  return (c) => {
    const caller = c.get("caller");
    const limit = caller.rateLimit ?? fallback;
    if (limit.per_second > 0) {
      const name = caller.keyId ?? `${caller.companyId}:${caller.userId}`;
      const wait = buckets.take(name, limit, deps.now());
      if (wait > 0) {
        return tooMany(
          c,
          `Too many requests: API key "${name}" may make ${limit.per_second} requests per second ` +
            `(${limit.burst} at once), try again shortly`,
          wait,
        );
      }
    }
    return undefined;
  };
}

/**
 * `badKeyLimit`, authentication (`prove`, which sets the caller or throws) and `keyRateLimit` in one middleware,
 * in that order and with the same replies: one layer instead of three on every API request. An error `prove`
 * throws is turned into the reply by `onError` (the app's error handler) right there, as a middleware of its own
 * would have it, so the bad-key counter sees its status.
 */
export function apiGuard(
  deps: Deps,
  prove: (c: Context<AppEnv>) => Promise<void>,
  onError: (error: Error, c: Context<AppEnv>) => Response | Promise<Response>,
  windows = new FailureWindows(),
  buckets = new TokenBuckets(),
): MiddlewareHandler<AppEnv> {
  const { badKeyLimit: limit, badKeyWindowMs: windowMs } = deps.config;
  const rateRefusal = keyRateRefusal(deps, buckets);
  return async (c, next) => {
    const address = limit > 0 ? remoteAddress(c) : undefined;
    if (address !== undefined) {
      const wait = windows.blockedFor(address, limit, deps.now());
      if (wait > 0) {
        return tooMany(c, `Too many requests with an invalid API key from this address: try again in a while`, wait);
      }
    }
    try {
      await prove(c);
    } catch (error) {
      if (!(error instanceof Error)) throw error;
      c.error = error;
      c.res = await onError(error, c);
      if (address !== undefined && c.res.status === 401) windows.fail(address, windowMs, deps.now());
      return;
    }
    const refused = rateRefusal(c);
    if (refused) return refused;
    await next();
    if (address !== undefined && c.res.status === 401) windows.fail(address, windowMs, deps.now());
  };
}
