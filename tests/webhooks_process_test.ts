import assert from "node:assert/strict";
import { shareOf } from "../domain/points.ts";
import { createStore } from "../storage/store.ts";
import { getOrder } from "../storage/purchases.ts";
import { listDeadLetters, retryDeadLetter } from "../usecases/webhooks.ts";
import { edit, fixture, shop } from "./webhooks_kit.ts";

Deno.test("Shopify: every topic from the documented payloads, replays change nothing, a cancel returns the rest", async () => {
  await using s = await shop();
  const deliverAll = async () => {
    assert.equal(
      (await s.deliver("shopify", "customers/create", await fixture("shopify_customers_create.json"))).status,
      200,
    );
    await s.deliver("shopify", "orders/create", await fixture("shopify_orders_create.json"));
    await s.drain();
    await s.deliver("shopify", "orders/paid", await fixture("shopify_orders_paid.json"));
    await s.drain();
    await s.deliver("shopify", "refunds/create", await fixture("shopify_refunds_create.json"));
    await s.drain();
  };
  await deliverAll();
  const bob = await s.customerByEmail("bob@biller.com");
  assert.ok(bob, "customers/create made the customer");
  assert.equal(bob.sales, 0);
  const john = await s.customerByEmail("john@example.com");
  assert.ok(john, "the order's customer (customer.email, not the order email) was made");
  const base = 40495 - 1000; // total 404.95 less shipping 10.00
  const accrued = Math.floor(base / 10); // 10%, rounded down to 0.01
  const taken = shareOf(accrued, 8500, base); // refund transactions: 85.00
  assert.deepEqual({ sales: john.sales, balance: john.balance }, { sales: base - 8500, balance: accrued - taken });
  const ledger = await s.ledger(john.id);
  assert.deepEqual(ledger.map((e) => [e.kind, e.amount]), [["accrual", accrued], ["return", -taken]]);
  // The ledger shows the order as the shop does; the purchase is kept under the exact id (above 2^53).
  assert.deepEqual(ledger.map((e) => [e.order_id, e.source]), [["#9999", "shopify"], ["#9999", "shopify"]]);
  assert.ok(await getOrder(s.w.kv, "acme", `shopify:${s.shopify}:820982911946154508`), "the id above 2^53 is exact");
  assert.match(ledger[0]!.comment!, /^shopify order #9999$/);

  // Every delivery again (new webhook ids: the platform sending them again): nothing changes.
  await deliverAll();
  assert.deepEqual(await s.customerByEmail("john@example.com"), john);
  assert.equal((await s.ledger(john.id)).length, 2);

  await s.deliver("shopify", "orders/cancelled", await fixture("shopify_orders_paid.json"));
  await s.drain();
  const after = await s.customerByEmail("john@example.com");
  assert.deepEqual({ sales: after!.sales, balance: after!.balance }, { sales: 0, balance: 0 });
});

Deno.test("Shopify: a refund before the order is paid is applied once it is", async () => {
  await using s = await shop();
  await s.deliver("shopify", "refunds/create", await fixture("shopify_refunds_create.json"));
  await s.drain();
  assert.equal(await s.customerByEmail("john@example.com"), null);
  await s.deliver("shopify", "orders/paid", await fixture("shopify_orders_paid.json"));
  await s.deliver("shopify", "orders/paid", await fixture("shopify_orders_paid.json"));
  await s.drain();
  const john = await s.customerByEmail("john@example.com");
  const base = 39495;
  const accrued = Math.floor(base / 10);
  assert.deepEqual({ sales: john!.sales, balance: john!.balance }, {
    sales: base - 8500,
    balance: accrued - shareOf(accrued, 8500, base),
  });
});

Deno.test("WooCommerce: orders count once paid, refunds by id, a full refund leaves the customer where they were", async () => {
  await using s = await shop();
  await s.deliver("woocommerce", "customer.created", await fixture("woocommerce_customer_created.json"));
  await s.deliver("woocommerce", "order.created", await fixture("woocommerce_order_created.json"));
  await s.drain();
  await s.deliver("woocommerce", "order.updated", await fixture("woocommerce_order_updated_completed.json"));
  await s.deliver("woocommerce", "order.updated", await fixture("woocommerce_order_updated_completed.json"));
  await s.drain();
  const john = await s.customerByEmail("john.doe@example.com");
  assert.deepEqual({ sales: john!.sales, balance: john!.balance }, { sales: 1935, balance: 193 });

  await s.deliver("woocommerce", "order.updated", await fixture("woocommerce_order_updated_with_partial_refunds.json"));
  await s.drain();
  const joao = await s.customerByEmail("joao.silva@example.com");
  // 39.00 less 10.00 shipping counted; refunds 10.00 + 9.00 taken back in proportion.
  assert.deepEqual({ sales: joao!.sales, balance: joao!.balance }, {
    sales: 2900 - 1900,
    balance: 290 - shareOf(290, 1900, 2900),
  });
  await s.deliver("woocommerce", "order.updated", await fixture("woocommerce_order_refunded.json"));
  await s.drain();
  const after = await s.customerByEmail("joao.silva@example.com");
  assert.deepEqual({ sales: after!.sales, balance: after!.balance }, { sales: 0, balance: 0 });
  const events = await s.drain();
  assert.ok(events.every((e) => e.status === "processed" || e.status === "ignored"));
});

Deno.test("WooCommerce: an order first seen refunded accrues nothing, even when an older state arrives later", async () => {
  await using s = await shop();
  await s.deliver("woocommerce", "order.updated", await fixture("woocommerce_order_refunded.json"));
  await s.drain();
  await s.deliver("woocommerce", "order.updated", await fixture("woocommerce_order_updated_with_partial_refunds.json"));
  await s.drain();
  assert.equal(await s.customerByEmail("joao.silva@example.com"), null);
});

Deno.test("an order paid below min_order counts in sales but accrues nothing; empty percent uses the program", async () => {
  await using s = await shop({ percent: "" });
  await s.deliver("woocommerce", "order.created", await fixture("woocommerce_order_created.json"));
  await s.drain();
  const john = await s.customerByEmail("john.doe@example.com");
  assert.deepEqual({ sales: john!.sales, balance: john!.balance }, { sales: 1935, balance: 96 }); // program: 5%
  await s.w.call("POST", "/api/connection/update", { query: { connection_id: s.woo }, form: { min_order: "100" } });
  const other = edit(await fixture("woocommerce_order_created.json"), [['"id": 727', '"id": 728']]);
  await s.deliver("woocommerce", "order.created", other);
  await s.drain();
  const again = await s.customerByEmail("john.doe@example.com");
  assert.deepEqual({ sales: again!.sales, balance: again!.balance }, { sales: 3870, balance: 96 });
});

Deno.test("a failing attempt is retried with backoff and then succeeds; a permanent failure is a dead letter, replayed", async () => {
  let failures = 2;
  let broken = false;
  await using s = await shop({
    listener: {
      beforeProcess: () => {
        if (broken) throw new Error("injected: always");
        if (failures-- > 0) throw new Error("injected: once more");
      },
    },
  });
  await s.deliver("woocommerce", "order.created", await fixture("woocommerce_order_created.json"));
  const [first] = await s.drain();
  assert.equal(first!.status, "processed");
  assert.equal(first!.attempts, 2);
  assert.equal((await s.customerByEmail("john.doe@example.com"))!.balance, 193);

  broken = true;
  await s.deliver("woocommerce", "order.updated", await fixture("woocommerce_order_updated_with_partial_refunds.json"));
  const events = await s.drain();
  const dead = events.find((e) => e.status === "dead");
  assert.ok(dead);
  assert.equal(dead.attempts, 3);
  const store = createStore(s.w.kv);
  const letters = await listDeadLetters(store, null);
  assert.deepEqual(letters.map((l) => l.id), [dead.id]);
  assert.match(letters[0]!.error, /injected: always/);
  assert.equal(await s.customerByEmail("joao.silva@example.com"), null);

  broken = false;
  assert.ok(await retryDeadLetter(store, null, dead.id));
  assert.equal(await retryDeadLetter(store, null, dead.id), null, "a dead letter is replayed once");
  await s.drain();
  assert.deepEqual(await listDeadLetters(store, null), []);
  assert.equal((await s.customerByEmail("joao.silva@example.com"))!.sales, 1000);
});

Deno.test("a payload that is not JSON becomes a dead letter at once", async () => {
  await using s = await shop();
  await s.deliver("shopify", "orders/paid", new TextEncoder().encode("{not json"));
  const [e] = await s.drain();
  assert.equal(e!.status, "dead");
  assert.equal(e!.attempts, 1);
});

Deno.test("a customer who first came through the till is matched (phone, then email), not duplicated; updates apply", async () => {
  await using s = await shop();
  const till = await s.w.call("POST", "/api/customer/update", {
    form: { email: "JOHN.DOE@example.com", fname: "Johnny" },
  });
  assert.equal(till.status, 200);
  await s.deliver("woocommerce", "customer.created", await fixture("woocommerce_customer_created.json"));
  await s.drain();
  const found = await s.customerByEmail("john.doe@example.com");
  assert.equal(found!.id, till.body.id);
  const updated = edit(await fixture("woocommerce_customer_created.json"), [[
    '"first_name": "John"',
    '"first_name": "Jon"',
  ]]);
  await s.deliver("woocommerce", "customer.updated", updated);
  await s.drain();
  const view = await s.w.call("GET", "/api/customer", { query: { id: till.body.id } });
  assert.equal(view.body.customers[0].fname, "Jon");
  const list = await s.w.call("GET", "/api/customer", { query: { page: 1, page_size: 10 } });
  assert.equal(list.body.total_count, 1);
});

Deno.test("a body larger than one stored value is kept in chunks and processed; over the webhook limit is 413", async () => {
  await using s = await shop();
  const padded = edit(await fixture("shopify_orders_paid.json"), [[
    '"note": null',
    `"note": "${"x".repeat(150_000)}"`,
  ]]);
  assert.ok(padded.length > 150_000);
  assert.equal((await s.deliver("shopify", "orders/paid", padded)).status, 200);
  const [e] = await s.drain();
  assert.equal(e!.chunks, 3);
  assert.equal(e!.status, "processed");
  assert.equal((await s.customerByEmail("john@example.com"))!.sales, 39495);
  const huge = new Uint8Array(600 * 1024).fill(32);
  assert.equal((await s.deliver("shopify", "orders/paid", huge)).status, 413);
});
