/**
 * Review of the write path of issue 8: races across two store objects (two processes), index and counter upkeep
 * after updates that change or clear unique values and owners, audit order and content, KV limits on the largest
 * card create, and the history endpoints' input handling. Real store, real app; no mocks.
 */
import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../config.ts";
import { createApp } from "../routes/app.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { verifyStore } from "../storage/verify.ts";
import { parseXml, randomCustomer, request, world } from "./kit.ts";

const T0 = Date.UTC(2025, 2, 10, 9, 0, 0);

/** Every key under a company prefix whose third part is `collection`. */
async function keysOf(kv: Deno.Kv, collection: string, company = "acme"): Promise<Deno.KvKey[]> {
  const out: Deno.KvKey[] = [];
  for await (const e of kv.list({ prefix: ["company", company, collection] })) out.push(e.key);
  return out;
}

/** Defects verify finds in company "acme" (it must be clean after any sequence of API writes). */
async function defects(kv: Deno.Kv): Promise<string[]> {
  const out: string[] = [];
  await verifyStore(kv, {
    company: "acme",
    onFinding: (f) => {
      if (f.severity === "defect") out.push(`${f.check}: ${f.message}`);
    },
  });
  return out;
}

/** Two apps over one KV handle, each with its own store object: two processes as far as queues and caches go. */
async function twoProcesses(now?: () => number) {
  const kv = await Deno.openKv(":memory:");
  const config = { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false };
  const a = createApp({ kv, config, now });
  const b = createApp({ kv, config, now });
  const key = (await createApiKey(kv, { companyId: "acme", userId: 2, access: "write" })).key;
  const call = (app: typeof a, method: string, path: string, o: Parameters<typeof request>[3] = {}) =>
    request(app, method, path, { key, ...o });
  return { kv, a, b, call, [Symbol.asyncDispose]: () => Promise.resolve(kv.close()) };
}

// ---------------------------------------------------------------------------------------------------------------
// Audit order

Deno.test("customer history lists an update made in the same millisecond as the create first", async () => {
  // A fixed clock: every change of this test happens "at once", as fast clients and batch imports do.
  await using w = await world({ now: () => T0 });
  const wrong: number[] = [];
  for (let i = 0; i < 12; i++) {
    const id = (await w.call("POST", "/api/customer/update", { form: { fname: "A" } })).body.id;
    await w.call("POST", "/api/customer/update", { query: { id }, form: { fname: "B" } });
    const h = await w.call("GET", "/api/customer/history", { query: { customer_id: id } });
    assert.equal(h.status, 200);
    const actions = h.body.history.map((e: { action: string }) => e.action);
    if (actions.join() !== "update,create") wrong.push(id);
  }
  assert.deepEqual(wrong, [], "customers whose history shows the create as the newest entry");
});

Deno.test("customer history interleaves balance changes and customer updates in commit order", async () => {
  await using w = await world({ now: () => T0 });
  const program = (await w.call("POST", "/api/bonusprogram/update", { form: { name: "Points" } })).body.id;
  const wrong: string[] = [];
  for (let i = 0; i < 6; i++) {
    const id = (await w.call("POST", "/api/customer/update", { form: { fname: "A" } })).body.id;
    const credit = (amount: string) =>
      w.call("POST", "/api/customer/updateBonus", { form: { customer_id: id, bonus_id: program, amount } });
    assert.equal((await credit("1")).status, 200);
    await w.call("POST", "/api/customer/update", { query: { id }, form: { fname: "B" } });
    assert.equal((await credit("2")).status, 200);
    const h = await w.call("GET", "/api/customer/history", { query: { customer_id: id } });
    const seen = h.body.history.map((e: { entity: string; action: string }) => `${e.entity}:${e.action}`).join();
    if (seen !== "balance:update,customer:update,balance:update,customer:create") wrong.push(seen);
  }
  assert.deepEqual(wrong, []);
});

Deno.test("card history lists changes in the same millisecond newest first", async () => {
  await using w = await world({ now: () => T0 });
  const wrong: string[] = [];
  for (let i = 0; i < 12; i++) {
    const uid = `R${i}`;
    const cardId = (await w.call("POST", "/api/customer/insertCard", { query: { uid } })).body.card_id;
    await w.call("POST", "/api/customer/updateCard", { query: { uid }, form: { status: "BLOCKED" } });
    await w.call("POST", "/api/customer/deleteCard", { query: { uid } });
    const h = await w.call("GET", "/api/card/history", { query: { card_id: cardId } });
    const seen = h.body.history.map((e: { action: string }) => e.action).join();
    if (seen !== "delete,update,create") wrong.push(seen);
  }
  assert.deepEqual(wrong, []);
});

