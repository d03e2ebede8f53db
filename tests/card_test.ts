import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../config.ts";
import type { Card } from "../domain/card.ts";
import { createApp } from "../routes/app.ts";
import { cardKeys, getCard } from "../storage/cards.ts";
import { type CallOptions, JSON_TYPE, request, snapshot, type World, world, XML_TYPE } from "./kit.ts";

const NOW = Date.UTC(2024, 4, 17, 9, 30, 0);

type Query = Record<string, string | number>;

function updateCard(w: World, query: Query, options: CallOptions = {}) {
  return w.call("GET", "/api/customer/updateCard", { query, ...options });
}

function insertCard(w: World, query: Query, options: CallOptions = {}) {
  return w.call("GET", "/api/customer/insertCard", { query, ...options });
}

function deleteCard(w: World, query: Query, options: CallOptions = {}) {
  return w.call("GET", "/api/customer/deleteCard", { query, ...options });
}

async function cardOf(w: World, id: number, company = "acme"): Promise<Card> {
  const card = await getCard(w.kv, company, id);
  assert.ok(card, `card ${id} exists`);
  return card;
}

/** Keys of one company's card data (records and indexes), for asserting what a write left behind. */
async function cardKeysOf(w: World, company = "acme"): Promise<string[]> {
  const out: string[] = [];
  for await (const e of w.kv.list({ prefix: ["company", company] })) {
    if (String(e.key[2]).startsWith("cards")) out.push(JSON.stringify(e.key));
  }
  return out;
}

Deno.test("updateCard() searches by card_id, then uid, then external_id, then card_barcode", async (t) => {
  await using w = await world();
  const make = async (n: string) => {
    const r = await insertCard(w, { uid: `U${n}`, external_id: `E${n}`, barcode: `7000${n}` });
    assert.equal(r.status, 200);
    return r.body.card_id as number;
  };
  const [a, b, c, d] = [await make("1"), await make("2"), await make("3"), await make("4")];
  const touched = async (query: Query, expected: number, medium: string) => {
    const r = await updateCard(w, { ...query, medium });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.type, JSON_TYPE);
    assert.deepEqual(r.body, { success: 1, card_id: expected, isnew: 0 });
    for (const id of [a, b, c, d]) {
      const card = await cardOf(w, id);
      if (id === expected) assert.equal(card.medium, medium, `card ${id}`);
    }
  };

  await t.step("card_id of A and uid of B updates A", async () => {
    await touched({ card_id: a, uid: "U2", external_id: "E3", card_barcode: "70004" }, a, "PLASTIC");
    assert.equal((await cardOf(w, b)).medium, null);
  });
  await t.step("unknown card_id and uid of B updates B", async () => {
    await touched({ card_id: 999, uid: "U2", external_id: "E3", card_barcode: "70004" }, b, "MAGNET");
    assert.equal((await cardOf(w, c)).medium, null);
  });
  await t.step("unknown card_id and uid, external_id of C updates C", async () => {
    await touched({ card_id: 999, uid: "nope", external_id: "E3", card_barcode: "70004" }, c, "APP");
    assert.equal((await cardOf(w, d)).medium, null);
  });
  await t.step("only card_barcode finds D", async () => {
    await touched({ card_id: 999, uid: "nope", external_id: "nope", card_barcode: "70004" }, d, "PLASTIC");
  });
  await t.step("the order holds whatever order the parameters come in", async () => {
    const r = await w.call("GET", `/api/customer/updateCard?card_barcode=70001&external_id=E4&uid=U3&medium=MAGNET`);
    assert.deepEqual(r.body, { success: 1, card_id: c, isnew: 0 });
    await touched({ external_id: "E1", card_barcode: "70002" }, a, "APP");
  });
  await t.step("a lookup key never changes the card it finds", async () => {
    await touched({ card_id: a, uid: "U9", external_id: "E9" }, a, "PLASTIC");
    const card = await cardOf(w, a);
    assert.equal(card.uid, "U1");
    assert.equal(card.external_id, "E1");
  });
  await t.step("no key finds anything: 404 naming the keys, nothing changed", async () => {
    const before = await snapshot(w.kv);
    const r = await updateCard(w, { card_id: 999, uid: "nope", card_barcode: "1", medium: "APP" });
    assert.equal(r.status, 404);
    assert.equal(r.type, JSON_TYPE);
    assert.deepEqual(r.body, {
      success: 0,
      info: 'Card not found by card_id "999", uid "nope" or card_barcode "1"',
      field: "card_id",
    });
    const one = await updateCard(w, { card_id: 999 });
    assert.equal(one.status, 404);
    assert.deepEqual(one.body, { success: 0, info: 'Card "999" not found', field: "card_id" });
    assert.equal(await snapshot(w.kv), before);
  });
  await t.step("POST takes writable fields from the body, lookup keys from the query", async () => {
    const r = await w.call("POST", "/api/customer/updateCard", { query: { uid: "U4" }, form: { medium: "APP" } });
    assert.deepEqual(r.body, { success: 1, card_id: d, isnew: 0 });
    assert.equal((await cardOf(w, d)).medium, "APP");
    const j = await w.call("POST", "/api/customer/updateCard", { query: { uid: "U4" }, json: { medium: "MAGNET" } });
    assert.equal(j.status, 200);
    assert.equal((await cardOf(w, d)).medium, "MAGNET");
  });
});

