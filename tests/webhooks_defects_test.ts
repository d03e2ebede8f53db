/**
 * The webhook defects an outside tester found (issue 11, tests/blackbox_3_test.ts): address phones merging two
 * people, a matched customer's contacts overwritten, negative money counted, shipping tax counted as sales, an
 * over-long id retried instead of dead-lettered, the retry task's summary and its missing audit entry.
 */
import assert from "node:assert/strict";
import { shopifyAction, shopifyCustomer } from "../domain/shopify.ts";
import { wooAction } from "../domain/woocommerce.ts";
import type { AuditEntry } from "../domain/audit.ts";
import { auditKeys } from "../storage/keys.ts";
import { createStore } from "../storage/store.ts";
import { handleDelivery, listDeadLetters, receiveWebhook, retryDeadLetter } from "../usecases/webhooks.ts";
import { saveConnection } from "../usecases/connections.ts";
import { saveDirectoryEntry } from "../usecases/directories.ts";
import { hmacKey, moneyOf, PayloadError, signBody } from "../domain/webhooks.ts";
import { runTask, tempDir } from "./kit.ts";
import { edit, fixture, SETTINGS, shop } from "./webhooks_kit.ts";

const enc = new TextEncoder();

Deno.test("shopifyCustomer() reads the customer's own phone, never an address's", async () => {
  const bob = JSON.parse(new TextDecoder().decode(await fixture("shopify_customers_create.json")));
  assert.equal(bob.default_address.phone, "555-555-5555");
  const c = shopifyCustomer(bob);
  assert.equal(c.phone, null);
  assert.equal(c.email, "bob@biller.com");
  assert.equal(shopifyCustomer({ id: 1, phone: "+79001234567" }).phone, "+79001234567");
  // In an order: the customer's phone, else the order's own contact phone; the billing address's is not read.
  const order = shopifyAction("orders/paid", {
    id: 5,
    total_price: "10.00",
    phone: null,
    customer: { id: 9, phone: null, default_address: { phone: "+79001111111" } },
    billing_address: { phone: "+79002222222" },
  });
  assert.ok(order.kind === "order");
  assert.equal(order.order.customer.phone, null);
  // A guest order (no customer object) is still found or made from the billing phone, as the issue asks.
  const guest = shopifyAction("orders/paid", {
    id: 6,
    total_price: "10.00",
    billing_address: { phone: "+79002222222" },
  });
  assert.ok(guest.kind === "order");
  assert.equal(guest.order.customer.phone, "+79002222222");
});

Deno.test("a matched customer of ours keeps its email and phone; names follow; a customer we created follows all", async () => {
  await using s = await shop();
  const till = await s.w.call("POST", "/api/customer/update", {
    form: { fname: "John", lname: "Doe", email: "john.doe@example.com", phone: "79001234567" },
  });
  assert.equal(till.status, 200, till.text);
  const customer = (id: number, email: string, first: string, phone = "+79001234567") =>
    enc.encode(JSON.stringify({ id, email, first_name: first, last_name: "Doe", phone }));
  // Matched by its own phone: linked to John, but a different email does not replace his.
  await s.deliver("shopify", "customers/create", customer(11, "other@example.com", "Johnny"));
  await s.drain();
  const view = async (id: number) =>
    (await s.w.call("GET", "/api/customer", { query: { id } })).body.customers[0] as Record<string, unknown>;
  let john = await view(till.body.id);
  assert.deepEqual([john.fname, john.email, john.phone], ["Johnny", "john.doe@example.com", "79001234567"]);
  // Later updates of the matched customer: still never a different email or phone.
  await s.deliver("shopify", "customers/update", customer(11, "third@example.com", "Jon", "+79009999999"));
  await s.drain();
  john = await view(till.body.id);
  assert.deepEqual([john.fname, john.email, john.phone], ["Jon", "john.doe@example.com", "79001234567"]);
  // The other emails made no customer of their own: the platform customer is John.
  assert.equal((await s.w.call("GET", "/api/customer", { query: { page: 1 } })).body.total_count, 1);
  // An order of the platform customer accrues to John.
  const order = JSON.stringify({
    id: 77,
    name: "#77",
    financial_status: "paid",
    total_price: "100.00",
    customer: { id: 11, email: "third@example.com", phone: "+79009999999" },
  });
  await s.deliver("shopify", "orders/paid", enc.encode(order));
  await s.drain();
  assert.equal((await s.customerByEmail("john.doe@example.com"))!.sales, 10000);

  // A customer the connection created is the platform's: its email follows the platform.
  await s.deliver("shopify", "customers/create", customer(12, "ann@example.com", "Ann", "+79005555555"));
  await s.drain();
  const ann = await s.customerByEmail("ann@example.com");
  assert.ok(ann);
  await s.deliver("shopify", "customers/update", customer(12, "ann.new@example.com", "Ann", "+79005555555"));
  await s.drain();
  assert.equal((await view(ann.id)).email, "ann.new@example.com");
});

