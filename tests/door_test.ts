/**
 * The till's door (routes/door.ts): which requests it takes, and that what it answers is what the generic path
 * answers: replies, headers, log lines, and the rate-limit and bad-key state both ways share.
 */
import assert from "node:assert/strict";
import { type Config, DEFAULT_CONFIG } from "../config.ts";
import { createApp } from "../routes/app.ts";
import { keyProver } from "../routes/auth.ts";
import { customerRoutes } from "../routes/customer.ts";
import { pointDoor } from "../routes/door.ts";
import { bufferedWriter, type LogSink, logSink } from "../routes/log.ts";
import { ApiLimits } from "../routes/rate_limit.ts";
import { createApiKey, revokeApiKey } from "../storage/api_keys.ts";
import { createStore } from "../storage/store.ts";
import { assertJson, randomCustomer, world } from "./kit.ts";

/**
 * Where a test's log lines go: in the text format the sink main.ts makes (times added, the door's request lines
 * held as numbers in a BufferedWriter until it writes them, at most 20 ms later), in JSON straight into `into`.
 */
function sinkInto(config: Config, into: string[]): LogSink {
  if (config.logFormat === "json") return (line) => into.push(line);
  const decoder = new TextDecoder();
  const writeSync = (bytes: Uint8Array) => {
    into.push(...decoder.decode(bytes).split("\n").filter(Boolean));
    return bytes.length;
  };
  return logSink(config, bufferedWriter({ write: (bytes) => Promise.resolve(writeSync(bytes)), writeSync }));
}

/** Waits for a BufferedWriter's lines to be written (it writes every 20 ms). */
const written = () => new Promise((r) => setTimeout(r, 60));

/** A seeded world, an app with the door (`w.app`) and one without over the same store, both logging into arrays. */
async function twoWays(logFormat: "text" | "json" = "text") {
  const lines = { door: [] as string[], generic: [] as string[], held: 0 };
  const config = { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: true, logFormat };
  const doorSink = sinkInto(config, lines.door);
  const hold = doorSink.request;
  // Counts the request lines the door hands over as numbers.
  if (hold) {
    doorSink.request = (head, status, ms) => {
      lines.held++;
      hold(head, status, ms);
    };
  }
  const w = await world({ config, log: doorSink });
  const generic = createApp({ kv: w.kv, config, fastPaths: false, log: sinkInto(config, lines.generic) });
  const made = async (form: Record<string, string | number>) =>
    assertJson(await w.call("POST", "/api/customer/update", { form }), 200).id as number;
  const anna = await made(randomCustomer({ phone: "+79001112233", email: "Anna@Example.com", external_id: "A-1" }));
  assertJson(
    await w.call("POST", "/api/customer/insertCard", {
      query: { uid: "100500" },
      form: { barcode: "4600682003144", customer_id: anna },
    }),
    200,
  );
  await written();
  lines.door.length = 0;
  return { w, generic, anna, lines };
}

/** A reply reduced to what a client sees, the request id aside. */
async function seen(res: Response): Promise<string> {
  const headers = [...res.headers].filter(([k]) => k !== "x-request-id").map(([k, v]) => `${k}: ${v}`);
  return `${res.status}\n${headers.join("\n")}\n\n${await res.text()}`;
}

/** A log line without what differs from one request to the next (its time, duration and request id). */
function steady(line: string): string {
  if (!line.startsWith("{")) {
    return line.replace(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /, "").replace(/ \d+\.\dms$/, "");
  }
  const { time: _t, duration_ms: _d, request_id: _r, ...rest } = JSON.parse(line);
  return JSON.stringify(rest);
}