// ---------------------------------------------------------------------------------------------------------------
// Races across two store objects

Deno.test("two processes creating customers with one phone: one wins, the other gets 409, ids stay distinct", async () => {
  await using p = await twoProcesses();
  for (let round = 0; round < 5; round++) {
    const phone = `+7900555${String(round).padStart(4, "0")}`;
    const [x, y] = await Promise.all([
      p.call(p.a, "POST", "/api/customer/update", { form: { fname: "X", phone } }),
      p.call(p.b, "POST", "/api/customer/update", { form: { fname: "Y", phone } }),
    ]);
    assert.deepEqual([x.status, y.status].sort(), [200, 409], `round ${round}: ${x.text} / ${y.text}`);
  }
  // Interleaved creates from both processes never reuse an id (each holds a cached sequence).
  const ids = await Promise.all(
    Array.from(
      { length: 20 },
      (_, i) =>
        p.call(i % 2 ? p.a : p.b, "POST", "/api/customer/update", { form: { fname: `P${i}` } }).then((r) => {
          assert.equal(r.status, 200, r.text);
          return r.body.id as number;
        }),
    ),
  );
  assert.equal(new Set(ids).size, 20);
  assert.equal((await keysOf(p.kv, "customers")).length, 25);
  assert.deepEqual(await defects(p.kv), []);
  // One audit create per customer.
  const creates = (await keysOf(p.kv, "audit")).filter((k) => k[3] === "customer");
  assert.equal(creates.length, 25);
});

Deno.test("a customer create with a new group name racing a group create of that name: one group", async () => {
  await using p = await twoProcesses();
  for (let round = 0; round < 5; round++) {
    const name = `Gold ${round}`;
    const [customer, group] = await Promise.all([
      p.call(p.a, "POST", "/api/customer/update", { form: { fname: "C", group_name: name } }),
      p.call(p.b, "POST", "/api/customergroup/update", { form: { group_name: name.toUpperCase() } }),
    ]);
    assert.equal(customer.status, 200, customer.text);
    // The group create either made the group (and the customer joined it) or found the name taken.
    assert.ok(group.status === 200 || group.status === 409, group.text);
  }
  const groups = await keysOf(p.kv, "groups");
  assert.equal(groups.length, 5);
  assert.deepEqual(await defects(p.kv), []);
});

Deno.test("a card create racing a delete of the same uid leaves indexes consistent", async () => {
  await using p = await twoProcesses();
  for (let round = 0; round < 8; round++) {
    const uid = `U${round}`;
    assert.equal((await p.call(p.a, "POST", "/api/customer/insertCard", { query: { uid } })).status, 200);
    const [del, upsert] = await Promise.all([
      p.call(p.a, "POST", "/api/customer/deleteCard", { query: { uid } }),
      p.call(p.b, "POST", "/api/customer/updateCard", {
        query: { uid, create_if_not_exist: 1 },
        form: { status: "ACTIVE" },
      }),
    ]);
    assert.equal(del.status, 200, del.text);
    assert.equal(upsert.status, 200, upsert.text);
  }
  assert.deepEqual(await defects(p.kv), []);
});

Deno.test("one balance changed from two processes at once: every change applied once, with one audit entry", async () => {
  await using p = await twoProcesses();
  const program = (await p.call(p.a, "POST", "/api/bonusprogram/update", { form: { name: "Pts" } })).body.id;
  const id = (await p.call(p.a, "POST", "/api/customer/update", { form: { fname: "B" } })).body.id;
  const n = 24;
  const replies = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      p.call(i % 2 ? p.a : p.b, "POST", "/api/customer/updateBonus", {
        form: { customer_id: id, bonus_id: program, amount: "1" },
      })),
  );
  const ok = replies.filter((r) => r.status === 200).length;
  for (const r of replies) assert.ok(r.status === 200 || r.status === 409, r.text);
  const balance = (await p.kv.get<{ balance: number; last_transaction_id: number }>(
    ["company", "acme", "balances", id, program],
  )).value!;
  assert.equal(balance.balance, ok * 100);
  assert.equal(balance.last_transaction_id, ok);
  const audits = (await keysOf(p.kv, "audit")).filter((k) => k[3] === "customer" && k[4] === String(id));
  assert.equal(audits.length, ok + 1, "one entry per applied change plus the create");
  assert.deepEqual(await defects(p.kv), []);
});

