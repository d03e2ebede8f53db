/**
 * Black-box checks of import, export and webhooks (issues 10 and 11), written by an outside tester from the docs only.
 * Each test is one reported defect: it FAILS while the defect is there. Everything runs through the real tasks
 * (`deno task import/export/verify/bonusprogram`) on a temporary store, or a real server process for webhooks.
 */
import assert from "node:assert/strict";
import { createApiKey } from "../storage/api_keys.ts";
import { assertJson, request, runTask, startServer, tempDir, waitFor } from "./kit.ts";

/** The rows of an export (CSV; the values in these tests hold no comma or quote). */
async function exported(kvPath: string, type: string, company = "default"): Promise<Record<string, string>[]> {
  const r = await runTask("export", ["--type", type, "--company", company], { kvPath });
  assert.equal(r.code, 0, r.err);
  const lines = r.out.split("\r\n").filter((l) => l !== "");
  const head = lines[0]!.split(",");
  return lines.slice(1).map((l) => Object.fromEntries(l.split(",").map((v, i) => [head[i]!, v])));
}

async function file(dir: string, name: string, text: string): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, text);
  return path;
}

Deno.test("import cards: a row whose barcode belongs to another card must not change that other card", async () => {
  await using dir = await tempDir("bb3_");
  const kvPath = `${dir.path}/kv.db`;
  const a = await file(dir.path, "a.csv", "uid,barcode,customer_external_id\nA1,4600000000011,\n");
  assert.equal((await runTask("import", [a, "--type", "cards"], { kvPath })).code, 0);
  const c = await file(dir.path, "c.csv", "external_id,phone\nx1,79001112233\n");
  assert.equal((await runTask("import", [c], { kvPath })).code, 0);
  // a different card B2 that (by a typo) repeats A1's barcode, to be blocked and given to x1
  const b = await file(dir.path, "b.csv", "uid,barcode,customer_external_id,status\nB2,4600000000011,x1,BLOCKED\n");
  const r = await runTask("import", [b, "--type", "cards"], { kvPath });
  const a1 = (await exported(kvPath, "cards")).find((row) => row.uid === "A1")!;
  assert.deepEqual({ status: a1.status, owner: a1.customer_external_id }, { status: "NEW", owner: "" }, r.err);
  assert.equal(r.code, 1, "the row must be rejected: barcode taken by card A1");
});

Deno.test("import customers: two rows matching one stored customer by phone and by email must not re-key it", async () => {
  await using dir = await tempDir("bb3_");
  const kvPath = `${dir.path}/kv.db`;
  const first = await file(dir.path, "first.csv", "phone,email\n79995550101,rk@x.com\n");
  assert.equal((await runTask("import", [first], { kvPath })).code, 0);
  const two = await file(dir.path, "two.csv", "external_id,phone,email\ne1,79995550101,\ne2,,rk@x.com\n");
  const r = await runTask("import", [two], { kvPath });
  const rows = await exported(kvPath, "customers");
  assert.equal(rows.length, 1);
  // Same outcome as with --batch-size 1: the first row wins, the second is rejected (different external id)
  assert.equal(rows[0]!.external_id, "e1", r.err);
  assert.equal(r.code, 1);
});

Deno.test("import bonuses: rows apply in file order (credit 5, then overwrite 100 = 100), whatever the batch", async () => {
  // Written for "overwrite 100, then credit 5 = 105"; a row after an overwrite of the same balance is now refused
  // naming the line (a re-run would undo the credit: tests/blackbox_5_test.ts), so file order is shown the other way.
  await using dir = await tempDir("bb3_");
  const kvPath = `${dir.path}/kv.db`;
  assert.equal((await runTask("bonusprogram", ["create", "--company", "default", "--name", "P"], { kvPath })).code, 0);
  const c = await file(dir.path, "c.csv", "external_id,phone\nb1,79990000077\n");
  assert.equal((await runTask("import", [c], { kvPath })).code, 0);
  const b = await file(dir.path, "b.csv", "customer_external_id,amount,overwrite\nb1,5,0\nb1,100,1\n");
  const r = await runTask("import", [b, "--type", "bonuses"], { kvPath });
  assert.equal(r.code, 0, r.err);
  const rows = await exported(kvPath, "bonuses");
  assert.equal(Number(rows.find((row) => row.customer_external_id === "b1")!.amount), 100);
});

