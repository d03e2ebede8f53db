/**
 * Card creates committed together (storage/cards.ts, createCardsTogether): a burst of insertCard with generated
 * numbers takes fewer commits than cards, and still gives each card a dense id, the next free number, its uid_ean13
 * as barcode, index entries naming its owner, its own audit entry under its own caller; a number another card holds
 * is skipped, an owner changed meanwhile is read again, and a store error fails only the cards of its write. Counted
 * by the company's change counter, which every commit adds one to.
 */
import assert from "node:assert/strict";
import { uidToEan13 } from "../domain/ean13.ts";
import { createApiKey, listApiKeys } from "../storage/api_keys.ts";
import { listHistory } from "../storage/audit.ts";
import { cardIndexValue, getCard } from "../storage/cards.ts";
import { cardKeys, keys } from "../storage/keys.ts";
import { assertJson, commitsOf, kvProxy, type Reply, request, storeDefects, type World, world } from "./kit.ts";

const commits = (w: World) => commitsOf(w.kv, "acme");
const defects = (w: World) => storeDefects(w.kv);

/** Customers 1..n of company acme, made through the API. */
async function customers(w: World, n: number): Promise<void> {
  for (let i = 1; i <= n; i++) {
    assertJson(
      await w.call("POST", "/api/customer/update", { form: { fname: `C${i}`, phone: `+7911000${i}000` } }),
      200,
    );
  }
}

const insert = (w: World, customerId: number, key = w.key): Promise<Reply> =>
  request(w.app, "POST", "/api/customer/insertCard", { key, form: { customer_id: customerId } });

/** Every card of the store is whole: record, uid and barcode entries naming it and its owner, owner entry, count. */
async function assertCards(w: World, ids: number[], owners: Map<number, number>): Promise<void> {
  for (const id of ids) {
    const card = await getCard(w.kv, "acme", id);
    assert.ok(card, `card ${id} is stored`);
    assert.equal(card.customer_id, owners.get(id));
    assert.equal(card.barcode, uidToEan13(card.uid));
    assert.deepEqual((await w.kv.get(cardKeys.byUid("acme", card.uid))).value, cardIndexValue(card));
    assert.deepEqual((await w.kv.get(cardKeys.byBarcode("acme", card.barcode!))).value, cardIndexValue(card));
    assert.notEqual((await w.kv.get(cardKeys.ofCustomerEntry("acme", card.customer_id!, id))).versionstamp, null);
    const history = await listHistory(w.kv, "acme", { entity: "card", entityId: String(id), limit: 5 });
    assert.equal(history.length, 1, `card ${id} has one audit entry`);
    assert.equal(history[0]!.entry.action, "create");
  }
  assert.deepEqual(await defects(w), []);
}

Deno.test("a burst of card inserts: fewer commits than cards, dense ids and numbers, each card whole", async () => {
  await using w = await world();
  await customers(w, 30);
  const first = assertJson(await insert(w, 1), 200);
  const before = await commits(w);
  const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => insert(w, (i % 30) + 1)));
  const ids = replies.map((r) => assertJson(r, 200).card_id as number);
  assert.deepEqual([...ids].sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => first.card_id + i + 1));
  assert.ok(await commits(w) - before < 40n, "the burst went in fewer commits than cards");
  const owners = new Map(ids.map((id, i) => [id, (i % 30) + 1]));
  owners.set(first.card_id, 1);
  await assertCards(w, [first.card_id, ...ids], owners);
  const cards = await Promise.all([first.card_id, ...ids].map((id) => getCard(w.kv, "acme", id)));
  const numbers = cards.map((c) => Number(c!.uid)).sort((a, b) => a - b);
  assert.deepEqual(numbers, Array.from({ length: 41 }, (_, i) => numbers[0]! + i), "numbers are consecutive");
  assert.equal((await w.kv.get(cardKeys.idSequence("acme"))).value, first.card_id + 40);
  assert.equal((await w.kv.get(cardKeys.numberSequence("acme"))).value, numbers.at(-1));
  // The API sees each card at its owner.
  for (const [id, owner] of owners) {
    const card = await getCard(w.kv, "acme", id);
    const found = assertJson(await w.call("GET", "/api/customer", { query: { card_barcode: card!.barcode! } }), 200);
    assert.equal(found.customers[0].id, owner);
  }
});

