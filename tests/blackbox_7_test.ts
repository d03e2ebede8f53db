/**
 * Black-box review 7 (issue 13, read path): the till's door (routes/door.ts), which answers a lone point lookup
 * before the router, and the query/form decoding of routes/wire.ts. "DEFECT" tests fail on the code they were
 * written against; "held" tests are attacks that held. The door is compared with the app without it
 * (`createApp({ ..., fastPaths: false })`) on the same store: replies, headers and log lines.
 */
import assert from "node:assert/strict";
import { type Config, DEFAULT_CONFIG } from "../config.ts";
import { createApp } from "../routes/app.ts";
import { createApiKey, revokeApiKey } from "../storage/api_keys.ts";
import { assertJson, kvProxy, randomCustomer, request, startServer, tempDir, world } from "./kit.ts";

type App = ReturnType<typeof createApp>;

/** A seeded world, its app with the door (`w.app`) and one without it over the same store, both logging. */
async function twoWays(config: Partial<Config> = {}) {
  const lines = { door: [] as string[], generic: [] as string[] };
  const full: Config = { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: true, ...config };
  const w = await world({ config: full, log: (line) => lines.door.push(line) });
  const generic = createApp({ kv: w.kv, config: full, fastPaths: false, log: (line) => lines.generic.push(line) });
  const made = async (form: Record<string, string | number>, key = w.key) =>
    assertJson(await w.call("POST", "/api/customer/update", { form, key }), 200).id as number;
  const anna = await made(randomCustomer({ phone: "+79001112233", email: "Anna@Example.com", external_id: "A-1" }));
  assertJson(
    await w.call("POST", "/api/customer/insertCard", {
      query: { uid: "100500" },
      form: { barcode: "4600682003144", customer_id: anna },
    }),
    200,
  );
  lines.door.length = 0;
  return { w, generic, anna, lines, made };
}

/** A reply as a client sees it, the request id aside. */
async function seen(res: Response): Promise<string> {
  const headers = [...res.headers].filter(([k]) => k !== "x-request-id" && k !== "date").map(([k, v]) => `${k}: ${v}`);
  return `${res.status}\n${headers.join("\n")}\n\n${await res.text()}`;
}

/** A log line without what differs between two runs (time, duration, request id). */
function steady(line: string): string {
  if (!line.startsWith("{")) return line.replace(/ [\d.]+ms$/, "");
  const { time: _t, duration_ms: _d, request_id: _r, ...rest } = JSON.parse(line);
  return JSON.stringify(rest);
}

/** Sends the same request to both apps and asserts the same reply, request-id behaviour and log lines. */
async function sameBothWays(
  ways: { w: { app: App }; generic: App; lines: { door: string[]; generic: string[] } },
  path: string,
  init: RequestInit = {},
  info?: unknown,
): Promise<number> {
  const { lines } = ways;
  lines.door.length = 0;
  lines.generic.length = 0;
  const send = (app: App) => app.fetch(new Request(`http://localhost${path}`, init), info);
  const viaDoor = await send(ways.w.app);
  const viaRouter = await send(ways.generic);
  const status = viaDoor.status;
  const incoming = new Headers(init.headers).get("x-request-id");
  const echoed = (res: Response) => res.headers.get("x-request-id") === incoming;
  assert.equal(echoed(viaDoor), echoed(viaRouter), `${path}: request id`);
  assert.equal(await seen(viaDoor), await seen(viaRouter), path);
  assert.deepEqual(lines.door.map(steady), lines.generic.map(steady), `${path}: log lines`);
  return status;
}