Deno.test("import customers: new customers get their last-name index entry (verify is clean after an import)", async () => {
  await using dir = await tempDir("bb3_");
  const kvPath = `${dir.path}/kv.db`;
  const c = await file(dir.path, "c.csv", "external_id,fname,lname\nx1,Анна,Смирнова\nx2,Bob,Smith\n");
  assert.equal((await runTask("import", [c], { kvPath })).code, 0);
  const v = await runTask("verify", [], { kvPath });
  assert.doesNotMatch(v.out + v.err, /missing_name_entry/);
  assert.equal(v.code, 0, v.out + v.err);
});

Deno.test("import NDJSON/JSON/XML: a bonus on a record other than the first goes to the company's only program", async () => {
  await using dir = await tempDir("bb3_");
  const kvPath = `${dir.path}/kv.db`;
  assert.equal((await runTask("bonusprogram", ["create", "--company", "default", "--name", "P"], { kvPath })).code, 0);
  const n = await file(
    dir.path,
    "c.ndjson",
    '{"external_id":"c1","phone":"79006660201"}\n{"external_id":"c2","phone":"79006660202","bonus":5}\n',
  );
  const r = await runTask("import", [n], { kvPath });
  assert.doesNotMatch(r.out + r.err, /no bonus program chosen/);
  assert.equal(r.code, 0, r.out + r.err);
});

Deno.test("import --dry-run reports what the real run does (a card naming an unknown customer)", async () => {
  await using dir = await tempDir("bb3_");
  const kvPath = `${dir.path}/kv.db`;
  const c = await file(dir.path, "c.csv", "uid,customer_external_id\nCU4,nosuch\n");
  const dry = await runTask("import", [c, "--type", "cards", "--dry-run", "--report", `${dir.path}/d.json`], {
    kvPath,
  });
  const real = await runTask("import", [c, "--type", "cards", "--report", `${dir.path}/r.json`], { kvPath });
  assert.equal(real.code, 1);
  assert.equal(dry.code, real.code);
  assert.deepEqual(
    JSON.parse(await Deno.readTextFile(`${dir.path}/d.json`)),
    JSON.parse(await Deno.readTextFile(`${dir.path}/r.json`)),
  );
});

Deno.test("import: exit 2 (usage or file error) means nothing was written", async () => {
  await using dir = await tempDir("bb3_");
  const kvPath = `${dir.path}/kv.db`;
  const lines = Array.from({ length: 10 }, (_, i) => `{"external_id":"z${i}","phone":"790077700${10 + i}"}`);
  const n = await file(dir.path, "late.ndjson", [...lines, '{"external_id":"z11","zzz":1}', ""].join("\n"));
  const r = await runTask("import", [n, "--batch-size", "2"], { kvPath });
  assert.equal(r.code, 2, r.err);
  // Nothing at all in the store (export refuses a company the store does not know, so it cannot show this).
  const kv = await Deno.openKv(kvPath);
  const keys = await Array.fromAsync(kv.list({ prefix: [] }, { limit: 5 }), (e) => e.key);
  kv.close();
  assert.deepEqual(keys, []);
});

