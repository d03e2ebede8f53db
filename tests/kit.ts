/**
 * The shared test kit: a test world over a fresh in-memory store, requests through the real app or a real
 * server, free ports, server and task processes, a KV fault proxy, JSON and XML reply assertions, and the
 * "refused and nothing changed" check. Tests import from here instead of keeping copies of these helpers.
 */
import assert from "node:assert/strict";
import { XMLParser } from "fast-xml-parser";
import { type Config, DEFAULT_CONFIG } from "../config.ts";
import { createApp } from "../routes/app.ts";
import type { LogSink } from "../routes/log.ts";
import { openRows, type ReadRow } from "../domain/import/read.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { claimKeys } from "../storage/keys.ts";
import { verifyStore } from "../storage/verify.ts";

/** The repository root, the working directory of every process a test starts. */
export const ROOT = new URL("..", import.meta.url).pathname;
/** The service entry point that `deno serve` runs. */
export const MAIN = new URL("../main.ts", import.meta.url).pathname;
/** Content type of every JSON reply. */
export const JSON_TYPE = "application/json; charset=UTF-8";
/** Content type of every XML reply. */
export const XML_TYPE = "application/xml; charset=UTF-8";
/** How long a test waits for a process to start serving: generous, the test machine is shared and slow. */
const START_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------------------------------------------
// The test world and requests