Deno.test("the Shopify sample customer is not merged into a till customer through its address phone", async () => {
  await using s = await shop({ percent: "5" });
  const till = await s.w.call("POST", "/api/customer/update", {
    form: { fname: "John", email: "john.doe@example.com", phone: "75555555555" },
  });
  assert.equal(till.status, 200, till.text);
  await s.deliver("shopify", "customers/create", await fixture("shopify_customers_create.json"));
  await s.deliver(
    "shopify",
    "customers/update",
    edit(await fixture("shopify_customers_create.json"), [['"first_name": "Bob"', '"first_name": "Bobby"']]),
  );
  await s.drain();
  const john = (await s.w.call("GET", "/api/customer", { query: { id: till.body.id } })).body.customers[0];
  assert.deepEqual([john.fname, john.email], ["John", "john.doe@example.com"]);
  const bob = await s.customerByEmail("bob@biller.com");
  assert.ok(bob && bob.id !== till.body.id);
});

Deno.test("moneyOf() refuses negative and invalid amounts unless the platform writes them signed", () => {
  assert.equal(moneyOf("404.95", "total_price"), 40495);
  assert.equal(moneyOf(undefined, "total_price"), 0);
  assert.throws(
    () => moneyOf("-50.00", "total_price"),
    (e: unknown) => e instanceof PayloadError && e.message === 'Invalid total_price "-50.00": must not be negative',
  );
  assert.throws(() => moneyOf(-1, "total"), PayloadError);
  assert.throws(() => moneyOf("abc", "total"), /Invalid total "abc": must be a number like 123.45/);
  assert.throws(() => moneyOf({}, "total"), /Invalid total: not an amount/);
  assert.equal(moneyOf("-10.00", "refunds.total", { negative: "abs" }), 1000);
});

Deno.test("paid totals exclude shipping and its tax: WooCommerce shipping_tax, Shopify shipping tax lines", () => {
  const woo = wooAction("order.created", {
    id: 1,
    status: "processing",
    total: "122.00",
    shipping_total: "10.00",
    shipping_tax: "2.00",
  });
  assert.ok(woo.kind === "order");
  assert.equal(woo.order.base, 11000);
  const order = (taxesIncluded: boolean, set: boolean) => ({
    id: 2,
    financial_status: "paid",
    total_price: "122.00",
    taxes_included: taxesIncluded,
    ...(set ? { total_shipping_price_set: { shop_money: { amount: "10.00" } } } : {}),
    shipping_lines: [{ price: "10.00", tax_lines: [{ price: "2.00", rate: 0.2 }] }],
  });
  const base = (o: unknown) => {
    const a = shopifyAction("orders/paid", o);
    assert.ok(a.kind === "order");
    return a.order.base;
  };
  assert.equal(base(order(false, true)), 11000);
  assert.equal(base(order(false, false)), 11000);
  // Prices include taxes: the shipping price already holds its tax.
  assert.equal(base(order(true, true)), 11200);
});

Deno.test("a negative total is a dead letter at once with the reason; nothing is counted", async () => {
  await using s = await shop();
  const body = `{"id":3,"email":"neg@x.com","financial_status":"paid","total_price":"-50.00","currency":"USD"}`;
  await s.deliver("shopify", "orders/paid", enc.encode(body));
  const [e] = await s.drain();
  assert.equal(e!.status, "dead");
  assert.equal(e!.attempts, 1);
  assert.equal(e!.last_error, 'PayloadError: Invalid total_price "-50.00": must not be negative');
  assert.equal(await s.customerByEmail("neg@x.com"), null);
});

Deno.test("an id too long to be a key is a dead letter at once, not retried", async () => {
  await using s = await shop();
  const digits = "7".repeat(500_000);
  await s.deliver("shopify", "customers/create", enc.encode(`{"id":${digits},"email":"long@x.com"}`));
  await s.deliver(
    "woocommerce",
    "order.created",
    enc.encode(`{"id":1,"status":"processing","total":"5.00","customer_id":"${"9".repeat(101)}"}`),
  );
  const events = await s.drain();
  assert.deepEqual(events.map((e) => [e.status, e.attempts]), [["dead", 1], ["dead", 1]]);
  assert.deepEqual(events.map((e) => e.last_error).sort(), [
    'PayloadError: Invalid customer.id "77777777777777777777...": longer than 100 characters',
    'PayloadError: Invalid customer_id "99999999999999999999...": longer than 100 characters',
  ]);
  // An id of 100 characters is still one.
  assert.ok(shopifyCustomer({ id: "1".repeat(100) }).externalId);
});

