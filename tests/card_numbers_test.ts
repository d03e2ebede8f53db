import assert from "node:assert/strict";
import { rawInsertCards } from "../storage/seed.ts";
import { cardKeys } from "../storage/keys.ts";
import type { Card } from "../domain/card.ts";
import { assertJson, world } from "./kit.ts";

function seededCard(id: number, uid: string): Card {
  return {
    id,
    external_id: null,
    uid,
    uid_ean13: null,
    barcode: null,
    medium: "PLASTIC",
    status: "ACTIVE",
    block_date: null,
    activate_date: 0,
    type_id: null,
    customer_id: null,
    created_date: 0,
    created_by: 1,
    last_update_date: 0,
    last_update_by: 1,
  };
}

Deno.test("insertCard numbers a card past a long run of numbers other cards hold, skipping none that is free", async () => {
  await using w = await world();
  // Cards numbered 1..2500 except 1777, plus numbers that sort between them as strings ("1000a", "17770").
  const uids = [...Array.from({ length: 2500 }, (_, i) => String(i + 1)).filter((u) => u !== "1777"), "1000a", "17770"];
  await rawInsertCards(w.kv, "acme", uids.map((uid, i) => seededCard(i + 1, uid)));
  assert.equal((await w.kv.get(cardKeys.numberSequence("acme"))).value, 17770, "seeding moves the sequence past them");
  // As if the cards had come from elsewhere (an import of numbered cards): the sequence still stands at 0.
  await w.kv.set(cardKeys.numberSequence("acme"), 0);

  const insert = async () => assertJson(await w.call("GET", "/api/customer/insertCard", { query: {} }), 200);
  const first = await insert();
  const second = await insert();
  const uidOf = async (reply: Record<string, unknown>) => {
    const card = await w.kv.get<Card>(cardKeys.card("acme", reply.card_id as number));
    return card.value?.uid;
  };
  assert.equal(await uidOf(first), "1777");
  assert.equal(await uidOf(second), "2501");
  assert.equal((await w.kv.get(cardKeys.numberSequence("acme"))).value, 2501);
});
