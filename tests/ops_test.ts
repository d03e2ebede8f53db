import assert from "node:assert/strict";
import { type Config, DEFAULT_CONFIG, loadConfig } from "../config.ts";
import denoJson from "../deno.json" with { type: "json" };
import { createApp } from "../routes/app.ts";
import { logSink } from "../routes/log.ts";
import { FailureWindows, TokenBuckets } from "../routes/rate_limit.ts";
import { createApiKey, listApiKeys, setKeyRateLimit } from "../storage/api_keys.ts";
import { randomCustomer, request, snapshot, world } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** A clock the test moves by hand. */
function manualClock(start = Date.UTC(2026, 0, 1)) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

/** A Deno serve-handler info, as the app gets it from a real server: only the peer address matters here. */
function from(hostname: string): Deno.ServeHandlerInfo {
  return { remoteAddr: { transport: "tcp", hostname, port: 40000 }, completed: Promise.resolve() };
}

async function call(
  app: ReturnType<typeof createApp>,
  path: string,
  init: RequestInit = {},
  info?: Deno.ServeHandlerInfo,
): Promise<Response> {
  return await app.request(path, init, info);
}

Deno.test("config: rate limits, log format, connection cap and timeouts come from the environment", async (t) => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  await t.step("defaults", () => {
    const c = loadConfig(env({}));
    assert.equal(c.rateLimitPerSecond, 1000);
    assert.equal(c.rateLimitBurst, 5000);
    assert.equal(c.badKeyLimit, 20);
    assert.equal(c.badKeyWindowMs, 60_000);
    assert.equal(c.logFormat, "text");
    assert.equal(c.maxConnections, null);
    assert.deepEqual([c.headerTimeoutMs, c.bodyTimeoutMs, c.idleTimeoutMs], [10_000, 30_000, 30_000]);
  });
  await t.step("set", () => {
    const c = loadConfig(env({
      RATE_LIMIT_PER_SECOND: "0",
      RATE_LIMIT_BURST: "7",
      BAD_KEY_LIMIT: "3",
      BAD_KEY_WINDOW_MS: "1000",
      LOG_FORMAT: "JSON",
      MAX_CONNECTIONS: "64",
      HEADER_TIMEOUT_MS: "100",
      BODY_TIMEOUT_MS: "200",
      IDLE_TIMEOUT_MS: "300",
    }));
    assert.deepEqual(
      [c.rateLimitPerSecond, c.rateLimitBurst, c.badKeyLimit, c.badKeyWindowMs, c.logFormat, c.maxConnections],
      [0, 7, 3, 1000, "json", 64],
    );
    assert.deepEqual([c.headerTimeoutMs, c.bodyTimeoutMs, c.idleTimeoutMs], [100, 200, 300]);
    assert.equal(loadConfig(env({ MAX_CONNECTIONS: "auto" })).maxConnections, null);
  });
  await t.step("refused", () => {
    for (
      const [name, value, message] of [
        ["LOG_FORMAT", "xml", 'Invalid LOG_FORMAT "xml": must be text or json'],
        ["MAX_CONNECTIONS", "0", 'Invalid MAX_CONNECTIONS "0": must be at least 1'],
        ["RATE_LIMIT_BURST", "0", 'Invalid RATE_LIMIT_BURST "0": must be at least 1'],
        ["RATE_LIMIT_PER_SECOND", "-1", 'Invalid RATE_LIMIT_PER_SECOND "-1": must be a whole number'],
        ["HEADER_TIMEOUT_MS", "soon", 'Invalid HEADER_TIMEOUT_MS "soon": must be a whole number'],
        ["IDLE_TIMEOUT_MS", "0", 'Invalid IDLE_TIMEOUT_MS "0": must be at least 1'],
      ]
    ) {
      assert.throws(() => loadConfig(env({ [name!]: value! })), { message });
    }
  });
});