Deno.test("updateCard() create_if_not_exist: creates from the lookup keys only when asked", async (t) => {
  await using w = await world({ now: () => NOW });

  await t.step("without it, an unknown card is 404 and nothing is written", async () => {
    const before = await snapshot(w.kv);
    const queries: Query[] = [{ uid: "N-1" }, { uid: "N-1", create_if_not_exist: 0 }, { external_id: "X" }];
    for (const query of queries) {
      const r = await updateCard(w, { ...query, medium: "APP" });
      assert.equal(r.status, 404, JSON.stringify(query));
      assert.equal(r.type, JSON_TYPE);
    }
    assert.deepEqual((await updateCard(w, { uid: "N-1" })).body, {
      success: 0,
      info: 'Card with uid "N-1" not found',
      field: "uid",
    });
    assert.equal(await snapshot(w.kv), before);
  });

  await t.step("with it, the card is created with the uid and external_id looked up", async () => {
    const r = await updateCard(w, { uid: "N-1", external_id: "1C-42", card_barcode: "999", create_if_not_exist: 1 });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { success: 1, card_id: 1, isnew: 1 });
    const card = await cardOf(w, 1);
    assert.equal(card.uid, "N-1");
    assert.equal(card.external_id, "1C-42");
    assert.equal(card.status, "NEW");
    assert.equal(card.created_by, 2);
    assert.equal(card.created_date, NOW);
    assert.equal(card.barcode, "2000000000015", "card_barcode only finds; the barcode is generated");
  });

  await t.step("the same request again updates the card it created", async () => {
    const r = await updateCard(w, { uid: "N-1", external_id: "1C-42", create_if_not_exist: 1, status: "ACTIVE" });
    assert.deepEqual(r.body, { success: 1, card_id: 1, isnew: 0 });
    assert.equal((await cardOf(w, 1)).status, "ACTIVE");
  });

  await t.step("with no key at all: a new card with a generated number, or 400 without the switch", async () => {
    const r = await updateCard(w, { create_if_not_exist: "true" });
    assert.deepEqual(r.body, { success: 1, card_id: 2, isnew: 1 });
    assert.equal((await cardOf(w, 2)).uid, "1");
    const before = await snapshot(w.kv);
    const bad = await updateCard(w, { medium: "APP" });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body, {
      success: 0,
      info: "Cannot update card: pass card_id, uid, external_id or card_barcode, or create_if_not_exist=1",
      field: "card_id",
    });
    assert.equal(await snapshot(w.kv), before);
  });

  await t.step("an unknown card_id is not taken as the new card's id", async () => {
    const r = await updateCard(w, { card_id: 500, create_if_not_exist: 1 });
    assert.deepEqual(r.body, { success: 1, card_id: 3, isnew: 1 });
    assert.equal(await getCard(w.kv, "acme", 500), null);
  });

  await t.step("parallel creates of one uid make one card; the others update it", async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        updateCard(w, {
          uid: "RACE",
          create_if_not_exist: 1,
          medium: i % 2 ? "APP" : "PLASTIC",
        })),
    );
    assert.ok(results.every((r) => r.status === 200), JSON.stringify(results.map((r) => r.body)));
    assert.equal(results.filter((r) => r.body.isnew === 1).length, 1);
    assert.equal(new Set(results.map((r) => r.body.card_id)).size, 1);
  });
});

