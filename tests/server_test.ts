import assert from "node:assert/strict";
import { createApiKey } from "../storage/api_keys.ts";
import { request, startServer, tempDir, waitFor } from "./kit.ts";

Deno.test("deno task start: first start prints a key once, serves JSON and XML, never logs the key", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/data/loyalty.kv`;
  let server = startServer({ via: "task", kvPath, env: { LOG_REQUESTS: "1" } });
  const base = server.base;
  try {
    const key = await waitFor("the first key", () => /lk_[A-Za-z0-9_-]{32}/.exec(server.stdout())?.[0]);
    await server.ready(key);
    const created = await request(base, "POST", "/api/customer/update", {
      key,
      form: { fname: "Иван", phone: "8 900 123-45-67", email: "ivan@example.com" },
    });
    assert.equal(created.status, 200);
    assert.deepEqual(created.body, { success: 1, id: 1, isnew: 1 });
    const json = await request(base, "GET", "/api/customer", { key, query: { phone: "+79001234567" } });
    assert.equal(json.body.customers[0].fname, "Иван");
    const xml = await request(base, "GET", "/api/customer", { key, query: { id: 1, format: "xml" } });
    assert.equal(xml.type, "application/xml; charset=UTF-8");
    assert.match(xml.text, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<root>\n<success>1<\/success>\n/);
    assert.match(xml.text, /<fname>Иван<\/fname>/);
    const logLine = await waitFor(
      "the request log",
      () => server.stdout().includes("POST /api/customer/update 200") || undefined,
    );
    assert.ok(logLine);
    const afterKey = server.stdout().slice(server.stdout().indexOf(key) + key.length);
    assert.ok(!afterKey.includes(key), "the key is printed once and never logged");
    assert.ok(!server.stderr().includes(key));

    // A restart on the same store keeps the data and prints no new key.
    await server.stop();
    server = startServer({ via: "task", kvPath, port: server.port, env: { LOG_REQUESTS: "1" } });
    await server.ready(key);
    const again = await request(base, "GET", "/api/customer", { key, query: { id: 1 } });
    assert.equal(again.body.customers[0].email, "ivan@example.com");
    assert.ok(!/lk_[A-Za-z0-9_-]{32}/.test(server.stdout()));
  } finally {
    await server.stop();
  }
});

Deno.test("deno serve --parallel: uniqueness, ids and balances hold across workers sharing one KV file", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/loyalty.kv`;
  const kv = await Deno.openKv(kvPath);
  const { key } = await createApiKey(kv, { companyId: "acme", userId: 5, access: "write", now: Date.now() });
  kv.close();
  await using server = startServer({ kvPath, workers: 2 });
  const base = server.base;
  await server.ready(key);
  const same = await Promise.all(
    Array.from(
      { length: 40 },
      (_, i) =>
        request(base, "POST", "/api/customer/update", { key, form: { fname: `S${i}`, phone: "+7 900 000 00 77" } }),
    ),
  );
  assert.equal(same.filter((r) => r.status === 200).length, 1);
  assert.ok(same.every((r) => r.status === 200 || (r.status === 409 && r.body.field === "phone")));
  const distinct = await Promise.all(
    Array.from(
      { length: 60 },
      (_, i) =>
        request(base, "POST", "/api/customer/update", { key, form: { fname: `D${i}`, email: `d${i}@example.com` } }),
    ),
  );
  assert.deepEqual(distinct.filter((r) => r.status !== 200).map((r) => r.text), []);
  assert.ok(distinct.every((r) => r.body.isnew === 1));
  assert.equal(new Set(distinct.map((r) => r.body.id)).size, 60);
  const page = await request(base, "GET", "/api/customer", { key, query: { page: 1, page_size: 1000 } });
  assert.equal(page.body.total_count, 61);
  assert.equal(page.body.count, 61);

  // Balances: 200 concurrent changes of one balance through both workers lose nothing.
  await request(base, "POST", "/api/bonusprogram/update", { key, form: { name: "Points" } });
  const customerId = distinct[0]!.body.id;
  const opening = await request(base, "POST", "/api/customer/updateBonus", {
    key,
    form: { customer_id: customerId, bonus_id: 1, amount: "100" },
  });
  assert.equal(opening.status, 200);
  const amounts = Array.from({ length: 200 }, (_, i) => (i % 4 === 3 ? "-0.07" : "1.10"));
  const changes = await Promise.all(
    amounts.map((amount, i) =>
      request(base, "POST", "/api/customer/updateBonus", {
        key,
        form: { customer_id: customerId, bonus_id: 1, amount, idempotency_key: `k${i}` },
      })
    ),
  );
  assert.deepEqual(changes.filter((r) => r.status !== 200).map((r) => r.text), []);
  const history = await request(base, "GET", "/api/customer/bonusHistory", {
    key,
    query: { customer_id: customerId, bonus_id: 1, page_size: 1000 },
  });
  const expected = amounts.reduce((sum, a) => sum + Math.round(Number(a) * 100), 10_000);
  assert.equal(Math.round(history.body.balance * 100), expected);
  assert.equal(history.body.total_count, 201);
  const deltas = history.body.transactions.reduce(
    (sum: number, t: { amount: number }) => sum + Math.round(t.amount * 100),
    0,
  );
  assert.equal(deltas, expected);
  assert.deepEqual(
    history.body.transactions.map((t: { transaction_id: number }) => t.transaction_id),
    Array.from({ length: 201 }, (_, i) => 201 - i),
  );
});
