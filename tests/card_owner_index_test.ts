/**
 * The card index entries name the card's owner (storage/cards.ts, CardIndexValue), so "customer by card" is two
 * reads: these tests hold every write path to keeping that value exact, the read path to accepting entries written
 * before the format (a bare card id), and verify to finding and repairing both.
 */
import assert from "node:assert/strict";
import { cardKeys } from "../storage/keys.ts";
import { verifyStore } from "../storage/verify.ts";
import { createStore } from "../storage/store.ts";
import { createFresh } from "../storage/import_batch.ts";
import { cardIndexValue } from "../storage/cards.ts";
import type { Card } from "../domain/card.ts";
import { applyCustomerPatch } from "../domain/customer.ts";
import { applyCardChange } from "../domain/card.ts";
import { assertJson, kvProxy, type World, world } from "./kit.ts";

const CID = "acme";

async function customer(w: World, fname: string): Promise<number> {
  return assertJson(await w.call("POST", "/api/customer/update", { form: { fname } }), 200).id;
}

/** The ids of the customers `GET /api/customer` finds by one card lookup parameter. */
async function ownersBy(w: World, query: Record<string, string>): Promise<number[]> {
  const body = assertJson(await w.call("GET", "/api/customer", { query }), 200);
  return body.customers.map((c: { id: number }) => c.id);
}

async function indexEntries(kv: Deno.Kv, card: { uid: string; barcode: string; external_id?: string }) {
  const keys = [cardKeys.byUid(CID, card.uid), cardKeys.byBarcode(CID, card.barcode)];
  if (card.external_id) keys.push(cardKeys.byExternalId(CID, card.external_id));
  return (await kv.getMany(keys)).map((e) => e.value);
}

async function verifyFindings(kv: Deno.Kv, repair = false) {
  const found: string[] = [];
  await verifyStore(kv, {
    repair,
    onFinding: (f) => f.severity === "defect" && found.push(`${f.check}: ${f.message}`),
  });
  return found;
}

Deno.test("card index entries name the owner through create, owner change, detach and delete", async (t) => {
  await using w = await world();
  const anna = await customer(w, "Anna");
  const boris = await customer(w, "Boris");
  const card = { uid: "700100", barcode: "4600682003144", external_id: "EXT-1" };
  const created = assertJson(
    await w.call("POST", "/api/customer/insertCard", {
      query: { uid: card.uid, external_id: card.external_id },
      form: { barcode: card.barcode, customer_id: anna },
    }),
    200,
  );
  const id = created.card_id;

  await t.step("create", async () => {
    assert.deepEqual(await indexEntries(w.kv, card), [[id, anna], [id, anna], [id, anna]]);
    assert.deepEqual(await ownersBy(w, { card_barcode: card.barcode }), [anna]);
    assert.deepEqual(await ownersBy(w, { uid: card.uid }), [anna]);
  });

  await t.step("owner change, then lookup", async () => {
    assertJson(
      await w.call("POST", "/api/customer/updateCard", { query: { uid: card.uid }, form: { customer_id: boris } }),
      200,
    );
    assert.deepEqual(await indexEntries(w.kv, card), [[id, boris], [id, boris], [id, boris]]);
    assert.deepEqual(await ownersBy(w, { card_barcode: card.barcode }), [boris]);
    assert.deepEqual(await ownersBy(w, { uid: card.uid }), [boris]);
  });

  await t.step("a new barcode with the owner change", async () => {
    card.barcode = "2000000000015";
    assertJson(
      await w.call("POST", "/api/customer/updateCard", {
        query: { uid: card.uid },
        form: { customer_id: anna, barcode: card.barcode },
      }),
      200,
    );
    assert.deepEqual(await indexEntries(w.kv, card), [[id, anna], [id, anna], [id, anna]]);
    assert.equal((await w.kv.get(cardKeys.byBarcode(CID, "4600682003144"))).versionstamp, null);
    assert.deepEqual(await ownersBy(w, { card_barcode: card.barcode }), [anna]);
    assert.deepEqual(await ownersBy(w, { card_barcode: "4600682003144" }), []);
  });

  await t.step("detached: the entry says no owner", async () => {
    assertJson(
      await w.call("POST", "/api/customer/updateCard", { query: { uid: card.uid }, form: { customer_id: "" } }),
      200,
    );
    assert.deepEqual(await indexEntries(w.kv, card), [[id, null], [id, null], [id, null]]);
    assert.deepEqual(await ownersBy(w, { card_barcode: card.barcode }), []);
    assert.deepEqual(await ownersBy(w, { uid: card.uid }), []);
  });

  await t.step("a change that keeps the owner keeps the entries", async () => {
    assertJson(
      await w.call("POST", "/api/customer/updateCard", { query: { uid: card.uid }, form: { customer_id: boris } }),
      200,
    );
    assertJson(
      await w.call("POST", "/api/customer/updateCard", { query: { uid: card.uid }, form: { status: "ACTIVE" } }),
      200,
    );
    assert.deepEqual(await indexEntries(w.kv, card), [[id, boris], [id, boris], [id, boris]]);
  });

  await t.step("generated uid and barcode", async () => {
    const made = assertJson(await w.call("POST", "/api/customer/insertCard", { form: { customer_id: anna } }), 200);
    const stored = (await w.kv.get<Card>(cardKeys.card(CID, made.card_id))).value!;
    assert.ok(stored.barcode);
    assert.deepEqual(await indexEntries(w.kv, { uid: stored.uid, barcode: stored.barcode }), [
      [made.card_id, anna],
      [made.card_id, anna],
    ]);
    assert.deepEqual(await ownersBy(w, { card_barcode: stored.barcode }), [anna]);
  });

  await t.step("delete", async () => {
    assertJson(await w.call("POST", "/api/customer/deleteCard", { query: { uid: card.uid } }), 200);
    assert.deepEqual(await indexEntries(w.kv, card), [null, null, null]);
    assert.deepEqual(await ownersBy(w, { card_barcode: card.barcode }), []);
  });

  assert.deepEqual(await verifyFindings(w.kv), []);
});