Deno.test({
  name: "webhooks: a Shopify customer is not merged into another person through its address phone",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir("bb3_");
    const kvPath = `${dir.path}/kv.db`;
    const kv = await Deno.openKv(kvPath);
    const key = (await createApiKey(kv, { companyId: "default", userId: 1, access: "write", now: Date.now() })).key;
    kv.close();
    await using server = startServer({ kvPath });
    await server.ready(key);
    const B = server.base;
    assertJson(await request(B, "POST", "/api/bonusprogram/update", { key, form: { name: "P" } }), 200);
    // John Doe, a till customer
    assertJson(
      await request(B, "POST", "/api/customer/update", {
        key,
        form: { fname: "John", lname: "Doe", email: "john.doe@example.com", phone: "75555555555" },
      }),
      200,
    );
    const conn = assertJson(
      await request(B, "POST", "/api/connection/update", {
        key,
        form: { platform: "shopify", shop: "s.myshopify.com", secret: "shpsecret123", bonus_id: 1, percent: 5 },
      }),
      200,
    );
    const send = async (topic: string, id: string, body: string) => {
      const k = await crypto.subtle.importKey(
        "raw",
        new TextEncoder().encode("shpsecret123"),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign"],
      );
      const sig = new Uint8Array(await crypto.subtle.sign("HMAC", k, new TextEncoder().encode(body)));
      const r = await fetch(`${B}${conn.webhook_url}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-shopify-topic": topic,
          "x-shopify-webhook-id": id,
          "x-shopify-hmac-sha256": btoa(String.fromCharCode(...sig)),
        },
        body,
      });
      assert.equal(r.status, 200, await r.text());
    };
    // Bob Biller (Shopify's sample customer): no phone of his own; his default address has 555-555-5555
    const bob = (first: string) =>
      `{"id":706405506930370084,"email":"bob@biller.com","first_name":"${first}","last_name":"Biller","phone":null,` +
      `"default_address":{"phone":"555-555-5555","country_code":"CA"}}`;
    await send("customers/create", "w1", bob("Bob"));
    await send("customers/update", "w2", bob("Bobby"));
    // a third, unrelated customer whose arrival tells that the queue got this far
    await send("customers/create", "w3", `{"id":706405506930370099,"email":"marker@x.com","first_name":"M"}`);
    await waitFor("the marker customer", async () => {
      const r = assertJson(await request(B, "GET", "/api/customer", { key, query: { email: "marker@x.com" } }), 200);
      return r.count === 1 || undefined;
    });
    await waitFor("both Bob deliveries processed", async () => {
      const s = await runTask("webhooks", ["stats"], { kvPath });
      return /customers\/update\s+received 1\s+processed 1/.test(s.out) || undefined;
    });
    const john = assertJson(await request(B, "GET", "/api/customer", { key, query: { phone: "75555555555" } }), 200);
    assert.equal(john.customers[0].email, "john.doe@example.com");
    assert.equal(john.customers[0].fname, "John");
  },
});

Deno.test("import: a ФИО column (Фамилия Имя Отчество) is read as last, first and middle name", async () => {
  await using dir = await tempDir("bb3_");
  const kvPath = `${dir.path}/kv.db`;
  const c = await file(dir.path, "c.csv", "external_id;ФИО\nf1;Иванова Мария Петровна\n");
  assert.equal((await runTask("import", [c], { kvPath })).code, 0);
  const row = (await exported(kvPath, "customers"))[0]!;
  assert.deepEqual([row.lname, row.fname, row.mname], ["Иванова", "Мария", "Петровна"]);
});

Deno.test("import: a Windows-1251 file whose first 64 KiB are ASCII keeps its Cyrillic (no U+FFFD stored)", async () => {
  await using dir = await tempDir("bb3_");
  const kvPath = `${dir.path}/kv.db`;
  const ascii = ["external_id,fname,lname", ...Array.from({ length: 4000 }, (_, i) => `e${i},John,Smith`)].join("\n");
  // "Иван" in Windows-1251
  const ivan = new Uint8Array([0xc8, 0xe2, 0xe0, 0xed]);
  const bytes = new Uint8Array([
    ...new TextEncoder().encode(ascii + "\nlate,"),
    ...ivan,
    ...new TextEncoder().encode(",X\n"),
  ]);
  const path = `${dir.path}/late1251.csv`;
  await Deno.writeFile(path, bytes);
  const r = await runTask("import", [path], { kvPath });
  const row = (await exported(kvPath, "customers")).find((c) => c.external_id === "late");
  // Either read right, or stopped as a file error (exit 2); never stored as replacement characters.
  if (r.code !== 2) assert.equal(row?.fname, "Иван");
});

Deno.test("import cards: a row naming its owner only by customer_id is not silently imported without an owner", async () => {
  await using dir = await tempDir("bb3_");
  const kvPath = `${dir.path}/kv.db`;
  // a customer with no external id (as every webhook-made customer is), id 1 in this store
  const c = await file(dir.path, "c.csv", "phone,fname\n79000000003,NoExt\n");
  assert.equal((await runTask("import", [c], { kvPath })).code, 0);
  // the cards export's own columns: customer_id set, customer_external_id empty
  const k = await file(dir.path, "k.csv", "card_id,uid,customer_id,customer_external_id\n7,CARD-B,1,\n");
  const r = await runTask("import", [k, "--type", "cards"], { kvPath });
  const card = (await exported(kvPath, "cards")).find((row) => row.uid === "CARD-B");
  // either the card is the customer's, or the row is rejected (exit 1); not "created" ownerless with exit 0
  if (card !== undefined) assert.equal(card.customer_id, "1", `exit ${r.code}: ${r.out}${r.err}`);
  else assert.equal(r.code, 1);
});

Deno.test({
  name: "webhooks: a negative Shopify total accrues nothing; WooCommerce shipping tax is not counted as sales",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir("bb3_");
    const kvPath = `${dir.path}/kv.db`;
    const kv = await Deno.openKv(kvPath);
    const key = (await createApiKey(kv, { companyId: "default", userId: 1, access: "write", now: Date.now() })).key;
    kv.close();
    await using server = startServer({ kvPath });
    await server.ready(key);
    const B = server.base;
    assertJson(await request(B, "POST", "/api/bonusprogram/update", { key, form: { name: "P" } }), 200);
    const connect = async (platform: string) =>
      assertJson(
        await request(B, "POST", "/api/connection/update", {
          key,
          form: { platform, shop: "s.example", secret: "secret1234", bonus_id: 1, percent: 10 },
        }),
        200,
      ).webhook_url as string;
    const shopUrl = await connect("shopify");
    const wooUrl = await connect("woocommerce");
    const send = async (url: string, headers: Record<string, string>, body: string) => {
      const k = await crypto.subtle.importKey(
        "raw",
        new TextEncoder().encode("secret1234"),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign"],
      );
      const sig = btoa(String.fromCharCode(
        ...new Uint8Array(await crypto.subtle.sign("HMAC", k, new TextEncoder().encode(body))),
      ));
      const name = url.includes("/shopify/") ? "x-shopify-hmac-sha256" : "x-wc-webhook-signature";
      const r = await fetch(`${B}${url}`, {
        method: "POST",
        headers: { "content-type": "application/json", [name]: sig, ...headers },
        body,
      });
      assert.equal(r.status, 200, await r.text());
    };
    await send(
      shopUrl,
      { "x-shopify-topic": "orders/paid", "x-shopify-webhook-id": "n1" },
      `{"id":3,"email":"neg@x.com","financial_status":"paid","total_price":"-50.00","currency":"USD"}`,
    );
    await send(
      wooUrl,
      { "x-wc-webhook-topic": "order.created" },
      `{"id":8201,"status":"processing","total":"122.00","shipping_total":"10.00","shipping_tax":"2.00",` +
        `"customer_id":0,"billing":{"email":"shiptax@x.com","phone":""},"refunds":[]}`,
    );
    const customer = (email: string) =>
      waitFor(email, async () => {
        const r = assertJson(await request(B, "GET", "/api/customer", { key, query: { email, bonuses: 1 } }), 200);
        return r.count === 1 ? r.customers[0] : undefined;
      });
    // The customer is created before the purchase is recorded (two commits): wait for the delivery to be processed.
    await waitFor("the WooCommerce delivery processed", async () => {
      const s = await runTask("webhooks", ["stats"], { kvPath });
      return /order\.created\s+received 1\s+processed 1/.test(s.out) || undefined;
    });
    const wooCustomer = await customer("shiptax@x.com");
    await waitFor("the Shopify delivery processed", async () => {
      const s = await runTask("webhooks", ["stats"], { kvPath });
      return /orders\/paid\s+received 1\s+processed 1/.test(s.out) || /failed [1-9]|ignored 1/.test(s.out) || undefined;
    });
    const r = assertJson(
      await request(B, "GET", "/api/customer", { key, query: { email: "neg@x.com", bonuses: 1 } }),
      200,
    );
    const neg = r.customers.map((c: { accumulated_sales: number; bonuses: { balance: number }[] }) => ({
      sales: c.accumulated_sales,
      points: c.bonuses[0]?.balance ?? 0,
    }));
    assert.deepEqual(
      { wooSales: wooCustomer.accumulated_sales, negativeShopifyOrder: neg.filter((n: { sales: number }) => n.sales) },
      { wooSales: 110, negativeShopifyOrder: [] },
      "122 paid - 10 shipping - 2 tax on shipping = 110; a total of -50.00 adds no sales and no points",
    );
  },
});

Deno.test("import customers: a later row about the same customer wins (file order), whatever the batch", async () => {
  await using dir = await tempDir("bb3_");
  const kvPath = `${dir.path}/kv.db`;
  const c = await file(dir.path, "c.csv", "external_id,phone,fname\nord1,79001118881,Orig\n");
  assert.equal((await runTask("import", [c], { kvPath })).code, 0);
  const two = await file(dir.path, "two.csv", "external_id,phone,fname,group_name\nord1,,G,GZ\n,79001118881,H,\n");
  assert.equal((await runTask("import", [two], { kvPath })).code, 0);
  const row = (await exported(kvPath, "customers"))[0]!;
  assert.deepEqual([row.fname, row.group_name], ["H", "GZ"], "as with --batch-size 1");
});
