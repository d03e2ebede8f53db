/**
 * Outside review of round 6 of the read path (issue 13): the log writer's request lines held as numbers
 * (routes/log.ts bufferedWriter.textRequest, LogSink.request, the door's finish), the synchronous key prover
 * (routes/auth.ts keyProver, usecases/api_keys.ts cachedKey), the door's lookup naming the group from the cache
 * (routes/customer.ts lookupOne, usecases/customers.ts findCustomerBy/cachedGroupNames) and domain/dates.ts
 * isoFormat built from character codes. "held: ..." tests pass; "DEFECT ..." tests fail on the code they review.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { type Config, DEFAULT_CONFIG } from "../config.ts";
import { formatDateTime } from "../domain/dates.ts";
import { createApp } from "../routes/app.ts";
import { bufferedWriter, type LogSink, logSink } from "../routes/log.ts";
import { createApiKey, revokeApiKey } from "../storage/api_keys.ts";
import { directoryKeys } from "../storage/keys.ts";
import { kvProxy, parseXml, randomCustomer, request, startServer, tempDir, waitFor } from "./kit.ts";

const TEXT_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;

/** An output recording what reaches it; writes may be held pending, taken in part, or fail once closed. */
function output() {
  const bytes: number[] = [];
  const pending: (() => void)[] = [];
  const state = { hold: false, partial: 0, closed: false };
  return {
    state,
    pending,
    text: () => new TextDecoder().decode(new Uint8Array(bytes)),
    write(chunk: Uint8Array): Promise<number> {
      if (state.closed) return Promise.reject(new Deno.errors.BrokenPipe("closed"));
      const n = state.partial > 0 ? Math.min(state.partial, chunk.length) : chunk.length;
      const copy = chunk.slice(0, n);
      if (!state.hold) {
        bytes.push(...copy);
        return Promise.resolve(n);
      }
      return new Promise((resolve) =>
        pending.push(() => {
          bytes.push(...copy);
          resolve(n);
        })
      );
    },
    writeSync(chunk: Uint8Array): number {
      if (state.closed) throw new Deno.errors.BrokenPipe("closed");
      bytes.push(...chunk);
      return chunk.length;
    },
  };
}

const turn = (ms = 0) => new Promise((r) => setTimeout(r, ms));

Deno.test("held: the writer keeps every line once, in order, with its own time, across any mix of plain and held lines, pending and partial writes and flushSync", async () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant("plain" as const), n: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ kind: fc.constant("request" as const), n: fc.integer({ min: 1, max: 700 }) }),
    fc.record({ kind: fc.constant("wait" as const), n: fc.integer({ min: 0, max: 30 }) }),
    fc.record({ kind: fc.constant("release" as const), n: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ kind: fc.constant("hold" as const), n: fc.integer({ min: 0, max: 1 }) }),
    fc.record({ kind: fc.constant("partial" as const), n: fc.integer({ min: 0, max: 5000 }) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
      const out = output();
      let clock = Date.UTC(2026, 10, 30, 23, 59, 59, 990);
      const w = bufferedWriter(out, { now: () => clock });
      const sink = logSink({ ...DEFAULT_CONFIG, logFormat: "text" }, w);
      const expected: string[] = [];
      let serial = 0;
      for (const o of ops) {
        if (o.kind === "plain") {
          for (let i = 0; i < o.n; i++) {
            const line = `WARN plain ${serial++} ${"é€😀".repeat(serial % 5)}`;
            w.write(line);
            expected.push(line);
          }
        } else if (o.kind === "request") {
          for (let i = 0; i < o.n; i++) {
            const status = [200, 404, 429, 500][serial % 4]!;
            const ms = (serial++ * 37 % 100000) / 7;
            clock += serial % 3;
            sink.request!("GET /api/customer", status, ms);
            expected.push(`${new Date(clock).toISOString()} GET /api/customer ${status} ${ms.toFixed(1)}ms`);
          }
        } else if (o.kind === "wait") await turn(o.n);
        else if (o.kind === "release") {
          for (let i = 0; i < o.n && out.pending.length > 0; i++) out.pending.shift()!();
        } else if (o.kind === "hold") out.state.hold = o.n === 1;
        else out.state.partial = o.n;
      }
      out.state.hold = false;
      while (out.pending.length > 0) {
        out.pending.shift()!();
        await turn(30);
      }
      await turn(50);
      while (out.pending.length > 0) {
        out.pending.shift()!();
        await turn(30);
      }
      w.flushSync();
      assert.equal(out.text(), expected.map((l) => l + "\n").join(""));
    }),
    { numRuns: 40 },
  );
});

