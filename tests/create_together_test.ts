/**
 * Creates committed together (storage/customers.ts, createTogether): a burst of creates of one company takes fewer
 * commits than creates, and still gives each customer a dense id in commit order, its own audit entry under its own
 * caller, its unique keys, and a 409 for a value another customer (of the burst or before it) holds. Counted by the
 * company's change counter, which every commit adds one to.
 */
import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../config.ts";
import { createApp } from "../routes/app.ts";
import { createApiKey, listApiKeys } from "../storage/api_keys.ts";
import { listHistory } from "../storage/audit.ts";
import { keys } from "../storage/keys.ts";
import { assertJson, commitsOf, type Reply, request, storeDefects, type World, world } from "./kit.ts";

const phoneOf = (i: number) => `+7933${String(i).padStart(7, "0")}`;
const create = (w: World, i: number, key = w.key): Promise<Reply> =>
  request(w.app, "POST", "/api/customer/update", { key, form: { fname: `T${i}`, phone: phoneOf(i) } });

const commits = (w: World) => commitsOf(w.kv, "acme");
const defects = (w: World) => storeDefects(w.kv);

Deno.test("a burst of creates: fewer commits than creates, dense ids, each with its record, keys and audit entry", async () => {
  await using w = await world();
  assertJson(await create(w, 0), 200);
  const before = await commits(w);
  const replies = await Promise.all(Array.from({ length: 60 }, (_, i) => create(w, i + 1)));
  const ids = replies.map((r) => assertJson(r, 200).id as number);
  assert.deepEqual([...ids].sort((a, b) => a - b), Array.from({ length: 60 }, (_, i) => i + 2));
  assert.ok(await commits(w) - before < 60n, "the burst went in fewer commits than creates");
  assert.equal((await w.kv.get(keys.sequence("acme", "customers"))).value, 61);
  for (const [i, id] of ids.entries()) {
    const found = assertJson(await w.call("GET", "/api/customer", { query: { phone: phoneOf(i + 1) } }), 200);
    assert.equal(found.customers[0].id, id);
    assert.equal(found.customers[0].fname, `T${i + 1}`);
    const history = await listHistory(w.kv, "acme", { entity: "customer", entityId: String(id), limit: 5 });
    assert.equal(history.length, 1);
    assert.equal(history[0]!.entry.action, "create");
    const phone = history[0]!.entry.changes.find((c) => c.field === "phone");
    assert.equal(phone?.new, phoneOf(i + 1).slice(1));
  }
  const page = assertJson(await w.call("GET", "/api/customer", { query: { page: 1, page_size: 100 } }), 200);
  assert.equal(page.total_count, 61);
  assert.deepEqual(await defects(w), []);
});

Deno.test("a burst with a value claimed twice in it, and one taken before it: one wins, the others are 409", async () => {
  await using w = await world();
  assertJson(await create(w, 7), 200);
  const burst = Array.from({ length: 30 }, (_, i) => i % 10 === 3 ? 5 : i % 10 === 4 ? 7 : 100 + i);
  const replies = await Promise.all(burst.map((n) => create(w, n)));
  for (const [i, n] of burst.entries()) {
    const reply = replies[i]!;
    if (n === 7) {
      assert.equal(reply.status, 409);
      assert.equal(assertJson(reply, 409).field, "phone");
    }
  }
  const fives = replies.filter((_, i) => burst[i] === 5);
  assert.equal(fives.filter((r) => r.status === 200).length, 1);
  assert.ok(fives.filter((r) => r.status !== 200).every((r) => assertJson(r, 409).field === "phone"));
  const made = replies.filter((r) => r.status === 200).map((r) => assertJson(r, 200).id as number);
  assert.equal(made.length, 24 + 1);
  // The ids taken are dense: a refused create took none.
  assert.deepEqual([...made].sort((a, b) => a - b), Array.from({ length: made.length }, (_, i) => i + 2));
  const page = assertJson(await w.call("GET", "/api/customer", { query: { page: 1, page_size: 100 } }), 200);
  assert.equal(page.total_count, 26);
  assert.deepEqual(await defects(w), []);
});

Deno.test("a burst from two keys: each customer's audit entry names the key that created it", async () => {
  await using w = await world();
  const other = await createApiKey(w.kv, { companyId: "acme", userId: 5, access: "write" });
  const mine = (await listApiKeys(w.kv, "acme")).find((r) => r.user_id === 2)!;
  const burst = Array.from({ length: 40 }, (_, i) => i % 3 === 0 ? other.key : w.key);
  const replies = await Promise.all(burst.map((key, i) => create(w, i + 1, key)));
  for (const [i, key] of burst.entries()) {
    const id = assertJson(replies[i]!, 200).id as number;
    const [entry] = await listHistory(w.kv, "acme", { entity: "customer", entityId: String(id), limit: 1 });
    const by = key === other.key ? other.record : mine;
    assert.equal(entry!.entry.actor, `key:${by.id}`);
    assert.equal(entry!.entry.user_id, by.user_id);
  }
  assert.deepEqual(await defects(w), []);
});

Deno.test("two apps (processes) bursting creates on one store, one phone wanted by both: one customer holds it", async () => {
  await using w = await world();
  const other = createApp({ kv: w.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  const viaOther = (n: number) =>
    request(other, "POST", "/api/customer/update", { key: w.key, form: { fname: `O${n}`, phone: phoneOf(n) } });
  const burst = Array.from({ length: 80 }, (_, i) => i % 20 === 0 ? 999 : i + 1);
  const replies = await Promise.all(burst.map((n, i) => i % 2 === 0 ? create(w, n) : viaOther(n)));
  const won = replies.filter((r, i) => burst[i] === 999 && r.status === 200);
  assert.equal(won.length, 1);
  const ids = replies.filter((r) => r.status === 200).map((r) => assertJson(r, 200).id as number);
  assert.equal(ids.length, 80 - 4 + 1);
  assert.deepEqual([...ids].sort((a, b) => a - b), Array.from({ length: ids.length }, (_, i) => i + 1));
  const holder = assertJson(await w.call("GET", "/api/customer", { query: { phone: phoneOf(999) } }), 200);
  assert.equal(holder.customers[0].id, assertJson(won[0]!, 200).id);
  assert.deepEqual(await defects(w), []);
});
