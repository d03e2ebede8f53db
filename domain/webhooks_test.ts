import assert from "node:assert/strict";
import { dedupeKey, hmacKey, isWooPing, parseJsonLossless, signBody, verifySignature } from "./webhooks.ts";
import { shopifyAction } from "./shopify.ts";
import { wooAction } from "./woocommerce.ts";

Deno.test("parseJsonLossless() keeps ids above 2^53 exact and leaves strings and small numbers alone", () => {
  const text = '{"id":820982911946154508,"n":-12345678901234567,"s":"820982911946154508 \\" 1234567890123456789",' +
    '"small":42,"price":"1.50","f":1.5e3,"list":[9007199254740993]}';
  assert.deepEqual(parseJsonLossless(text), {
    id: "820982911946154508",
    n: "-12345678901234567",
    s: '820982911946154508 " 1234567890123456789',
    small: 42,
    price: "1.50",
    f: 1500,
    list: ["9007199254740993"],
  });
  assert.throws(() => parseJsonLossless("{bad"));
});

Deno.test("verifySignature() accepts the exact bytes only", async () => {
  const key = await hmacKey("secret-1234");
  const body = new TextEncoder().encode('{"a":"\\/x"}');
  const sig = await signBody(key, body);
  assert.equal(await verifySignature(key, body, sig), true);
  assert.equal(await verifySignature(key, new TextEncoder().encode('{"a":"/x"}'), sig), false);
  assert.equal(await verifySignature(await hmacKey("other-1234"), body, sig), false);
  assert.equal(await verifySignature(key, body, null), false);
  assert.equal(await verifySignature(key, body, "not base64!"), false);
  assert.equal(await verifySignature(key, body, btoa("short")), false);
});

Deno.test("isWooPing() and dedupeKey()", () => {
  assert.equal(isWooPing(new TextEncoder().encode("webhook_id=12")), true);
  assert.equal(isWooPing(new TextEncoder().encode('{"id":12}')), false);
  assert.equal(dedupeKey("shopify", { topic: "orders/paid", signature: "x", webhookId: "w1" }, "h"), "id:w1");
  assert.equal(
    dedupeKey("woocommerce", { topic: "order.updated", signature: "x", webhookId: null }, "h"),
    "body:order.updated:h",
  );
});

Deno.test("shopifyAction() maps orders, refunds (successful refund transactions) and customers", () => {
  const order = shopifyAction(
    "orders/paid",
    parseJsonLossless(
      '{"id":820982911946154508,"financial_status":"voided","total_price":"404.95","name":"#9999",' +
        '"total_shipping_price_set":{"shop_money":{"amount":"10.00"}},"email":"jon@example.com",' +
        '"customer":{"id":115310627314723954,"email":"john@example.com","email_marketing_consent":{"state":"subscribed"}}}',
    ),
  );
  assert.equal(order.kind, "order");
  if (order.kind !== "order") return;
  assert.equal(order.order.orderId, "820982911946154508");
  assert.equal(order.order.state, "paid");
  assert.equal(order.order.base, 39495);
  assert.equal(order.order.customer.externalId, "115310627314723954");
  assert.equal(order.order.customer.email, "john@example.com");
  assert.equal(order.order.customer.acceptsEmail, true);
  const created = shopifyAction("orders/create", { id: "1", financial_status: "pending", total_price: "1.00" });
  assert.equal(created.kind === "order" && created.order.state, "pending");
  const cancelled = shopifyAction("orders/cancelled", { id: "1", financial_status: "paid", total_price: "1.00" });
  assert.equal(cancelled.kind === "order" && cancelled.order.state, "closed");
  const refund = shopifyAction("refunds/create", {
    id: "5",
    order_id: "1",
    transactions: [
      { kind: "refund", status: "success", amount: "75.00" },
      { kind: "refund", status: "failure", amount: "10.00" },
      { kind: "sale", status: "success", amount: "99.00" },
    ],
  });
  assert.deepEqual(refund, { kind: "refund", orderId: "1", refund: { id: "5", amount: 7500, reason: null } });
  const noted = shopifyAction("refunds/create", { id: "6", order_id: "1", note: "Damaged", transactions: [] });
  assert.deepEqual(noted, { kind: "refund", orderId: "1", refund: { id: "6", amount: 0, reason: "Damaged" } });
  assert.equal(shopifyAction("products/create", {}).kind, "ignore");
});

Deno.test("wooAction() maps statuses, refunds (negative totals, reason or refund) and guests", () => {
  const a = wooAction("order.updated", {
    id: 723,
    status: "completed",
    total: "39.00",
    shipping_total: "10.00",
    customer_id: 0,
    billing: { email: "a@example.com", phone: "" },
    refunds: [
      { id: 726, reason: "", total: "-10.00" },
      { id: 724, refund: "", total: "-9.00" },
      { id: 725, reason: "Too big", total: "-1.00" },
      { id: 727, refund: "Wrong colour", total: "-2.00" },
    ],
  });
  assert.equal(a.kind, "order");
  if (a.kind !== "order") return;
  assert.equal(a.order.state, "paid");
  assert.equal(a.order.base, 2900);
  assert.equal(a.order.customer.externalId, null);
  assert.deepEqual(a.order.refunds, [
    { id: "726", amount: 1000, reason: null },
    { id: "724", amount: 900, reason: null },
    { id: "725", amount: 100, reason: "Too big" },
    { id: "727", amount: 200, reason: "Wrong colour" },
  ]);
  for (
    const [status, state] of [["processing", "paid"], ["pending", "pending"], ["refunded", "closed"], [
      "cancelled",
      "closed",
    ]]
  ) {
    const x = wooAction("order.updated", { id: 1, status, total: "1.00" });
    assert.equal(x.kind === "order" && x.order.state, state, status);
  }
  const deleted = wooAction("order.deleted", { id: 1 });
  assert.equal(deleted.kind === "order" && deleted.order.state, "closed");
});
