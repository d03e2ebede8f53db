import assert from "node:assert/strict";
import { keys } from "../storage/keys.ts";
import { createStore } from "../storage/store.ts";
import { saveCard } from "../usecases/mod.ts";

const ACTOR = { companyId: "acme", name: "test", userId: 1 };

Deno.test("insertCard queues only its sequence and commit: a create waiting on a slow read holds nobody up", async () => {
  using kv = await Deno.openKv(":memory:");
  await kv.set(keys.customer("acme", 1), { id: 1, external_id: null });
  // Reads of customer 1 wait at a gate we open by hand: a slow store, without timing.
  let open!: () => void;
  const gate = new Promise<void>((resolve) => open = resolve);
  const get = kv.get.bind(kv);
  kv.get = (async (key: Deno.KvKey, options?: { consistency?: Deno.KvConsistencyLevel }) => {
    if (JSON.stringify(key) === JSON.stringify(keys.customer("acme", 1))) await gate;
    return await get(key, options);
  }) as typeof kv.get;
  const store = createStore(kv);
  const insert = (uid: string, customerId?: number) =>
    saveCard(store, ACTOR, {
      mode: "insert",
      lookup: { uid },
      change: {},
      refs: customerId === undefined ? {} : { customerId },
    });
  const slow = insert("A", 1);
  let slowDone = false;
  slow.then(() => slowDone = true);
  // Were B queued behind A's read, it would wait for the gate forever: fail instead of hanging.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("the second create waited for the first one's read")), 10_000);
  });
  const fast = await Promise.race([insert("B"), stuck]).finally(() => clearTimeout(timer));
  assert.equal(fast.card.uid, "B");
  assert.equal(slowDone, false, "the first create is still reading its customer");
  open();
  const first = await slow;
  assert.equal(first.card.customer_id, 1);
  assert.notEqual(first.card.id, fast.card.id);
});