Deno.test("rate limit: each key has a token bucket; over it 429 with Retry-After, and nothing changes", async (t) => {
  const clock = manualClock();
  const config: Partial<Config> = { rateLimitPerSecond: 2, rateLimitBurst: 3, authCacheMs: 0 };
  await using w = await world({ now: clock.now, config });
  await t.step("a burst of 3, then 429 in the asked format", async () => {
    for (let i = 0; i < 3; i++) assert.equal((await w.call("GET", "/api/customer")).status, 200);
    const before = await snapshot(w.kv);
    const refused = await w.call("POST", "/api/customer/update", { form: randomCustomer() });
    assert.equal(refused.status, 429);
    assert.equal(refused.type, "application/json; charset=UTF-8");
    assert.equal(refused.body.success, 0);
    assert.match(
      refused.body.info,
      /^Too many requests: API key "\w{12}" may make 2 requests per second \(3 at once\)/,
    );
    assert.equal(await snapshot(w.kv), before);
    const res = await w.app.request(`/api/customer?format=xml&apikey=${w.key}`);
    assert.equal(res.status, 429);
    assert.equal(res.headers.get("retry-after"), "1");
    assert.equal(res.headers.get("content-type"), "application/xml; charset=UTF-8");
    assert.match(await res.text(), /<success>0<\/success>\n<info>Too many requests: /);
  });
  await t.step("another key of the same company has its own bucket", async () => {
    assert.equal((await w.call("GET", "/api/customer", { key: w.readKey })).status, 200);
  });
  await t.step("the bucket refills at the rate: one request per 500 ms", async () => {
    clock.advance(499);
    assert.equal((await w.call("GET", "/api/customer")).status, 429);
    clock.advance(1);
    assert.equal((await w.call("GET", "/api/customer")).status, 200);
    assert.equal((await w.call("GET", "/api/customer")).status, 429);
    clock.advance(10_000);
    for (let i = 0; i < 3; i++) assert.equal((await w.call("GET", "/api/customer")).status, 200);
    assert.equal((await w.call("GET", "/api/customer")).status, 429);
  });
  await t.step("a key's own limit overrides the default, and going back to default works", async () => {
    const [record] = (await listApiKeys(w.kv, "acme")).filter((k) => k.user_id === 2);
    await setKeyRateLimit(w.kv, record!.id, { per_second: 0, burst: 1 });
    for (let i = 0; i < 20; i++) assert.equal((await w.call("GET", "/api/customer")).status, 200);
    await setKeyRateLimit(w.kv, record!.id, { per_second: 1, burst: 1 });
    clock.advance(10_000);
    assert.equal((await w.call("GET", "/api/customer")).status, 200);
    const r = await w.call("GET", "/api/customer");
    assert.equal(r.status, 429);
    assert.match(r.body.info, /may make 1 requests per second \(1 at once\)/);
    const restored = await setKeyRateLimit(w.kv, record!.id, null);
    assert.equal(restored!.rate_limit, undefined);
    clock.advance(10_000);
    for (let i = 0; i < 3; i++) assert.equal((await w.call("GET", "/api/customer")).status, 200);
    assert.equal((await w.call("GET", "/api/customer")).status, 429);
    assert.equal(await setKeyRateLimit(w.kv, "nosuchkey", null), null);
  });
  await t.step("RATE_LIMIT_PER_SECOND=0 turns the default off", async () => {
    await using open = await world({ now: clock.now, config: { rateLimitPerSecond: 0, rateLimitBurst: 1 } });
    for (let i = 0; i < 10; i++) assert.equal((await open.call("GET", "/api/customer")).status, 200);
  });
});

Deno.test("rate limit memory is bounded: the least recently used bucket or address is dropped", () => {
  const buckets = new TokenBuckets(3);
  const limit = { per_second: 1, burst: 1 };
  for (const name of ["a", "b", "c"]) assert.equal(buckets.take(name, limit, 0), 0);
  assert.equal(buckets.take("a", limit, 0), 1000);
  assert.equal(buckets.take("d", limit, 0), 0);
  assert.equal(buckets.size, 3);
  assert.equal(buckets.take("a", limit, 0), 1000, "a was used last, so b was dropped, not a");
  assert.equal(buckets.take("b", limit, 0), 0, "b comes back with a full bucket");
  const windows = new FailureWindows(2);
  for (const name of ["x", "y", "z"]) windows.fail(name, 1000, 0);
  assert.equal(windows.size, 2);
  for (let i = 0; i < 100_000; i++) buckets.take(`k${i}`, limit, i);
  assert.equal(buckets.size, 3);
});

