/**
 * Black-box review 9: card creates committed together (storage/together.ts, createCardsTogether) under mixed load.
 * "fixed: ..." tests failed on the code as reviewed (a defect, since fixed); "held: ..." tests are attacks that held.
 */
import assert from "node:assert/strict";
import { uidToEan13 } from "../domain/ean13.ts";
import type { Card } from "../domain/card.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { listHistory } from "../storage/audit.ts";
import { cardIndexValue } from "../storage/cards.ts";
import { cardKeys, claimKeys, statKeys } from "../storage/keys.ts";
import { verifyStore } from "../storage/verify.ts";
import { createApp } from "../routes/app.ts";
import { DEFAULT_CONFIG } from "../config.ts";
import {
  assertJson,
  kvProxy,
  type Reply,
  request,
  runTask,
  type ServerProcess,
  startServer,
  tempDir,
  waitFor,
  world,
} from "./kit.ts";

/** Defects `verify` finds in the store. */
async function defects(kv: Deno.Kv): Promise<string[]> {
  const found: string[] = [];
  await verifyStore(kv, { onFinding: (f) => f.severity === "defect" && found.push(f.message) });
  return found;
}

async function cardsOf(kv: Deno.Kv, cid: string): Promise<Card[]> {
  const out: Card[] = [];
  for await (const e of kv.list<Card>({ prefix: cardKeys.cards(cid) })) out.push(e.value);
  return out;
}

/**
 * Every card of the company is whole and unique: uid and barcode each held by one card, index entries naming the card
 * and its owner, the owner's entry present, one create in its history, the card counter equal to the cards stored.
 */
async function assertCardsWhole(kv: Deno.Kv, cid: string, options: { audit?: boolean } = {}): Promise<Card[]> {
  const cards = await cardsOf(kv, cid);
  const uids = cards.map((c) => c.uid);
  const barcodes = cards.map((c) => c.barcode).filter((b) => b !== null);
  const twice = (values: string[]) => [...new Set(values.filter((v, i) => values.indexOf(v) !== i))];
  assert.deepEqual(twice(uids), [], "uids held by more than one card");
  assert.deepEqual(twice(barcodes as string[]), [], "barcodes held by more than one card");
  for (const card of cards) {
    assert.deepEqual((await kv.get(cardKeys.byUid(cid, card.uid))).value, cardIndexValue(card), `uid of ${card.id}`);
    if (card.barcode !== null) {
      assert.deepEqual((await kv.get(cardKeys.byBarcode(cid, card.barcode))).value, cardIndexValue(card));
    }
    if (card.customer_id !== null) {
      assert.notEqual((await kv.get(cardKeys.ofCustomerEntry(cid, card.customer_id, card.id))).versionstamp, null);
    }
    if (options.audit !== false) {
      const history = await listHistory(kv, cid, { entity: "card", entityId: String(card.id), limit: 50 });
      const creates = history.filter((h) => h.entry.action === "create");
      assert.equal(creates.length, 1, `card ${card.id}: one create`);
      const made = Object.fromEntries(creates[0]!.entry.changes.map((c) => [c.field, c.new]));
      assert.equal(made.uid, card.uid, `card ${card.id}: its create names its uid`);
      assert.equal(creates[0]!.entry.user_id, card.created_by);
    }
  }
  const totals = await kv.getMany<Deno.KvU64[]>([statKeys.cardTotal(cid, "in"), statKeys.cardTotal(cid, "out")]);
  const count = Number(totals[0]?.value?.value ?? 0n) - Number(totals[1]?.value?.value ?? 0n);
  assert.equal(count, cards.length, "the card counter equals the cards stored");
  assert.deepEqual(await defects(kv), []);
  return cards;
}

const insert = (
  app: Parameters<typeof request>[0],
  key: string,
  form: Record<string, string | number> = {},
  query: Record<string, string | number> = {},
): Promise<Reply> => request(app, "POST", "/api/customer/insertCard", { key, form, query });

async function makeCustomers(w: Awaited<ReturnType<typeof world>>, n: number, key = w.key): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await w.call("POST", "/api/customer/update", {
      key,
      form: { fname: `C${i}`, phone: `7911${key.length}${String(ids.length).padStart(6, "0")}${i % 10}` },
    });
    ids.push(assertJson(r, 200).id);
  }
  return ids;
}

