import assert from "node:assert/strict";
import { createStore } from "../storage/store.ts";
import { cardAtTill } from "../usecases/cards.ts";
import { balancesOf } from "../usecases/customers.ts";
import { cardLookupReply } from "../domain/replies.ts";
import {
  assertError,
  assertJson,
  assertXml,
  JSON_TYPE,
  type Reply,
  snapshot,
  type World,
  world,
  XML_TYPE,
} from "./kit.ts";

const NOW = Date.UTC(2016, 9, 24, 10, 0, 0);
const STAMP = "2016-10-24 10:00:00";

/**
 * A company with two programs, a customer in group VIP owning two cards (the first of type Gold, with a balance of
 * 12.50 in the first program), a second customer with a card, and a card without an owner.
 */
async function till(w: World) {
  const made = (r: Reply) => assertJson(r, 200);
  made(await w.call("GET", "/api/bonusprogram/update", { query: { name: "Points" } }));
  made(await w.call("GET", "/api/bonusprogram/update", { query: { name: "Miles" } }));
  const anna = made(
    await w.call("POST", "/api/customer/update", {
      form: {
        fname: "Анна",
        lname: "Петрова",
        mname: "Ивановна",
        external_id: "1C-7",
        phone: "8 (900) 123-45-67",
        email: "anna@example.com",
        group_name: "VIP",
      },
    }),
  );
  const boris = made(
    await w.call("POST", "/api/customer/update", { form: { fname: "Борис", phone: "+79007654321" } }),
  );
  const gold = made(
    await w.call("POST", "/api/customer/insertCard", {
      query: { uid: "100500", external_id: "C-1" },
      form: {
        barcode: "4600682003144",
        medium: "PLASTIC",
        status: "ACTIVE",
        type_name: "Gold",
        customer_id: anna.id,
      },
    }),
  );
  const second = made(
    await w.call("POST", "/api/customer/insertCard", {
      query: { uid: "100501", external_id: "C-2" },
      form: { barcode: "2000000000015", customer_id: anna.id },
    }),
  );
  const borisCard = made(
    await w.call("POST", "/api/customer/insertCard", {
      query: { uid: "300", external_id: "C-3" },
      form: { barcode: "3000", customer_id: boris.id },
    }),
  );
  const loose = made(
    await w.call("POST", "/api/customer/insertCard", {
      query: { uid: "200", external_id: "C-4" },
      form: { barcode: "2000" },
    }),
  );
  made(
    await w.call("POST", "/api/customer/updateBonus", { form: { customer_id: anna.id, bonus_id: 1, amount: "12.5" } }),
  );
  return {
    anna: anna.id as number,
    boris: boris.id as number,
    gold: gold.card_id as number,
    second: second.card_id as number,
    borisCard: borisCard.card_id as number,
    loose: loose.card_id as number,
  };
}

/** The Gold card as every reply shows it. */
function goldView(id: number, owner: number) {
  return {
    card_id: id,
    external_id: "C-1",
    uid: "100500",
    uid_ean13: "0000001005004",
    barcode: "4600682003144",
    medium: "PLASTIC",
    status: "ACTIVE",
    block_date: null,
    activate_date: STAMP,
    type_id: 1,
    type_name: "Gold",
    customer_id: owner,
    customer_external_id: "1C-7",
    created_date: STAMP,
    created_by: 2,
    last_update_date: STAMP,
    last_update_by: 2,
  };
}

/** Anna's owner summary. */
function annaView(id: number) {
  return {
    id,
    external_id: "1C-7",
    fname: "Анна",
    lname: "Петрова",
    mname: "Ивановна",
    phone: "79001234567",
    email: "anna@example.com",
    group_id: 1,
    group_name: "VIP",
  };
}

