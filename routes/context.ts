import type { Config } from "../config.ts";
import type { Access } from "../domain/api_key.ts";
import type { KeyedMutex } from "../storage/mutex.ts";

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
  };
}