/** One raw HTTP/1.1 exchange over TCP (for requests fetch cannot make); the reply with Date and request id removed. */
async function rawHttp(port: number, text: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(text));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const all = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
    return all.replace(/^date: .*\r\n/im, "").replace(/^x-request-id: .*\r\n/im, "");
  } finally {
    try {
      conn.close();
    } catch { /* closed by the peer */ }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Defects

Deno.test("fixed: door: a store error in the door's lookup is run again by the router: the key pays two tokens (429 where the generic path answers 500), the reply differs and the store error is never logged", async () => {
  const run = async (fastPaths: boolean) => {
    const kv = await Deno.openKv(":memory:");
    try {
      const proxy = kvProxy(kv);
      const lines: string[] = [];
      const config = { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: true };
      const app = createApp({ kv: proxy.kv, config, fastPaths, log: (line) => lines.push(line) });
      const write = (await createApiKey(kv, { companyId: "acme", userId: 2, access: "write" })).key;
      // A till's key with a burst of 3 and (practically) no refill.
      const till = (await createApiKey(kv, {
        companyId: "acme",
        userId: 3,
        access: "read",
        rateLimit: { per_second: 0.001, burst: 3 },
      })).key;
      const id =
        assertJson(await request(app, "POST", "/api/customer/update", { key: write, form: randomCustomer() }), 200)
          .id;
      const lookup = async () => (await request(app, "GET", "/api/customer", { key: till, query: { id } })).status;
      const statuses = [await lookup()];
      // The store fails the next read once: the lookup's own read of the customer (the key is cached by now).
      proxy.fail("get", { times: 1 });
      statuses.push(await lookup(), await lookup());
      const storeErrorLogged = lines.some((line) => line.includes("injected store fault"));
      // A fresh key whose own lookup in the store fails once: the door proves it again through the router.
      const fresh = (await createApiKey(kv, { companyId: "acme", userId: 6, access: "read" })).key;
      proxy.fail("get", { times: 1 });
      const keyReadFails = (await request(app, "GET", "/api/customer", { key: fresh, query: { id } })).status;
      return { statuses, storeErrorLogged, keyReadFails };
    } finally {
      kv.close();
    }
  };
  const generic = await run(false);
  assert.deepEqual(generic, { statuses: [200, 500, 200], storeErrorLogged: true, keyReadFails: 500 });
  // With the door: [200, 200, 429], nothing logged about the store error, and 200 for the failed key read.
  assert.deepEqual(await run(true), generic);
});

Deno.test("fixed: wire: a stray % elsewhere in a form component makes an escaped U+FEFF vanish from the text stored", async () => {
  await using w = await world();
  const stored = async (body: string, type: string) => {
    const res = await w.app.request(`/api/customer/update?apikey=${encodeURIComponent(w.key)}`, {
      method: "POST",
      headers: { "content-type": type },
      body,
    });
    const created = await res.json();
    assert.equal(res.status, 200, JSON.stringify(created));
    const id = created.id as number;
    const read = await w.call("GET", "/api/customer", { query: { id } });
    return assertJson(read, 200).customers[0].custom_information as string;
  };
  const meant = "Sale\uFEFF50%";
  // The same text three ways: JSON, a form with "%" escaped as %25, a form with the "%" left as it is (which the
  // decoder keeps as a "%", as it documents).
  assert.equal(await stored(JSON.stringify({ custom_information: meant }), "application/json"), meant);
  assert.equal(
    await stored("custom_information=Sale%EF%BB%BF50%25", "application/x-www-form-urlencoded"),
    meant,
  );
  // With the stray "%", each run of escapes goes through TextDecoder, which drops a leading BOM: "Sale50%".
  assert.equal(await stored("custom_information=Sale%EF%BB%BF50%", "application/x-www-form-urlencoded"), meant);
});

Deno.test("fixed: server: the Host header is spliced into the request URL, so GET /health with a Host holding a path and query is answered as a customer lookup", async () => {
  await using dir = await tempDir("bb7_");
  const kvPath = `${dir.path}/store.kv`;
  const setup = await Deno.openKv(kvPath);
  const key = (await createApiKey(setup, { companyId: "acme", userId: 2, access: "write", now: Date.now() })).key;
  setup.close();
  await using server = startServer({ kvPath, env: { EXPIRE_SCHEDULE: "0" } });
  await server.ready(key);
  assertJson(
    await request(server.base, "POST", "/api/customer/update", {
      key,
      form: randomCustomer({ external_id: "/health" }),
    }),
    200,
  );
  const health = await rawHttp(server.port, `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  assert.match(health, /^HTTP\/1\.1 200/);
  // The request target is /health; the Host header is not a valid host (RFC 9112 3.2: answer 400). Deno builds
  // the URL as "http://" + Host + target: http://x/api/customer?apikey=...&external_id=/health, which the door
  // (or the router) answers as a lookup of the customer whose external id is "/health".
  const smuggled = await rawHttp(
    server.port,
    `GET /health HTTP/1.1\r\nHost: x/api/customer?apikey=${key}&external_id=\r\nConnection: close\r\n\r\n`,
  );
  assert.doesNotMatch(smuggled, /"type":"customer"/, "a request for /health was answered as /api/customer");
  assert.match(smuggled, /^HTTP\/1\.1 (400|200)/);
});

// ---------------------------------------------------------------------------------------------------------------
// Attacks that held

Deno.test("held: odd URLs, names, keys and headers get the generic path's reply, headers and log line (text and JSON logs)", async (t) => {
  for (const logFormat of ["text", "json"] as const) {
    const ways = await twoWays({ logFormat });
    const { w, anna } = ways;
    const k = encodeURIComponent(w.key);
    const cases: [string, RequestInit][] = [
      [`/api/customer?id=${anna}&apikey=${k}#frag`, {}],
      [`/api/customer?id=${anna}&apikey=${k}&format=xml#x`, {}],
      [`/api/customer?%66ormat=xml&id=${anna}&apikey=${k}`, {}],
      [`/api/customer?id=${anna}&apikey=${k}&format=%78ml`, {}],
      [`/api/customer?id=${anna}&apikey=${k}&FORMAT=xml`, {}],
      [`/api/customer?id=${anna}&apikey=${k}&format=xml&format=xml`, {}],
      [`/api/customer?id=${anna}&apikey=${k}&format=`, {}],
      [`/api/customer?id=${anna}&apikey=${k}&format`, {}],
      [`/api/customer?id=${anna}&apikey=${k}&format=xml+`, {}],
      [`/api/customer?external_id=A-1?format=xml&apikey=${k}`, {}],
      [`/api/customer?%69d=${anna}&%61pikey=${k}`, {}],
      [`/api/customer?ID=${anna}&apikey=${k}`, {}],
      [`/api/customer?id=+${anna}+&apikey=${k}`, {}],
      [`/api/customer?id=%2B${anna}&apikey=${k}`, {}],
      [`/api/customer?id=000000000000000${anna}&apikey=${k}`, {}],
      [`/api/customer?id=9007199254740992&apikey=${k}`, {}],
      [`/api/customer?id=${anna}&apikey=${k}&`, {}],
      [`/api/customer?&&id=${anna}&apikey=${k}`, {}],
      [`/api/customer?id=${anna}&apikey=${k}&=`, {}],
      [`/api/customer?id=${anna}&apikey=${k}&=x`, {}],
      [`/api/customer??id=${anna}&apikey=${k}`, {}],
      [`/api/customer?id=${anna}?apikey=${k}`, {}],
      [`/api/customer;x?id=${anna}&apikey=${k}`, {}],
      [`/api/cust%6Fmer?id=${anna}&apikey=${k}`, {}],
      [`/api%2Fcustomer?id=${anna}&apikey=${k}`, {}],
      [`/api/customer/?id=${anna}&apikey=${k}`, {}],
      [`/api/customer?phone=+79001112233&apikey=${k}`, {}],
      [`/api/customer?phone=%2B7%20900%20111-22-33&apikey=${k}`, {}],
      [`/api/customer?email=ANNA%40example.COM&apikey=${k}&format=xml`, {}],
      [`/api/customer?external_id=%D0%90-1&apikey=${k}`, {}],
      [`/api/customer?external_id=%EF%BB%BFA-1&apikey=${k}`, {}],
      [`/api/customer?external_id=A-1%&apikey=${k}`, {}],
      [`/api/customer?external_id=A-1%zz&apikey=${k}`, {}],
      [`/api/customer?external_id=${"x".repeat(101)}&apikey=${k}`, {}],
      [`/api/customer?external_id=${"x".repeat(5000)}&apikey=${k}`, {}],
      [`/api/customer?external_id=%FF&apikey=${k}`, {}],
      [`/api/customer?card_barcode=%204600682003144%20&apikey=${k}`, {}],
      [`/api/customer?uid=100500&apikey=${k}&format=xml`, {}],
      [`/api/customer?id=${anna}&apikey=${k}&with_phone=`, {}],
      [`/api/customer?id=${anna}&apikey=${k}&cards=`, {}],
      [`/api/customer?id=${anna}&apikey=${k}&apikey=`, {}],
      [`/api/customer?id=${anna}&apikey=`, { headers: { "X-API-Key": w.key } }],
      [`/api/customer?id=${anna}&apikey=%20${k}%20`, {}],
      [`/api/customer?id=${anna}`, { headers: { "X-API-Key": `${w.key}, ${w.key}` } }],
      [`/api/customer?id=${anna}`, { headers: { "X-API-Key": `${w.key}, ` } }],
      [`/api/customer?id=${anna}`, { headers: { "X-API-Key": `${w.key}, ${w.otherKey}` } }],
      [`/api/customer?id=${anna}`, { headers: { "X-API-Key": "", Authorization: `Bearer ${w.key}` } }],
      [`/api/customer?id=${anna}`, { headers: { Authorization: `BEARER   ${w.key}  ` } }],
      [`/api/customer?id=${anna}`, { headers: { Authorization: "Bearer" } }],
      [`/api/customer?id=${anna}&apikey=${k}`, { headers: { Authorization: "Basic abc" } }],
      [`/api/customer?id=${anna}&apikey=${k}`, { headers: { Authorization: `Bearer ${w.otherKey}` } }],
      [`/api/customer?id=${anna}&apikey=${k}`, { headers: { "X-Request-Id": "a".repeat(128) } }],
      [`/api/customer?id=${anna}&apikey=${k}`, { headers: { "X-Request-Id": "a".repeat(129) } }],
      [`/api/customer?id=${anna}&apikey=${k}`, { headers: { "X-Request-Id": "till-1, till-2" } }],
      [`/api/customer?id=${anna}&apikey=${k}`, { headers: { "X-Request-Id": "" } }],
      [`/api/customer?id=${anna}&apikey=${k}`, { headers: { "X-Request-Id": "till 1" } }],
      [`/api/customer?id=${anna}&apikey=${k}`, { headers: { "Content-Type": "application/json" } }],
      [`/api/customer?id=${anna}&apikey=${k}`, { method: "HEAD" }],
      [`/api/customer?id=${anna}&apikey=nobody`, {}],
      [`/api/customer?id=${anna}&apikey=${encodeURIComponent(w.otherKey)}`, {}],
      [`/api/customer?id=${anna}&apikey=${encodeURIComponent(w.readKey)}&format=XmL`, {}],
    ];
    for (const [path, init] of cases) {
      const shown = `${path.slice(0, 120)} ${JSON.stringify(init)}`.replaceAll(k, "…").replaceAll(w.key, "…");
      await t.step(`${logFormat}: ${shown}`, async () => {
        await sameBothWays(ways, path, init);
      });
    }
    await w[Symbol.asyncDispose]();
  }
});

