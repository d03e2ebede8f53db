/**
 * What issue 11 asks beyond the first webhook branch: ledger entries name their source and the shop's order
 * reference, one customer per platform customer under concurrency, retention of deliveries, guest orders skipped
 * and counted, refund reasons, WooCommerce order.deleted and Shopify orders/cancelled, and the stats.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { defaultSource, type LedgerEntry, sourceOf } from "../domain/bonus.ts";
import { bonusKeys, webhookKeys } from "../storage/keys.ts";
import { getConnection } from "../storage/connections.ts";
import { createStore } from "../storage/store.ts";
import type { WebhookEvent } from "../storage/webhooks.ts";
import { handleDelivery, processAction, receiveWebhook, retryDeadLetter, webhookStats } from "../usecases/webhooks.ts";
import { saveConnection } from "../usecases/connections.ts";
import { saveDirectoryEntry } from "../usecases/directories.ts";
import { hmacKey, signBody } from "../domain/webhooks.ts";
import { shopifyAction } from "../domain/shopify.ts";
import { edit, fixture, SETTINGS, shop } from "./webhooks_kit.ts";

const enc = new TextEncoder();

Deno.test("bonusHistory shows each entry's source and the shop's order reference, in JSON and XML", async () => {
  await using s = await shop();
  await s.deliver("shopify", "orders/paid", await fixture("shopify_orders_paid.json"));
  await s.drain();
  await s.deliver("shopify", "refunds/create", await fixture("shopify_refunds_create.json"));
  await s.deliver("woocommerce", "order.created", await fixture("woocommerce_order_created.json"));
  await s.drain();
  const john = await s.customerByEmail("john@example.com");
  // The same customer at the till and through updateBonus.
  const bought = await s.w.call("POST", "/api/purchase", {
    form: { customer_id: john!.id, bonus_id: s.bonusId, order_id: "T-1", amount: "100" },
  });
  assert.equal(bought.status, 200, bought.text);
  const returned = await s.w.call("POST", "/api/purchase/return", {
    form: { order_id: "T-1", return_id: "R-1", amount: "50" },
  });
  assert.equal(returned.status, 200, returned.text);
  const adjusted = await s.w.call("POST", "/api/customer/updateBonus", {
    form: { customer_id: john!.id, bonus_id: s.bonusId, amount: "1", order_id: "X-9" },
  });
  assert.equal(adjusted.status, 200, adjusted.text);

  const query = { customer_id: john!.id, bonus_id: s.bonusId, page_size: 100 };
  const json = await s.w.call("GET", "/api/customer/bonusHistory", { query });
  assert.equal(json.status, 200, json.text);
  const rows = (json.body.transactions as Record<string, unknown>[]).map((t) => [
    t.kind,
    t.source,
    t.order_id,
    t.return_id,
    t.comment,
  ]);
  assert.deepEqual(rows, [
    ["adjust", "api", "X-9", null, null],
    ["return", "till", "T-1", "R-1", null],
    ["accrual", "till", "T-1", null, null],
    ["return", "shopify", "#9999", "refund:890088186047892319", "shopify refund: Things were damaged"],
    ["accrual", "shopify", "#9999", null, "shopify order #9999"],
  ]);
  const xml = await s.w.call("GET", "/api/customer/bonusHistory", { query: { ...query, format: "xml" } });
  assert.equal(xml.status, 200);
  assert.match(xml.text, /<source>shopify<\/source>/);
  assert.match(xml.text, /<source>till<\/source>/);
  assert.match(xml.text, /<order_id>#9999<\/order_id>/);

  const woo = await s.customerByEmail("john.doe@example.com");
  const wooRows = (await s.w.call("GET", "/api/customer/bonusHistory", {
    query: { customer_id: woo!.id, bonus_id: s.bonusId },
  })).body.transactions as Record<string, unknown>[];
  assert.deepEqual(wooRows.map((t) => [t.source, t.order_id]), [["woocommerce", "727"]]);
});

Deno.test("defaultSource() names a write's source by kind and actor; sourceOf() keeps a stored one", () => {
  assert.equal(defaultSource("expire", "webhook:abc"), "expiry");
  assert.equal(defaultSource("overwrite", "import:customers.csv"), "import");
  assert.equal(defaultSource("adjust", "admin:ann"), "admin");
  assert.equal(defaultSource("accrual", "key:1"), "till");
  assert.equal(defaultSource("return", "key:1"), "till");
  assert.equal(defaultSource("adjust", "key:1"), "api");
  assert.equal(defaultSource("adjust", "task:expire"), "api");
  const entry = { overwrite: false, kind: "accrual", source: "woocommerce" } as LedgerEntry;
  assert.equal(sourceOf(entry), "woocommerce");
  assert.equal(sourceOf({ ...entry, source: undefined }), "till");
  assert.equal(sourceOf({ overwrite: true } as LedgerEntry), "api");
});

Deno.test("entries written before sources show one derived from their kind", async () => {
  await using s = await shop({ listen: false });
  const c = await s.w.call("POST", "/api/customer/update", { form: { email: "old@example.com" } });
  const id = c.body.id as number;
  // Three entries as the ledger held them before `source` existed.
  const old = (n: number, kind: LedgerEntry["kind"], amount: number, balance: number): LedgerEntry => ({
    transaction_id: n,
    customer_id: id,
    bonus_id: s.bonusId,
    amount,
    balance,
    overwrite: false,
    comment: null,
    order_id: null,
    created_date: Date.now(),
    created_by: 2,
    idempotency_key: null,
    request_id: crypto.randomUUID(),
    kind,
  });
  await s.w.kv.atomic()
    .set(bonusKeys.ledgerEntry("acme", id, s.bonusId, 1), old(1, "accrual", 500, 500))
    .set(bonusKeys.ledgerEntry("acme", id, s.bonusId, 2), old(2, "expire", -100, 400))
    .set(bonusKeys.ledgerEntry("acme", id, s.bonusId, 3), { ...old(3, "adjust", 100, 500), kind: undefined })
    .set(bonusKeys.balance("acme", id, s.bonusId), { balance: 500, last_transaction_id: 3 })
    .commit();
  const r = await s.w.call("GET", "/api/customer/bonusHistory", { query: { customer_id: id, bonus_id: s.bonusId } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(
    (r.body.transactions as Record<string, unknown>[]).map((t) => [t.kind, t.source]),
    [["adjust", "api"], ["expire", "expiry"], ["accrual", "till"]],
  );
});

Deno.test("concurrent creates of one platform customer without phone or email make one customer", async () => {
  await using s = await shop({ listen: false });
  const connection = (await getConnection(s.w.kv, s.shopify))!;
  const rounds = 12;
  for (let i = 0; i < rounds; i++) {
    const action = shopifyAction("customers/create", { id: `9${i}00000000000000001`, first_name: `Guest${i}` });
    // Four workers with their own process state (as isolates of `deno serve --parallel`).
    const results = await Promise.all(
      [0, 1, 2, 3].map(() => processAction(createStore(s.w.kv), connection, action, SETTINGS)),
    );
    const ids = new Set(results.map((r) => r.outcome));
    assert.equal(ids.size, 1, `round ${i}: ${[...ids].join(", ")}`);
  }
  const list = await s.w.call("GET", "/api/customer", { query: { page: 1, page_size: 100 } });
  assert.equal(list.body.total_count, rounds);
  let links = 0;
  for await (const _ of s.w.kv.list({ prefix: ["company", "acme", "webhook_customer_links"] })) links++;
  assert.equal(links, rounds);
});

Deno.test("guest orders: found or made from the billing email or phone; with neither, skipped and counted", async () => {
  await using s = await shop();
  const guest = (id: number, extra: string) =>
    enc.encode(
      `{"id":${id},"name":"#${id}","financial_status":"paid","total_price":"20.00",${extra}"customer":null}`,
    );
  // Shopify guest with only a billing address phone: a customer made with that phone.
  await s.deliver("shopify", "orders/paid", guest(501, `"billing_address":{"phone":"+7 900 111-22-33"},`));
  // WooCommerce guest with a billing email of a customer we have.
  const till = await s.w.call("POST", "/api/customer/update", { form: { email: "guest@example.com" } });
  const woo = edit(await fixture("woocommerce_order_created.json"), [
    [/"customer_id": \d+/, '"customer_id": 0'],
    ['"email": "john.doe@example.com"', '"email": "GUEST@example.com"'],
    ['"phone": "(555) 555-5555"', '"phone": ""'],
  ]);
  await s.deliver("woocommerce", "order.created", woo);
  // Neither: skipped.
  await s.deliver("shopify", "orders/paid", guest(502, ""));
  const events = await s.drain();
  assert.deepEqual(events.map((e) => e.status).sort(), ["processed", "processed", "skipped"]);
  const phone = await s.w.call("GET", "/api/customer", { query: { phone: "79001112233" } });
  assert.equal(phone.body.customers.length, 1);
  assert.equal(phone.body.customers[0].accumulated_sales, 20);
  const byEmail = await s.customerByEmail("guest@example.com");
  assert.equal(byEmail!.id, till.body.id);
  assert.equal(byEmail!.sales, 1935);
  const stats = Object.fromEntries(
    (await webhookStats(createStore(s.w.kv), null)).map((x) => [x.connection.platform, x.stats]),
  );
  assert.deepEqual(stats.shopify, { "orders/paid": { received: 2, processed: 1, skipped: 1 } });
  assert.deepEqual(stats.woocommerce, { "order.created": { received: 1, processed: 1 } });
});

Deno.test("refund reasons reach the ledger (WooCommerce `reason` or `refund`); order.deleted takes back the rest", async () => {
  await using s = await shop();
  const order = edit(await fixture("woocommerce_order_updated_with_partial_refunds.json"), [
    ['"refund": ""', '"refund": "Too small"'],
  ]);
  await s.deliver("woocommerce", "order.updated", order);
  await s.drain();
  const joao = await s.customerByEmail("joao.silva@example.com");
  const comments = (await s.ledger(joao!.id)).map((e) => [e.kind, e.comment, e.source]);
  assert.deepEqual(comments.slice(0, 1), [["accrual", "woocommerce order 723", "woocommerce"]]);
  assert.deepEqual(
    comments.slice(1).map((c) => c[1]).sort(),
    ["woocommerce refund", "woocommerce refund: Too small"],
  );
  await s.deliver("woocommerce", "order.deleted", enc.encode('{"id":723}'));
  await s.drain();
  const after = await s.customerByEmail("joao.silva@example.com");
  assert.deepEqual({ sales: after!.sales, balance: after!.balance }, { sales: 0, balance: 0 });
  const last = (await s.ledger(joao!.id)).at(-1)!;
  assert.deepEqual([last.kind, last.return_id, last.order_id, last.comment], [
    "return",
    "close",
    "723",
    "woocommerce cancellation",
  ]);
  // Deleted before it was ever paid: never accrues, even when a paid state arrives later.
  await s.deliver("woocommerce", "order.deleted", enc.encode('{"id":900}'));
  await s.drain();
  await s.deliver(
    "woocommerce",
    "order.updated",
    edit(await fixture("woocommerce_order_updated_completed.json"), [[/"id": 727/, '"id": 900']]),
  );
  await s.drain();
  assert.equal(await s.customerByEmail("john.doe@example.com"), null);
});

Deno.test("Shopify orders/cancelled before the order is paid: it never accrues", async () => {
  await using s = await shop();
  await s.deliver("shopify", "orders/cancelled", await fixture("shopify_orders_create.json"));
  await s.drain();
  await s.deliver("shopify", "orders/paid", await fixture("shopify_orders_paid.json"));
  const events = await s.drain();
  assert.equal(await s.customerByEmail("john@example.com"), null);
  assert.deepEqual(events.map((e) => e.outcome).sort(), [
    "order closed before it was paid",
    "order closed before it was paid: accrues nothing",
  ]);
});

/** The expiry (epoch ms, -1 for none) of every key of a store file whose first part is `collection`. */
function expiries(path: string, collection: string): number[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const prefix = new Uint8Array([2, ...enc.encode(collection), 0]);
    const rows = db.prepare("SELECT k, expiration_ms FROM kv").all() as { k: Uint8Array; expiration_ms: number }[];
    return rows
      .filter((r) => prefix.every((b, i) => r.k[i] === b))
      .map((r) => r.expiration_ms);
  } finally {
    db.close();
  }
}