Deno.test("bad keys: an address that sent too many gets 429 until its window ends; others are not slowed", async () => {
  const clock = manualClock();
  await using w = await world({ now: clock.now, config: { badKeyLimit: 3, badKeyWindowMs: 60_000 } });
  const attacker = from("203.0.113.9");
  for (let i = 0; i < 3; i++) {
    const res = await call(w.app, `/api/customer?apikey=lk_guess${i}`, {}, attacker);
    assert.equal(res.status, 401);
    await res.body?.cancel();
  }
  clock.advance(1000);
  const blocked = await call(w.app, `/api/customer?apikey=${w.key}`, {}, attacker);
  assert.equal(blocked.status, 429);
  assert.equal(blocked.headers.get("retry-after"), "59");
  assert.deepEqual(await blocked.json(), {
    success: 0,
    info: "Too many requests with an invalid API key from this address: try again in a while",
  });
  const neighbour = await call(w.app, `/api/customer?apikey=${w.key}`, {}, from("203.0.113.10"));
  assert.equal(neighbour.status, 200);
  await neighbour.body?.cancel();
  const other = await call(w.app, "/api/customer?apikey=lk_wrong", {}, from("198.51.100.1"));
  assert.equal(other.status, 401);
  await other.body?.cancel();
  clock.advance(59_000);
  const later = await call(w.app, `/api/customer?apikey=${w.key}`, {}, attacker);
  assert.equal(later.status, 200);
  await later.body?.cancel();
  const health = await call(w.app, "/health", {}, attacker);
  assert.equal(health.status, 200, "health needs no key and is never slowed");
  await health.body?.cancel();
});

Deno.test("logs: text line by default, JSON objects with LOG_FORMAT=json, a request id on every reply, never a key", async (t) => {
  const kv = await Deno.openKv(":memory:");
  const now = Date.now();
  const { key, record } = await createApiKey(kv, { companyId: "acme", userId: 2, access: "write", now });
  const lines: string[] = [];
  const json: Config = { ...DEFAULT_CONFIG, kvPath: ":memory:", logFormat: "json" };
  const app = createApp({ kv, config: json, log: (line) => lines.push(line) });
  try {
    await t.step("one JSON object per request, with the request id sent back", async () => {
      const res = await app.request(`/api/customer?id=1&apikey=${key}`, {
        headers: { authorization: `Bearer ${key}` },
      });
      assert.equal(res.status, 200);
      await res.body?.cancel();
      const id = res.headers.get("x-request-id")!;
      assert.match(id, /^[a-z0-9]{14}-[a-z0-9]+$/);
      assert.equal(lines.length, 1);
      const entry = JSON.parse(lines[0]!);
      assert.equal(typeof entry.time, "string");
      assert.ok(entry.duration_ms >= 0);
      delete entry.time;
      delete entry.duration_ms;
      assert.deepEqual(entry, {
        level: "info",
        request_id: id,
        company: "acme",
        key_id: record.id,
        route: "/api/customer",
        method: "GET",
        path: "/api/customer",
        status: 200,
      });
    });
    await t.step("a sane incoming X-Request-Id is kept, anything else replaced", async () => {
      for (const [sent, kept] of [["till-42:abc.1", true], ["x".repeat(129), false], ["a b", false], ["", false]]) {
        const res = await app.request("/api/customer", { headers: { "x-request-id": sent as string } });
        assert.equal(res.status, 401);
        await res.body?.cancel();
        const id = res.headers.get("x-request-id")!;
        assert.equal(id === sent, kept, `${sent} -> ${id}`);
        assert.equal(JSON.parse(lines.at(-1)!).request_id, id);
        assert.equal(JSON.parse(lines.at(-1)!).company, null);
      }
    });
    await t.step("unmatched paths and every status carry an id", async () => {
      const res = await app.request(`/nowhere?apikey=${key}`);
      assert.equal(res.status, 404);
      await res.body?.cancel();
      assert.ok(res.headers.get("x-request-id"));
      assert.equal(JSON.parse(lines.at(-1)!).route, null);
    });
    await t.step("an internal error is logged as JSON with its stack, answered 500", async () => {
      const broken = await Deno.openKv(":memory:");
      const brokenApp = createApp({
        kv: broken,
        config: { ...json, authCacheMs: 0 },
        log: (line) => lines.push(line),
      });
      broken.close();
      const res = await brokenApp.request(`/api/customer?apikey=${key}`, { headers: { "x-request-id": "req-500" } });
      assert.equal(res.status, 500);
      assert.deepEqual(await res.json(), { success: 0, info: "Internal error" });
      assert.equal(res.headers.get("x-request-id"), "req-500");
      const errors = lines.map((l) => JSON.parse(l)).filter((e) => e.level === "error");
      assert.equal(errors.length, 1);
      assert.equal(errors[0].request_id, "req-500");
      assert.match(errors[0].stack, /\n\s+at /);
      assert.equal(typeof errors[0].error, "string");
    });
    await t.step("no line ever holds the key or its hash", () => {
      for (const line of lines) {
        assert.ok(!line.includes(key), line);
        assert.ok(!line.includes(record.hash), line);
        assert.ok(!line.includes("apikey"), line);
      }
    });
    await t.step("text format stays the plain line", async () => {
      const text: string[] = [];
      const textApp = createApp({ kv, config: { ...json, logFormat: "text" }, log: (l) => text.push(l) });
      const res = await textApp.request(`/api/customer?apikey=${key}`);
      assert.equal(res.status, 200);
      assert.ok(res.headers.get("x-request-id"));
      await res.body?.cancel();
      assert.match(text[0]!, /^GET \/api\/customer 200 \d+\.\dms$/);
    });
    await t.step("the sink: text lines get a time, JSON lines stay one object each", () => {
      const out: string[] = [];
      logSink({ ...json, logFormat: "text" }, (l) => out.push(l))("hello");
      assert.match(out[0]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z hello$/);
      const sink = logSink(json, (l) => out.push(l));
      sink('{"level":"info"}');
      sink("WARN connections: header timeout x3");
      assert.equal(out[1], '{"level":"info"}');
      const warn = JSON.parse(out[2]!);
      assert.equal(warn.level, "warn");
      assert.equal(warn.message, "connections: header timeout x3");
    });
  } finally {
    kv.close();
  }
});

