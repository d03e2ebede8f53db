import assert from "node:assert/strict";
import { shareOf } from "../domain/points.ts";
import { webhookKeys } from "../storage/keys.ts";
import { createStore } from "../storage/store.ts";
import type { WebhookEvent } from "../storage/webhooks.ts";
import { handleDelivery, startWebhookListener } from "../usecases/webhooks.ts";
import { SETTINGS, shop } from "./webhooks_kit.ts";

/** A small deterministic random source, so a failing run can be repeated. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function money(minor: number): string {
  return `${Math.floor(minor / 100)}.${String(minor % 100).padStart(2, "0")}`;
}

interface ModelOrder {
  platform: "shopify" | "woocommerce";
  id: string;
  email: string;
  base: number;
  shipping: number;
  refunds: { id: string; amount: number }[];
}

function shopifyOrder(o: ModelOrder): string {
  // Ids above 2^53, written as numbers the way Shopify writes them.
  return `{"id":${o.id},"email":"${o.email}","financial_status":"paid","name":"#${o.id.slice(-4)}",` +
    `"total_price":"${money(o.base + o.shipping)}","total_shipping_price_set":{"shop_money":{"amount":"${
      money(o.shipping)
    }"}},"refunds":[],"customer":{"id":${o.id}1,"email":"${o.email}","first_name":"Ann"}}`;
}

function shopifyRefund(o: ModelOrder, r: { id: string; amount: number }): string {
  return `{"id":${r.id},"order_id":${o.id},"transactions":[{"id":1,"kind":"refund","status":"success","amount":"${
    money(r.amount)
  }"},{"id":2,"kind":"refund","status":"failure","amount":"5.00"}]}`;
}

function wooOrder(o: ModelOrder, status: string, refunds: { id: string; amount: number }[]): string {
  const list = refunds.map((r) => `{"id":${r.id},"reason":"","total":"-${money(r.amount)}"}`).join(",");
  return `{"id":${o.id},"status":"${status}","customer_id":0,"total":"${money(o.base + o.shipping)}",` +
    `"shipping_total":"${money(o.shipping)}","billing":{"email":"${o.email}","phone":""},"refunds":[${list}]}`;
}

Deno.test("a burst of 200 deliveries of 50 orders, shuffled, duplicated, from concurrent clients, ends as the model says", async () => {
  await using s = await shop();
  const rnd = random(20261130);
  const enc = new TextEncoder();
  const orders: ModelOrder[] = [];
  type Delivery = { platform: "shopify" | "woocommerce"; topic: string; body: Uint8Array; webhookId?: string };
  const deliveries: Delivery[] = [];
  for (let i = 0; i < 50; i++) {
    const platform = i % 2 === 0 ? "shopify" : "woocommerce";
    const base = 1000 + Math.floor(rnd() * 50_000);
    const o: ModelOrder = {
      platform,
      id: platform === "shopify" ? String(9007199254740993n + BigInt(i) * 1000n) : String(5000 + i),
      email: `buyer${i % 10}@example.com`,
      base,
      shipping: Math.floor(rnd() * 1000),
      refunds: [],
    };
    const refundCount = Math.floor(rnd() * 3);
    let left = base;
    for (let r = 0; r < refundCount; r++) {
      const amount = Math.min(left, 1 + Math.floor(rnd() * base / 2));
      if (amount <= 0) break;
      left -= amount;
      o.refunds.push({ id: platform === "shopify" ? `${o.id}${r}` : String(90_000 + i * 10 + r), amount });
    }
    orders.push(o);
    if (platform === "shopify") {
      const paid = enc.encode(shopifyOrder(o));
      deliveries.push({ platform, topic: "orders/paid", body: paid, webhookId: `paid-${i}` });
      deliveries.push({ platform, topic: "orders/paid", body: paid, webhookId: `paid-${i}` }); // a retry
      deliveries.push({ platform, topic: "orders/create", body: paid, webhookId: `create-${i}` });
      for (const r of o.refunds) {
        const body = enc.encode(shopifyRefund(o, r));
        deliveries.push({ platform, topic: "refunds/create", body, webhookId: `refund-${r.id}` });
        deliveries.push({ platform, topic: "refunds/create", body, webhookId: `refund-again-${r.id}` });
      }
    } else {
      deliveries.push({ platform, topic: "order.created", body: enc.encode(wooOrder(o, "pending", [])) });
      deliveries.push({ platform, topic: "order.updated", body: enc.encode(wooOrder(o, "processing", [])) });
      deliveries.push({ platform, topic: "order.updated", body: enc.encode(wooOrder(o, "completed", [])) });
      for (let r = 1; r <= o.refunds.length; r++) {
        deliveries.push({
          platform,
          topic: "order.updated",
          body: enc.encode(wooOrder(o, "completed", o.refunds.slice(0, r))),
        });
      }
    }
  }
  while (deliveries.length < 200) deliveries.push(deliveries[Math.floor(rnd() * deliveries.length)]!);
  deliveries.length = 200;
  for (let i = deliveries.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [deliveries[i], deliveries[j]] = [deliveries[j]!, deliveries[i]!];
  }
  // Every order's paid delivery must be in the burst for the model to count it.
  for (const o of orders) {
    const topic = o.platform === "shopify" ? "orders/paid" : "order.updated";
    if (!deliveries.some((d) => d.topic === topic && new TextDecoder().decode(d.body).includes(`"id":${o.id},`))) {
      deliveries.push({
        platform: o.platform,
        topic,
        body: enc.encode(o.platform === "shopify" ? shopifyOrder(o) : wooOrder(o, "processing", [])),
      });
    }
  }
  const clients = 8;
  let next = 0;
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < deliveries.length) {
      const d = deliveries[next++]!;
      const r = await s.deliver(d.platform, d.topic, d.body, { webhookId: d.webhookId });
      assert.equal(r.status, 200);
    }
  }));
  const events = await s.drain();
  assert.ok(events.every((e) => e.status !== "dead"), JSON.stringify(events.filter((e) => e.status === "dead")));

  // The model: only refunds that were delivered count (a refund left out of the burst never happened).
  const delivered = new Set(deliveries.map((d) => new TextDecoder().decode(d.body)));
  const expected = new Map<string, { sales: number; balance: number; entries: number }>();
  for (const o of orders) {
    const refunds = o.refunds.filter((r, k) =>
      o.platform === "shopify"
        ? delivered.has(shopifyRefund(o, r))
        : o.refunds.slice(k).some((_, m) => delivered.has(wooOrder(o, "completed", o.refunds.slice(0, k + m + 1))))
    );
    const returned = refunds.reduce((a, r) => a + r.amount, 0);
    const accrued = Math.floor(o.base / 10);
    const e = expected.get(o.email) ?? { sales: 0, balance: 0, entries: 0 };
    e.sales += o.base - returned;
    e.balance += accrued - shareOf(accrued, returned, o.base);
    e.entries += (accrued > 0 ? 1 : 0) + refunds.length;
    expected.set(o.email, e);
  }
  for (const [email, e] of expected) {
    const got = await s.customerByEmail(email);
    assert.ok(got, email);
    const ledger = await s.ledger(got.id);
    assert.deepEqual({ sales: got.sales, balance: got.balance, entries: ledger.length }, e, email);
    assert.equal(ledger.reduce((a, x) => a + x.amount, 0), got.balance);
  }
});

Deno.test("deliveries of one order processed at once by two workers accrue and refund exactly once", async () => {
  await using s = await shop({ listen: false });
  const enc = new TextEncoder();
  const o: ModelOrder = {
    platform: "shopify",
    id: "820982911946154508",
    email: "race@example.com",
    base: 10_000,
    shipping: 500,
    refunds: [{ id: "7001", amount: 2500 }, { id: "7002", amount: 7500 }],
  };
  for (let i = 0; i < 4; i++) await s.deliver("shopify", "orders/paid", enc.encode(shopifyOrder(o)));
  for (const r of o.refunds) {
    for (let i = 0; i < 3; i++) await s.deliver("shopify", "refunds/create", enc.encode(shopifyRefund(o, r)));
  }
  const ids: string[] = [];
  for await (const e of s.w.kv.list<WebhookEvent>({ prefix: webhookKeys.events() })) ids.push(e.value.id);
  assert.equal(ids.length, 10);
  // Two workers with their own process state (as two isolates of `deno serve --parallel`).
  const a = createStore(s.w.kv);
  const b = createStore(s.w.kv);
  await Promise.all(ids.map((id, i) => handleDelivery(i % 2 ? a : b, id, SETTINGS)));
  // Lost races were re-enqueued with a backoff: let a listener finish them.
  const listening = startWebhookListener(createStore(s.w.kv), SETTINGS);
  await s.drain();
  const got = await s.customerByEmail("race@example.com");
  assert.deepEqual({ sales: got!.sales, balance: got!.balance }, { sales: 0, balance: 0 });
  const ledger = await s.ledger(got!.id);
  // The two refunds may land in either order; each exactly once, after the accrual.
  assert.deepEqual(ledger[0] && [ledger[0].kind, ledger[0].amount], ["accrual", 1000]);
  assert.deepEqual(ledger.slice(1).map((e) => e.amount).sort((x, y) => x - y), [-750, -250]);
  await s[Symbol.asyncDispose]();
  await listening;
});