Deno.test("held: past the 8 MiB limit held request lines are dropped and counted like plain ones, the rest kept in order, the WARN line last", async () => {
  const out = output();
  out.state.hold = true;
  const w = bufferedWriter(out, { now: () => 0 });
  const sink = logSink({ ...DEFAULT_CONFIG, logFormat: "text" }, w);
  const logged: string[] = [];
  w.write("first");
  logged.push("first");
  await turn(50);
  assert.equal(out.pending.length, 1);
  const big = "p".repeat(1000);
  for (let i = 0; i < 30_000; i++) {
    if (i % 3 === 0) {
      w.write(`${big} ${i}`);
      logged.push(`${big} ${i}`);
    } else {
      sink.request!("GET /api/customer", 200, i);
      logged.push(`1970-01-01T00:00:00.000Z GET /api/customer 200 ${i.toFixed(1)}ms`);
    }
  }
  out.state.hold = false;
  for (const release of out.pending.splice(0)) release();
  await turn(100);
  w.flushSync();
  const lines = out.text().split("\n").slice(0, -1);
  const warn = / WARN (\d+) log lines dropped: the output was too slow$/.exec(lines.at(-1)!);
  assert.ok(warn, lines.at(-1));
  const kept = lines.slice(0, -1);
  // What was kept is what was logged, in order, each once; the dropped are counted.
  let at = 0;
  for (const line of kept) {
    while (at < logged.length && logged[at] !== line) at++;
    assert.ok(at < logged.length, `kept line out of order or unknown: ${line.slice(0, 60)}`);
    at++;
  }
  assert.equal(kept.length + Number(warn[1]), logged.length);
  assert.ok(Number(warn[1]) > 0);
});

Deno.test("held: a closed output does not throw into a request, and a request line is never written twice", async () => {
  const out = output();
  const w = bufferedWriter(out, { now: () => 0 });
  const sink = logSink({ ...DEFAULT_CONFIG, logFormat: "text" }, w);
  sink.request!("GET /api/customer", 200, 1);
  await turn(50);
  out.state.closed = true;
  sink.request!("GET /api/customer", 200, 2);
  sink("after close");
  await turn(50);
  sink.request!("GET /api/customer", 200, 3);
  w.flushSync();
  await turn(50);
  assert.equal(out.text(), "1970-01-01T00:00:00.000Z GET /api/customer 200 1.0ms\n");
});

/** A world with a door app and a generic app over one store, each with its own text sink and clock. */
async function twoApps(config: Partial<Config> = {}) {
  const kv = await Deno.openKv(":memory:");
  const clock = { now: Date.UTC(2026, 10, 30, 12) };
  const now = () => clock.now;
  const full: Config = { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: true, logFormat: "text", ...config };
  const lines = { door: [] as string[], generic: [] as string[] };
  const sinkOf = (into: string[]): LogSink => {
    const decoder = new TextDecoder();
    const writeSync = (bytes: Uint8Array) => {
      into.push(...decoder.decode(bytes).split("\n").filter(Boolean));
      return bytes.length;
    };
    return logSink(full, bufferedWriter({ write: (b) => Promise.resolve(writeSync(b)), writeSync }, { now }));
  };
  const doorKv = kvProxy(kv);
  const door = createApp({ kv: doorKv.kv, config: full, now, log: sinkOf(lines.door) });
  const generic = createApp({ kv, config: full, now, fastPaths: false, log: sinkOf(lines.generic) });
  const key = (await createApiKey(kv, { companyId: "acme", userId: 2, access: "write", now: now() })).key;
  return { kv, doorKv, clock, door, generic, key, lines, [Symbol.asyncDispose]: () => Promise.resolve(kv.close()) };
}