Deno.test("customer by card barcode or uid takes two store reads; an old bare-id entry three", async () => {
  let proxy: ReturnType<typeof kvProxy> | null = null;
  await using w = await world({ kv: (kv) => (proxy = kvProxy(kv)).kv });
  const anna = await customer(w, "Anna");
  assertJson(
    await w.call("POST", "/api/customer/insertCard", {
      query: { uid: "700100" },
      form: { barcode: "4600682003144", customer_id: anna },
    }),
    200,
  );
  await ownersBy(w, { card_barcode: "4600682003144" }); // warms the key and directory caches
  const reads = async (query: Record<string, string>, expected: number[]) => {
    const before = { ...proxy!.calls };
    assert.deepEqual(await ownersBy(w, query), expected);
    return proxy!.calls.get - before.get + proxy!.calls.getMany - before.getMany + proxy!.calls.list - before.list;
  };
  assert.equal(await reads({ card_barcode: "4600682003144" }, [anna]), 2);
  assert.equal(await reads({ uid: "700100" }, [anna]), 2);
  assert.equal(await reads({ card_barcode: "4600682003145" }, []), 1);

  // A store written before the entries named the owner: the bare card id still finds the owner, through the card.
  const id = (await w.kv.get<unknown[]>(cardKeys.byUid(CID, "700100"))).value![0] as number;
  await w.kv.set(cardKeys.byBarcode(CID, "4600682003144"), id);
  await w.kv.set(cardKeys.byUid(CID, "700100"), id);
  assert.equal(await reads({ card_barcode: "4600682003144" }, [anna]), 3);
  assert.equal(await reads({ uid: "700100" }, [anna]), 3);
  // The card at the till, a purchase and an update find the card by an old entry as before.
  assertJson(await w.call("GET", "/api/card", { query: { card_barcode: "4600682003144" } }), 200);
  assertJson(
    await w.call("POST", "/api/customer/updateCard", {
      query: { card_barcode: "4600682003144" },
      form: { status: "ACTIVE" },
    }),
    200,
  );
  assert.deepEqual((await w.kv.get(cardKeys.byBarcode(CID, "4600682003144"))).value, id);
});