/** A test world: a fresh in-memory store, the real app over it, and keys of two companies. */
export interface World {
  /** The real store (not the wrapper given by `options.kv`, if any). */
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

/** How to build a world. */
export interface WorldOptions {
  /** The app's clock, epoch ms. */
  now?: () => number;
  /** Settings over the defaults (the store is always in memory; request logging is off unless set). */
  config?: Partial<Config>;
  /** Receives the app's log lines (request lines when config.logRequests, and every internal error). */
  log?: LogSink;
  /** Wraps the store the app is given (e.g. `(kv) => kvProxy(kv).kv`); keys are still made on the real one. */
  kv?: (kv: Deno.Kv) => Deno.Kv;
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
  /** A raw body, sent as given with the headers given (no content type is added). */
  body?: BodyInit;
  headers?: Record<string, string>;
}

/** A decoded reply: JSON parsed, XML kept as text. */
export interface Reply {
  status: number;
  type: string;
  headers: Headers;
  // deno-lint-ignore no-explicit-any
  body: any;
  text: string;
}

/** Makes a world; use with `await using`. */
export async function world(options: WorldOptions = {}): Promise<World> {
  const kv = await Deno.openKv(":memory:");
  const config: Config = { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false, ...options.config };
  const app = createApp({ kv: options.kv ? options.kv(kv) : kv, config, now: options.now, log: options.log });
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
  } else if (options.body !== undefined) {
    body = options.body;
  }
  const init: RequestInit = { method, headers, body };
  const res = typeof target === "string"
    ? await fetch(new URL(url.pathname + url.search, target), init)
    : await target.request(url.pathname + url.search, init);
  const text = await res.text();
  const type = res.headers.get("content-type") ?? "";
  return {
    status: res.status,
    type,
    headers: res.headers,
    text,
    body: type.includes("json") ? JSON.parse(text) : text,
  };
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

/** Minor units as the decimal text a client would send ("-12.05"). */
export function decimal(minor: number): string {
  const abs = Math.abs(minor);
  return `${minor < 0 ? "-" : ""}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Reply assertions

/** Asserts a JSON reply: status, then content type, then (when given) the exact body; returns the body. */
// deno-lint-ignore no-explicit-any
export function assertJson(reply: Reply, status: number, body?: unknown): any {
  assert.equal(reply.status, status, reply.text);
  assert.equal(reply.type, JSON_TYPE);
  if (body !== undefined) assert.deepEqual(reply.body, body);
  return reply.body;
}

/** Parses an XML reply as the clients' usual parser does, every value kept as the text on the wire. */
// deno-lint-ignore no-explicit-any
export function parseXml(text: string): any {
  return new XMLParser({ parseTagValue: false }).parse(text);
}

/**
 * Asserts an XML reply: status, then content type, then a well-formed document with its declaration, and (when
 * given) the exact content of `<root>` with every value as text; returns that content.
 */
// deno-lint-ignore no-explicit-any
export function assertXml(reply: Reply, status: number, root?: unknown): any {
  assert.equal(reply.status, status, reply.text);
  assert.equal(reply.type, XML_TYPE);
  assert.ok(reply.text.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<root>\n'), reply.text);
  const parsed = parseXml(reply.text).root;
  if (root !== undefined) assert.deepEqual(parsed, root);
  return parsed;
}

/** What a refused request must answer. */
export interface Refusal {
  status: number;
  info: string;
  /** The parameter named in `field`; absent when the reply names none. */
  field?: string;
}

/** Asserts the error envelope in the reply's own format (JSON or XML). */
export function assertError(reply: Reply, expected: Refusal): void {
  const body: Record<string, string | number> = { success: 0, info: expected.info };
  if (expected.field !== undefined) body.field = expected.field;
  if (reply.type === XML_TYPE) {
    assertXml(reply, expected.status, Object.fromEntries(Object.entries(body).map(([k, v]) => [k, String(v)])));
  } else {
    assertJson(reply, expected.status, body);
  }
}

/**
 * Runs a request that must be refused: dumps the whole store (versionstamps included, so even a rewrite of the
 * same value shows), runs it, asserts the error envelope, and asserts the store is exactly as before.
 */
export async function assertRefused(kv: Deno.Kv, run: () => Promise<Reply>, expected: Refusal): Promise<Reply> {
  const before = await snapshot(kv, { versionstamps: true });
  const reply = await run();
  assertError(reply, expected);
  assert.equal(await snapshot(kv, { versionstamps: true }), before, "a refused request changed the store");
  return reply;
}

/** Every key-value pair in the store (with versionstamps when asked), for asserting that nothing changed. */
export async function snapshot(kv: Deno.Kv, options: { versionstamps?: boolean } = {}): Promise<string> {
  const rows: string[] = [];
  for await (const e of kv.list({ prefix: [] })) {
    const row = options.versionstamps ? [e.key, e.value, e.versionstamp] : [e.key, e.value];
    rows.push(JSON.stringify(row, (_k, v) => typeof v === "bigint" ? `${v}n` : v));
  }
  return rows.join("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// A KV fault proxy

/** Store calls a fault can be injected into. */
export type KvCall = "get" | "getMany" | "list" | "commit";

/** A fault to inject into the next calls of one kind. */
export interface Fault {
  /** How many calls fail (default: every call from now on). */
  times?: number;
  /** The error thrown (default `Error("injected store fault")`). */
  error?: Error;
  /** Commits only: apply the operation first, then throw, as a connection lost after the write would. */
  afterApplying?: boolean;
}

/** A set seen by the proxy, on the store itself or inside an atomic operation, with the options it was given. */
export interface RecordedSet {
  key: Deno.KvKey;
  value: unknown;
  options: { expireIn?: number } | undefined;
  atomic: boolean;
}

/** A real store behind a wrapper that injects faults and records what the code under test does to it. */
export interface KvProxy {
  /** The wrapper, to hand to the code under test. */
  kv: Deno.Kv;
  /** Makes the next calls of one kind throw (faults of one kind are used up in the order they were added). */
  fail: (call: KvCall, fault?: Fault) => void;
  /** Runs a hook just before the next commit (one hook per commit, in order): another writer slipping in. */
  beforeCommit: (hook: () => Promise<unknown>) => void;
  /** Calls seen so far, by kind. */
  calls: Record<KvCall, number>;
  /** Every set seen so far. */
  sets: RecordedSet[];
  /** Drops pending faults and hooks. */
  heal: () => void;
}

/** Wraps a real store (no mock: every call that is not made to fail reaches it unchanged). */
export function kvProxy(target: Deno.Kv): KvProxy {
  const pending: Record<KvCall, { remaining: number; fault: Fault }[]> = { get: [], getMany: [], list: [], commit: [] };
  const hooks: (() => Promise<unknown>)[] = [];
  const calls: Record<KvCall, number> = { get: 0, getMany: 0, list: 0, commit: 0 };
  const sets: RecordedSet[] = [];

  /** Counts a call and takes the fault it must suffer, if any. */
  const take = (call: KvCall): Fault | null => {
    calls[call]++;
    const queue = pending[call];
    const head = queue[0];
    if (!head) return null;
    if (--head.remaining <= 0) queue.shift();
    return head.fault;
  };
  const errorOf = (fault: Fault) => fault.error ?? new Error("injected store fault");

  const wrapAtomic = (op: Deno.AtomicOperation): Deno.AtomicOperation => {
    const set = op.set.bind(op);
    op.set = (key, value, options) => {
      sets.push({ key, value, options, atomic: true });
      return set(key, value, options);
    };
    const commit = op.commit.bind(op);
    op.commit = async () => {
      const fault = take("commit");
      const hook = hooks.shift();
      if (hook) await hook();
      if (fault && !fault.afterApplying) throw errorOf(fault);
      const result = await commit();
      if (fault) throw errorOf(fault);
      return result;
    };
    return op;
  };

  const proxy = new Proxy(target, {
    get(kv, prop) {
      switch (prop) {
        case "get":
          return (...a: Parameters<Deno.Kv["get"]>) => {
            const fault = take("get");
            return fault ? Promise.reject(errorOf(fault)) : kv.get(...a);
          };
        case "getMany":
          return (...a: Parameters<Deno.Kv["getMany"]>) => {
            const fault = take("getMany");
            return fault ? Promise.reject(errorOf(fault)) : kv.getMany(...a);
          };
        case "list":
          return (...a: Parameters<Deno.Kv["list"]>) => {
            const fault = take("list");
            if (!fault) return kv.list(...a);
            return (async function* () {
              yield* [];
              throw errorOf(fault);
            })();
          };
        case "set":
          return (key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) => {
            sets.push({ key, value, options, atomic: false });
            return kv.set(key, value, options);
          };
        case "atomic":
          return () => wrapAtomic(kv.atomic());
      }
      const value = Reflect.get(kv, prop, kv);
      return typeof value === "function" ? value.bind(kv) : value;
    },
  });
  return {
    kv: proxy,
    fail: (call, fault = {}) => void pending[call].push({ remaining: fault.times ?? Infinity, fault }),
    beforeCommit: (hook) => void hooks.push(hook),
    calls,
    sets,
    heal: () => {
      for (const queue of Object.values(pending)) queue.length = 0;
      hooks.length = 0;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Processes: free ports, servers, tasks

/** A port nobody listens on right now, on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Reads a child's output stream into a growing string. */
export function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let text = "";
  const decoder = new TextDecoder();
  const done = (async () => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  })();
  return { text: () => text, done };
}

/** Polls `probe` (errors count as "not yet") until it gives a value other than undefined, or times out. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  options: { timeoutMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? START_TIMEOUT_MS);
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

/** How to start a server process. */
export interface ServerOptions {
  /** The store file (KV_PATH). */
  kvPath: string;
  /** `serve` (default): `deno serve main.ts` on 127.0.0.1; `task`: `deno task start`, as a user starts it. */
  via?: "serve" | "task";
  /** Port (default: a free one); give the old one to restart a server where clients expect it. */
  port?: number;
  /** Workers of `deno serve --parallel` (serve only; default 1, no --parallel). */
  workers?: number;
  /** More environment variables (LOG_REQUESTS is 0 unless set here). */
  env?: Record<string, string>;
}

/** A running server process and what it has printed so far. */
export interface ServerProcess {
  base: string;
  port: number;
  child: Deno.ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Waits until the server answers a request made with this key with 200. */
  ready: (key: string) => Promise<void>;
  /** Stops it (SIGTERM by default) and waits for it and its output; safe to call twice. */
  stop: (signal?: Deno.Signal) => Promise<Deno.CommandStatus>;
  [Symbol.asyncDispose]: () => Promise<void>;
}

/** Starts the real service as a child process on a free port (or the given one). */
export function startServer(options: ServerOptions): ServerProcess {
  const port = options.port ?? freePort();
  const env: Record<string, string> = { LOG_REQUESTS: "0", KV_PATH: options.kvPath, ...options.env };
  let args: string[];
  if (options.via === "task") {
    args = ["task", "start"];
    Object.assign(env, { PORT: String(port), HOST: "127.0.0.1" });
  } else {
    args = ["serve", "-A", "--unstable-kv", "--host", "127.0.0.1", "--port", String(port)];
    if ((options.workers ?? 1) > 1) {
      args.push("--parallel");
      env.DENO_JOBS = String(options.workers);
    }
    args.push(MAIN);
  }
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const out = collect(child.stdout);
  const err = collect(child.stderr);
  const base = `http://127.0.0.1:${port}`;
  let stopping: Promise<Deno.CommandStatus> | null = null;
  const stop = (signal: Deno.Signal = "SIGTERM") => {
    stopping ??= (async () => {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
      const status = await child.status;
      await Promise.all([out.done, err.done]);
      return status;
    })();
    return stopping;
  };
  const ready = async (key: string) => {
    try {
      await waitFor(
        `the server on ${base}`,
        async () => (await fetch(`${base}/api/bonusprogram?apikey=${key}`)).status === 200 || undefined,
      );
    } catch (error) {
      await stop();
      throw new Error(`${(error as Error).message}; its stderr:\n${err.text()}`);
    }
  };
  return {
    base,
    port,
    child,
    stdout: out.text,
    stderr: err.text,
    ready,
    stop,
    [Symbol.asyncDispose]: async () => void await stop(),
  };
}

/** What a finished task printed. */
export interface TaskResult {
  code: number;
  out: string;
  err: string;
}

/** Runs `deno task --quiet NAME ARGS...` on the store at kvPath and returns its exit code and output. */
export async function runTask(
  name: string,
  args: string[],
  options: { kvPath: string; env?: Record<string, string> },
): Promise<TaskResult> {
  const res = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", name, ...args],
    cwd: ROOT,
    env: { KV_PATH: options.kvPath, ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: res.code, out: d.decode(res.stdout), err: d.decode(res.stderr) };
}

/** A temporary folder, removed on dispose; use with `await using`. */
export async function tempDir(prefix = "loyalty_test_"): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** The two bookkeeping fields of a stored balance (its lots aside), for comparing totals. */
export function pickBalance(
  record: { balance: number; last_transaction_id: number } | null | undefined,
): { balance: number; last_transaction_id: number } | null {
  return record ? { balance: record.balance, last_transaction_id: record.last_transaction_id } : null;
}

/** The rows of a customers CSV text in batches of 100, as the import task reads them; `onRead` hears each batch. */
export async function* csvRowBatches(text: string, onRead?: () => void): AsyncGenerator<ReadRow[]> {
  const opened = await openRows(new Blob([new TextEncoder().encode(text)]).stream(), {
    format: "csv",
    type: "customers",
    batchSize: 100,
  });
  for await (const batch of opened.batches) {
    onRead?.();
    yield batch;
  }
}

/** The company's change counter: every commit that changes the company adds one (storage/commit.ts). */
export async function commitsOf(kv: Deno.Kv, cid: string): Promise<bigint> {
  return (await kv.get<Deno.KvU64>(claimKeys.changes(cid))).value?.value ?? 0n;
}

/** What `deno task verify` reports as defects of the store (empty when it is whole). */
export async function storeDefects(kv: Deno.Kv): Promise<string[]> {
  const found: string[] = [];
  await verifyStore(kv, { onFinding: (f) => f.severity === "defect" && found.push(f.message) });
  return found;
}