Deno.test("retrying a dead letter writes an audit entry of its connection naming the delivery", async () => {
  await using s = await shop();
  await s.deliver("shopify", "orders/paid", enc.encode("{not json"));
  const [dead] = await s.drain();
  const store = createStore(s.w.kv);
  const entries = async () => {
    const out: AuditEntry[] = [];
    for await (const e of s.w.kv.list<AuditEntry>({ prefix: auditKeys.ofEntity("acme", "connection", s.shopify) })) {
      out.push(e.value);
    }
    return out.filter((e) => e.changes.some((c) => c.field === "retried_delivery"));
  };
  assert.deepEqual(await entries(), []);
  const admin = { companyId: "acme", name: "admin:ann", userId: 7 };
  assert.ok(await retryDeadLetter(store, admin, dead!.id));
  await s.drain();
  const [entry, ...more] = await entries();
  assert.equal(more.length, 0);
  assert.deepEqual(
    [entry!.actor, entry!.user_id, entry!.entity, entry!.entity_id, entry!.action],
    ["admin:ann", 7, "connection", s.shopify, "update"],
  );
  assert.deepEqual(entry!.changes, [{
    field: "retried_delivery",
    old: null,
    new: `${dead!.id} (orders/paid, 1 attempts: PayloadError: Invalid payload: not JSON)`,
  }]);
  // Across companies (a task without --company): filed in the dead letter's company under the task's name.
  assert.ok(await retryDeadLetter(store, null, dead!.id, { by: "task:webhooks" }));
  await s.drain();
  assert.deepEqual((await entries()).map((e) => e.actor), ["admin:ann", "task:webhooks"]);
  // Another company's actor neither retries it nor writes an entry.
  assert.equal(await retryDeadLetter(store, { companyId: "other", name: "admin:x", userId: 1 }, dead!.id), null);
  assert.equal((await entries()).length, 2);
  assert.equal((await listDeadLetters(store, null)).length, 1);
});

Deno.test({
  name: "`deno task webhooks retry` prints what became of the delivery: processed after a transient failure",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir("whfix_");
    const kvPath = `${dir.path}/kv.db`;
    const kv = await Deno.openKv(kvPath);
    let id: string;
    let connectionId: string;
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
      connectionId = saved.connection.id;
      const body = await fixture("shopify_orders_paid.json");
      const signature = await signBody(await hmacKey("a-long-enough-secret"), body);
      const headers: Record<string, string> = {
        "x-shopify-topic": "orders/paid",
        "x-shopify-hmac-sha256": signature,
        "x-shopify-webhook-id": "t1",
      };
      const settings = { ...SETTINGS, maxAttempts: 1 };
      const got = await receiveWebhook(store, {
        platform: "shopify",
        connectionId,
        header: (n) => headers[n] ?? null,
        body,
      }, settings);
      assert.ok(got.status === 200 && got.eventId);
      id = got.eventId;
      // A transient failure (the store was busy, say) on the last attempt: a dead letter.
      await handleDelivery(store, id, settings, {
        beforeProcess: () => {
          throw new Error("injected: busy");
        },
      });
      assert.equal((await listDeadLetters(store, null)).length, 1);
    } finally {
      kv.close();
    }
    const retried = await runTask("webhooks", ["retry", id], { kvPath });
    assert.equal(retried.code, 0, retried.err);
    assert.equal(
      retried.out,
      `${id}: processed (order paid)\n` +
        "Retried 1 dead letter: processed 1, ignored 0, skipped 0, failed again, retried later by the service 0, " +
        "failed again, a dead letter again 0\n",
    );
    const failed = await runTask("webhooks", ["failed"], { kvPath });
    assert.equal(failed.out, "No dead letters.\n");
    const check = await Deno.openKv(kvPath);
    try {
      const audit: AuditEntry[] = [];
      for await (
        const e of check.list<AuditEntry>({ prefix: auditKeys.ofEntity("acme", "connection", connectionId) })
      ) {
        audit.push(e.value);
      }
      const retries = audit.filter((e) => e.changes.some((c) => c.field === "retried_delivery"));
      assert.deepEqual(retries.map((e) => e.actor), ["task:webhooks"]);
    } finally {
      check.close();
    }
  },
});