Deno.test("held: a key of one company finds nothing of another's at the door, by any lookup, as on the generic path", async () => {
  const ways = await twoWays();
  const { w, made } = ways;
  const theirs = await made(
    randomCustomer({ phone: "+79005554433", email: "boris@globex.example", external_id: "G-1" }),
    w.otherKey,
  );
  assertJson(
    await w.call("POST", "/api/customer/insertCard", {
      key: w.otherKey,
      query: { uid: "777001" },
      form: { barcode: "4600000000019", customer_id: theirs },
    }),
    200,
  );
  const k = encodeURIComponent(w.key);
  for (
    const lookup of [
      `id=${theirs}`,
      "phone=%2B79005554433",
      "email=boris%40globex.example",
      "external_id=G-1",
      "card_barcode=4600000000019",
      "uid=777001",
    ]
  ) {
    for (const format of ["json", "xml"]) {
      const path = `/api/customer?${lookup}&apikey=${k}&format=${format}`;
      assert.equal(await sameBothWays(ways, path), 200);
      const res = await w.app.request(path);
      const text = await res.text();
      assert.ok(!text.includes("globex") && !text.includes("G-1") && !text.includes("79005554433"), text);
      // Customer ids are per company: acme's own customer with the same id is the only one an id may find.
      if (!lookup.startsWith("id=")) assert.match(text, format === "json" ? /"count":0/ : /<count>0<\/count>/);
    }
    // The owner's key finds it at the door.
    const own = assertJson(
      await request(w.app, "GET", `/api/customer?${lookup}`, { key: w.otherKey }),
      200,
    );
    assert.equal(own.customers[0].id, theirs);
  }
  await w[Symbol.asyncDispose]();
});