Deno.test("GET /api/card finds a card by each lookup key, with its owner", async (t) => {
  await using w = await world({ now: () => NOW });
  const ids = await till(w);
  const expected = { success: 1, type: "card", card: goldView(ids.gold, ids.anna), customer: annaView(ids.anna) };

  for (
    const [key, value] of [
      ["card_id", ids.gold],
      ["uid", "100500"],
      ["external_id", "C-1"],
      ["card_barcode", "4600682003144"],
    ] as const
  ) {
    await t.step(`by ${key}`, async () => {
      const r = await w.call("GET", "/api/card", { query: { [key]: value } });
      const body = assertJson(r, 200, expected);
      assert.ok(cardLookupReply.safeParse(body).success, r.text);
    });
  }

  await t.step("values are trimmed as updateCard trims them", async () => {
    assertJson(await w.call("GET", "/api/card", { query: { uid: " 100500 " } }), 200, expected);
  });

  await t.step("the read key may look a card up", async () => {
    assertJson(await w.call("GET", "/api/card", { key: w.readKey, query: { uid: "100500" } }), 200, expected);
  });

  await t.step("a lookup writes nothing", async () => {
    const before = await snapshot(w.kv, { versionstamps: true });
    assertJson(await w.call("GET", "/api/card", { query: { card_barcode: "4600682003144", bonuses: 1 } }), 200);
    assert.equal(await snapshot(w.kv, { versionstamps: true }), before);
  });
});

Deno.test("GET /api/card: when several keys are given, the first in card_id, uid, external_id, card_barcode order that finds a card wins", async (t) => {
  await using w = await world({ now: () => NOW });
  const ids = await till(w);
  const cardOf = async (query: Record<string, string | number>) =>
    assertJson(await w.call("GET", "/api/card", { query }), 200).card.card_id;

  await t.step("card_id over uid, external_id and card_barcode", async () => {
    assert.equal(
      await cardOf({ card_barcode: "2000", external_id: "C-2", uid: "300", card_id: ids.gold }),
      ids.gold,
    );
  });
  await t.step("uid over external_id and card_barcode", async () => {
    assert.equal(await cardOf({ card_barcode: "2000", external_id: "C-2", uid: "300" }), ids.borisCard);
  });
  await t.step("external_id over card_barcode", async () => {
    assert.equal(await cardOf({ card_barcode: "2000", external_id: "C-2" }), ids.second);
  });
  await t.step("a key that finds nothing gives way to the next", async () => {
    assert.equal(await cardOf({ card_id: 999, uid: "404", external_id: "C-404", card_barcode: "2000" }), ids.loose);
    assert.equal(await cardOf({ card_id: 999, external_id: "C-2" }), ids.second);
  });
});

Deno.test("GET /api/card?bonuses=1 adds the owner's balances exactly as GET /api/customer?bonuses=1 shows them", async (t) => {
  await using w = await world({ now: () => NOW });
  const ids = await till(w);

  await t.step("the owner's balance in every program", async () => {
    const r = await w.call("GET", "/api/card", { query: { uid: "100500", bonuses: 1 } });
    const body = assertJson(r, 200, {
      success: 1,
      type: "card",
      card: goldView(ids.gold, ids.anna),
      customer: annaView(ids.anna),
      bonuses: [
        { bonus_id: 1, bonus_name: "Points", balance: 12.5, pending: 0, next_expire_date: null, next_expire_amount: 0 },
        { bonus_id: 2, bonus_name: "Miles", balance: 0, pending: 0, next_expire_date: null, next_expire_amount: 0 },
      ],
    });
    assert.ok(cardLookupReply.safeParse(body).success, r.text);
    const customer = assertJson(await w.call("GET", "/api/customer", { query: { id: ids.anna, bonuses: 1 } }), 200);
    assert.deepEqual(body.bonuses, customer.customers[0].bonuses);
  });

  await t.step("bonuses=0 leaves them out", async () => {
    const body = assertJson(await w.call("GET", "/api/card", { query: { uid: "100500", bonuses: 0 } }), 200);
    assert.equal("bonuses" in body, false);
  });

  await t.step("another owner's card shows that owner's balances", async () => {
    const body = assertJson(await w.call("GET", "/api/card", { query: { uid: "300", bonuses: 1 } }), 200);
    assert.equal(body.customer.id, ids.boris);
    assert.deepEqual(body.bonuses, [
      { bonus_id: 1, bonus_name: "Points", balance: 0, pending: 0, next_expire_date: null, next_expire_amount: 0 },
      { bonus_id: 2, bonus_name: "Miles", balance: 0, pending: 0, next_expire_date: null, next_expire_amount: 0 },
    ]);
  });
});