Deno.test("a card number someone took by hand is skipped by the burst, and nobody gets it twice", async () => {
  await using w = await world();
  await customers(w, 4);
  const first = await getCard(w.kv, "acme", assertJson(await insert(w, 1), 200).card_id);
  const next = Number(first!.uid);
  // Numbers 2 and 3 after the sequence go to cards with a given uid (as an import or a till would).
  for (const n of [next + 2, next + 3]) {
    const given = { query: { uid: String(n) }, form: { customer_id: 4 } };
    assertJson(await w.call("POST", "/api/customer/insertCard", given), 200);
  }
  const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => insert(w, (i % 3) + 1)));
  const ids = replies.map((r) => assertJson(r, 200).card_id as number);
  const uids = await Promise.all(ids.map(async (id) => (await getCard(w.kv, "acme", id))!.uid));
  assert.equal(new Set(uids).size, 12);
  assert.ok(!uids.includes(String(next + 2)) && !uids.includes(String(next + 3)), "the taken numbers are skipped");
  assert.deepEqual(await defects(w), []);
});

Deno.test("an owner changed while its cards queue: each card is committed once, pointing at it", async () => {
  await using w = await world();
  await customers(w, 2);
  assertJson(await insert(w, 2), 200);
  const replies = await Promise.all([
    ...Array.from({ length: 10 }, () => insert(w, 1)),
    ...Array.from(
      { length: 5 },
      (_, i) => w.call("POST", "/api/customer/update", { query: { id: 1 }, form: { fname: `N${i}` } }),
    ),
  ]);
  const ids = replies.slice(0, 10).map((r) => assertJson(r, 200).card_id as number);
  for (const r of replies.slice(10)) assertJson(r, 200);
  assert.equal(new Set(ids).size, 10);
  await assertCards(w, ids, new Map(ids.map((id) => [id, 1])));
  const found = assertJson(await w.call("GET", "/api/customer", { query: { id: 1, cards: 1 } }), 200);
  assert.equal(found.customers[0].cards.length, 10);
});

Deno.test("card inserts of two keys in one burst: each card's audit entry names the key that made it", async () => {
  await using w = await world();
  await customers(w, 6);
  const other = await createApiKey(w.kv, { companyId: "acme", userId: 5, access: "write" });
  const mine = (await listApiKeys(w.kv, "acme")).find((r) => r.user_id === 2)!;
  assertJson(await insert(w, 1), 200);
  const burst = Array.from({ length: 24 }, (_, i) => i % 3 === 0 ? other.key : w.key);
  const replies = await Promise.all(burst.map((key, i) => insert(w, (i % 6) + 1, key)));
  const ids: number[] = [];
  for (const [i, key] of burst.entries()) {
    const id = assertJson(replies[i]!, 200).card_id as number;
    ids.push(id);
    const [entry] = await listHistory(w.kv, "acme", { entity: "card", entityId: String(id), limit: 1 });
    const by = key === other.key ? other.record : mine;
    assert.equal(entry!.entry.actor, `key:${by.id}`);
    assert.equal(entry!.entry.user_id, by.user_id);
  }
  await assertCards(w, ids, new Map(ids.map((id, i) => [id, (i % 6) + 1])));
});

Deno.test("a store error in a write of cards together fails its own cards only, and leaves no part of them", async () => {
  const proxies: ReturnType<typeof kvProxy>[] = [];
  await using w = await world({
    kv: (kv) => {
      const p = kvProxy(kv);
      proxies.push(p);
      return p.kv;
    },
  });
  const proxy = proxies[0]!;
  await customers(w, 8);
  assertJson(await insert(w, 1), 200);
  const cardsBefore = (await w.kv.get(cardKeys.idSequence("acme"))).value as number;
  // The next commit is the first write of the burst (its first card alone, or a write of several).
  proxy.fail("commit", { times: 1 });
  const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => insert(w, i + 1)));
  const failed = replies.filter((r) => r.status !== 200);
  const ok = replies.filter((r) => r.status === 200).map((r) => assertJson(r, 200).card_id as number);
  assert.ok(failed.length >= 1 && failed.length <= 4, `one write failed (${failed.length} cards)`);
  for (const r of failed) assert.equal(r.status, 500);
  assert.equal(ok.length + failed.length, 8);
  // The acknowledged cards are whole and dense; nothing of the failed ones is stored.
  assert.deepEqual([...ok].sort((a, b) => a - b), Array.from({ length: ok.length }, (_, i) => cardsBefore + i + 1));
  let stored = 0;
  for await (const _ of w.kv.list({ prefix: cardKeys.cards("acme") })) stored++;
  assert.equal(stored, 1 + ok.length);
  assert.equal(
    (await w.kv.get(keys.customer("acme", 1))).value !== null,
    true,
  );
  assert.deepEqual(await defects(w), []);
});