Deno.test("held: a revoked key is refused at the door as soon as the key cache lets go, as on the generic path", async () => {
  const ways = await twoWays({ authCacheMs: 0 });
  const { w, anna } = ways;
  const till = await createApiKey(w.kv, { companyId: "acme", userId: 5, access: "read" });
  const path = `/api/customer?id=${anna}&apikey=${encodeURIComponent(till.key)}`;
  assert.equal(await sameBothWays(ways, path), 200);
  await revokeApiKey(w.kv, till.record.id);
  assert.equal(await sameBothWays(ways, path), 401);
  assert.equal(await sameBothWays(ways, `${path}&format=xml`), 401);
  await w[Symbol.asyncDispose]();
});

Deno.test("held: the door's 429s (the key's bucket, the bad-key window) are the generic path's, replies and JSON log lines", async () => {
  const ways = await twoWays({ logFormat: "json", badKeyLimit: 2 });
  const { w, anna } = ways;
  const limited = await createApiKey(w.kv, {
    companyId: "acme",
    userId: 4,
    access: "read",
    rateLimit: { per_second: 0.001, burst: 2 },
  });
  const k = encodeURIComponent(limited.key);
  // Each app keeps its own buckets: the same sequence on both gives the same replies step by step.
  const statuses: number[] = [];
  for (const format of ["json", "xml", "json", "xml"]) {
    statuses.push(await sameBothWays(ways, `/api/customer?id=${anna}&apikey=${k}&format=${format}`));
  }
  assert.deepEqual(statuses, [200, 200, 429, 429]);
  const from = { remoteAddr: { transport: "tcp", hostname: "10.1.2.3", port: 4000 } };
  const good = encodeURIComponent(w.key);
  const seq: number[] = [];
  for (const path of [`id=${anna}&apikey=guess1`, `id=${anna}&apikey=guess2`, `id=${anna}&apikey=${good}`]) {
    seq.push(await sameBothWays(ways, `/api/customer?${path}`, {}, from));
  }
  seq.push(await sameBothWays(ways, `/api/customer?id=${anna}&apikey=${good}&format=xml`, {}, from));
  assert.deepEqual(seq, [401, 401, 429, 429]);
  await w[Symbol.asyncDispose]();
});

