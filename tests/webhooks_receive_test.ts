import assert from "node:assert/strict";
import { webhookKeys } from "../storage/keys.ts";
import { edit, fixture, SECRET, shop } from "./webhooks_kit.ts";

Deno.test("connections: create, list without the secret, change, refuse bad input", async (t) => {
  await using s = await shop({ listen: false });
  await t.step("list never shows the secret", async () => {
    const r = await s.w.call("GET", "/api/connection");
    assert.equal(r.status, 200);
    assert.equal(r.body.count, 2);
    assert.ok(!r.text.includes(SECRET));
    assert.equal(r.body.connections[0].webhook_url.startsWith("/webhooks/"), true);
    const xml = await s.w.call("GET", "/api/connection", { query: { format: "xml" } });
    assert.equal(xml.status, 200);
    assert.ok(!xml.text.includes(SECRET));
  });
  await t.step("change keeps the id; unknown id is 404; missing field named", async () => {
    const r = await s.w.call("POST", "/api/connection/update", {
      query: { connection_id: s.shopify },
      form: { percent: "2.5", name: "Main shop" },
    });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, {
      success: 1,
      connection_id: s.shopify,
      isnew: 0,
      webhook_url: `/webhooks/shopify/${s.shopify}`,
    });
    const missing = await s.w.call("POST", "/api/connection/update", {
      query: { connection_id: "abc" },
      form: { name: "x" },
    });
    assert.equal(missing.status, 404);
    const bad = await s.w.call("POST", "/api/connection/update", { form: { platform: "shopify", shop: "x" } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.field, "secret");
    const badPlatform = await s.w.call("POST", "/api/connection/update", { form: { platform: "magento" } });
    assert.equal(badPlatform.status, 400);
    assert.equal(badPlatform.body.field, "platform");
    const other = await s.w.call("GET", "/api/connection", { key: s.w.otherKey });
    assert.equal(other.body.count, 0);
  });
  await t.step("audit entries never hold the secret", async () => {
    let found = 0;
    for await (const e of s.w.kv.list({ prefix: ["company", "acme", "audit", "connection"] })) {
      found++;
      assert.ok(!JSON.stringify(e.value).includes(SECRET));
    }
    assert.ok(found >= 3);
  });
});

Deno.test("receiving: signatures, ping, and what a refusal leaves behind", async (t) => {
  await using s = await shop({ listen: false });
  const body = await fixture("shopify_orders_paid.json");
  const count = async () => {
    let n = 0;
    for await (const _ of s.w.kv.list({ prefix: webhookKeys.events() })) n++;
    return n;
  };
  await t.step(
    "wrong secret, missing signature, one byte altered, re-serialised body: 401, nothing stored",
    async () => {
      assert.equal((await s.deliver("shopify", "orders/paid", body, { secret: "wrong-secret-123" })).status, 401);
      assert.equal((await s.deliver("shopify", "orders/paid", body, { secret: null })).status, 401);
      const sig = await (await import("../domain/webhooks.ts")).signBody(
        await (await import("../domain/webhooks.ts")).hmacKey(SECRET),
        body,
      );
      const altered = body.slice();
      altered[100] = altered[100]! ^ 1;
      const r = await s.w.app.request(`/webhooks/shopify/${s.shopify}`, {
        method: "POST",
        headers: { "X-Shopify-Hmac-Sha256": sig, "X-Shopify-Topic": "orders/paid" },
        body: altered,
      });
      assert.equal(r.status, 401);
      const reserialised = new TextEncoder().encode(JSON.stringify(JSON.parse(new TextDecoder().decode(body))));
      const r2 = await s.w.app.request(`/webhooks/shopify/${s.shopify}`, {
        method: "POST",
        headers: { "X-Shopify-Hmac-Sha256": sig, "X-Shopify-Topic": "orders/paid" },
        body: reserialised,
      });
      assert.equal(r2.status, 401);
      assert.equal((await s.deliver("shopify", "orders/paid", body, { connection: "0000ffff" })).status, 401);
      assert.equal((await s.deliver("shopify", "orders/paid", body, { connection: s.woo })).status, 401);
      assert.equal(await count(), 0);
    },
  );
  await t.step("the WooCommerce ping gets 200 and nothing else", async () => {
    const ping = await fixture("woocommerce_webhook_ping.txt");
    const r = await s.w.app.request(`/webhooks/woocommerce/${s.woo}`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: ping as Uint8Array<ArrayBuffer>,
    });
    assert.equal(r.status, 200);
    assert.equal(await count(), 0);
  });
  await t.step("a good delivery is stored once; the same webhook id again is a duplicate", async () => {
    assert.equal((await s.deliver("shopify", "orders/paid", body, { webhookId: "w-1" })).status, 200);
    assert.equal((await s.deliver("shopify", "orders/paid", body, { webhookId: "w-1" })).status, 200);
    assert.equal(await count(), 1);
    const woo = await fixture("woocommerce_order_created.json");
    assert.equal((await s.deliver("woocommerce", "order.created", woo)).status, 200);
    assert.equal((await s.deliver("woocommerce", "order.created", woo)).status, 200);
    assert.equal(await count(), 2);
  });
  await t.step("GET is 405; an unknown topic is 200 and ignored", async () => {
    const r = await s.w.app.request(`/webhooks/shopify/${s.shopify}`);
    assert.equal(r.status, 405);
    assert.equal((await s.deliver("shopify", "products/create", edit(body, []))).status, 200);
    assert.equal(await count(), 2);
  });
});
