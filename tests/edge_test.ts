import assert from "node:assert/strict";
import { XMLParser } from "fast-xml-parser";
import { DEFAULT_CONFIG } from "../config.ts";
import { blankCustomer } from "../domain/customer.ts";
import { createApp } from "../routes/app.ts";
import { listApiKeys, revokeApiKey } from "../storage/api_keys.ts";
import { rawInsertCustomers } from "../storage/seed.ts";
import { request, snapshot, world } from "./kit.ts";

Deno.test("an empty lookup parameter is refused, never read as 'not given'", async (t) => {
  await using w = await world();
  await w.call("POST", "/api/customer/update", { form: { fname: "A" } });
  await w.call("POST", "/api/customergroup/update", { form: { group_name: "G" } });
  const cases: [string, string, Record<string, string>, string][] = [
    ["GET", "/api/customer", { id: "" }, "id"],
    ["GET", "/api/customer", { external_id: " " }, "external_id"],
    ["GET", "/api/customer", { phone: "" }, "phone"],
    ["GET", "/api/customer", { email: "" }, "email"],
    ["POST", "/api/customer/update", { id: "", fname: "X" }, "id"],
    ["POST", "/api/customer/update", { external_id: "", fname: "X" }, "external_id"],
    ["POST", "/api/customergroup/update", { group_id: "", group_name: "G2" }, "group_id"],
    ["POST", "/api/customer/updateCard", { card_id: "", create_if_not_exist: "1" }, "card_id"],
    ["POST", "/api/customer/deleteCard", { uid: "" }, "uid"],
  ];
  for (const [method, path, query, field] of cases) {
    await t.step(`${path} ${JSON.stringify(query)}`, async () => {
      const before = await snapshot(w.kv);
      const r = await w.call(method, path, { query });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.body.field, field);
      assert.equal(r.body.info, `Invalid ${field} "${query[field]}": must not be empty`);
      assert.equal(await snapshot(w.kv), before);
    });
  }
});

Deno.test("names: control characters are refused, white space is folded on every path", async () => {
  await using w = await world();
  for (
    const [path, form] of [
      ["/api/customergroup/update", { group_name: "A\u0001B" }],
      ["/api/customer/update", { group_name: "A\u0001B" }],
      ["/api/cardtype/update", { type_name: "A\u0007B" }],
    ] as const
  ) {
    const r = await w.call("POST", path, { form });
    assert.equal(r.status, 400, path);
    assert.match(r.body.info, /control characters are not allowed/);
  }
  const c = await w.call("POST", "/api/customer/update", { form: { group_name: "  VIP    Gold " } });
  const read = await w.call("GET", "/api/customer", { query: { id: c.body.id } });
  assert.equal(read.body.customers[0].group_name, "VIP Gold");
});

Deno.test("XML replies stay well-formed even for stored text XML cannot carry", async () => {
  await using w = await world();
  await rawInsertCustomers(w.kv, "acme", [{
    ...blankCustomer(1, { now: Date.now(), userId: 1 }),
    fname: "a\u0001b<c>",
  }]);
  const r = await w.call("GET", "/api/customer", { query: { id: 1, format: "xml" } });
  assert.match(r.text, /<fname>a\ufffdb&lt;c&gt;<\/fname>/);
  const parsed = new XMLParser().parse(r.text);
  assert.equal(parsed.root.customers.customer.fname, "a\ufffdb<c>");
});

Deno.test("a JSON number too large to be exact is refused, not rounded", async () => {
  await using w = await world();
  const before = await snapshot(w.kv);
  const r = await w.app.request(`/api/customer/update?apikey=${w.key}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: '{"external_id": 12345678901234567890}',
  });
  assert.equal(r.status, 400);
  assert.deepEqual(await r.json(), {
    success: 0,
    info: "Invalid external_id: the number is too large to be exact; send it as a string",
    field: "external_id",
  });
  assert.equal(await snapshot(w.kv), before);
});

Deno.test("update by id with external_id in the query sets the external id", async () => {
  await using w = await world();
  const c = await w.call("POST", "/api/customer/update", { form: { fname: "A" } });
  const r = await w.call("GET", "/api/customer/update", { query: { id: c.body.id, external_id: "1C-9" } });
  assert.deepEqual(r.body, { success: 1, id: c.body.id, isnew: 0 });
  const found = await w.call("GET", "/api/customer", { query: { external_id: "1C-9" } });
  assert.equal(found.body.customers[0].id, c.body.id);
  const twice = await w.call("POST", "/api/customer/update", {
    query: { id: c.body.id, external_id: "1C-10" },
    form: { external_id: "1C-11" },
  });
  assert.equal(twice.status, 400);
  assert.equal(twice.body.info, 'Parameter "external_id" is given more than once');
});

Deno.test("format: only in the query string, and a bad one is logged with its real status", async () => {
  const kv = await Deno.openKv(":memory:");
  const lines: string[] = [];
  try {
    const app = createApp({ kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:" }, log: (l) => lines.push(l) });
    const bad = await request(app, "GET", "/api/customer", { query: { format: "yaml" } });
    assert.equal(bad.status, 400);
    assert.deepEqual(lines, [lines[0]]);
    assert.match(lines[0]!, /^GET \/api\/customer 400 [\d.]+ms$/);
    const body = await request(app, "POST", "/api/customer/update", { form: { format: "xml" } });
    assert.equal(body.status, 400);
    assert.equal(body.body.info, 'Parameter "format" must be passed in the query string');
  } finally {
    kv.close();
  }
});

Deno.test("a revoked key keeps working only until its cache entry expires", async () => {
  let clock = Date.UTC(2025, 0, 1);
  await using w = await world({ now: () => clock, config: { authCacheMs: 300 } });
  assert.equal((await w.call("GET", "/api/customer", { key: w.readKey })).status, 200);
  const read = (await listApiKeys(w.kv, "acme")).find((k) => k.access === "read")!;
  await revokeApiKey(w.kv, read.id);
  clock += 299;
  assert.equal((await w.call("GET", "/api/customer", { key: w.readKey })).status, 200, "still cached");
  clock += 2;
  const after = await w.call("GET", "/api/customer", { key: w.readKey });
  assert.equal(after.status, 401);
  assert.equal(after.body.info, `API key "${read.id}" is revoked`);
});

Deno.test("a key sent in a header or the query is checked before the body is read", async () => {
  await using w = await world();
  const malformed = { method: "POST", headers: { "content-type": "application/json" }, body: "{nope" };
  const header = await w.app.request("/api/customer/update", {
    ...malformed,
    headers: { ...malformed.headers, "x-api-key": "lk_nope" },
  });
  assert.equal(header.status, 401);
  const wrongKey = await w.app.request("/api/customer/update?apikey=lk_nope", malformed);
  assert.equal(wrongKey.status, 401);
  const known = await w.app.request(`/api/customer/update?apikey=${w.key}`, malformed);
  assert.equal(known.status, 400);
  const inBody = await w.call("POST", "/api/customer/update", { key: null, form: { apikey: w.key, fname: "B" } });
  assert.equal(inBody.status, 200);
});
