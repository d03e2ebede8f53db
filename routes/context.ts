import type { Config } from "../config.ts";
import type { Access, RateLimit } from "../domain/api_key.ts";
import type { Actor } from "../domain/audit.ts";
import type { Store } from "../storage/store.ts";

/** Reply format chosen by the `format` parameter. */
export type Format = "json" | "xml";

/** Raw parameters of a request, split by where they came from; `format` and `apikey` taken out. */
export interface RawRequest {
  query: Record<string, string>;
  body: Record<string, string>;
  apikey: string | undefined;
  /** Body parameters sent as a JSON true/false, which only yes/no parameters take. */
  booleans: ReadonlySet<string>;
}

/** The caller, as proven by the API key. */
export interface Caller {
  companyId: string;
  userId: number;
  access: Access;
  /** Public id of the key (never the key itself): for the audit trail, logs and the per-key rate limit. */
  keyId: string;
  /** The key's own rate limit, overriding the configured default. */
  rateLimit?: RateLimit | null;
}

/** The actor of the audit trail for an API caller: `key:<key id>`. */
export function actorOf(caller: Caller): Actor {
  return { companyId: caller.companyId, name: `key:${caller.keyId}`, userId: caller.userId };
}

/** What every route handler is given: the store (with its clock) and the settings. */
export interface Deps {
  store: Store;
  config: Config;
  /** The store's KV handle, for middleware that checks the store itself (health); handlers call use cases. */
  kv: Deno.Kv;
  /** Current time, epoch ms: the store's clock. */
  now: () => number;
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