Deno.test("fixed: queued card inserts giving one uid_ean13 go in one write and get the same barcode", async (t) => {
  // Whether two creates land in one write depends on the queue's turns: each scenario is repeated (10 rounds) and
  // the store checked after all of them. One at a time, the later card finds the barcode taken and gets an in-store
  // one; in one write, every card's barcode key is checked absent before any is set, so all of them take it.
  await t.step("the same uid_ean13 sent by several callers at once", async () => {
    await using w = await world();
    assertJson(await insert(w.app, w.key), 200); // the sequences are now known: the next burst goes together
    for (let round = 0; round < 10; round++) {
      const ean = uidToEan13(String(900000 + round))!;
      const replies = await Promise.all(Array.from({ length: 4 }, () => insert(w.app, w.key, { uid_ean13: ean })));
      for (const r of replies) assertJson(r, 200);
    }
    await assertCardsWhole(w.kv, "acme");
  });
  await t.step("a uid_ean13 equal to the EAN-13 of the number the card before it in the write takes", async () => {
    await using w = await world();
    assertJson(await insert(w.app, w.key), 200);
    for (let round = 0; round < 10; round++) {
      const next = ((await w.kv.get<number>(cardKeys.numberSequence("acme"))).value ?? 0) + 1;
      const replies = await Promise.all([
        insert(w.app, w.key),
        insert(w.app, w.key, { uid_ean13: uidToEan13(String(next))! }),
      ]);
      for (const r of replies) assertJson(r, 200);
    }
    await assertCardsWhole(w.kv, "acme");
  });
});

Deno.test("held: a mixed burst (generated, given uid/barcode/external_id taking the next numbers, create_if_not_exist, moves, deletes, customer creates, two companies)", async () => {
  await using w = await world();
  const acme = await makeCustomers(w, 6);
  const globex = await makeCustomers(w, 3, w.otherKey);
  const second = await createApiKey(w.kv, { companyId: "acme", userId: 9, access: "write" });
  const firstCard = assertJson(await insert(w.app, w.key, { customer_id: acme[0]! }), 200);
  assertJson(await insert(w.app, w.otherKey, { customer_id: globex[0]! }), 200);
  const n = Number(firstCard.card_id); // numbers and ids both at n after one card
  const ops: Promise<Reply>[] = [];
  for (let i = 0; i < 60; i++) {
    const owner = acme[i % acme.length]!;
    const key = i % 4 === 0 ? second.key : w.key;
    switch (i % 10) {
      case 0: // a number taken by hand: the next generated ones
        ops.push(insert(w.app, key, { customer_id: owner }, { uid: String(n + 3 + i) }));
        break;
      case 1: // a barcode taken by hand: the EAN-13 of a coming generated number
        ops.push(insert(w.app, key, { customer_id: owner, barcode: uidToEan13(String(n + 5 + i))! }));
        break;
      case 2:
        ops.push(insert(w.app, key, { customer_id: owner }, { external_id: `ext-${i}` }));
        break;
      case 3:
        ops.push(
          request(w.app, "POST", "/api/customer/updateCard", {
            key,
            query: { external_id: `cine-${i}`, create_if_not_exist: 1 },
            form: { customer_id: owner },
          }),
        );
        break;
      case 4:
        ops.push(
          request(w.app, "POST", "/api/customer/update", { key, form: { fname: `N${i}` }, query: { id: owner } }),
        );
        break;
      case 5:
        ops.push(insert(w.app, w.otherKey, { customer_id: globex[i % globex.length]! }));
        break;
      case 6:
        ops.push(insert(w.app, key, { barcode: "" }));
        break;
      default:
        ops.push(insert(w.app, key, { customer_id: owner }));
    }
  }
  // Moves of the first card between owners and a delete of a card made before, in the same burst.
  const extra = assertJson(await insert(w.app, w.key, { customer_id: acme[1]! }), 200);
  for (let i = 0; i < 4; i++) {
    ops.push(
      request(w.app, "POST", "/api/customer/updateCard", {
        query: { card_id: firstCard.card_id },
        form: { customer_id: acme[(i + 2) % acme.length]! },
        key: w.key,
      }),
    );
  }
  ops.push(request(w.app, "POST", "/api/customer/deleteCard", { key: w.key, query: { card_id: extra.card_id } }));
  const replies = await Promise.all(ops);
  for (const r of replies) {
    // A given number or barcode the generated ones took first is refused by name; nothing else may fail.
    if (r.status === 409) assert.match(r.body.info, /uid|barcode/);
    else assertJson(r, 200);
  }
  const cards = await assertCardsWhole(w.kv, "acme");
  await assertCardsWhole(w.kv, "globex");
  // Ids are unique; each customer's card list through the API holds exactly its cards, once.
  for (const id of acme) {
    const listed = assertJson(await w.call("GET", "/api/customer", { query: { id, cards: 1 } }), 200);
    const got = (listed.customers[0].cards as { card_id?: number; id?: number }[]).map((c) => c.card_id ?? c.id);
    const want = cards.filter((c) => c.customer_id === id).map((c) => c.id).sort((a, b) => a - b);
    assert.deepEqual(got, want, `cards of customer ${id}`);
  }
});