Deno.test("door: it takes a lone point lookup with the key and a format, and nothing else", async () => {
  await using w = await world();
  const deps = { store: createStore(w.kv), config: DEFAULT_CONFIG, kv: w.kv, now: Date.now };
  const door = pointDoor({
    config: DEFAULT_CONFIG,
    log: undefined,
    limits: new ApiLimits(deps),
    prove: keyProver(deps),
    point: customerRoutes(deps).point,
  });
  const answer = async (url: string, init: RequestInit = {}) => await door(new Request(url, init), undefined);
  const k = encodeURIComponent(w.key);
  for (
    const url of [
      `http://x/api/customer?id=1&apikey=${k}`,
      `http://x/api/customer?apikey=${k}&phone=%2B79001112233&format=XML`,
      `http://x/api/customer?email=a%40b.ru&apikey=${k}&format=json`,
      `http://x/api/customer?external_id=A-1&apikey=${k}`,
      `http://x/api/customer?card_barcode=4600682003144&apikey=${k}`,
      `http://x/api/customer?uid=100500&apikey=${k}#top`,
      `http://x:8080/api/customer?%69d=1&apikey=${k}`,
    ]
  ) {
    const res = await answer(url);
    assert.ok(res instanceof Response, url);
    assert.equal(res.status, 200, url);
    assert.match(res.headers.get("x-request-id") ?? "", /\S/);
  }
  assert.ok(await answer("http://x/api/customer?id=1", { headers: { "X-API-Key": w.key } }));
  assert.ok(await answer("http://x/api/customer?id=1", { headers: { Authorization: `Bearer ${w.key}` } }));
  for (
    const [url, init] of [
      [`http://x/api/customer?id=1&apikey=${k}`, { method: "HEAD" }],
      [`http://x/api/customer?id=1&apikey=${k}`, { method: "POST" }],
      [`http://x/api/customer/?id=1&apikey=${k}`, {}],
      [`http://x//api/customer?id=1&apikey=${k}`, {}],
      [`http://x/api/Customer?id=1&apikey=${k}`, {}],
      [`http://x/api/customer/update?id=1&apikey=${k}`, {}],
      [`http://x/api/customer?apikey=${k}`, {}],
      [`http://x/api/customer?id=1`, {}],
      [`http://x/api/customer?id=1&apikey=`, {}],
      [`http://x/api/customer?id=1&apikey=nobody`, {}],
      [`http://x/api/customer?id=1&apikey=${k}&apikey=${k}`, {}],
      [`http://x/api/customer?id=1&id=1&apikey=${k}`, {}],
      [`http://x/api/customer?id=1&phone=%2B79001112233&apikey=${k}`, {}],
      [`http://x/api/customer?id=1&cards=1&apikey=${k}`, {}],
      [`http://x/api/customer?id=1&page=1&apikey=${k}`, {}],
      [`http://x/api/customer?id=abc&apikey=${k}`, {}],
      [`http://x/api/customer?id=&apikey=${k}`, {}],
      [`http://x/api/customer?phone=12&apikey=${k}`, {}],
      [`http://x/api/customer?id=1&format=html&apikey=${k}`, {}],
      [`http://x/api/customer?id=%FF&apikey=${k}`, {}],
      [`http://x/api/customer?id=1&apikey=${k}`, { headers: { "X-API-Key": "another" } }],
      [`http://x/api/customer?id=1`, { headers: { Authorization: "Basic abc" } }],
    ] as [string, RequestInit][]
  ) {
    assert.equal(await answer(url, init), null, `${init.method ?? "GET"} ${url} ${JSON.stringify(init.headers)}`);
  }
  const revoked = await createApiKey(w.kv, { companyId: "acme", userId: 9, access: "read" });
  await revokeApiKey(w.kv, revoked.record.id);
  assert.equal(await answer(`http://x/api/customer?id=1&apikey=${encodeURIComponent(revoked.key)}`), null);
});

Deno.test("door: replies, headers and log lines are the generic path's, in text and JSON logs", async (t) => {
  for (const logFormat of ["text", "json"] as const) {
    const { w, generic, anna, lines } = await twoWays(logFormat);
    const k = encodeURIComponent(w.key);
    const cases: [string, RequestInit][] = [
      [`/api/customer?id=${anna}&apikey=${k}`, {}],
      [`/api/customer?id=${anna}&apikey=${k}&format=xml`, {}],
      [`/api/customer?format=XmL&id=${anna}&apikey=${k}`, {}],
      [`/api/customer?id=${anna + 100}&apikey=${k}`, {}],
      [`/api/customer?phone=8%20(900)%20111-22-33&apikey=${k}`, {}],
      [`/api/customer?email=anna%40EXAMPLE.com&apikey=${k}&format=xml`, {}],
      [`/api/customer?external_id=A-1&apikey=${k}`, {}],
      [`/api/customer?external_id=nobody&apikey=${k}`, {}],
      [`/api/customer?card_barcode=4600682003144&apikey=${k}`, {}],
      [`/api/customer?uid=100500&apikey=${k}&format=xml`, {}],
      [`/api/customer?uid=nothing&apikey=${k}`, {}],
      [`/api/customer?id=${anna}`, { headers: { "X-API-Key": w.key, "X-Request-Id": "till-7:sale-42" } }],
      [`/api/customer?id=${anna}`, { headers: { Authorization: `bearer ${w.key}`, "X-Request-Id": "bad id!" } }],
      [`/api/customer?id=${anna}&apikey=${k}`, { headers: { "X-API-Key": w.key } }],
      [`/api/customer?id=${anna}&apikey=${encodeURIComponent(w.otherKey)}`, {}],
    ];
    for (const [path, init] of cases) {
      const shown = JSON.stringify(init).replaceAll(w.key, "…");
      await t.step(`${logFormat}: ${path.replace(/apikey=[^&]+/, "apikey=…")} ${shown}`, async () => {
        lines.door.length = 0;
        lines.generic.length = 0;
        lines.held = 0;
        const viaDoor = await w.app.request(path, init);
        const viaRouter = await generic.request(path, init);
        assert.equal(await seen(viaDoor), await seen(viaRouter));
        await written();
        if (logFormat === "text") {
          // The door's text lines are held as numbers, formatted when written (routes/log.ts, bufferedWriter).
          assert.equal(lines.held, 1);
          assert.match(
            lines.door[0] ?? "",
            /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z GET \/api\/customer \d{3} \d+\.\dms$/,
          );
        }
        const incoming = new Headers(init.headers).get("x-request-id");
        if (incoming === "till-7:sale-42") assert.equal(viaDoor.headers.get("x-request-id"), incoming);
        else assert.notEqual(viaDoor.headers.get("x-request-id"), incoming);
        assert.equal(lines.door.length, 1);
        assert.deepEqual(lines.door.map(steady), lines.generic.map(steady));
        if (logFormat === "json") {
          const entry = JSON.parse(lines.door[0]!);
          assert.equal(entry.request_id, viaDoor.headers.get("x-request-id"));
          assert.equal(entry.route, "/api/customer");
        }
      });
    }
    await w[Symbol.asyncDispose]();
  }
});