Deno.test("held: over real sockets, GET bodies, Content-Type, absolute-form targets, fragments and HTTP/1.0 get the generic path's reply", async () => {
  const ways = await twoWays({ maxBodyBytes: 1000 });
  const { w, anna, generic } = ways;
  const withDoor = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, w.app.fetch);
  const without = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, generic.fetch);
  try {
    const q = `id=${anna}&apikey=${encodeURIComponent(w.key)}`;
    const big = "a".repeat(2000);
    const requests = [
      `GET /api/customer?${q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2000\r\n\r\n${big}`,
      `GET /api/customer?${q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n${big}\r\n0\r\n\r\n`,
      `GET /api/customer?${q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 15\r\n\r\napikey=another1`,
      `GET /api/customer?${q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc`,
      `GET http://other.example:81/api/customer?${q}&format=xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      `GET /api/customer?${q}#frag HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      `GET /api/customer?${q} HTTP/1.0\r\n\r\n`,
      `HEAD /api/customer?${q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      // Raw UTF-8 in the request target (Deno keeps it unescaped in the URL).
      `GET /api/customer?external_id=А-1&apikey=${w.key} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      // Two X-API-Key header lines: the same key twice is one key.
      `GET /api/customer?id=${anna} HTTP/1.1\r\nHost: x\r\nX-API-Key: ${w.key}\r\nX-API-Key: ${w.key}\r\nConnection: close\r\n\r\n`,
    ];
    for (const text of requests) {
      const a = await rawHttp(withDoor.addr.port, text);
      const b = await rawHttp(without.addr.port, text);
      assert.equal(a, b, text.slice(0, 120));
      assert.match(a, /^HTTP\/1\.[01] 200/, text.slice(0, 120));
    }
    // Two different keys in two X-API-Key lines: refused (400) both ways.
    const two = `GET /api/customer?id=${anna} HTTP/1.1\r\nHost: x\r\nX-API-Key: ${w.key}\r\n` +
      `X-API-Key: ${w.otherKey}\r\nConnection: close\r\n\r\n`;
    const refused = await rawHttp(withDoor.addr.port, two);
    assert.equal(refused, await rawHttp(without.addr.port, two));
    assert.match(refused, /^HTTP\/1\.1 400[^]*Two different API keys were sent/);
  } finally {
    await withDoor.shutdown();
    await without.shutdown();
    await w[Symbol.asyncDispose]();
  }
});