Deno.test("held: two apps over one store burst card inserts at once: no number, barcode or id twice, verify clean", async () => {
  await using w = await world();
  const owners = await makeCustomers(w, 4);
  const other = createApp({ kv: w.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  assertJson(await insert(w.app, w.key, { customer_id: owners[0]! }), 200);
  assertJson(await insert(other, w.key, { customer_id: owners[0]! }), 200);
  const before = (await w.kv.get<Deno.KvU64>(claimKeys.changes("acme"))).value!.value;
  for (let round = 0; round < 3; round++) {
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, i) => insert(i % 2 ? other : w.app, w.key, { customer_id: owners[i % 4]! })),
    );
    for (const r of replies) assertJson(r, 200);
  }
  const after = (await w.kv.get<Deno.KvU64>(claimKeys.changes("acme"))).value!.value;
  assert.ok(after - before < 120n, `the bursts went together at least in part (${after - before} commits)`);
  const cards = await assertCardsWhole(w.kv, "acme");
  assert.equal(cards.length, 122);
  const ids = cards.map((c) => c.id).sort((a, b) => a - b);
  assert.deepEqual(ids, Array.from({ length: 122 }, (_, i) => i + 1), "ids dense");
});

Deno.test("held: a store error on a later commit of a burst fails only that write's cards, nothing of them is kept", async () => {
  for (const skip of [1, 2, 3]) {
    const proxies: ReturnType<typeof kvProxy>[] = [];
    await using w = await world({
      kv: (kv) => {
        const p = kvProxy(kv);
        proxies.push(p);
        return p.kv;
      },
    });
    const proxy = proxies[0]!;
    const owners = await makeCustomers(w, 8);
    assertJson(await insert(w.app, w.key, { customer_id: owners[0]! }), 200);
    // Let `skip` commits through, then fail the next one.
    for (let k = 0; k < skip; k++) {
      proxy.beforeCommit(() => {
        if (k === skip - 1) proxy.fail("commit", { times: 1 });
        return Promise.resolve();
      });
    }
    const replies = await Promise.all(
      Array.from({ length: 16 }, (_, i) => insert(w.app, w.key, { customer_id: owners[i % 8]! })),
    );
    proxy.heal();
    const ok = replies.filter((r) => r.status === 200).map((r) => r.body.card_id as number);
    const failed = replies.filter((r) => r.status !== 200);
    for (const r of failed) assert.equal(r.status, 500, r.text);
    assert.ok(failed.length >= 1 && failed.length <= 4, `one write failed: ${failed.length}`);
    const cards = await assertCardsWhole(w.kv, "acme");
    assert.deepEqual(cards.map((c) => c.id).sort((a, b) => a - b), [1, ...ok].sort((a, b) => a - b));
    // A failed write takes no ids: the cards stored are still numbered 1..n.
    assert.deepEqual(cards.map((c) => c.id).sort((a, b) => a - b), cards.map((_, i) => i + 1));
  }
});