Deno.test("GET /api/card finds a card without an owner: customer is empty, and so are its bonuses", async (t) => {
  await using w = await world({ now: () => NOW });
  const ids = await till(w);
  const card = {
    card_id: ids.loose,
    external_id: "C-4",
    uid: "200",
    uid_ean13: "0000000002004",
    barcode: "2000",
    medium: null,
    status: "NEW",
    block_date: null,
    activate_date: null,
    type_id: null,
    type_name: null,
    customer_id: null,
    customer_external_id: null,
    created_date: STAMP,
    created_by: 2,
    last_update_date: STAMP,
    last_update_by: 2,
  };

  await t.step("JSON", async () => {
    const r = await w.call("GET", "/api/card", { query: { card_barcode: "2000" } });
    const body = assertJson(r, 200, { success: 1, type: "card", card, customer: null });
    assert.ok(cardLookupReply.safeParse(body).success, r.text);
    const withBonuses = assertJson(await w.call("GET", "/api/card", { query: { uid: "200", bonuses: 1 } }), 200);
    assert.deepEqual(withBonuses, { success: 1, type: "card", card, customer: null, bonuses: [] });
    assert.ok(cardLookupReply.safeParse(withBonuses).success);
  });

  await t.step("XML: empty customer and bonuses elements", async () => {
    const r = await w.call("GET", "/api/card", { query: { uid: "200", bonuses: 1, format: "xml" } });
    const root = assertXml(r, 200);
    assert.equal(root.customer, "");
    assert.equal(root.bonuses, "");
    assert.ok(r.text.includes("\n<customer/>\n<bonuses/>\n</root>\n"), r.text);
  });
});

Deno.test("GET /api/card?format=xml: card, customer and bonus elements in the specification's layout", async () => {
  await using w = await world({ now: () => NOW });
  const ids = await till(w);
  const r = await w.call("GET", "/api/card", { query: { card_id: ids.gold, bonuses: 1, format: "xml" } });
  assert.equal(r.status, 200);
  assert.equal(r.type, XML_TYPE);
  assert.equal(
    r.text,
    `<?xml version="1.0" encoding="UTF-8"?>
<root>
<success>1</success>
<type>card</type>
<card>
<card_id>${ids.gold}</card_id>
<external_id>C-1</external_id>
<uid>100500</uid>
<uid_ean13>0000001005004</uid_ean13>
<barcode>4600682003144</barcode>
<medium>PLASTIC</medium>
<status>ACTIVE</status>
<block_date/>
<activate_date>${STAMP}</activate_date>
<type_id>1</type_id>
<type_name>Gold</type_name>
<customer_id>${ids.anna}</customer_id>
<customer_external_id>1C-7</customer_external_id>
<created_date>${STAMP}</created_date>
<created_by>2</created_by>
<last_update_date>${STAMP}</last_update_date>
<last_update_by>2</last_update_by>
</card>
<customer>
<id>${ids.anna}</id>
<external_id>1C-7</external_id>
<fname>Анна</fname>
<lname>Петрова</lname>
<mname>Ивановна</mname>
<phone>79001234567</phone>
<email>anna@example.com</email>
<group_id>1</group_id>
<group_name>VIP</group_name>
</customer>
<bonuses>
<bonus>
<bonus_id>1</bonus_id>
<bonus_name>Points</bonus_name>
<balance>12.5</balance>
<pending>0</pending>
<next_expire_date/>
<next_expire_amount>0</next_expire_amount>
</bonus>
<bonus>
<bonus_id>2</bonus_id>
<bonus_name>Miles</bonus_name>
<balance>0</balance>
<pending>0</pending>
<next_expire_date/>
<next_expire_amount>0</next_expire_amount>
</bonus>
</bonuses>
</root>
`,
  );
});