/** A store file with a write key, and a server process over it. */
async function serverWith(
  dir: string,
  env: Record<string, string>,
  options: { workers?: number; via?: "serve" | "task" } = {},
) {
  const kvPath = `${dir}/store.kv`;
  const setup = await Deno.openKv(kvPath);
  const key = (await createApiKey(setup, { companyId: "acme", userId: 2, access: "write", now: Date.now() })).key;
  setup.close();
  const server = startServer({ kvPath, ...options, env: { EXPIRE_SCHEDULE: "0", ...env } });
  await server.ready(key);
  return { server, key };
}

Deno.test("held: over a real server (deno task start), bad keys counted on the router's paths block the door for that address, and the door logs its JSON line", async () => {
  await using dir = await tempDir("bb7_");
  const { server, key } = await serverWith(dir.path, { BAD_KEY_LIMIT: "3", LOG_REQUESTS: "1", LOG_FORMAT: "json" }, {
    via: "task",
  });
  await using _server = server;
  const made = assertJson(
    await request(server.base, "POST", "/api/customer/update", { key, form: randomCustomer() }),
    200,
  );
  // A door request and its fall-through twin (an empty switch: same lookup, through the router) answer the same.
  const viaDoor = await fetch(`${server.base}/api/customer?id=${made.id}&apikey=${key}`, {
    headers: { "X-Request-Id": "till-9:sale-1" },
  });
  const viaRouter = await fetch(`${server.base}/api/customer?id=${made.id}&apikey=${key}&with_email=`, {
    headers: { "X-Request-Id": "till-9:sale-2" },
  });
  assert.equal(viaDoor.headers.get("x-request-id"), "till-9:sale-1");
  assert.equal(await seen(viaDoor), await seen(viaRouter));
  await waitForLine(server.stdout, "till-9:sale-1");
  const line = JSON.parse(server.stdout().split("\n").find((l) => l.includes("till-9:sale-1"))!);
  assert.equal(line.route, "/api/customer");
  assert.equal(line.path, "/api/customer");
  assert.equal(line.status, 200);
  assert.equal(line.company, "acme");
  assert.ok(!JSON.stringify(line).includes(key), "the key is never logged");
  for (let i = 0; i < 3; i++) {
    assert.equal((await fetch(`${server.base}/api/bonusprogram?apikey=guess${i}`).then(drain)).status, 401);
  }
  const blocked = await fetch(`${server.base}/api/customer?id=${made.id}&apikey=${key}&format=xml`);
  assert.equal(blocked.status, 429);
  assert.ok(Number(blocked.headers.get("retry-after")) >= 1);
  assert.match(await blocked.text(), /invalid API key from this address/);
});