Deno.test("insertCard() always creates; uid, barcode and external_id are unique per company", async (t) => {
  await using w = await world();

  await t.step("creates with the uid and external_id given in the query", async () => {
    const r = await insertCard(w, { uid: "100500", external_id: "1C-1", medium: "plastic" });
    assert.equal(r.status, 200);
    assert.equal(r.type, JSON_TYPE);
    assert.deepEqual(r.body, { success: 1, card_id: 1, isnew: 1 });
    const card = await cardOf(w, 1);
    assert.equal(card.uid, "100500");
    assert.equal(card.uid_ean13, "0000001005004");
    assert.equal(card.barcode, "0000001005004");
    assert.equal(card.medium, "PLASTIC");
  });

  const clashes: [string, Query, string][] = [
    ["uid", { uid: "100500" }, 'Cannot create card: uid "100500" is already taken'],
    ["external_id", { external_id: "1C-1" }, 'Cannot create card: external_id "1C-1" is already taken'],
    ["barcode", { barcode: "0000001005004" }, 'Cannot create card: barcode "0000001005004" is already taken'],
  ];
  for (const [field, query, info] of clashes) {
    await t.step(`a taken ${field} is 409 and nothing is written`, async () => {
      const before = await snapshot(w.kv);
      const r = await insertCard(w, query);
      assert.equal(r.status, 409);
      assert.equal(r.type, JSON_TYPE);
      assert.deepEqual(r.body, { success: 0, info, field });
      assert.equal(await snapshot(w.kv), before);
    });
  }

  await t.step("updateCard may not take another card's barcode", async () => {
    await insertCard(w, { uid: "B-2" });
    const before = await snapshot(w.kv);
    const r = await updateCard(w, { uid: "B-2", barcode: "0000001005004" });
    assert.equal(r.status, 409);
    assert.deepEqual(r.body, {
      success: 0,
      info: 'Cannot update card: barcode "0000001005004" is already taken',
      field: "barcode",
    });
    assert.equal(await snapshot(w.kv), before);
  });

  await t.step("a card may keep or re-send its own barcode, and change it", async () => {
    assert.equal((await updateCard(w, { uid: "100500", barcode: "0000001005004" })).status, 200);
    assert.equal((await updateCard(w, { uid: "100500", barcode: "123" })).status, 200);
    const keys = await cardKeysOf(w);
    assert.ok(keys.includes(JSON.stringify(cardKeys.byBarcode("acme", "123"))));
    assert.ok(!keys.includes(JSON.stringify(cardKeys.byBarcode("acme", "0000001005004"))));
    assert.equal((await insertCard(w, { uid: "C-3", barcode: "0000001005004" })).status, 200, "old barcode freed");
    assert.equal((await updateCard(w, { uid: "100500", barcode: "" })).status, 200);
    assert.equal((await cardOf(w, 1)).barcode, null);
    assert.equal((await insertCard(w, { uid: "C-4", barcode: "123" })).status, 200, "cleared barcode freed");
  });

  await t.step("insertCard refuses the keys that only find a card", async () => {
    const before = await snapshot(w.kv);
    for (const field of ["card_id", "card_barcode", "create_if_not_exist"]) {
      const r = await insertCard(w, { [field]: 1 });
      assert.equal(r.status, 400);
      assert.deepEqual(r.body, {
        success: 0,
        info:
          `Parameter "${field}" is not accepted: insertCard always creates a new card; use updateCard to change one`,
        field,
      });
    }
    assert.equal(await snapshot(w.kv), before);
  });

  await t.step("the same uid in another company is no clash", async () => {
    const r = await insertCard(w, { uid: "100500", external_id: "1C-1" }, { key: w.otherKey });
    assert.deepEqual(r.body, { success: 1, card_id: 1, isnew: 1 });
  });
});

Deno.test("parallel inserts with one uid: exactly one wins, in one process or across two", async (t) => {
  await using w = await world();

  await t.step("one process", async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => insertCard(w, { uid: "777" })));
    assert.equal(results.filter((r) => r.status === 200).length, 1);
    for (const r of results.filter((r) => r.status !== 200)) {
      assert.equal(r.status, 409);
      assert.deepEqual(r.body, { success: 0, info: 'Cannot create card: uid "777" is already taken', field: "uid" });
    }
  });

  await t.step("two processes over one store (two apps, two in-process queues)", async () => {
    const second = createApp({ kv: w.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
    const call = (i: number) =>
      i % 2 === 0
        ? insertCard(w, { uid: "888" })
        : request(second, "GET", "/api/customer/insertCard", { key: w.key, query: { uid: "888" } });
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => call(i)));
    assert.equal(results.filter((r) => r.status === 200).length, 1, JSON.stringify(results.map((r) => r.body)));
    assert.ok(results.every((r) => r.status === 200 || r.body.field === "uid"));
  });

  await t.step("parallel inserts without uid get distinct numbers and barcodes", async () => {
    const results = await Promise.all(Array.from({ length: 25 }, () => insertCard(w, {})));
    assert.ok(results.every((r) => r.status === 200));
    const cards = await Promise.all(results.map((r) => cardOf(w, r.body.card_id)));
    assert.equal(new Set(cards.map((c) => c.id)).size, 25);
    assert.equal(new Set(cards.map((c) => c.uid)).size, 25);
    assert.equal(new Set(cards.map((c) => c.barcode)).size, 25);
    assert.deepEqual(
      cards.map((c) => Number(c.uid)).sort((x, y) => x - y),
      Array.from({ length: 25 }, (_, i) => i + 1),
    );
  });
});

