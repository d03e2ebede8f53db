/**
 * The read path as a hot path: the point-lookup fast path answers exactly as the generic path does (JSON and XML,
 * found, not found and refused), and a page of 200 customers with cards and bonuses takes a bounded number of
 * store calls, counted through the KV proxy.
 */
import assert from "node:assert/strict";
import { seedExtras } from "../bench/seed_extras.ts";
import { DEFAULT_CONFIG } from "../config.ts";
import { blankCustomer, type Customer } from "../domain/customer.ts";
import { createApp } from "../routes/app.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { rawInsertCards, rawInsertCustomers } from "../storage/seed.ts";
import { assertJson, type KvProxy, kvProxy, randomCustomer, request, world } from "./kit.ts";

Deno.test("GET /api/customer: the point-lookup fast path replies byte for byte as the generic path", async (t) => {
  await using w = await world();
  const config = { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false };
  const generic = createApp({ kv: w.kv, config, fastPaths: false });
  const made = async (form: Record<string, string | number>) =>
    assertJson(await w.call("POST", "/api/customer/update", { form }), 200).id as number;
  const anna = await made(randomCustomer({ phone: "+79001112233", email: "Anna@Example.com", external_id: "A-1" }));
  await made(randomCustomer({ group_name: "Gold" }));
  assertJson(
    await w.call("POST", "/api/customer/insertCard", {
      query: { uid: "100500" },
      form: { barcode: "4600682003144", type_name: "Silver", customer_id: anna },
    }),
    200,
  );
  assertJson(await w.call("POST", "/api/bonusprogram/update", { form: { name: "Points" } }), 200);
  assertJson(
    await w.call("POST", "/api/customer/updateBonus", { form: { customer_id: anna, bonus_id: 1, amount: "12.34" } }),
    200,
  );
  const queries: Record<string, string>[] = [
    { id: String(anna) },
    { id: String(anna + 1) },
    { id: "999999" },
    { id: "0" },
    { id: "abc" },
    { id: "" },
    { id: " 1 " },
    { phone: "8 (900) 111-22-33" },
    { phone: "+7900" },
    { phone: "" },
    { email: "anna@EXAMPLE.com" },
    { email: "not an email" },
    { external_id: "A-1" },
    { external_id: "nobody" },
    { card_barcode: "4600682003144" },
    { card_barcode: "" },
    { uid: "100500" },
    { uid: "x".repeat(300) },
    { id: String(anna), cards: "1", bonuses: "1" },
    { id: String(anna), phone: "+79001112233" },
    { id: String(anna), nonsense: "1" },
    { Id: String(anna) },
  ];
  for (const query of queries) {
    for (const format of ["json", "xml"]) {
      await t.step(`${format} ${new URLSearchParams(query)}`, async () => {
        const options = { key: w.key, query: format === "json" ? query : { ...query, format } };
        const fast = await request(w.app, "GET", "/api/customer", options);
        const slow = await request(generic, "GET", "/api/customer", options);
        assert.equal(fast.status, slow.status);
        assert.equal(fast.type, slow.type);
        assert.equal(fast.text, slow.text);
      });
    }
  }
  await t.step("a HEAD and a refused key go the generic way too", async () => {
    const head = await w.app.request(`/api/customer?id=${anna}&apikey=${w.key}`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
    const noKey = await request(w.app, "GET", "/api/customer", { key: null, query: { id: anna } });
    const noKeySlow = await request(generic, "GET", "/api/customer", { key: null, query: { id: anna } });
    assert.equal(noKey.status, 401);
    assert.equal(noKey.text, noKeySlow.text);
  });
});

Deno.test("GET /api/customer: a page of 200 with cards and bonuses takes at most 30 store calls", async (t) => {
  let proxy: KvProxy | undefined;
  await using w = await world({ kv: (kv) => (proxy = kvProxy(kv)).kv });
  const now = Date.now();
  const customers: Customer[] = [];
  for (let i = 1; i <= 600; i++) {
    customers.push({ ...blankCustomer(i, { now, userId: 2 }), fname: `C${i}`, phone: i % 10 ? `79${1e8 + i}` : null });
  }
  await rawInsertCustomers(w.kv, "acme", customers);
  // One card per customer (card id = customer id) and balances in 2 programs, as the benchmark seeds them, and a
  // second card made later for every third customer of the first 300 (ids far from the first ones).
  await seedExtras(w.kv, "acme", { customers: 600, now });
  const extra = [];
  for (let i = 3; i <= 300; i += 3) {
    const uid = String(5_000_000 + i);
    extra.push({
      id: 10_000 + i,
      external_id: null,
      uid,
      uid_ean13: null,
      barcode: null,
      medium: "APP" as const,
      status: "ACTIVE" as const,
      block_date: null,
      activate_date: now,
      type_id: null,
      customer_id: i,
      created_date: now,
      created_by: 2,
      last_update_date: now,
      last_update_by: 2,
    });
  }
  await rawInsertCards(w.kv, "acme", extra);

  const counted = async (query: Record<string, string | number>) => {
    await w.call("GET", "/api/customer", { query }); // warms the key and directory caches
    const before = { ...proxy!.calls };
    const reply = assertJson(await w.call("GET", "/api/customer", { query }), 200);
    const calls = (["get", "getMany", "list"] as const).reduce((n, k) => n + proxy!.calls[k] - before[k], 0);
    return { reply, calls };
  };
  const queries: Record<string, number>[] = [{ page: 1 }, { page: 2 }, { page: 1, with_phone: 1 }, {
    page: 2,
    with_phone: 1,
  }];
  for (const query of queries) {
    await t.step(`${new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]))}`, async () => {
      const { reply, calls } = await counted({ ...query, page_size: 200, cards: 1, bonuses: 1 });
      assert.equal(reply.count, 200);
      assert.ok(calls <= 30, `${calls} store calls`);
      // Each customer's part is what a lookup of that customer alone says.
      for (const shown of [reply.customers[0], reply.customers[57], reply.customers[199]]) {
        const alone = assertJson(
          await w.call("GET", "/api/customer", { query: { id: shown.id, cards: 1, bonuses: 1 } }),
          200,
        );
        assert.deepEqual(shown, alone.customers[0]);
      }
      const third = reply.customers.find((c: { id: number }) => c.id % 3 === 0 && c.id <= 300);
      if (third) assert.equal(third.cards.length, 2);
      for (const c of reply.customers) assert.equal(c.bonuses.length, 2);
    });
  }
});

Deno.test("GET /api/customer: deep pages match the list, also right after changes move customers", async () => {
  await using w = await world();
  const now = Date.now();
  const customers: Customer[] = [];
  for (let i = 1; i <= 1600; i++) {
    customers.push({ ...blankCustomer(i, { now, userId: 2 }), phone: i % 3 ? `79${1e8 + i}` : null });
  }
  await rawInsertCustomers(w.kv, "acme", customers);
  const withPhone = () => customers.filter((c) => c.phone !== null).map((c) => c.id);
  const check = async () => {
    const ids = withPhone();
    for (const page of [1, 2, 14, 15, 28, 29, 30]) {
      const reply = assertJson(
        await w.call("GET", "/api/customer", { query: { with_phone: 1, page, page_size: 37 } }),
        200,
      );
      assert.equal(reply.total_count, ids.length);
      assert.deepEqual(reply.customers.map((c: { id: number }) => c.id), ids.slice((page - 1) * 37, page * 37));
    }
  };
  await check();
  // Moves between lists and a new customer change the counts of buckets before the deep pages.
  for (const id of [2, 499, 501, 1000]) {
    assertJson(await w.call("POST", "/api/customer/update", { query: { id }, form: { phone: "" } }), 200);
    customers[id - 1]!.phone = null;
  }
  assertJson(await w.call("POST", "/api/customer/update", { query: { id: 3 }, form: { phone: "+79990000003" } }), 200);
  customers[2]!.phone = "79990000003";
  const made = assertJson(await w.call("POST", "/api/customer/update", { form: { phone: "+79990001601" } }), 200);
  customers.push({ ...blankCustomer(made.id, { now, userId: 2 }), phone: "79990001601" });
  await check();
});

Deno.test("API requests: the merged checks decide in the order of the layers they replaced", async (t) => {
  const kv = await Deno.openKv(":memory:");
  const config = { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false, maxBodyBytes: 100 };
  const { key } = await createApiKey(kv, {
    companyId: "c",
    userId: 1,
    access: "write",
    now: Date.now(),
    rateLimit: { per_second: 0.001, burst: 1 },
  });
  const app = createApp({ kv, config });
  const call = async (method: string, path: string, init: RequestInit = {}) => {
    const res = await app.request(path, { method, ...init });
    return { status: res.status, info: (await res.json()).info as string, allow: res.headers.get("allow") };
  };
  const big = "x=" + "1".repeat(200);
  const form = { "content-type": "application/x-www-form-urlencoded" };
  await t.step("a bad format wins over a method the path does not take", async () => {
    const r = await call("PUT", "/api/customer?format=yaml");
    assert.equal(r.status, 400);
    assert.match(r.info, /Invalid format "yaml"/);
  });
  await t.step("a method the path does not take wins over the body's size and the key", async () => {
    const r = await call("PUT", "/api/customer", { body: big, headers: form });
    assert.equal(r.status, 405);
    assert.equal(r.allow, "GET, HEAD");
  });
  await t.step("an oversized body wins over a missing key", async () => {
    const r = await call("POST", "/api/customer/update", { body: big, headers: form });
    assert.equal(r.status, 413);
  });
  await t.step("a missing, unknown or doubled key is refused before the rate limit", async () => {
    assert.equal((await call("GET", "/api/customer?id=1")).status, 401);
    assert.equal((await call("GET", "/api/customer?id=1&apikey=nope")).status, 401);
    const two = await call("GET", `/api/customer?id=1&apikey=${key}`, { headers: { "x-api-key": "other" } });
    assert.equal(two.status, 400);
    assert.equal(two.info, "Two different API keys were sent: send one");
  });
  await t.step("the key's rate limit comes after its check, then the parameters", async () => {
    assert.equal((await call("GET", `/api/customer?id=abc&apikey=${key}`)).status, 400);
    const limited = await call("GET", `/api/customer?id=abc&apikey=${key}`);
    assert.equal(limited.status, 429);
    assert.match(limited.info, /Too many requests: API key/);
  });
  kv.close();
});
