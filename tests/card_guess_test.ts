/**
 * Card creates read the candidates where this process left the sequences in the same round as the sequences; the
 * guess only decides what is read early. These tests make the guess wrong (another process's creates, a number
 * taken by a given uid, an explicit empty uid_ean13) and check the numbers are exactly those of the serial path.
 */
import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../config.ts";
import { createApp } from "../routes/app.ts";
import { type KvProxy, kvProxy, request, world } from "./kit.ts";

Deno.test("card creates: numbers stay right when this process's guess of the sequences is wrong", async () => {
  await using w = await world();
  // A second process over the same store: its own store object, so its own guesses.
  const other = createApp({ kv: w.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  const insert = async (app: typeof w.app, form: Record<string, string> = {}) => {
    const { uid, ...rest } = form;
    const query: Record<string, string> = uid === undefined ? {} : { uid };
    const r = await request(app, "POST", "/api/customer/insertCard", { key: w.key, query, form: rest });
    assert.equal(r.status, 200, r.text);
    const id = JSON.parse(r.text).card_id as number;
    const read = await request(app, "GET", "/api/card", { key: w.key, query: { card_id: id } });
    return JSON.parse(read.text).card as { uid: string; uid_ean13: string | null; barcode: string | null };
  };
  const uids: string[] = [];
  const barcodes: string[] = [];
  const keep = (card: { uid: string; uid_ean13: string | null; barcode: string | null }) => {
    uids.push(card.uid);
    if (card.barcode) barcodes.push(card.barcode);
    return card;
  };
  assert.equal(keep(await insert(w.app)).uid, "1");
  assert.equal(keep(await insert(w.app)).uid, "2");
  // The other process moves the sequence: this one's guess (2) is now behind.
  assert.equal(keep(await insert(other)).uid, "3");
  assert.equal(keep(await insert(w.app)).uid, "4");
  // A card given the number this process would guess next.
  keep(await insert(other, { uid: "5" }));
  assert.equal(keep(await insert(w.app)).uid, "6");
  // Its uid_ean13 as another card's barcode: an in-store code instead, also when guessed.
  keep(await insert(other, { uid: "Z-1", barcode: "0000000000079" }));
  const seventh = keep(await insert(w.app));
  assert.equal(seventh.uid, "7");
  assert.equal(seventh.barcode, "2000000000015");
  // No uid_ean13 asked for: the guessed barcode batch (which starts with the uid's code) must not be used.
  const noEan = keep(await insert(w.app, { uid_ean13: "" }));
  assert.equal(noEan.uid, "8");
  assert.equal(noEan.uid_ean13, null);
  assert.equal(noEan.barcode, "2000000000022");
  assert.equal(new Set(uids).size, uids.length);
  assert.equal(new Set(barcodes).size, barcodes.length);
});

Deno.test("card creates after this process's own: one commit, no read of the sequences or candidates", async () => {
  const proxies: KvProxy[] = [];
  await using w = await world({ kv: (kv) => proxies[proxies.push(kvProxy(kv)) - 1]!.kv });
  const calls = proxies[0]!.calls;
  const insert = async () => {
    const before = { ...calls };
    const r = await w.call("POST", "/api/customer/insertCard", {});
    assert.equal(r.status, 200, r.text);
    return {
      getMany: calls.getMany - before.getMany,
      get: calls.get - before.get,
      commits: calls.commit - before.commit,
    };
  };
  await insert();
  // Only the read of the given unique values (none here, one empty getMany) before the queue; in it, the commit.
  assert.deepEqual(await insert(), { getMany: 1, get: 0, commits: 1 });
  const second = await w.call("GET", "/api/card", { query: { uid: "2" } });
  assert.equal(second.status, 200, "the second card got number 2");
  assert.equal(second.body.card.barcode, "0000000000024");
});
