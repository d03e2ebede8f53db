import { type Config, DEFAULT_CONFIG } from "../config.ts";
import { createApp } from "../routes/app.ts";
import { createApiKey } from "../storage/api_keys.ts";

/** A test world: a fresh in-memory store, the real app over it, and keys of two companies. */
export interface World {
  kv: Deno.Kv;
  app: ReturnType<typeof createApp>;
  /** Write key of company "acme" (user 2). */
  key: string;
  /** Read-only key of company "acme" (user 3). */
  readKey: string;
  /** Write key of company "globex" (user 7). */
  otherKey: string;
  /** Calls the app and decodes the reply. */
  call: (method: string, path: string, options?: CallOptions) => Promise<Reply>;
  [Symbol.asyncDispose]: () => Promise<void>;
}

/** How to send a test request. */
export interface CallOptions {
  /** API key, sent as the apikey query parameter; defaults to the world's write key; null sends none. */
  key?: string | null;
  /** Query parameters. */
  query?: Record<string, string | number>;
  /** Body as form fields (application/x-www-form-urlencoded). */
  form?: Record<string, string | number>;
  /** Body as multipart/form-data. */
  multipart?: Record<string, string | number>;
  /** Body as JSON. */
  json?: unknown;
  headers?: Record<string, string>;
}

/** A decoded reply: JSON parsed, XML kept as text. */
export interface Reply {
  status: number;
  type: string;
  // deno-lint-ignore no-explicit-any
  body: any;
  text: string;
}

/** Makes a world; use with `await using`. */
export async function world(options: { now?: () => number; config?: Partial<Config> } = {}): Promise<World> {
  const kv = await Deno.openKv(":memory:");
  const config: Config = { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false, ...options.config };
  const app = createApp({ kv, config, now: options.now });
  const now = Date.now();
  const key = (await createApiKey(kv, { companyId: "acme", userId: 2, access: "write", now })).key;
  const readKey = (await createApiKey(kv, { companyId: "acme", userId: 3, access: "read", now })).key;
  const otherKey = (await createApiKey(kv, { companyId: "globex", userId: 7, access: "write", now })).key;
  const call = (method: string, path: string, o: CallOptions = {}) => request(app, method, path, { key, ...o });
  return {
    kv,
    app,
    key,
    readKey,
    otherKey,
    call,
    [Symbol.asyncDispose]: () => Promise.resolve(kv.close()),
  };
}

/** Sends one request to an app (or, given a base URL, to a real server) and decodes the reply. */
export async function request(
  target: { request: (url: string, init: RequestInit) => Response | Promise<Response> } | string,
  method: string,
  path: string,
  options: CallOptions = {},
): Promise<Reply> {
  const url = new URL(path, "http://localhost");
  for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.append(k, String(v));
  if (options.key) url.searchParams.set("apikey", options.key);
  const headers = new Headers(options.headers);
  let body: BodyInit | undefined;
  if (options.form) {
    body = new URLSearchParams(Object.entries(options.form).map(([k, v]) => [k, String(v)]));
  } else if (options.multipart) {
    const fd = new FormData();
    for (const [k, v] of Object.entries(options.multipart)) fd.append(k, String(v));
    body = fd;
  } else if (options.json !== undefined) {
    headers.set("content-type", "application/json");
    body = JSON.stringify(options.json);
  }
  const init: RequestInit = { method, headers, body };
  const res = typeof target === "string"
    ? await fetch(new URL(url.pathname + url.search, target), init)
    : await target.request(url.pathname + url.search, init);
  const text = await res.text();
  const type = res.headers.get("content-type") ?? "";
  return { status: res.status, type, text, body: type.includes("json") ? JSON.parse(text) : text };
}

let serial = 0;

/** A customer with unique phone, email and external id, as form fields. */
export function randomCustomer(overrides: Record<string, string | number> = {}): Record<string, string | number> {
  serial++;
  const n = `${Date.now() % 100000}${serial}`.padStart(9, "0").slice(-9);
  return {
    fname: "Sergey",
    lname: "Ivanov",
    phone: `+7 (9${n.slice(0, 2)}) ${n.slice(2, 5)}-${n.slice(5, 7)}-${n.slice(7, 9)}`,
    email: `user${n}@example.com`,
    external_id: `ext-${n}`,
    ...overrides,
  };
}

/** Every key-value pair in the store, for asserting that a refused request changed nothing. */
export async function snapshot(kv: Deno.Kv): Promise<string> {
  const rows: string[] = [];
  for await (const e of kv.list({ prefix: [] })) {
    rows.push(JSON.stringify([e.key, e.value], (_k, v) => typeof v === "bigint" ? `${v}n` : v));
  }
  return rows.join("\n");
}