Deno.test("held: under deno serve --parallel, every worker's door answers lookups as its router does", async () => {
  await using dir = await tempDir("bb7_");
  const { server, key } = await serverWith(dir.path, {}, { workers: 2 });
  await using _server = server;
  const made = assertJson(
    await request(server.base, "POST", "/api/customer/update", {
      key,
      form: randomCustomer({ phone: "+79007776655" }),
    }),
    200,
  );
  for (let i = 0; i < 12; i++) {
    // New connections each time, so both workers answer some.
    const init = { headers: { Connection: "close", "X-Request-Id": `p-${i}` } };
    const door = await fetch(`${server.base}/api/customer?phone=%2B79007776655&apikey=${key}&format=xml`, init);
    const routed = await fetch(
      `${server.base}/api/customer?phone=%2B79007776655&apikey=${key}&format=xml&with_phone=`,
      init,
    );
    assert.equal(door.headers.get("x-request-id"), `p-${i}`);
    const text = await seen(door);
    assert.equal(text, await seen(routed));
    assert.match(text, new RegExp(`<id>${made.id}</id>`));
  }
});

Deno.test("held: form bodies with escapes after the decoding change: bad UTF-8 is still refused naming the field, good text kept", async () => {
  await using w = await world();
  const post = (body: string | Uint8Array<ArrayBuffer>) =>
    w.app.request(`/api/customer/update?apikey=${encodeURIComponent(w.key)}`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body,
    });
  for (
    const body of [
      "fname=%C3%28",
      "fname=%ED%A0%80",
      "fname=%C0%AF",
      "fname=%F4%90%80%80",
      "fname=%E2%82",
      "fname=%FF%",
      "fname=50%%C3",
      "fname=%D0%96%zz%D0",
      new Uint8Array([...new TextEncoder().encode("lname=ok&fname="), 0xff]),
    ]
  ) {
    const res = await post(body);
    assert.equal(res.status, 400, String(body));
    assert.deepEqual(await res.json(), { success: 0, info: "Invalid fname: must be valid UTF-8 text", field: "fname" });
  }
  const badName = await post("f%FFname=x");
  assert.equal(badName.status, 400);
  assert.deepEqual(await badName.json(), {
    success: 0,
    info: "Invalid body: parameter names must be valid UTF-8 text",
    field: "body",
  });
  // Good escapes, with and without a stray "%", and "+" as a space.
  for (
    const [body, fname] of [
      ["fname=%D0%96%D0%B5%D0%BD%D1%8F+%F0%9F%98%80", "Женя 😀"],
      ["fname=100%+%D0%96", "100% Ж"],
      ["fname=a%2Bb%25", "a+b%"],
    ]
  ) {
    const res = await post(body!);
    const id = (await res.json()).id;
    assert.equal(res.status, 200, body);
    const got = assertJson(await w.call("GET", "/api/customer", { query: { id } }), 200);
    assert.equal(got.customers[0].fname, fname);
  }
});

function drain(res: Response): Promise<Response> {
  return res.body?.cancel().then(() => res) ?? Promise.resolve(res);
}

async function waitForLine(stdout: () => string, text: string): Promise<void> {
  for (let i = 0; i < 300 && !stdout().includes(text); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(stdout().includes(text), `no log line with ${text}`);
}