Deno.test("verify reports old bare-id and stale-owner card entries and repairs them", async () => {
  await using w = await world();
  const anna = await customer(w, "Anna");
  const boris = await customer(w, "Boris");
  const made = assertJson(
    await w.call("POST", "/api/customer/insertCard", {
      query: { uid: "700100", external_id: "EXT-1" },
      form: { barcode: "4600682003144", customer_id: anna },
    }),
    200,
  );
  await w.kv.set(cardKeys.byUid(CID, "700100"), made.card_id);
  await w.kv.set(cardKeys.byBarcode(CID, "4600682003144"), [made.card_id, boris]);
  const expected = [
    `index_value: Card "${made.card_id}": uid index "700100" holds the bare card id (written before index entries ` +
    "named the owner)",
    `index_value: Card "${made.card_id}": barcode index "4600682003144" names owner ${boris}, the card's is ${anna}`,
  ];
  assert.deepEqual(await verifyFindings(w.kv), expected);
  assert.deepEqual(await verifyFindings(w.kv, true), expected);
  assert.deepEqual(await verifyFindings(w.kv), []);
  assert.deepEqual(await indexEntries(w.kv, { uid: "700100", barcode: "4600682003144", external_id: "EXT-1" }), [
    [made.card_id, anna],
    [made.card_id, anna],
    [made.card_id, anna],
  ]);
  // A missing entry is made in the new format.
  await w.kv.delete(cardKeys.byBarcode(CID, "4600682003144"));
  assert.equal((await verifyFindings(w.kv, true)).length, 1);
  assert.deepEqual((await w.kv.get(cardKeys.byBarcode(CID, "4600682003144"))).value, [made.card_id, anna]);
});

Deno.test("the importer's batched create writes card entries naming the owner", async () => {
  await using kv = await Deno.openKv(":memory:");
  const store = createStore(kv);
  const actor = { companyId: CID, userId: 1, name: "test" };
  const now = Date.UTC(2026, 0, 1);
  const rows = [0, 1].map((i) => {
    const customer = applyCustomerPatch(null, { fname: `N${i}` }, {
      id: 0,
      groupId: null,
      now,
      userId: 1,
      today: { year: 2026, month: 1, day: 1 },
    });
    const card = applyCardChange(null, { barcode: `460068200314${i}` }, {
      id: 0,
      uid: `80000${i}`,
      externalId: null,
      customerId: null,
      now,
      userId: 1,
    });
    return { customer, card, balance: null };
  });
  const ids: { customerId: number; cardId: number | null }[] = [];
  await createFresh(store, actor, rows, { onWritten: (i, got) => (ids[i] = got) });
  for (const [i, got] of ids.entries()) {
    const card = (await kv.get<Card>(cardKeys.card(CID, got.cardId!))).value!;
    assert.equal(card.customer_id, got.customerId);
    assert.deepEqual(await indexEntries(kv, { uid: `80000${i}`, barcode: `460068200314${i}` }), [
      cardIndexValue(card),
      cardIndexValue(card),
    ]);
  }
  assert.deepEqual(await verifyFindings(kv), []);
});

Deno.test("an owner change racing lookups: every lookup finds a customer that owned the card at some point", async () => {
  await using w = await world();
  const owners = [await customer(w, "Anna"), await customer(w, "Boris"), await customer(w, "Vera")];
  assertJson(
    await w.call("POST", "/api/customer/insertCard", {
      query: { uid: "700100" },
      form: { barcode: "4600682003144", customer_id: owners[0]! },
    }),
    200,
  );
  // Change k (1-based) gives the card to owners[k % 3]; `started` and `finished` count the changes sent and answered.
  let started = 0;
  let finished = 0;
  const CHANGES = 30;
  const changes = (async () => {
    for (let k = 1; k <= CHANGES; k++) {
      started = k;
      const reply = await w.call("POST", "/api/customer/updateCard", {
        query: { uid: "700100" },
        form: { customer_id: owners[k % 3]! },
      });
      assertJson(reply, 200);
      finished = k;
    }
  })();
  let checked = 0;
  const lookups = Array.from({ length: 4 }, async (_, n) => {
    while (finished < CHANGES) {
      const query: Record<string, string> = n % 2 === 0 ? { card_barcode: "4600682003144" } : { uid: "700100" };
      const from = finished;
      const found = await ownersBy(w, query);
      const to = started;
      // Owners the card had at some moment of this lookup: the one of the last change answered before it began,
      // and those of every change sent before it ended.
      const possible = new Set<number>();
      for (let k = from; k <= to; k++) possible.add(owners[k % 3]!);
      assert.equal(found.length, 1, JSON.stringify(found));
      assert.ok(possible.has(found[0]!), `found ${found[0]}, owners during the lookup: ${[...possible]}`);
      checked++;
    }
  });
  await Promise.all([changes, ...lookups]);
  assert.ok(checked > 0);
  assert.deepEqual(await ownersBy(w, { card_barcode: "4600682003144" }), [owners[CHANGES % 3]]);
  assert.deepEqual(await verifyFindings(w.kv), []);
});