const PEER = { remoteAddr: { hostname: "10.1.2.3", port: 4000, transport: "tcp" } };

/** One reply, as a client sees it (status, type, body), without the request id. */
async function seen(
  app: { request: (u: string, i?: RequestInit, env?: unknown) => Response | Promise<Response> },
  path: string,
) {
  const res = await app.request(path, {}, PEER);
  return `${res.status} ${res.headers.get("content-type")} ${await res.text()}`;
}

Deno.test("held: every refusal of a key (missing, unknown, revoked; cached or not; JSON and XML) is the generic path's reply", async () => {
  await using t = await twoApps({ badKeyLimit: 0 });
  const revoked = await createApiKey(t.kv, { companyId: "acme", userId: 9, access: "read", now: t.clock.now });
  await revokeApiKey(t.kv, revoked.record.id);
  for (const format of ["", "&format=xml"]) {
    for (const apikey of ["", "&apikey=", "&apikey=nobody", `&apikey=${encodeURIComponent(revoked.key)}`]) {
      // Twice: the second time the key's answer is in each app's cache.
      for (let i = 0; i < 2; i++) {
        const path = `/api/customer?id=1${apikey}${format}`;
        const a = await seen(t.door, path);
        assert.equal(a, await seen(t.generic, path), path);
        assert.match(a, /^(401|400) /, path);
      }
    }
  }
});

Deno.test("held: bad keys through the door count against the address as through the router (unknown, revoked, cached, in a header)", async () => {
  for (const kind of ["unknown", "revoked", "header"] as const) {
    await using t = await twoApps({ badKeyLimit: 3, badKeyWindowMs: 60_000 });
    const revoked = await createApiKey(t.kv, { companyId: "acme", userId: 9, access: "read", now: t.clock.now });
    await revokeApiKey(t.kv, revoked.record.id);
    const bad = kind === "revoked" ? revoked.key : "nobody";
    const ways: string[][] = [];
    for (const app of [t.door, t.generic]) {
      const replies: string[] = [];
      for (let i = 0; i < 5; i++) {
        const res = kind === "header"
          ? await app.request("/api/customer?id=1&format=xml", { headers: { "X-API-Key": bad } }, PEER)
          : await app.request(`/api/customer?id=1&apikey=${encodeURIComponent(bad)}&format=xml`, {}, PEER);
        replies.push(`${res.status} ${(await res.text()).replace(/\d+ s|\d+ seconds?/g, "N s")}`);
      }
      const good = await app.request(`/api/customer?id=1&apikey=${encodeURIComponent(t.key)}`, {}, PEER);
      replies.push(`${good.status} ${await good.text()}`);
      ways.push(replies);
    }
    assert.deepEqual(ways[0], ways[1], kind);
    assert.deepEqual(ways[0]!.map((r) => r.slice(0, 3)), ["401", "401", "401", "429", "429", "429"], kind);
  }
});

Deno.test("held: a key revoked elsewhere works within AUTH_CACHE_MS and is refused 401 after it, by the door as by the router", async () => {
  await using t = await twoApps({ badKeyLimit: 0 });
  const made = await createApiKey(t.kv, { companyId: "acme", userId: 4, access: "read", now: t.clock.now });
  const path = `/api/customer?id=1&apikey=${encodeURIComponent(made.key)}`;
  assert.equal((await t.door.request(path, {}, PEER)).status, 200);
  assert.equal((await t.generic.request(path, {}, PEER)).status, 200);
  await revokeApiKey(t.kv, made.record.id);
  assert.equal((await t.door.request(path, {}, PEER)).status, 200);
  t.clock.now += DEFAULT_CONFIG.authCacheMs + 1;
  const a = await seen(t.door, path);
  assert.equal(a, await seen(t.generic, path));
  assert.match(a, /^401 .*revoked/);
});