Deno.test("door: the key's token bucket and the bad-key limit are the generic path's own", async (t) => {
  await t.step("a key's burst is shared by the door and the router, and its 429 is the same", async () => {
    const { w, anna } = await twoWays();
    const limited = await createApiKey(w.kv, {
      companyId: "acme",
      userId: 4,
      access: "read",
      rateLimit: { per_second: 0.001, burst: 4 },
    });
    const k = encodeURIComponent(limited.key);
    // Two through the door (a lookup alone), two through the router (a page): the burst of 4 is spent.
    const statuses: number[] = [];
    for (const path of [`id=${anna}`, `page=1`, `phone=%2B79001112233`, `page=1`, `id=${anna}`, `page=1`]) {
      statuses.push((await w.app.request(`/api/customer?${path}&apikey=${k}`)).status);
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429]);
    const viaDoor = await w.app.request(`/api/customer?id=${anna}&apikey=${k}&format=xml`);
    const viaRouter = await w.app.request(`/api/customer?page=1&apikey=${k}&format=xml`);
    assert.equal(viaDoor.headers.get("retry-after"), viaRouter.headers.get("retry-after"));
    assert.equal(await seen(viaDoor), await seen(viaRouter));
    await w[Symbol.asyncDispose]();
  });

  await t.step("an address that used up its bad keys is refused at the door too; others are not", async () => {
    const { w, anna } = await twoWays();
    const from = (hostname: string) => ({ remoteAddr: { transport: "tcp", hostname, port: 5555 } });
    const get = (path: string, hostname: string) => w.app.fetch(new Request(`http://x${path}`), from(hostname));
    for (let i = 0; i < DEFAULT_CONFIG.badKeyLimit; i++) {
      // Unknown keys on the door's own request: the router answers them 401, and counts them.
      assert.equal((await get(`/api/customer?id=${anna}&apikey=guess${i}`, "10.0.0.9")).status, 401);
    }
    const k = encodeURIComponent(w.key);
    const blocked = await get(`/api/customer?id=${anna}&apikey=${k}`, "10.0.0.9");
    assert.equal(blocked.status, 429);
    assert.match(await blocked.text(), /invalid API key from this address/);
    assert.equal((await get(`/api/customer?id=${anna}&apikey=${k}`, "10.0.0.10")).status, 200);
    await w[Symbol.asyncDispose]();
  });
});

Deno.test("a Host header that is not a host is refused 400 naming host, before the door and the router", async () => {
  const { w, anna } = await twoWays();
  const k = encodeURIComponent(w.key);
  for (const host of ["x/api/customer?apikey=1", "x?y", "x#y", "user@x", "x y", "x\\y"]) {
    const res = await w.app.fetch(new Request(`http://x/health`, { headers: { host } }));
    assert.equal(res.status, 400, host);
    assert.equal((await res.json()).field, "host");
  }
  for (const host of ["localhost", "shop.example.com:8443", "127.0.0.1:8000", "[::1]:8000", "xn--80a.xn--p1ai"]) {
    const res = await w.app.fetch(new Request(`http://x/api/customer?id=${anna}&apikey=${k}`, { headers: { host } }));
    assert.equal(res.status, 200, host);
  }
  await w[Symbol.asyncDispose]();
});