Deno.test("GET /api/card refuses: no key (400), an unknown card (404), another company's card (404), a bad value (400)", async (t) => {
  await using w = await world({ now: () => NOW });
  const ids = await till(w);
  const required = 'Parameter "card_id", "uid", "external_id" or "card_barcode" is required';

  await t.step("no lookup key", async () => {
    assertError(await w.call("GET", "/api/card"), { status: 400, info: required, field: "card_id" });
    assertError(await w.call("GET", "/api/card", { query: { bonuses: 1 } }), {
      status: 400,
      info: required,
      field: "card_id",
    });
    assertError(await w.call("GET", "/api/card", { query: { format: "xml" } }), {
      status: 400,
      info: required,
      field: "card_id",
    });
  });

  await t.step("an empty lookup key is refused, not ignored", async () => {
    const r = await w.call("GET", "/api/card", { query: { uid: "" } });
    assertJson(r, 400);
    assert.equal(r.body.field, "uid");
  });

  await t.step("unknown card: the message updateCard gives", async () => {
    assertError(await w.call("GET", "/api/card", { query: { card_id: 999 } }), {
      status: 404,
      info: 'Card "999" not found',
      field: "card_id",
    });
    assertError(await w.call("GET", "/api/card", { query: { card_barcode: "12345" } }), {
      status: 404,
      info: 'Card with card_barcode "12345" not found',
      field: "card_barcode",
    });
    const update = await w.call("GET", "/api/customer/updateCard", { query: { uid: "nope", card_barcode: "1" } });
    const lookup = await w.call("GET", "/api/card", { query: { uid: "nope", card_barcode: "1" } });
    assertError(lookup, {
      status: 404,
      info: 'Card not found by uid "nope" or card_barcode "1"',
      field: "uid",
    });
    assert.deepEqual(lookup.body, update.body);
  });

  await t.step("another company's card is not found", async () => {
    const lookups: [string, string | number, string][] = [
      ["card_id", ids.gold, `Card "${ids.gold}" not found`],
      ["uid", "100500", 'Card with uid "100500" not found'],
      ["card_barcode", "4600682003144", 'Card with card_barcode "4600682003144" not found'],
    ];
    for (const [key, value, info] of lookups) {
      const r = await w.call("GET", "/api/card", { key: w.otherKey, query: { [key]: value } });
      assertError(r, { status: 404, info, field: key });
    }
  });

  await t.step("a value the parameter's rule refuses", async () => {
    const r = await w.call("GET", "/api/card", { query: { card_barcode: "abc" } });
    assertError(r, { status: 400, info: 'Invalid card_barcode "abc": only digits 0-9', field: "card_barcode" });
  });

  await t.step("without a key: 401", async () => {
    assertJson(await w.call("GET", "/api/card", { key: null, query: { uid: "100500" } }), 401);
  });
});

Deno.test("GET /api/card takes GET and HEAD only, beside GET /api/card/history", async (t) => {
  await using w = await world({ now: () => NOW });
  const ids = await till(w);

  await t.step("HEAD answers as GET would, without a body", async () => {
    const res = await w.app.request(`/api/card?uid=100500&apikey=${w.key}`, { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), JSON_TYPE);
    assert.equal(await res.text(), "");
  });

  await t.step("POST is 405 naming GET and HEAD", async () => {
    for (const method of ["POST", "PUT", "DELETE"]) {
      const r = await w.call(method, "/api/card", { form: { uid: "100500" } });
      assertError(r, { status: 405, info: `Method ${method} is not allowed for /api/card: use GET or HEAD` });
      assert.equal(r.headers.get("allow"), "GET, HEAD");
    }
  });

  await t.step("the card's history is still its own endpoint", async () => {
    const r = await w.call("GET", "/api/card/history", { query: { card_id: ids.gold } });
    const body = assertJson(r, 200);
    assert.equal(body.type, "history");
    assert.equal(body.card_id, ids.gold);
  });
});

