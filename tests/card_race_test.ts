import assert from "node:assert/strict";
import { ConflictError, NotFoundError } from "../domain/errors.ts";
import { cardKeys, deleteCard, getCard, type SaveCard, saveCard } from "../storage/cards.ts";
import { keys } from "../storage/keys.ts";
import { createStore } from "../storage/store.ts";
import { MAX_CREATE_RETRIES } from "../storage/limits.ts";
import { kvProxy } from "./kit.ts";

const CID = "acme";
const NOW = Date.UTC(2024, 4, 17, 9, 30, 0);
const ACTOR = { companyId: CID, name: "test", userId: 2 };

/** A store whose next atomic commits first run the queued hooks: another writer slipping in between read and commit. */
function racyKv(kv: Deno.Kv) {
  const proxy = kvProxy(kv);
  return { kv: proxy.kv, before: proxy.beforeCommit, commits: () => proxy.calls.commit };
}

function save(kv: Deno.Kv, request: Partial<SaveCard>) {
  return saveCard(createStore(kv, { clock: () => NOW }), ACTOR, {
    mode: "update",
    lookup: {},
    change: {},
    refs: {},
    ...request,
  });
}

Deno.test("a customer removed between read and commit: the card is not attached to nothing", async () => {
  using kv = await Deno.openKv(":memory:");
  await kv.set(keys.customer(CID, 1), { id: 1, external_id: null });
  const racy = racyKv(kv);
  racy.before(() => kv.delete(keys.customer(CID, 1)));
  await assert.rejects(
    save(racy.kv, { mode: "insert", lookup: { uid: "A" }, refs: { customerId: 1 } }),
    (e) => e instanceof NotFoundError && e.message === 'Customer "1" not found',
  );
  assert.equal(racy.commits(), 1, "the first commit failed its check; the retry found no customer");
  assert.equal(await getCard(kv, CID, 1), null);
  assert.equal((await kv.get(cardKeys.byUid(CID, "A"))).value, null);
});

Deno.test("a barcode taken between read and commit: retried, then 409 naming the field", async () => {
  using kv = await Deno.openKv(":memory:");
  const card = await save(kv, { mode: "insert", lookup: { uid: "A" } });
  const racy = racyKv(kv);
  racy.before(() => save(kv, { mode: "insert", lookup: { uid: "B" }, change: { barcode: "555" } }));
  await assert.rejects(
    save(racy.kv, { lookup: { uid: "A" }, change: { barcode: "555" } }),
    (e) =>
      e instanceof ConflictError && e.field === "barcode" &&
      e.message === 'Cannot update card: barcode "555" is already taken',
  );
  assert.equal((await getCard(kv, CID, card.card.id))!.barcode, card.card.barcode);
});

Deno.test("a card changed between read and commit: the change is re-applied on top, nothing is lost", async () => {
  using kv = await Deno.openKv(":memory:");
  await save(kv, { mode: "insert", lookup: { uid: "A" } });
  const racy = racyKv(kv);
  racy.before(() => save(kv, { lookup: { uid: "A" }, change: { medium: "APP" } }));
  const result = await save(racy.kv, { lookup: { uid: "A" }, change: { status: "BLOCKED" } });
  assert.equal(result.isNew, false);
  const card = (await getCard(kv, CID, 1))!;
  assert.equal(card.medium, "APP");
  assert.equal(card.status, "BLOCKED");
  assert.equal(card.block_date, NOW);
});

Deno.test("a card deleted between read and commit of a delete: deleted once, then 404", async () => {
  using kv = await Deno.openKv(":memory:");
  await save(kv, { mode: "insert", lookup: { uid: "A" } });
  const racy = racyKv(kv);
  racy.before(() => deleteCard(createStore(kv), ACTOR, { uid: "A" }));
  await assert.rejects(
    deleteCard(createStore(racy.kv), ACTOR, { uid: "A" }),
    (e) => e instanceof NotFoundError && e.message === 'Card with uid "A" not found',
  );
});

Deno.test("a writer that always loses gives up with 409 after bounded retries", async () => {
  using kv = await Deno.openKv(":memory:");
  await save(kv, { mode: "insert", lookup: { uid: "A" } });
  const racy = racyKv(kv);
  let n = 0;
  for (let i = 0; i < 50; i++) racy.before(() => save(kv, { lookup: { uid: "A" }, change: { barcode: String(++n) } }));
  await assert.rejects(
    save(racy.kv, { lookup: { uid: "A" }, change: { medium: "APP" } }),
    (e) => e instanceof ConflictError && e.message === "Cannot save card: it was changed concurrently, try again",
  );
  assert.equal(racy.commits(), 8);
  assert.equal((await getCard(kv, CID, 1))!.medium, null);
});

Deno.test("an updateCard create that loses its uid to a concurrent create updates that card instead", async () => {
  using kv = await Deno.openKv(":memory:");
  const racy = racyKv(kv);
  racy.before(() => save(kv, { mode: "insert", lookup: { uid: "A" } }));
  const result = await save(racy.kv, { lookup: { uid: "A" }, create: true, change: { medium: "MAGNET" } });
  assert.deepEqual([result.card.id, result.isNew], [1, false]);
  assert.equal((await getCard(kv, CID, 1))!.medium, "MAGNET");
  assert.equal(await getCard(kv, CID, 2), null);
});

Deno.test("a card create that keeps losing its id to other processes' creates lands, within a bound of its own", async (t) => {
  await t.step("12 creates of another process slip in first: the 13th try commits", async () => {
    using kv = await Deno.openKv(":memory:");
    const racy = racyKv(kv);
    // Each hook is a create of another process (its own store): it takes the next id of the company's sequence.
    for (let i = 1; i <= 12; i++) racy.before(() => save(kv, { mode: "insert", lookup: { uid: `OTHER${i}` } }));
    const result = await save(racy.kv, { mode: "insert", lookup: { uid: "MINE" }, refs: {} });
    assert.deepEqual([result.card.id, result.isNew, racy.commits()], [13, true, 13]);
    assert.notEqual((await kv.get(cardKeys.byUid(CID, "MINE"))).value, null);
  });
  await t.step(
    "creates slipping in before every try: 409 after MAX_CREATE_RETRIES tries, nothing written",
    async () => {
      using kv = await Deno.openKv(":memory:");
      const racy = racyKv(kv);
      for (let i = 1; i <= MAX_CREATE_RETRIES + 5; i++) {
        racy.before(() => save(kv, { mode: "insert", lookup: { uid: `OTHER${i}` } }));
      }
      await assert.rejects(
        save(racy.kv, { mode: "insert", lookup: { uid: "MINE" } }),
        (e) => e instanceof ConflictError && e.message === "Cannot save card: it was changed concurrently, try again",
      );
      assert.equal(racy.commits(), MAX_CREATE_RETRIES);
      assert.equal((await kv.get(cardKeys.byUid(CID, "MINE"))).value, null);
    },
  );
});