Deno.test("a card moved between owners from two processes at once keeps one owner index entry", async () => {
  await using p = await twoProcesses();
  const owners: number[] = [];
  for (let i = 0; i < 4; i++) {
    owners.push((await p.call(p.a, "POST", "/api/customer/update", { form: { fname: `O${i}` } })).body.id);
  }
  assert.equal((await p.call(p.a, "POST", "/api/customer/insertCard", { query: { uid: "M1" } })).status, 200);
  for (let round = 0; round < 6; round++) {
    const replies = await Promise.all(
      owners.map((owner, i) =>
        p.call(i % 2 ? p.a : p.b, "POST", "/api/customer/updateCard", {
          query: { uid: "M1" },
          form: { customer_id: owner },
        })
      ),
    );
    for (const r of replies) assert.equal(r.status, 200, r.text);
    assert.equal((await keysOf(p.kv, "cards_by_customer")).length, 1);
  }
  assert.deepEqual(await defects(p.kv), []);
});

// ---------------------------------------------------------------------------------------------------------------
// Index and counter upkeep

Deno.test("changing and clearing unique values, lists and owners leaves no stale or missing index key", async () => {
  await using w = await world();
  const a = randomCustomer({ external_id: "EA" });
  const ida = (await w.call("POST", "/api/customer/update", { form: a })).body.id;
  const idb = (await w.call("POST", "/api/customer/update", { form: randomCustomer() })).body.id;
  const upd = (id: number, form: Record<string, string>) =>
    w.call("POST", "/api/customer/update", { query: { id }, form });
  assert.equal((await upd(ida, { phone: "+79007770001", email: "new@x.ru", external_id: "EA2" })).status, 200);
  assert.equal((await upd(ida, { phone: "", email: "" })).status, 200);
  assert.equal((await upd(ida, { external_id: "" })).status, 200);
  // The released values are free again for someone else.
  assert.equal((await upd(idb, { phone: a.phone as string, external_id: "EA" })).status, 200);
  assert.deepEqual(await keysOf(w.kv, "customers_by_external_id"), [[
    "company",
    "acme",
    "customers_by_external_id",
    "EA",
  ]]);
  assert.equal((await keysOf(w.kv, "customers_by_email")).length, 1, "only b's email");

  const card = await w.call("POST", "/api/customer/insertCard", {
    query: { uid: "C1", external_id: "X1" },
    form: { customer_id: ida, barcode: "4600000000008" },
  });
  assert.equal(card.status, 200, card.text);
  const uc = (form: Record<string, string | number>) =>
    w.call("POST", "/api/customer/updateCard", { query: { uid: "C1" }, form });
  assert.equal((await uc({ customer_id: idb, barcode: "4600000000015" })).status, 200);
  assert.equal((await uc({ customer_id: "", barcode: "" })).status, 200);
  assert.deepEqual(await keysOf(w.kv, "cards_by_customer"), []);
  assert.deepEqual(await keysOf(w.kv, "cards_by_barcode"), []);
  assert.equal((await uc({ customer_id: ida, type_name: "Gold" })).status, 200);
  assert.equal((await w.call("POST", "/api/customer/deleteCard", { query: { uid: "C1" } })).status, 200);
  for (const c of ["cards", "cards_by_uid", "cards_by_barcode", "cards_by_external_id", "cards_by_customer"]) {
    assert.deepEqual(await keysOf(w.kv, c), [], c);
  }
  // The list counters agree with the records: no phone, no email on a; both on b.
  const withPhone = await w.call("GET", "/api/customer", { query: { with_phone: 1, page: 1 } });
  assert.equal(withPhone.body.total_count, 1);
  assert.deepEqual(await defects(w.kv), []);
});

// ---------------------------------------------------------------------------------------------------------------
// KV limits

Deno.test("the largest card create (generated uid and barcode, new type, owner, external id) fits one write", async () => {
  // 10 checks, exactly the limit: id sequence, record, external_id, number sequence, uid, barcode, barcode
  // sequence (no uid_ean13 given), owner, and the new type's name key and sequence. Nothing may be added to it.
  await using w = await world();
  const owner = (await w.call("POST", "/api/customer/update", { form: { fname: "O" } })).body.id;
  const r = await w.call("POST", "/api/customer/updateCard", {
    query: { external_id: "big", create_if_not_exist: 1 },
    form: { customer_id: owner, type_name: "Brand new type" },
  });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.body.isnew, 1);
  assert.deepEqual(await defects(w.kv), []);
});

// ---------------------------------------------------------------------------------------------------------------
// Audit content