Deno.test("held: the door names a customer's group as the generic path does: cached, renamed elsewhere within and after the cache time, deleted, none; JSON and XML", async () => {
  await using t = await twoApps();
  const k = encodeURIComponent(t.key);
  const call = (path: string, form: Record<string, string | number>) =>
    request(t.generic, "POST", path, { key: t.key, form });
  const withGroup = (await call("/api/customer/update", randomCustomer({ group_name: "Gold" }))).body.id as number;
  const without = (await call("/api/customer/update", randomCustomer())).body.id as number;
  const both = async (label: string, name: string | null) => {
    for (const id of [withGroup, without]) {
      for (const format of ["json", "xml"]) {
        const path = `/api/customer?id=${id}&apikey=${k}&format=${format}`;
        const a = await seen(t.door, path);
        assert.equal(a, await seen(t.generic, path), `${label} ${path}`);
        if (format === "json" && id === withGroup) {
          assert.equal(JSON.parse(a.slice(a.indexOf("{"))).customers[0].group_name, name, label);
        }
        if (format === "xml" && id === without) parseXml(a.slice(a.indexOf("<")));
      }
    }
  };
  await both("first read", "Gold");
  await both("cached", "Gold");
  // Renamed by another process (its own store object): both apps keep the cached name until DIRECTORY_CACHE_MS.
  const other = createApp({ kv: t.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:" }, now: () => t.clock.now });
  assert.equal(
    (await request(other, "POST", "/api/customergroup/update", {
      key: t.key,
      query: { group_id: 1 },
      form: { group_name: "Platinum" },
    })).status,
    200,
  );
  await both("renamed, within cache time", "Gold");
  t.clock.now += DEFAULT_CONFIG.directoryCacheMs + 1;
  await both("renamed, after cache time", "Platinum");
  await t.kv.delete(directoryKeys.entry("acme", "groups", 1));
  t.clock.now += DEFAULT_CONFIG.directoryCacheMs + 1;
  await both("deleted", null);
});

Deno.test("held: a store error in the door's read by id is a 500 with one error line, then the request line", async () => {
  await using t = await twoApps({ directoryCacheMs: 1000 });
  const form = randomCustomer({ group_name: "Gold" });
  const id = (await request(t.generic, "POST", "/api/customer/update", { key: t.key, form })).body.id as number;
  const k = encodeURIComponent(t.key);
  assert.equal((await t.door.request(`/api/customer?id=${id}&apikey=${k}`, {}, PEER)).status, 200);
  await turn(60);
  t.lines.door.length = 0;
  // The record's read fails (json); then, the group's name out of the cache, the group's read fails (xml).
  t.doorKv.fail("get", { times: 1 });
  const json = await t.door.request(`/api/customer?id=${id}&apikey=${k}&format=json`, {}, PEER);
  assert.equal(json.status, 500);
  assert.equal((await json.json()).success, 0);
  // Past the directory cache time, within the key's.
  t.clock.now += 1001;
  t.doorKv.fail("getMany", { times: 1 });
  const xml = await t.door.request(`/api/customer?id=${id}&apikey=${k}&format=xml`, {}, PEER);
  assert.equal(xml.status, 500);
  assert.match(await xml.text(), /<success>0<\/success>/);
  t.doorKv.heal();
  await turn(60);
  // Each line starts with its time; an error line's stack follows it on lines of its own.
  const heads = t.lines.door.filter((l) => TEXT_LINE.test(l)).map((l) => l.replace(TEXT_LINE, ""));
  assert.equal(heads.length, 4, t.lines.door.join("\n"));
  assert.equal(heads[0], "ERROR GET /api/customer: Error: injected store fault");
  assert.match(heads[1]!, /^GET \/api\/customer 500 \d+\.\dms$/);
  assert.equal(heads[2], "ERROR GET /api/customer: Error: injected store fault");
  assert.match(t.lines.door.join("\n"), /at getEntries /);
  assert.match(heads[3]!, /^GET \/api\/customer 500 \d+\.\dms$/);
});

Deno.test("held: the UTC wire format is Date#toISOString's, 1970-01-01 .. 9999-12-31, and leap days and rollovers", () => {
  const wire = (ms: number) => {
    const iso = new Date(ms).toISOString();
    return `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
  };
  const END = Date.UTC(10000, 0, 1);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: END - 1 }), (ms) => formatDateTime(ms, "UTC") === wire(ms)),
    { numRuns: 20_000 },
  );
  const edges: number[] = [0, END - 1, END - 1000];
  for (const year of [1970, 1972, 1999, 2000, 2024, 2100, 2400, 9996, 9999]) {
    for (const [m, d] of [[0, 1], [1, 28], [1, 29], [2, 1], [11, 31]]) {
      const day = Date.UTC(year, m!, d!);
      for (const off of [-1001, -1000, -1, 0, 999, 1000, 59_999, 60_000, 3_599_999, 3_600_000, 86_399_999]) {
        if (day + off >= 0 && day + off < END) edges.push(day + off);
      }
    }
  }
  for (const ms of edges) assert.equal(formatDateTime(ms, "UTC"), wire(ms), String(ms));
  // The zone path: Moscow's offset is +3 h since 2014, whatever the fast UTC path does.
  assert.equal(formatDateTime(Date.UTC(2024, 1, 29, 21, 0, 0), "Europe/Moscow"), "2024-03-01 00:00:00");
  assert.equal(formatDateTime(Date.UTC(2024, 1, 29, 21, 0, 0), "Etc/UTC"), "2024-02-29 21:00:00");
});

/** The request lines a server printed (without their times), in order. */
function requestLines(stdout: string): string[] {
  return stdout.split("\n").filter((l) => TEXT_LINE.test(l) && / \d{3} \d+\.\dms$/.test(l))
    .map((l) => l.replace(TEXT_LINE, "").replace(/ \d+\.\dms$/, ""));
}

for (const via of ["task", "serve"] as const) {
  Deno.test(`held: a real server (${via}) prints the door's and the router's request lines in order, all of them flushed on SIGTERM`, async () => {
    await using dir = await tempDir();
    const kvPath = `${dir.path}/loyalty.kv`;
    const kv = await Deno.openKv(kvPath);
    const { key } = await createApiKey(kv, { companyId: "acme", userId: 5, access: "write", now: Date.now() });
    kv.close();
    const server = startServer({ via, kvPath, env: { LOG_REQUESTS: "1", LOG_FORMAT: "text" } });
    try {
      await server.ready(key);
      const made = await request(server.base, "POST", "/api/customer/update", { key, form: randomCustomer() });
      assert.equal(made.status, 200);
      await waitFor("the update's line", () => server.stdout().includes("POST /api/customer/update 200") || undefined);
      const before = requestLines(server.stdout()).length;
      const expected: string[] = [];
      for (let i = 0; i < 30; i++) {
        const door = await request(server.base, "GET", "/api/customer", { key, query: { id: made.body.id } });
        assert.equal(door.status, 200);
        expected.push("GET /api/customer 200");
        if (i % 4 === 0) {
          const routed = await request(server.base, "GET", "/api/bonusprogram", { key });
          assert.equal(routed.status, 200);
          expected.push("GET /api/bonusprogram 200");
        }
        if (i % 7 === 3) {
          const missing = await request(server.base, "GET", "/api/customer", { key, query: { id: 999_999 } });
          assert.equal(missing.status, 200);
          expected.push("GET /api/customer 200");
          const bad = await request(server.base, "GET", "/api/customer", { key, query: { id: "x" } });
          assert.equal(bad.status, 400);
          expected.push("GET /api/customer 400");
        }
      }
      // The last lines are still held when the signal comes: the exit must write them.
      const status = await server.stop("SIGTERM");
      assert.equal(status.code, 0, server.stderr());
      const lines = requestLines(server.stdout());
      assert.deepEqual(lines.slice(before), expected);
      const times = server.stdout().split("\n").filter((l) => TEXT_LINE.test(l)).map((l) => Date.parse(l.slice(0, 24)));
      for (let i = 1; i < times.length; i++) assert.ok(times[i]! >= times[i - 1]!, "times in order");
      assert.ok(!server.stdout().includes(key));
    } finally {
      await server.stop();
    }
  });
}