Deno.test("generated numbers: uid from the sequence, uid_ean13 from the uid, barcode from either", async (t) => {
  await using w = await world();
  const created = async (query: Query) => {
    const r = await insertCard(w, query);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return await cardOf(w, r.body.card_id);
  };

  await t.step("no uid: the next card number, its EAN-13 and that as barcode", async () => {
    const card = await created({});
    assert.equal(card.uid, "1");
    assert.equal(card.uid_ean13, "0000000000017");
    assert.equal(card.barcode, "0000000000017");
  });
  await t.step("numbers some card holds as its uid are skipped", async () => {
    await created({ uid: "2" });
    await created({ uid: "3" });
    const card = await created({});
    assert.equal(card.uid, "4");
    assert.equal(card.uid_ean13, "0000000000048");
  });
  await t.step("a uid of up to 12 digits gets an EAN-13; others get an in-store barcode", async () => {
    const real = await created({ uid: "400638133393" });
    assert.equal(real.uid_ean13, "4006381333931");
    assert.equal(real.barcode, "4006381333931");
    const long = await created({ uid: "4006381333931" });
    assert.equal(long.uid_ean13, null);
    assert.equal(long.barcode, "2000000000015");
    const text = await created({ uid: "VIP-1" });
    assert.equal(text.uid_ean13, null);
    assert.equal(text.barcode, "2000000000022");
  });
  await t.step("a given uid_ean13 is kept and becomes the barcode; a given barcode wins", async () => {
    const ean = await created({ uid: "X-1", uid_ean13: "5901234123457" });
    assert.equal(ean.uid_ean13, "5901234123457");
    assert.equal(ean.barcode, "5901234123457");
    const both = await created({ uid: "X-2", uid_ean13: "9780306406157", barcode: "42" });
    assert.equal(both.barcode, "42");
  });
  await t.step("empty uid_ean13 or barcode means none: no EAN-13, in-store barcode, or no barcode", async () => {
    const noEan = await created({ uid: "55", uid_ean13: "" });
    assert.equal(noEan.uid_ean13, null);
    assert.equal(noEan.barcode, "2000000000039");
    const noBarcode = await created({ uid: "56", barcode: "" });
    assert.equal(noBarcode.uid_ean13, "0000000000567");
    assert.equal(noBarcode.barcode, null);
  });
  await t.step("when the uid_ean13 is another card's barcode, an in-store code is generated instead", async () => {
    await created({ uid: "Z-1", barcode: "0000000000574" });
    const card = await created({ uid: "57" });
    assert.equal(card.uid_ean13, "0000000000574");
    assert.equal(card.barcode, "2000000000046");
  });
  await t.step("in-store codes some card holds are skipped", async () => {
    await created({ uid: "Z-2", barcode: "2000000000053" });
    const card = await created({ uid: "Z-3" });
    assert.equal(card.barcode, "2000000000060");
  });
  await t.step(
    "the worst-case create (every sequence, index, customer and a new type) fits one atomic operation",
    async () => {
      const customer = await w.call("POST", "/api/customer/update", { form: { fname: "Max" } });
      const r = await insertCard(w, {
        external_id: "EX-9",
        uid_ean13: "",
        customer_id: customer.body.id,
        type_name: "Brand new",
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const card = await cardOf(w, r.body.card_id);
      assert.equal(card.uid, "5");
      assert.equal(card.barcode, "2000000000077");
      assert.equal(card.customer_id, customer.body.id);
      assert.equal(card.type_id, 1);
    },
  );
});

Deno.test("deleteCard() deletes by any key, frees uid and barcode, never reuses the number", async (t) => {
  await using w = await world();
  const customer = await w.call("POST", "/api/customer/update", { form: { fname: "Owner" } });
  const owner = customer.body.id as number;

  await t.step("deletes the record and every index key in one go", async () => {
    const r = await insertCard(w, { external_id: "E-1", customer_id: owner });
    assert.deepEqual(r.body, { success: 1, card_id: 1, isnew: 1 });
    assert.equal((await cardOf(w, 1)).uid, "1");
    assert.equal((await cardKeysOf(w)).length, 5, "record, uid, barcode, external_id and owner keys");
    const d = await deleteCard(w, { uid: "1" });
    assert.equal(d.status, 200);
    assert.equal(d.type, JSON_TYPE);
    assert.deepEqual(d.body, { success: 1, card_id: 1 });
    assert.deepEqual(await cardKeysOf(w), []);
    const read = await w.call("GET", "/api/customer", { query: { id: owner, cards: 1 } });
    assert.deepEqual(read.body.customers[0].cards, []);
  });

  await t.step("uid, barcode and external_id are free again; the card number and id are not reused", async () => {
    const again = await insertCard(w, { uid: "1", barcode: "0000000000017", external_id: "E-1" });
    assert.deepEqual(again.body, { success: 1, card_id: 2, isnew: 1 });
    const generated = await insertCard(w, {});
    assert.equal((await cardOf(w, generated.body.card_id)).uid, "2");
    assert.equal(generated.body.card_id, 3);
  });

  await t.step("by card_id, external_id and card_barcode, in the lookup order", async () => {
    const a = (await insertCard(w, { uid: "A", external_id: "EA", barcode: "111" })).body.card_id;
    const b = (await insertCard(w, { uid: "B", external_id: "EB", barcode: "222" })).body.card_id;
    const c = (await insertCard(w, { uid: "C", external_id: "EC", barcode: "333" })).body.card_id;
    assert.deepEqual((await deleteCard(w, { card_id: 999, external_id: "EB", card_barcode: "111" })).body, {
      success: 1,
      card_id: b,
    });
    assert.deepEqual((await deleteCard(w, { card_barcode: "111" })).body, { success: 1, card_id: a });
    assert.deepEqual((await deleteCard(w, { card_id: c })).body, { success: 1, card_id: c });
  });

  await t.step("not found is 404, no key is 400, a read-only key is 403; nothing changes", async () => {
    const before = await snapshot(w.kv);
    const missing = await deleteCard(w, { card_id: 1 });
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.body, { success: 0, info: 'Card "1" not found', field: "card_id" });
    const none = await deleteCard(w, {});
    assert.equal(none.status, 400);
    assert.deepEqual(none.body, {
      success: 0,
      info: "Cannot delete card: pass card_id, uid, external_id or card_barcode",
      field: "card_id",
    });
    const body = await w.call("POST", "/api/customer/deleteCard", { form: { card_id: 2 } });
    assert.equal(body.status, 400);
    assert.deepEqual(body.body, {
      success: 0,
      info: 'Parameter "card_id" must be passed in the query string',
      field: "card_id",
    });
    const ro = await deleteCard(w, { card_id: 2 }, { key: w.readKey });
    assert.equal(ro.status, 403);
    assert.equal(await snapshot(w.kv), before);
  });
});

Deno.test("cards move between customers and are detached", async (t) => {
  await using w = await world();
  const a = (await w.call("POST", "/api/customer/update", { form: { fname: "A", external_id: "CA" } })).body.id;
  const b = (await w.call("POST", "/api/customer/update", { form: { fname: "B", external_id: "CB" } })).body.id;
  const cardsOf = async (id: number) => {
    const r = await w.call("GET", "/api/customer", { query: { id, cards: 1 } });
    return r.body.customers[0].cards.map((c: { card_id: number }) => c.card_id);
  };
  const card = (await insertCard(w, { uid: "M-1", customer_id: a })).body.card_id;

  await t.step("attached on create", async () => {
    assert.deepEqual(await cardsOf(a), [card]);
    assert.deepEqual(await cardsOf(b), []);
  });
  await t.step("moved by customer_external_id", async () => {
    assert.equal((await updateCard(w, { uid: "M-1", customer_external_id: "CB" })).status, 200);
    assert.deepEqual(await cardsOf(a), []);
    assert.deepEqual(await cardsOf(b), [card]);
    const view = (await w.call("GET", "/api/customer", { query: { id: b, cards: 1 } })).body.customers[0].cards[0];
    assert.equal(view.customer_id, b);
    assert.equal(view.customer_external_id, "CB");
  });
  await t.step("customer_id wins over customer_external_id", async () => {
    assert.equal((await updateCard(w, { uid: "M-1", customer_id: a, customer_external_id: "CB" })).status, 200);
    assert.deepEqual(await cardsOf(a), [card]);
    assert.deepEqual(await cardsOf(b), []);
  });
  await t.step("an unknown customer is 404 and the card stays", async () => {
    const before = await snapshot(w.kv);
    const byId = await updateCard(w, { uid: "M-1", customer_id: 99 });
    assert.equal(byId.status, 404);
    assert.deepEqual(byId.body, { success: 0, info: 'Customer "99" not found', field: "customer_id" });
    const byExt = await updateCard(w, { uid: "M-1", customer_external_id: "nope" });
    assert.equal(byExt.status, 404);
    assert.deepEqual(byExt.body, {
      success: 0,
      info: 'Customer with external_id "nope" not found',
      field: "customer_external_id",
    });
    const create = await insertCard(w, { uid: "M-2", customer_id: 99 });
    assert.equal(create.status, 404);
    assert.equal(await snapshot(w.kv), before);
  });
  await t.step("detached by an empty customer_id or customer_external_id", async () => {
    assert.equal((await updateCard(w, { uid: "M-1", customer_id: "" })).status, 200);
    assert.deepEqual(await cardsOf(a), []);
    assert.equal((await cardOf(w, card)).customer_id, null);
    assert.equal((await updateCard(w, { uid: "M-1", customer_id: b })).status, 200);
    assert.equal((await updateCard(w, { uid: "M-1", customer_external_id: "" })).status, 200);
    assert.deepEqual(await cardsOf(b), []);
    assert.deepEqual((await cardKeysOf(w)).filter((k) => k.includes("cards_by_customer")), []);
  });
  await t.step("a customer holds many cards, in card id order", async () => {
    const more = [];
    for (const uid of ["M-3", "M-4"]) more.push((await insertCard(w, { uid, customer_id: a })).body.card_id);
    await updateCard(w, { uid: "M-1", customer_id: a });
    assert.deepEqual(await cardsOf(a), [card, ...more]);
  });
});

Deno.test("status rules through the API: stamping and dates in the configured zone", async (t) => {
  let now = Date.UTC(2024, 0, 10, 9, 0, 0);
  await using w = await world({ now: () => now, config: { timeZone: "Europe/Moscow" } });
  await insertCard(w, { uid: "S-1" });

  await t.step("ACTIVE stamps activate_date on first activation", async () => {
    await updateCard(w, { uid: "S-1", status: "active" });
    assert.equal((await cardOf(w, 1)).activate_date, now);
  });
  await t.step("BLOCKED stamps block_date; a given date wins, read in the zone", async () => {
    now += 60_000;
    await updateCard(w, { uid: "S-1", status: "BLOCKED" });
    const blocked = await cardOf(w, 1);
    assert.equal(blocked.block_date, now);
    assert.equal(blocked.activate_date, now - 60_000);
    await updateCard(w, { uid: "S-1", block_date: "2024-01-01 03:00:00" });
    assert.equal((await cardOf(w, 1)).block_date, Date.UTC(2024, 0, 1, 0, 0, 0));
  });
  await t.step("re-activation keeps the first activate_date and clears block_date", async () => {
    now += 60_000;
    await updateCard(w, { uid: "S-1", status: "ACTIVE" });
    const card = await cardOf(w, 1);
    assert.equal(card.activate_date, now - 120_000);
    assert.equal(card.block_date, null);
    assert.equal(card.last_update_date, now);
  });
  await t.step("a new card may be created BLOCKED with a bare date", async () => {
    const r = await insertCard(w, { uid: "S-2", status: "BLOCKED", block_date: "2023-12-31" });
    const card = await cardOf(w, r.body.card_id);
    assert.equal(card.status, "BLOCKED");
    assert.equal(card.block_date, Date.UTC(2023, 11, 30, 21, 0, 0));
  });
});

Deno.test("card types: type_name finds or creates, type_id must exist, /api/cardtype lists and renames", async (t) => {
  await using w = await world({ now: () => NOW });
  const typeOf = async (id: number) => (await cardOf(w, id)).type_id;

  await t.step("type_name creates the type once, case-insensitively", async () => {
    const a = await insertCard(w, { uid: "T-1", type_name: "Gold" });
    const b = await insertCard(w, { uid: "T-2", type_name: "  gOLD " });
    const c = await insertCard(w, { uid: "T-3", type_name: "Silver" });
    assert.equal(await typeOf(a.body.card_id), 1);
    assert.equal(await typeOf(b.body.card_id), 1);
    assert.equal(await typeOf(c.body.card_id), 2);
  });
  await t.step("GET /api/cardtype lists the types", async () => {
    const r = await w.call("GET", "/api/cardtype");
    assert.equal(r.status, 200);
    assert.equal(r.type, JSON_TYPE);
    const date = "2024-05-17 09:30:00";
    assert.deepEqual(r.body, {
      success: 1,
      type: "card_type",
      count: 2,
      card_types: [
        { type_id: 1, type_name: "Gold", description: null, created_date: date, last_update_date: date },
        { type_id: 2, type_name: "Silver", description: null, created_date: date, last_update_date: date },
      ],
    });
    const xml = await w.call("GET", "/api/cardtype", { query: { format: "xml" } });
    assert.equal(xml.type, XML_TYPE);
    assert.match(xml.text, /<card_types>\n<card_type>\n<type_id>1<\/type_id>\n<type_name>Gold<\/type_name>\n/);
  });
  await t.step("/api/cardtype/update creates and renames; a name clash is 409", async () => {
    const created = await w.call("POST", "/api/cardtype/update", { form: { type_name: "Platinum" } });
    assert.deepEqual(created.body, { success: 1, type_id: 3, isnew: 1 });
    const renamed = await w.call("GET", "/api/cardtype/update", { query: { type_id: 1, type_name: "Gold+" } });
    assert.deepEqual(renamed.body, { success: 1, type_id: 1, isnew: 0 });
    const before = await snapshot(w.kv);
    const clash = await w.call("GET", "/api/cardtype/update", { query: { type_id: 1, type_name: "silver" } });
    assert.equal(clash.status, 409);
    assert.deepEqual(clash.body, {
      success: 0,
      info: 'Cannot rename card type: name "silver" is already taken',
      field: "type_name",
    });
    assert.equal(await snapshot(w.kv), before);
  });
  await t.step("cards show the current type name; the old name no longer finds the type", async () => {
    const customer = (await w.call("POST", "/api/customer/update", { form: { fname: "T" } })).body.id;
    await updateCard(w, { uid: "T-1", customer_id: customer });
    const view =
      (await w.call("GET", "/api/customer", { query: { id: customer, cards: 1 } })).body.customers[0].cards[0];
    assert.equal(view.type_id, 1);
    assert.equal(view.type_name, "Gold+");
    await updateCard(w, { uid: "T-1", type_name: "Gold" });
    assert.equal(await typeOf(1), 4);
  });
  await t.step("type_id wins over type_name; empty clears; unknown is 404", async () => {
    await updateCard(w, { uid: "T-1", type_id: 3, type_name: "Ignored" });
    assert.equal(await typeOf(1), 3);
    assert.equal((await w.call("GET", "/api/cardtype")).body.count, 4);
    await updateCard(w, { uid: "T-1", type_id: "" });
    assert.equal(await typeOf(1), null);
    await updateCard(w, { uid: "T-1", type_name: "Silver" });
    assert.equal(await typeOf(1), 2);
    await updateCard(w, { uid: "T-1", type_name: "" });
    assert.equal(await typeOf(1), null);
    const before = await snapshot(w.kv);
    const r = await updateCard(w, { uid: "T-1", type_id: 99 });
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { success: 0, info: 'Card type "99" not found', field: "type_id" });
    assert.equal(await snapshot(w.kv), before);
  });
  await t.step("parallel cards with one new type name make one type", async () => {
    await Promise.all(Array.from({ length: 8 }, () => insertCard(w, { type_name: "Rush" })));
    const types = (await w.call("GET", "/api/cardtype")).body.card_types;
    assert.equal(types.filter((x: { type_name: string }) => x.type_name === "Rush").length, 1);
  });
});

