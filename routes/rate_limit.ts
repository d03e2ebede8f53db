import type { Context, MiddlewareHandler } from "hono";
import type { RateLimit } from "../domain/api_key.ts";
import type { AppEnv, Caller, Deps, Format } from "./context.ts";
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
export function peerAddress(info: unknown): string | undefined {
  try {
    const addr = (info as Deno.ServeHandlerInfo | undefined)?.remoteAddr;
    return addr && "hostname" in addr ? addr.hostname : undefined;
  } catch {
    return undefined;
  }
}

function tooMany(format: Format, info: string, waitMs: number): Response {
  const res = render(format, { success: 0, info }, 429);
  res.headers.set("Retry-After", String(Math.max(1, Math.ceil(waitMs / 1000))));
  return res;
}

/**
 * The limits of API requests, one set per app (shared by its API guard and the point-lookup door): an address whose
 * requests were refused 401 (no, unknown or revoked key) `config.badKeyLimit` times within `config.badKeyWindowMs`
 * gets 429 with `Retry-After` for every API request until that window ends (requests whose address is unknown,
 * in-process calls, are not counted); and each API key has its token bucket: the key's own `rate_limit` (set with
 * `deno task apikey`), else `config.rateLimitPerSecond` and `config.rateLimitBurst`. Over a limit a request gets
 * 429 and changes nothing. The buckets and counters live in this process only.
 */
export class ApiLimits {
  readonly #deps: Deps;
  readonly #fallback: RateLimit;
  constructor(deps: Deps, readonly windows = new FailureWindows(), readonly buckets = new TokenBuckets()) {
    this.#deps = deps;
    this.#fallback = { per_second: deps.config.rateLimitPerSecond, burst: deps.config.rateLimitBurst };
  }

  /** The address the bad-key limit counts for a request's `ServeHandlerInfo`, or undefined when it is off. */
  addressOf(info: unknown): string | undefined {
    return this.#deps.config.badKeyLimit > 0 ? peerAddress(info) : undefined;
  }

  /** The 429 reply for an address that used up its bad keys, or undefined when it may go on. */
  badKeyRefusal(address: string | undefined, format: Format): Response | undefined {
    if (address === undefined) return undefined;
    const wait = this.windows.blockedFor(address, this.#deps.config.badKeyLimit, this.#deps.now());
    if (wait <= 0) return undefined;
    return tooMany(format, `Too many requests with an invalid API key from this address: try again in a while`, wait);
  }

  /** Counts a 401 reply of an address. */
  failed(address: string | undefined, status: number): void {
    if (address !== undefined && status === 401) {
      this.windows.fail(address, this.#deps.config.badKeyWindowMs, this.#deps.now());
    }
  }

  /** Takes a token of the caller's key, or gives the 429 reply. */
  rateRefusal(caller: Caller, format: Format): Response | undefined {
    const limit = caller.rateLimit ?? this.#fallback;
    if (limit.per_second <= 0) return undefined;
    const name = caller.keyId ?? `${caller.companyId}:${caller.userId}`;
    const wait = this.buckets.take(name, limit, this.#deps.now());
    if (wait <= 0) return undefined;
    return tooMany(
      format,
      `Too many requests: API key "${name}" may make ${limit.per_second} requests per second ` +
        `(${limit.burst} at once), try again shortly`,
      wait,
    );
  }
}

/**
 * The bad-key limit, authentication (`prove`, which sets the caller or throws) and the key's rate limit in one
 * middleware, in that order: one layer instead of three on every API request. An error `prove` throws is turned
 * into the reply by `onError` (the app's error handler) right there, as a middleware of its own would have it, so
 * the bad-key counter sees its status.
 */
export function apiGuard(
  limits: ApiLimits,
  prove: (c: Context<AppEnv>) => Promise<void>,
  onError: (error: Error, c: Context<AppEnv>) => Response | Promise<Response>,
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const address = limits.addressOf(c.env);
    const format = c.get("format") ?? "json";
    const blocked = limits.badKeyRefusal(address, format);
    if (blocked) return blocked;
    try {
      await prove(c);
    } catch (error) {
      if (!(error instanceof Error)) throw error;
      c.error = error;
      c.res = await onError(error, c);
      limits.failed(address, c.res.status);
      return;
    }
    const refused = limits.rateRefusal(c.get("caller"), format);
    if (refused) return refused;
    await next();
    limits.failed(address, c.res.status);
  };
}