Deno.test("GET /api/customer?card_barcode= and ?uid= find a card's owner", async (t) => {
  await using w = await world({ now: () => NOW });
  const ids = await till(w);
  const found = async (query: Record<string, string | number>) => {
    const body = assertJson(await w.call("GET", "/api/customer", { query }), 200);
    assert.equal(body.type, "customer");
    assert.equal(body.count, body.customers.length);
    return body.customers.map((c: { id: number }) => c.id);
  };

  await t.step("by either key, in the seed's reply shape", async () => {
    assert.deepEqual(await found({ card_barcode: "4600682003144" }), [ids.anna]);
    assert.deepEqual(await found({ uid: "100501" }), [ids.anna]);
    assert.deepEqual(await found({ uid: "300" }), [ids.boris]);
    const byCard = assertJson(await w.call("GET", "/api/customer", { query: { uid: "100500", cards: 1 } }), 200);
    const byId = assertJson(await w.call("GET", "/api/customer", { query: { id: ids.anna, cards: 1 } }), 200);
    assert.deepEqual(byCard, byId);
  });

  await t.step("a card without an owner, or no such card: an empty list", async () => {
    assertJson(await w.call("GET", "/api/customer", { query: { uid: "200" } }), 200, {
      success: 1,
      type: "customer",
      count: 0,
      customers: [],
    });
    assert.deepEqual(await found({ card_barcode: "2000" }), []);
    assert.deepEqual(await found({ card_barcode: "999999" }), []);
    assert.deepEqual(await found({ uid: "no-such-card" }), []);
  });

  await t.step("combined with other keys: every key must name the same customer", async () => {
    assert.deepEqual(await found({ card_barcode: "4600682003144", phone: "+7 900 123-45-67" }), [ids.anna]);
    assert.deepEqual(await found({ uid: "100500", phone: "79001234567" }), [ids.anna]);
    assert.deepEqual(await found({ card_barcode: "4600682003144", phone: "+79007654321" }), []);
    assert.deepEqual(await found({ uid: "300", phone: "79001234567" }), []);
    // Two cards of one owner name that owner; cards of two owners name nobody.
    assert.deepEqual(await found({ uid: "100500", card_barcode: "2000000000015" }), [ids.anna]);
    assert.deepEqual(await found({ uid: "100500", card_barcode: "3000" }), []);
    assert.deepEqual(await found({ uid: "100500", id: ids.anna, external_id: "1C-7" }), [ids.anna]);
    assert.deepEqual(await found({ uid: "100500", email: "anna@example.com", with_phone: 0 }), []);
    assert.deepEqual(await found({ uid: "200", phone: "79001234567" }), []);
  });

  await t.step("another company's cards find nobody", async () => {
    const body = assertJson(
      await w.call("GET", "/api/customer", { key: w.otherKey, query: { card_barcode: "4600682003144" } }),
      200,
    );
    assert.equal(body.count, 0);
  });

  await t.step("XML", async () => {
    const r = await w.call("GET", "/api/customer", { query: { card_barcode: "4600682003144", format: "xml" } });
    const root = assertXml(r, 200);
    assert.equal(root.count, "1");
    assert.equal(root.customers.customer.id, String(ids.anna));
  });

  await t.step("a bad value is refused naming the parameter", async () => {
    assertError(await w.call("GET", "/api/customer", { query: { card_barcode: "12a" } }), {
      status: 400,
      info: 'Invalid card_barcode "12a": only digits 0-9',
      field: "card_barcode",
    });
    const r = await w.call("GET", "/api/customer", { query: { uid: "1 2" } });
    assertJson(r, 400);
    assert.equal(r.body.field, "uid");
  });

  await t.step("still a read: POST is 405", async () => {
    const r = await w.call("POST", "/api/customer", { form: { uid: "100500" } });
    assertJson(r, 405);
  });
});

Deno.test("cardAtTill() answers the same without HTTP: balances only when asked, none for an unowned card", async () => {
  await using w = await world({ now: () => NOW });
  const ids = await till(w);
  const store = createStore(w.kv, { clock: () => NOW });
  const actor = { companyId: "acme", name: "task:test", userId: 1 };
  const owned = await cardAtTill(store, actor, {
    lookup: { card_barcode: "4600682003144" },
    bonuses: false,
    maxAgeMs: 0,
  });
  assert.equal(owned.card.id, ids.gold);
  assert.equal(owned.typeName, "Gold");
  assert.equal(owned.owner?.id, ids.anna);
  assert.equal(owned.groupName, "VIP");
  assert.equal(owned.balances, null);
  const asked = await cardAtTill(store, actor, { lookup: { uid: "100500" }, bonuses: true, maxAgeMs: 0 });
  const balances = await balancesOf(store, actor, { customerIds: [ids.anna] });
  assert.deepEqual(asked.balances, balances.get(ids.anna));
  assert.deepEqual(asked.balances?.map((b) => b.program.name), ["Points", "Miles"]);
  const loose = await cardAtTill(store, actor, { lookup: { external_id: "C-4" }, bonuses: true, maxAgeMs: 0 });
  assert.deepEqual([loose.owner, loose.groupName, loose.balances], [null, null, []]);
  await assert.rejects(
    () =>
      cardAtTill(store, { ...actor, companyId: "globex" }, { lookup: { uid: "100500" }, bonuses: false, maxAgeMs: 0 }),
    { name: "NotFoundError", message: 'Card with uid "100500" not found' },
  );
  await assert.rejects(() => cardAtTill(store, actor, { lookup: {}, bonuses: false, maxAgeMs: 0 }), {
    name: "ValidationError",
  });
});