Deno.test("tenant isolation: company B cannot find, change or delete company A's card by any key", async () => {
  await using w = await world();
  const owner = (await w.call("POST", "/api/customer/update", { form: { fname: "A", external_id: "CA" } })).body.id;
  const a = await insertCard(w, { uid: "SECRET", external_id: "E-S", barcode: "123456", customer_id: owner });
  assert.equal(a.status, 200);
  const asB = { key: w.otherKey };
  const lookups: Query[] = [
    { card_id: a.body.card_id },
    { uid: "SECRET" },
    { external_id: "E-S" },
    { card_barcode: "123456" },
  ];
  const before = await snapshot(w.kv);
  for (const query of lookups) {
    const upd = await updateCard(w, { ...query, status: "BLOCKED" }, asB);
    assert.equal(upd.status, 404, JSON.stringify(query));
    assert.equal(upd.body.success, 0);
    const del = await deleteCard(w, query, asB);
    assert.equal(del.status, 404, JSON.stringify(query));
  }
  const attach = await insertCard(w, { uid: "B-1", customer_id: owner }, asB);
  assert.equal(attach.status, 404, "A's customer is unknown to B");
  const attachExt = await insertCard(w, { uid: "B-1", customer_external_id: "CA" }, asB);
  assert.equal(attachExt.status, 404);
  assert.equal(await snapshot(w.kv), before);

  // B's own card with the same keys lives beside A's, and each company sees only its own.
  const mine = await updateCard(w, { uid: "SECRET", external_id: "E-S", create_if_not_exist: 1 }, asB);
  assert.deepEqual(mine.body, { success: 1, card_id: 1, isnew: 1 });
  assert.equal((await cardOf(w, a.body.card_id)).status, "NEW");
  assert.equal((await cardOf(w, 1, "globex")).uid, "SECRET");
  const bCustomer = (await w.call("POST", "/api/customer/update", { ...asB, form: { fname: "B" } })).body.id;
  await updateCard(w, { uid: "SECRET", customer_id: bCustomer }, asB);
  const seenByB = await w.call("GET", "/api/customer", { ...asB, query: { cards: 1 } });
  assert.deepEqual(
    seenByB.body.customers.flatMap((c: { cards: { card_id: number }[] }) => c.cards.map((x) => x.card_id)),
    [1],
  );
  assert.deepEqual((await deleteCard(w, { uid: "SECRET" }, asB)).body, { success: 1, card_id: 1 });
  assert.equal((await cardOf(w, a.body.card_id)).uid, "SECRET");
});