Deno.test("the audit trail holds no API key and no key hash", async () => {
  await using w = await world();
  const program = (await w.call("POST", "/api/bonusprogram/update", { form: { name: "P" } })).body.id;
  const id = (await w.call("POST", "/api/customer/update", { form: { fname: "S" } })).body.id;
  await w.call("POST", "/api/customer/updateBonus", {
    form: { customer_id: id, bonus_id: program, amount: "5", idempotency_key: "idem-secret-1" },
  });
  const all: string[] = [];
  for await (const e of w.kv.list({ prefix: ["api_keys"] })) all.push((e.value as { hash: string }).hash);
  const trail: string[] = [];
  for await (const e of w.kv.list({ prefix: ["company"] })) {
    if (e.key[2] === "audit") trail.push(JSON.stringify(e.value));
  }
  const text = trail.join("\n");
  for (const secret of [w.key, w.readKey, w.otherKey, ...all]) assert.ok(!text.includes(secret));
});

Deno.test("refused writes leave no audit entry", async () => {
  await using w = await world();
  const program = (await w.call("POST", "/api/bonusprogram/update", { form: { name: "P" } })).body.id;
  const id = (await w.call("POST", "/api/customer/update", { form: { fname: "S" } })).body.id;
  const before = (await keysOf(w.kv, "audit")).length;
  const debit = await w.call("POST", "/api/customer/updateBonus", {
    form: { customer_id: id, bonus_id: program, amount: "-5" },
  });
  assert.equal(debit.status, 409);
  const card = await w.call("POST", "/api/customer/insertCard", { query: { uid: "Z" } });
  assert.equal(card.status, 200);
  const afterCard = (await keysOf(w.kv, "audit")).length;
  assert.equal(afterCard, before + 1);
  const dup = await w.call("POST", "/api/customer/insertCard", { query: { uid: "Z" } });
  assert.equal(dup.status, 409);
  const badOwner = await w.call("POST", "/api/customer/updateCard", {
    query: { uid: "Z" },
    form: { customer_id: 999 },
  });
  assert.equal(badOwner.status, 404);
  const readOnly = await w.call("POST", "/api/customer/update", { key: w.readKey, form: { fname: "R" } });
  assert.equal(readOnly.status, 403);
  assert.equal((await keysOf(w.kv, "audit")).length, afterCard);
});

// ---------------------------------------------------------------------------------------------------------------
// History endpoints

Deno.test("history endpoints: bad input, other companies, empty pages and XML shape", async (t) => {
  await using w = await world();
  const id = (await w.call("POST", "/api/customer/update", { form: { fname: "H" } })).body.id;
  const cardId = (await w.call("POST", "/api/customer/insertCard", { query: { uid: "H1" } })).body.card_id;

  await t.step("bad paging values are 400 naming the field", async () => {
    for (
      const [field, value] of [["page", "0"], ["page_size", "0"], ["page_size", "100000"], ["cursor", "!!"]] as const
    ) {
      const r = await w.call("GET", "/api/customer/history", { query: { customer_id: id, [field]: value } });
      assert.equal(r.status, 400, `${field}=${value}: ${r.text}`);
      assert.equal(r.body.field, field);
    }
  });

  await t.step("another company's customer and card are 404, not an empty history", async () => {
    const c = await w.call("GET", "/api/customer/history", { key: w.otherKey, query: { customer_id: id } });
    assert.equal(c.status, 404);
    const k = await w.call("GET", "/api/card/history", { key: w.otherKey, query: { card_id: cardId } });
    assert.equal(k.status, 404);
    const u = await w.call("GET", "/api/card/history", { key: w.otherKey, query: { uid: "H1" } });
    assert.equal(u.status, 404);
  });

  await t.step("a page past the end is empty with no cursor", async () => {
    const r = await w.call("GET", "/api/customer/history", { query: { customer_id: id, page: 5 } });
    assert.equal(r.status, 200);
    assert.equal(r.body.count, 0);
    assert.deepEqual(r.body.history, []);
    assert.equal(r.body.next_cursor, null);
  });

  await t.step("XML: one entry still comes as a list element with its changes", async () => {
    const r = await w.call("GET", "/api/card/history", { query: { card_id: cardId, format: "xml" } });
    assert.equal(r.status, 200);
    const root = parseXml(r.text).root;
    assert.equal(String(root.success), "1");
    assert.equal(String(root.card_id), String(cardId));
    assert.equal(String(root.count), "1");
    assert.ok(root.history.entry, r.text);
  });

  await t.step("a read-only key may read history", async () => {
    const r = await w.call("GET", "/api/customer/history", { key: w.readKey, query: { customer_id: id } });
    assert.equal(r.status, 200);
  });

  await t.step("POST is not a history method", async () => {
    const r = await w.call("POST", "/api/customer/history", { query: { customer_id: id } });
    assert.equal(r.status, 405);
  });
});