Deno.test("held: a card import taking numbers ahead of the sequence while inserts burst", async () => {
  await using w = await world();
  const owners = await makeCustomers(w, 4);
  const first = assertJson(await insert(w.app, w.key, { customer_id: owners[0]! }), 200);
  const n = Number(first.card_id);
  const rows = Array.from({ length: 30 }, (_, i) => ({
    line: i + 2,
    values: {
      uid: String(n + 2 + i * 2),
      barcode: uidToEan13(String(n + 3 + i * 2))!,
      customer_id: String(owners[i % 4]),
    },
  }));
  const body = rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
  const [imported, ...replies] = await Promise.all([
    w.call("POST", "/api/import", {
      query: { type: "cards" },
      body,
      headers: { "content-type": "application/x-ndjson" },
    }),
    ...Array.from({ length: 40 }, (_, i) => insert(w.app, w.key, { customer_id: owners[i % 4]! })),
  ]);
  assert.equal(imported!.status, 200, imported!.text);
  for (const r of replies) assertJson(r, 200);
  const results = imported!.body.results as { status: string; field?: string }[];
  // A row whose number a generated card took first updates that card (cards are found by uid); a row whose barcode
  // another card holds is rejected naming it. Nothing is ever held twice.
  for (const r of results) {
    assert.ok(["created", "updated"].includes(r.status) || r.field === "barcode", JSON.stringify(r));
  }
  await assertCardsWhole(w.kv, "acme");
});

async function makeKey(kvPath: string): Promise<string> {
  const kv = await Deno.openKv(kvPath);
  try {
    return (await createApiKey(kv, { companyId: "bb", userId: 1, access: "write", now: Date.now() })).key;
  } finally {
    kv.close();
  }
}

Deno.test({
  name: "held: kill -9 in a burst of card inserts on two workers: acknowledged cards present, nothing half-written",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir();
    const kvPath = `${dir.path}/s.kv`;
    const key = await makeKey(kvPath);
    let server: ServerProcess = startServer({ kvPath, workers: 2 });
    try {
      await server.ready(key);
      const owners: number[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await request(server.base, "POST", "/api/customer/update", {
          key,
          form: { fname: "K", phone: `7900666000${i}` },
        });
        owners.push(assertJson(r, 200).id);
      }
      const acked = new Map<number, number>();
      let dead = false;
      const client = async (c: number) => {
        for (let i = 0; !dead; i++) {
          const owner = owners[(c + i) % owners.length]!;
          try {
            const r = await insert(server.base, key, { customer_id: owner });
            if (r.status === 200) acked.set(r.body.card_id, owner);
            else if (!dead) throw new Error(`insertCard answered ${r.status}: ${r.text}`);
          } catch (e) {
            if (dead) return;
            throw e;
          }
        }
      };
      const clients = Array.from({ length: 16 }, (_, c) => client(c));
      await waitFor("acknowledged cards", () => acked.size >= 80 + Math.floor(Math.random() * 80) || undefined, {
        timeoutMs: 120_000,
      });
      dead = true;
      await server.stop("SIGKILL");
      await Promise.allSettled(clients);
      server = startServer({ kvPath, workers: 2 });
      await server.ready(key);
      // More inserts after the restart, then the store as a whole.
      const after = await Promise.all(
        Array.from({ length: 20 }, (_, i) => insert(server.base, key, { customer_id: owners[i % 4]! })),
      );
      for (const r of after) acked.set(assertJson(r, 200).card_id, owners[0]!);
      await server.stop();
      const kv = await Deno.openKv(kvPath);
      try {
        const cards = await assertCardsWhole(kv, "bb", { audit: false });
        const stored = new Set(cards.map((c) => c.id));
        for (const id of acked.keys()) assert.ok(stored.has(id), `acknowledged card ${id} was lost`);
      } finally {
        kv.close();
      }
      const v = await runTask("verify", [], { kvPath });
      assert.equal(v.code, 0, v.out + v.err);
    } finally {
      await server.stop();
    }
  },
});