Deno.test("deliveries, bodies, dedupe markers and dead letters expire; a retried dead letter gets its time again", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/store.kv`;
  const kv = await Deno.openKv(path);
  try {
    const store = createStore(kv);
    const actor = { companyId: "acme", name: "task:test", userId: 0 };
    const program = await saveDirectoryEntry(store, actor, { kind: "bonus_programs", name: "Web" });
    const saved = await saveConnection(store, actor, {
      patch: {
        platform: "shopify",
        shop: "x.myshopify.com",
        secret: "a-long-enough-secret",
        bonusId: program.entry.id,
      },
    });
    const connectionId = saved.connection.id;
    const settings = { ...SETTINGS, retentionMs: 7 * 86_400_000, dedupeTtlMs: 2 * 86_400_000, maxAttempts: 1 };
    const key = await hmacKey("a-long-enough-secret");
    const send = async (topic: string, body: Uint8Array) => {
      const signature = await signBody(key, body);
      const headers: Record<string, string> = {
        "x-shopify-topic": topic,
        "x-shopify-hmac-sha256": signature,
        "x-shopify-webhook-id": crypto.randomUUID(),
      };
      return await receiveWebhook(store, {
        platform: "shopify",
        connectionId,
        header: (n) => headers[n] ?? null,
        body,
      }, settings);
    };
    const t0 = Date.now();
    const good = await send("orders/paid", await fixture("shopify_orders_paid.json"));
    const bad = await send("orders/paid", enc.encode("not json"));
    assert.ok(good.status === 200 && good.eventId && bad.status === 200 && bad.eventId);
    const near = (values: number[], ms: number, from: number) =>
      values.every((v) => v >= from + ms - 1000 && v <= Date.now() + ms + 1000);
    assert.equal(expiries(path, "webhook_events").length, 2);
    assert.ok(near(expiries(path, "webhook_events"), settings.retentionMs, t0));
    assert.ok(near(expiries(path, "webhook_event_bodies"), settings.retentionMs, t0));
    assert.equal(expiries(path, "webhook_dedupe").length, 2);
    assert.ok(near(expiries(path, "webhook_dedupe"), settings.dedupeTtlMs, t0));

    const t1 = Date.now();
    await handleDelivery(store, good.eventId, settings);
    await handleDelivery(store, bad.eventId, settings);
    const states = [];
    for await (const e of kv.list<WebhookEvent>({ prefix: webhookKeys.events() })) states.push(e.value.status);
    assert.deepEqual(states.sort(), ["dead", "processed"]);
    assert.ok(near(expiries(path, "webhook_events"), settings.retentionMs, t1), "kept from the last change");
    assert.deepEqual(expiries(path, "webhook_dead_letters").length, 1);
    assert.ok(near(expiries(path, "webhook_dead_letters"), settings.retentionMs, t1));

    const t2 = Date.now();
    assert.ok(await retryDeadLetter(store, null, bad.eventId, { retentionMs: 3 * 86_400_000 }));
    const event = expiries(path, "webhook_events").sort((a, b) => a - b);
    assert.ok(near(event.slice(0, 1), 3 * 86_400_000, t2), "the retried delivery is kept from its retry");
    assert.ok(expiries(path, "webhook_event_bodies").every((v) => v > t0));
    // Stats counters, connections and what processing wrote to the company are not webhook deliveries: kept.
    assert.ok(expiries(path, "webhook_stats").every((v) => v === -1));
    assert.ok(expiries(path, "webhook_connections").every((v) => v === -1));
    await handleDelivery(store, bad.eventId, settings);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("WEBHOOK_RETENTION_DAYS: default 30, a whole number of days of at least 1", async () => {
  const { loadConfig } = await import("../config.ts");
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.equal(loadConfig(env({})).webhookRetentionDays, 30);
  assert.equal(loadConfig(env({ WEBHOOK_RETENTION_DAYS: "7" })).webhookRetentionDays, 7);
  assert.throws(() => loadConfig(env({ WEBHOOK_RETENTION_DAYS: "0" })), /WEBHOOK_RETENTION_DAYS/);
  assert.throws(() => loadConfig(env({ WEBHOOK_RETENTION_DAYS: "1.5" })), /WEBHOOK_RETENTION_DAYS/);
});

Deno.test("the WooCommerce ping is answered exactly 200 and counts nothing; an unsigned body that is not one is 401", async () => {
  await using s = await shop({ listen: false });
  const post = (platform: string, id: string, body: string) =>
    s.w.app.request(`/webhooks/${platform}/${id}`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body,
    });
  const ping = await post(
    "woocommerce",
    s.woo,
    new TextDecoder().decode(await fixture("woocommerce_webhook_ping.txt")),
  );
  assert.equal(ping.status, 200);
  assert.deepEqual(await ping.json(), { success: 1 });
  assert.equal((await post("woocommerce", s.woo, "webhook_id=12&x=1")).status, 401);
  assert.equal((await post("shopify", s.shopify, "webhook_id=12")).status, 401);
  assert.equal((await post("woocommerce", "00aa00aa00aa00aa", "webhook_id=12")).status, 401);
  const stats = await webhookStats(createStore(s.w.kv), null);
  assert.deepEqual(stats.map((x) => x.stats), [{}, {}]);
});
