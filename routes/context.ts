import type { Config } from "../config.ts";
import type { Access, RateLimit } from "../domain/api_key.ts";
import type { KeyedMutex } from "../storage/mutex.ts";

/** Reply format chosen by the `format` parameter. */
export type Format = "json" | "xml";

/** Raw parameters of a request, split by where they came from; `format` and `apikey` taken out. */
export interface RawRequest {
  query: Record<string, string>;
  body: Record<string, string>;
  apikey: string | undefined;
}

/** The caller, as proven by the API key. */
export interface Caller {
  companyId: string;
  userId: number;
  access: Access;
  /** Public id of the key used (for logs and the per-key rate limit). */
  keyId?: string;
  /** The key's own rate limit, overriding the configured default. */
  rateLimit?: RateLimit | null;
}

/** What every route handler is given: the store, the settings and the clock. */
export interface Deps {
  kv: Deno.Kv;
  config: Config;
  /** Current time, epoch ms; tests may fix it. */
  now: () => number;
  /** Queues writers of one hot key inside this process. */
  mutex: KeyedMutex;
}

/** Hono environment shared by every route. */
export interface AppEnv {
  Variables: {
    format: Format;
    raw: RawRequest;
    caller: Caller;
    /** Id of this request, also sent back as `X-Request-Id`. */
    requestId: string;
  };
}