Deno.test("GET /health: 200 with version and store round trip without a key; 503 with the envelope when the store fails", async (t) => {
  await t.step("store answers", async () => {
    await using w = await world();
    const r = await request(w.app, "GET", "/health");
    assert.equal(r.status, 200);
    assert.equal(r.type, "application/json; charset=UTF-8");
    assert.deepEqual(Object.keys(r.body), ["status", "version", "store_ms"]);
    assert.equal(r.body.status, "ok");
    assert.equal(r.body.version, denoJson.version);
    assert.match(r.body.version, /^\d+\.\d+\.\d+/);
    assert.ok(typeof r.body.store_ms === "number" && r.body.store_ms >= 0);
    const xml = await request(w.app, "GET", "/health", { query: { format: "xml" } });
    assert.equal(xml.status, 200);
    assert.match(xml.text, /<status>ok<\/status>\n<version>[\d.]+<\/version>\n<store_ms>[\d.]+<\/store_ms>/);
  });
  await t.step("store closed", async () => {
    const kv = await Deno.openKv(":memory:");
    const app = createApp({ kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
    kv.close();
    const r = await request(app, "GET", "/health");
    assert.equal(r.status, 503);
    assert.equal(r.type, "application/json; charset=UTF-8");
    assert.equal(r.body.success, 0);
    assert.match(r.body.info, /^Store unavailable: /);
  });
  await t.step("store that never answers", async () => {
    const kv = await Deno.openKv(":memory:");
    try {
      const hanging = new Proxy(kv, {
        get: (target, prop) =>
          prop === "get" ? () => new Promise(() => {}) : Reflect.get(target, prop, target).bind?.(target),
      });
      const app = createApp({ kv: hanging, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
      const r = await request(app, "GET", "/health");
      assert.equal(r.status, 503);
      assert.equal(r.body.info, "Store unavailable: no answer within 2000 ms");
    } finally {
      kv.close();
    }
  });
});

Deno.test("deno task apikey: --rate on create, limit KEY_ID --rate N|default, shown by list, honoured by the service", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/keys.kv`;
  const task = async (...args: string[]) => {
    const res = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", "apikey", ...args],
      cwd: ROOT,
      env: { KV_PATH: kvPath },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const d = new TextDecoder();
    return { code: res.code, out: d.decode(res.stdout), err: d.decode(res.stderr) };
  };
  try {
    const created = await task("create", "--company", "acme", "--rate", "1", "--burst", "2");
    assert.equal(created.code, 0, created.err);
    const key = /Key \(shown only now, store it safely\): (lk_\S+)/.exec(created.out)![1]!;
    const id = /Created write key (\w+)/.exec(created.out)![1]!;
    assert.match((await task("list")).out, new RegExp(`^${id}\\t.*\\t1/s burst 2$`, "m"));
    const kv = await Deno.openKv(kvPath);
    try {
      const clock = manualClock();
      const config = { ...DEFAULT_CONFIG, kvPath, authCacheMs: 0, logRequests: false };
      const app = createApp({ kv, config, now: clock.now });
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await request(app, "GET", "/api/customer", { key })).status);
      assert.deepEqual(statuses, [200, 200, 429]);
      const limited = await task("limit", id, "--rate", "5");
      assert.equal(limited.code, 0, limited.err);
      assert.match(limited.out, new RegExp(`Key ${id} of company "acme": rate limit 5/s burst 10`));
      const back = await task("limit", id, "--rate", "default");
      assert.match(back.out, /rate limit default/);
      assert.match((await task("list")).out, new RegExp(`^${id}\\t.*\\tdefault$`, "m"));
      const bad = await task("limit", id, "--rate", "fast");
      assert.equal(bad.code, 2);
      assert.match(bad.err, /Invalid --rate "fast"/);
      const missing = await task("limit", "nosuchid", "--rate", "1");
      assert.equal(missing.code, 2);
      assert.match(missing.err, /No key with id "nosuchid"/);
    } finally {
      kv.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task start WORKERS=2: two guarded processes share the port and stop together on SIGTERM", async () => {
  const dir = await Deno.makeTempDir();
  /** Starts the service on a port that was free a moment ago; null when another process took the port meanwhile. */
  const start = (attempt: number) => {
    const l = Deno.listen({ port: 0, hostname: "127.0.0.1" });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    const server = new Deno.Command(Deno.execPath(), {
      args: ["task", "start"],
      cwd: ROOT,
      env: {
        PORT: String(port),
        HOST: "127.0.0.1",
        KV_PATH: `${dir}/w${attempt}.kv`,
        WORKERS: "2",
        LOG_REQUESTS: "0",
      },
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    return { port, server, out: new Response(server.stdout).text(), err: new Response(server.stderr).text() };
  };
  /** One request on its own connection, so that the kernel may hand it to either process. */
  const requestId = async (port: number): Promise<string> => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(new TextEncoder().encode("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
      const reply = await new Response(conn.readable).text();
      return /\r\nx-request-id: ([^\r]+)\r\n/i.exec(reply)![1]!;
    } catch (error) {
      conn.close();
      throw error;
    }
  };
  try {
    for (let attempt = 1;; attempt++) {
      const { port, server, out, err } = start(attempt);
      let exited: Deno.CommandStatus | null = null;
      server.status.then((status) => exited = status);
      const prefixes = new Set<string>();
      const until = Date.now() + 60_000;
      while (prefixes.size < 2 && exited === null && Date.now() < until) {
        try {
          prefixes.add((await requestId(port)).split("-")[0]!);
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      if (exited !== null) {
        // The service stopped on its own: only a port taken between the probe and the bind is tried again.
        const [stdout, stderr] = await Promise.all([out, err]);
        if (attempt < 3 && /AddrInUse|address already in use/i.test(stderr)) continue;
        assert.fail(`the service exited early (${JSON.stringify(exited)}):\n${stderr}\n${stdout}`);
      }
      assert.equal(prefixes.size, 2, "replies come from two processes");
      server.kill("SIGTERM");
      const status = await server.status;
      const [stdout, stderr] = await Promise.all([out, err]);
      assert.equal(status.code, 0, stderr);
      assert.equal(stdout.match(/Listening on http:\/\/127\.0\.0\.1:\d+\/ \(at most \d+ connections/g)?.length, 2);
      return;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
