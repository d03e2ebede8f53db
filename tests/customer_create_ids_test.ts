/**
 * Customer ids under concurrent creates (storage/customers.ts): every create takes the next id of the sequence in
 * its own commit (inside a per-company queue of the process), so ids are dense, unique and in commit order, nothing
 * is lost and the store verifies clean.
 */
import assert from "node:assert/strict";
import { keys } from "../storage/keys.ts";
import { verifyStore } from "../storage/verify.ts";
import { createApp } from "../routes/app.ts";
import { DEFAULT_CONFIG } from "../config.ts";
import { MAX_RETRIES } from "../storage/limits.ts";
import { assertJson, kvProxy, type Reply, request, type World, world } from "./kit.ts";

const create = (w: World, i: number): Promise<Reply> =>
  w.call("POST", "/api/customer/update", { form: { fname: `C${i}`, phone: `+7911${String(i).padStart(7, "0")}` } });

Deno.test("creates alone take dense ids; concurrent creates take unique ids in commit order", async () => {
  await using w = await world();
  const alone: number[] = [];
  for (let i = 1; i <= 3; i++) alone.push(assertJson(await create(w, i), 200).id);
  assert.deepEqual(alone, [1, 2, 3]);
  assert.equal((await w.kv.get(keys.sequence("acme", "customers"))).value, 3);

  const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => create(w, 100 + i)));
  const ids = replies.map((r) => assertJson(r, 200).id as number);
  assert.equal(new Set(ids).size, 40);
  assert.ok(Math.min(...ids) > 3);
  // A clash takes no id: the next creates still get unique ids, and the failed one wrote nothing.
  const clash = await Promise.all([create(w, 100), create(w, 500), create(w, 501)]);
  assert.equal(clash[0]!.status, 409);
  const later = [clash[1]!, clash[2]!].map((r) => assertJson(r, 200).id as number);
  assert.ok(later.every((id) => !ids.includes(id) && !alone.includes(id)));
  const all = assertJson(await w.call("GET", "/api/customer", { query: { page: 1, page_size: 100 } }), 200);
  assert.equal(all.total_count, 45);
  assert.deepEqual(
    all.customers.map((c: { id: number }) => c.id),
    [...alone, ...ids, ...later].sort((a, b) => a - b),
  );
  const defects: string[] = [];
  await verifyStore(w.kv, { onFinding: (f) => f.severity === "defect" && defects.push(f.message) });
  assert.deepEqual(defects, []);
});

Deno.test("two apps (processes) on one store creating at once never share an id", async () => {
  await using w = await world();
  const other = createApp({ kv: w.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  const viaOther = (i: number) =>
    request(other, "POST", "/api/customer/update", {
      key: w.key,
      form: { fname: `O${i}`, phone: `+7922${String(i).padStart(7, "0")}` },
    });
  const replies = await Promise.all(
    Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? create(w, i) : viaOther(i))),
  );
  const ids = replies.map((r) => assertJson(r, 200).id as number);
  assert.equal(new Set(ids).size, 60);
  const count = assertJson(await w.call("GET", "/api/customer", { query: { page: 1, page_size: 1 } }), 200);
  assert.equal(count.total_count, 60);
  const defects: string[] = [];
  await verifyStore(w.kv, { onFinding: (f) => f.severity === "defect" && defects.push(f.message) });
  assert.deepEqual(defects, []);
});

Deno.test("a create that keeps losing its id to another process's creates lands; an update gives up sooner", async () => {
  await using w = await world();
  const proxy = kvProxy(w.kv);
  const racyApp = createApp({ kv: proxy.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  // Another process (its own app on the same store) creates a customer just before each of our next 12 commits.
  for (let i = 1; i <= 12; i++) proxy.beforeCommit(() => create(w, i));
  const mine = await request(racyApp, "POST", "/api/customer/update", {
    key: w.key,
    form: { fname: "Mine", phone: "+79330000001" },
  });
  assert.equal(assertJson(mine, 200).id, 13);
  assert.equal(proxy.calls.commit, 13);
  // An update by id is not a create: after MAX_RETRIES lost races it is a 409 and the customer is unchanged.
  for (let i = 1; i <= 20; i++) {
    proxy.beforeCommit(() => w.call("POST", "/api/customer/update", { query: { id: 13 }, form: { lname: `L${i}` } }));
  }
  const update = await request(racyApp, "POST", "/api/customer/update", {
    key: w.key,
    query: { id: 13 },
    form: { fname: "Changed" },
  });
  assert.equal(update.status, 409, update.text);
  assert.equal(proxy.calls.commit, 13 + MAX_RETRIES);
  const stored = assertJson(await w.call("GET", "/api/customer", { query: { id: 13 } }), 200);
  assert.equal(stored.customers[0].fname, "Mine");
});

Deno.test("concurrent find-or-create by one external_id: one creates, the others update it, in one or two processes", async () => {
  await using w = await world();
  const other = createApp({ kv: w.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  const replies = await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      request(i % 3 === 0 ? other : w.app, "POST", "/api/customer/update", {
        key: w.key,
        query: { external_id: "1C-000042" },
        form: { fname: `F${i}`, ...(i === 5 ? { phone: "+79440000005" } : {}) },
      })),
  );
  const bodies = replies.map((r) => assertJson(r, 200));
  assert.equal(bodies.filter((b) => b.isnew === 1).length, 1, JSON.stringify(bodies));
  assert.equal(new Set(bodies.map((b) => b.id)).size, 1);
  const found = assertJson(await w.call("GET", "/api/customer", { query: { external_id: "1C-000042" } }), 200);
  assert.equal(found.count, 1);
  assert.equal(found.customers[0].phone, "79440000005", "an update that lost the create is applied, not dropped");
  const all = assertJson(await w.call("GET", "/api/customer", { query: { page: 1, page_size: 10 } }), 200);
  assert.equal(all.total_count, 1);
  // external_id given in the body (it sets the value, it finds nothing) still clashes: 409 naming it.
  const clash = await w.call("POST", "/api/customer/update", { form: { fname: "X", external_id: "1C-000042" } });
  assert.equal(assertJson(clash, 409).field, "external_id");
});