Deno.test("held: customer creates of two keys burst beside card inserts: dense ids, each audit entry names its key", async () => {
  await using w = await world();
  const second = await createApiKey(w.kv, { companyId: "acme", userId: 9, access: "write" });
  const owners = await makeCustomers(w, 2);
  assertJson(await insert(w.app, w.key, { customer_id: owners[0]! }), 200);
  const keyOf = (i: number) => (i % 3 === 0 ? second.key : w.key);
  const replies = await Promise.all(
    Array.from({ length: 48 }, (_, i) =>
      i % 2 === 0
        ? w.call("POST", "/api/customer/update", {
          key: keyOf(i),
          form: { fname: `B${i}`, phone: `7922${String(i).padStart(7, "0")}` },
        })
        : insert(w.app, keyOf(i), { customer_id: owners[i % 2]! })),
  );
  const customerIds: number[] = [];
  for (const [i, r] of replies.entries()) {
    const body = assertJson(r, 200);
    const entity = i % 2 === 0 ? "customer" : "card";
    const id = i % 2 === 0 ? body.id : body.card_id;
    if (i % 2 === 0) customerIds.push(id);
    const [h] = await listHistory(w.kv, "acme", { entity, entityId: String(id), limit: 1 });
    assert.equal(h!.entry.user_id, i % 3 === 0 ? 9 : 2, `${entity} ${id} audit names the key that made it`);
  }
  assert.deepEqual(customerIds.sort((a, b) => a - b), Array.from({ length: 24 }, (_, i) => i + 3));
  await assertCardsWhole(w.kv, "acme");
});

Deno.test({
  name: "held: two server processes on one KV_PATH burst card inserts at once: nothing twice, verify clean",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir();
    const kvPath = `${dir.path}/s.kv`;
    const key = await makeKey(kvPath);
    await using a = startServer({ kvPath });
    await using b = startServer({ kvPath });
    await a.ready(key);
    await b.ready(key);
    const owner = assertJson(
      await request(a.base, "POST", "/api/customer/update", { key, form: { fname: "K", phone: "79007770001" } }),
      200,
    ).id;
    for (const s of [a, b]) assertJson(await insert(s.base, key, { customer_id: owner }), 200);
    for (let round = 0; round < 3; round++) {
      const replies = await Promise.all(
        Array.from({ length: 30 }, (_, i) => insert(i % 2 ? a.base : b.base, key, { customer_id: owner })),
      );
      for (const r of replies) assertJson(r, 200);
    }
    await a.stop();
    await b.stop();
    const kv = await Deno.openKv(kvPath);
    try {
      const cards = await assertCardsWhole(kv, "bb");
      assert.equal(cards.length, 92);
      assert.deepEqual(cards.map((c) => c.id).sort((a, b) => a - b), cards.map((_, i) => i + 1), "ids dense");
    } finally {
      kv.close();
    }
    const v = await runTask("verify", [], { kvPath });
    assert.equal(v.code, 0, v.out + v.err);
  },
});

Deno.test("held: a burst with uid_ean13 empty or equal to a stored card's barcode: in-store barcodes, nothing twice", async () => {
  await using w = await world();
  const first = assertJson(await insert(w.app, w.key), 200);
  const stored = (await cardsOf(w.kv, "acme")).find((c) => c.id === first.card_id)!;
  for (let round = 0; round < 5; round++) {
    const replies = await Promise.all(
      Array.from(
        { length: 8 },
        (_, i) =>
          insert(w.app, w.key, i % 3 === 0 ? { uid_ean13: "" } : i % 3 === 1 ? { uid_ean13: stored.barcode! } : {}),
      ),
    );
    for (const r of replies) assertJson(r, 200);
  }
  const cards = await assertCardsWhole(w.kv, "acme");
  assert.equal(cards.length, 41);
  // Deleting the newest card does not give its number out again.
  const newest = cards.reduce((a, b) => (Number(a.uid) > Number(b.uid) ? a : b));
  assertJson(await w.call("POST", "/api/customer/deleteCard", { query: { card_id: newest.id } }), 200);
  const again = await Promise.all(Array.from({ length: 4 }, () => insert(w.app, w.key)));
  for (const r of again) assertJson(r, 200);
  const uids = (await cardsOf(w.kv, "acme")).map((c) => c.uid);
  assert.ok(!uids.includes(newest.uid), `number ${newest.uid} was handed out twice`);
  await assertCardsWhole(w.kv, "acme");
});