Deno.test("malformed input is refused with a clear error naming the field, and changes nothing", async (t) => {
  await using w = await world();
  await insertCard(w, { uid: "OK-1" });
  const cases: [string, string, CallOptions, number, string, string][] = [
    [
      "bad medium",
      "updateCard",
      { query: { uid: "OK-1", medium: "PAPER" } },
      400,
      "medium",
      'Invalid medium "PAPER": must be one of PLASTIC, MAGNET, APP',
    ],
    [
      "bad status",
      "updateCard",
      { query: { uid: "OK-1", status: "LOST" } },
      400,
      "status",
      'Invalid status "LOST": must be one of NEW, ACTIVE, BLOCKED',
    ],
    [
      "empty status",
      "insertCard",
      { form: { status: "" } },
      400,
      "status",
      'Invalid status "": must be one of NEW, ACTIVE, BLOCKED',
    ],
    [
      "impossible date",
      "updateCard",
      { query: { uid: "OK-1", block_date: "2024-02-30" } },
      400,
      "block_date",
      'Invalid block_date "2024-02-30": 2024-02 has no day 30',
    ],
    [
      "impossible time",
      "insertCard",
      { form: { activate_date: "2024-01-01 24:00:00" } },
      400,
      "activate_date",
      'Invalid activate_date "2024-01-01 24:00:00": the time must be from 00:00:00 to 23:59:59',
    ],
    [
      "date text",
      "insertCard",
      { form: { activate_date: "tomorrow" } },
      400,
      "activate_date",
      'Invalid activate_date "tomorrow": must look like YYYY-MM-DD HH:MM:SS',
    ],
    [
      "non-digit barcode",
      "updateCard",
      { query: { uid: "OK-1", barcode: "12-34" } },
      400,
      "barcode",
      'Invalid barcode "12-34": only digits 0-9',
    ],
    [
      "non-digit card_barcode",
      "deleteCard",
      { query: { card_barcode: "ABC" } },
      400,
      "card_barcode",
      'Invalid card_barcode "ABC": only digits 0-9',
    ],
    [
      "ean13 wrong check digit",
      "insertCard",
      { query: { uid_ean13: "4006381333932" } },
      400,
      "uid_ean13",
      'Invalid uid_ean13 "4006381333932": wrong check digit 2: expected 1',
    ],
    [
      "ean13 12 digits",
      "insertCard",
      { query: { uid_ean13: "400638133393" } },
      400,
      "uid_ean13",
      'Invalid uid_ean13 "400638133393": must be 13 digits',
    ],
    [
      "uid with a space",
      "insertCard",
      { query: { uid: "12 34" } },
      400,
      "uid",
      'Invalid uid "12 34": only printable characters, no spaces',
    ],
    [
      "uid too long",
      "updateCard",
      { query: { uid: "9".repeat(65) } },
      400,
      "uid",
      `Invalid uid "${"9".repeat(40)}…": at most 64 characters`,
    ],
    [
      "card_id text",
      "updateCard",
      { query: { card_id: "abc" } },
      400,
      "card_id",
      'Invalid card_id "abc": must be a whole number from 1 to 9007199254740991',
    ],
    [
      "type_id text",
      "insertCard",
      { form: { type_id: "gold" } },
      400,
      "type_id",
      'Invalid type_id "gold": must be a whole number from 1 to 9007199254740991',
    ],
    [
      "create_if_not_exist",
      "updateCard",
      { query: { uid: "N", create_if_not_exist: "yes" } },
      400,
      "create_if_not_exist",
      'Invalid create_if_not_exist "yes": must be 1, 0, true or false',
    ],
    [
      "unknown parameter",
      "updateCard",
      { query: { uid: "OK-1", colour: "red" } },
      400,
      "colour",
      'Unknown parameter "colour"',
    ],
    [
      "uid in the body",
      "updateCard",
      { form: { uid: "OK-1", medium: "APP" } },
      400,
      "uid",
      'Parameter "uid" must be passed in the query string',
    ],
    [
      "read-only field",
      "updateCard",
      { query: { uid: "OK-1", created_by: 5 } },
      400,
      "created_by",
      'Parameter "created_by" is not accepted: it is set by the service',
    ],
    ["unknown type", "insertCard", { query: { type_id: 9 } }, 404, "type_id", 'Card type "9" not found'],
  ];
  for (const [name, endpoint, options, status, field, info] of cases) {
    await t.step(name, async () => {
      const before = await snapshot(w.kv);
      const r = await w.call(options.form ? "POST" : "GET", `/api/customer/${endpoint}`, options);
      assert.equal(r.status, status);
      assert.equal(r.type, JSON_TYPE);
      assert.deepEqual(r.body, { success: 0, info, field });
      assert.equal(await snapshot(w.kv), before);
    });
  }
  await t.step("the error envelope in XML", async () => {
    const before = await snapshot(w.kv);
    const r = await updateCard(w, { uid: "OK-1", medium: "<x>", format: "xml" });
    assert.equal(r.status, 400);
    assert.equal(r.type, XML_TYPE);
    assert.equal(
      r.text,
      `<?xml version="1.0" encoding="UTF-8"?>\n<root>\n<success>0</success>\n` +
        `<info>Invalid medium "&lt;x&gt;": must be one of PLASTIC, MAGNET, APP</info>\n<field>medium</field>\n</root>\n`,
    );
    assert.equal(await snapshot(w.kv), before);
  });
  await t.step("read-only keys may not write cards", async () => {
    const before = await snapshot(w.kv);
    for (const endpoint of ["updateCard", "insertCard", "deleteCard"]) {
      const r = await w.call("GET", `/api/customer/${endpoint}`, { key: w.readKey, query: { uid: "OK-1" } });
      assert.equal(r.status, 403);
      assert.deepEqual(r.body, {
        success: 0,
        info: `API key is read-only: GET /api/customer/${endpoint} needs a write key`,
      });
    }
    assert.equal(await snapshot(w.kv), before);
  });
});
