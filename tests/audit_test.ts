import assert from "node:assert/strict";
import { XMLParser } from "fast-xml-parser";
import { DEFAULT_CONFIG } from "../config.ts";
import { createApp } from "../routes/app.ts";
import { StoreLimitError, Write } from "../storage/commit.ts";
import { createStore, TtlCache } from "../storage/store.ts";
import { listApiKeys } from "../storage/api_keys.ts";
import { randomCustomer, world } from "./helpers.ts";

const T0 = Date.UTC(2025, 2, 10, 9, 0, 0);

/** Every audit entry of company "acme", oldest first by key. */
async function auditEntries(kv: Deno.Kv, company = "acme") {
  // deno-lint-ignore no-explicit-any
  const out: any[] = [];
  for await (const e of kv.list({ prefix: ["company", company, "audit"] })) out.push(e.value);
  return out;
}

Deno.test("customer history: every change with its actor and old and new values, newest first", async (t) => {
  let clock = T0;
  await using w = await world({ now: () => clock });
  const keyId = (await listApiKeys(w.kv, "acme")).find((k) => k.user_id === 2)!.id;
  const created = await w.call("POST", "/api/customer/update", { form: { fname: "Anna", phone: "+79001112233" } });
  assert.equal(created.status, 200);
  const id = created.body.id;
  clock += 60_000;
  await w.call("POST", "/api/customer/update", { query: { id }, form: { fname: "Anya", email: "a@x.ru" } });

  await t.step("JSON", async () => {
    const r = await w.call("GET", "/api/customer/history", { query: { customer_id: id } });
    assert.equal(r.status, 200);
    assert.match(r.type, /application\/json/);
    assert.equal(r.body.success, 1);
    assert.equal(r.body.customer_id, id);
    assert.equal(r.body.count, 2);
    const [update, create] = r.body.history;
    assert.equal(update.action, "update");
    assert.equal(update.actor, `key:${keyId}`);
    assert.equal(update.user_id, 2);
    assert.equal(update.date, "2025-03-10 09:01:00");
    assert.deepEqual(update.changes, [
      { field: "fname", old: "Anna", new: "Anya" },
      { field: "email", old: null, new: "a@x.ru" },
    ]);
    assert.equal(create.action, "create");
    assert.ok(
      create.changes.some((c: { field: string; new: unknown }) => c.field === "phone" && c.new === "79001112233"),
    );
    assert.equal(r.body.next_cursor, null);
  });

  await t.step("XML", async () => {
    const r = await w.call("GET", "/api/customer/history", { query: { customer_id: id, format: "xml" } });
    assert.equal(r.status, 200);
    assert.match(r.type, /application\/xml/);
    const root = new XMLParser().parse(r.text).root;
    assert.equal(root.count, 2);
    assert.equal(root.history.entry[0].changes.change[0].field, "fname");
    assert.equal(root.history.entry[0].changes.change[0].new, "Anya");
  });

  await t.step("by external id, and 404 for an unknown one", async () => {
    await w.call("POST", "/api/customer/update", { query: { id }, form: { external_id: "E-1" } });
    const r = await w.call("GET", "/api/customer/history", { query: { customer_external_id: "E-1" } });
    assert.equal(r.body.count, 3);
    const missing = await w.call("GET", "/api/customer/history", { query: { customer_external_id: "nope" } });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.info, 'Customer with external_id "nope" not found');
  });

  await t.step("another company sees nothing of it", async () => {
    const r = await w.call("GET", "/api/customer/history", { key: w.otherKey, query: { customer_id: id } });
    assert.equal(r.status, 404);
  });

  await t.step("a request naming no customer is refused", async () => {
    const r = await w.call("GET", "/api/customer/history");
    assert.equal(r.status, 400);
    assert.equal(r.body.field, "customer_id");
  });
});

Deno.test("an update that changes nothing and a refused request write no audit entry", async () => {
  await using w = await world();
  const a = randomCustomer();
  const id = (await w.call("POST", "/api/customer/update", { form: a })).body.id;
  const other = (await w.call("POST", "/api/customer/update", { form: randomCustomer() })).body.id;
  // The same value again: the record is stamped, but no field changed, so the trail is not touched.
  const entries = (await auditEntries(w.kv)).length;
  await w.call("POST", "/api/customer/update", { query: { id }, form: { fname: a.fname! } });
  assert.equal((await auditEntries(w.kv)).length, entries);
  const clash = await w.call("POST", "/api/customer/update", { query: { id: other }, form: { phone: a.phone! } });
  assert.equal(clash.status, 409);
  const bad = await w.call("POST", "/api/customer/update", { query: { id }, form: { birth_day: "41" } });
  assert.equal(bad.status, 400);
  assert.equal((await auditEntries(w.kv)).length, entries);
});

Deno.test("card history: create, change and delete, by card_id (also once deleted) and by uid", async () => {
  let clock = T0;
  await using w = await world({ now: () => clock });
  const ins = await w.call("POST", "/api/customer/insertCard", { query: { uid: "777" } });
  assert.equal(ins.status, 200);
  const cardId = ins.body.card_id;
  clock += 1000;
  await w.call("POST", "/api/customer/updateCard", { query: { uid: "777" }, form: { status: "BLOCKED" } });
  const byUid = await w.call("GET", "/api/card/history", { query: { uid: "777" } });
  assert.equal(byUid.status, 200);
  assert.equal(byUid.body.card_id, cardId);
  assert.deepEqual(byUid.body.history.map((e: { action: string }) => e.action), ["update", "create"]);
  assert.ok(
    byUid.body.history[0].changes.some((c: { field: string; old: string; new: string }) =>
      c.field === "status" && c.old !== "BLOCKED" && c.new === "BLOCKED"
    ),
  );
  clock += 1000;
  assert.equal((await w.call("POST", "/api/customer/deleteCard", { query: { uid: "777" } })).status, 200);
  const gone = await w.call("GET", "/api/card/history", { query: { card_id: cardId } });
  assert.deepEqual(gone.body.history.map((e: { action: string }) => e.action), ["delete", "update", "create"]);
  const byGoneUid = await w.call("GET", "/api/card/history", { query: { uid: "777" } });
  assert.equal(byGoneUid.status, 404);
  const never = await w.call("GET", "/api/card/history", { query: { card_id: 999 } });
  assert.equal(never.status, 404);
  assert.equal(never.body.info, 'Card "999" not found');
  const none = await w.call("GET", "/api/card/history");
  assert.equal(none.status, 400);
});

Deno.test("balance changes show in the customer's history; directories and API keys are audited", async () => {
  await using w = await world();
  const program = await w.call("POST", "/api/bonusprogram/update", { form: { name: "Points" } });
  const id = (await w.call("POST", "/api/customer/update", { form: { fname: "B", group_name: "VIP" } })).body.id;
  await w.call("POST", "/api/customer/updateBonus", {
    form: { customer_id: id, bonus_id: program.body.id, amount: "12.50" },
  });
  const h = await w.call("GET", "/api/customer/history", { query: { customer_id: id } });
  const balance = h.body.history[0];
  assert.equal(balance.entity, "balance");
  assert.equal(balance.entity_id, `${id}:${program.body.id}`);
  assert.deepEqual(balance.changes.find((c: { field: string }) => c.field === "balance"), {
    field: "balance",
    old: 0,
    new: 1250,
  });
  const entities = new Set((await auditEntries(w.kv)).map((e) => e.entity));
  for (const entity of ["customer", "balance", "group", "bonus_program", "api_key"]) {
    assert.ok(entities.has(entity), `${entity} audited`);
  }
  const keyEntry = (await auditEntries(w.kv)).find((e) => e.entity === "api_key");
  assert.ok(!JSON.stringify(keyEntry).includes("hash"), "an API key's hash never reaches the trail");
});

Deno.test("history pages by page number and by cursor give the same entries", async () => {
  let clock = T0;
  await using w = await world({ now: () => clock });
  const id = (await w.call("POST", "/api/customer/update", { form: { fname: "N0" } })).body.id;
  for (let i = 1; i <= 6; i++) {
    clock += 1000;
    await w.call("POST", "/api/customer/update", { query: { id }, form: { fname: `N${i}` } });
  }
  const names = (r: { body: { history: { changes: { new: string }[] }[] } }) =>
    r.body.history.map((e) => e.changes[0]!.new);
  const p1 = await w.call("GET", "/api/customer/history", { query: { customer_id: id, page_size: 3 } });
  assert.deepEqual(names(p1), ["N6", "N5", "N4"]);
  const p2 = await w.call("GET", "/api/customer/history", { query: { customer_id: id, page_size: 3, page: 2 } });
  assert.deepEqual(names(p2), ["N3", "N2", "N1"]);
  const c2 = await w.call("GET", "/api/customer/history", {
    query: { customer_id: id, page_size: 3, cursor: p1.body.next_cursor },
  });
  assert.deepEqual(names(c2), names(p2));
  const c3 = await w.call("GET", "/api/customer/history", {
    query: { customer_id: id, page_size: 3, cursor: c2.body.next_cursor },
  });
  assert.equal(c3.body.count, 1);
  assert.equal(c3.body.next_cursor, null);
  const both = await w.call("GET", "/api/customer/history", {
    query: { customer_id: id, page: 1, cursor: p1.body.next_cursor },
  });
  assert.equal(both.status, 400);
  const bad = await w.call("GET", "/api/customer/history", { query: { customer_id: id, cursor: "zzz" } });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.field, "cursor");
});

Deno.test("audit entries expire after AUDIT_RETENTION_DAYS through KV expireIn", async () => {
  using kv = await Deno.openKv(":memory:");
  const expiries: (number | undefined)[] = [];
  const atomic = kv.atomic.bind(kv);
  kv.atomic = () => {
    const op = atomic();
    const set = op.set.bind(op);
    op.set = (key, value, options) => {
      if (key[2] === "audit") expiries.push(options?.expireIn);
      return set(key, value, options);
    };
    return op;
  };
  const config = { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false, auditRetentionDays: 2 };
  const app = createApp({ kv, config });
  const { createApiKey } = await import("../storage/api_keys.ts");
  const { key } = await createApiKey(createStore(kv, { auditRetentionDays: 2 }), {
    companyId: "acme",
    userId: 1,
    access: "write",
  });
  const r = await app.request(`/api/customer/update?apikey=${key}&fname=X`);
  assert.equal(r.status, 200);
  assert.ok(expiries.length >= 2);
  for (const e of expiries) assert.equal(e, 2 * 24 * 60 * 60 * 1000);
});

Deno.test("a write over the remote KV limits is refused before anything is written", async (t) => {
  using kv = await Deno.openKv(":memory:");
  const store = createStore(kv);
  await t.step("too many checks", async () => {
    const write = new Write(store);
    for (let i = 0; i < 11; i++) write.check({ key: ["k", i], versionstamp: null });
    write.set(["x"], 1);
    await assert.rejects(write.commit("save thing"), (e) =>
      e instanceof StoreLimitError && e.status === 413 &&
      e.message === "Cannot save thing: the change is too large for one write (11 checks, at most 10)");
  });
  await t.step("too many mutations", async () => {
    const write = new Write(store);
    for (let i = 0; i < 1001; i++) write.set(["m", i], i);
    await assert.rejects(write.commit(), /1001 mutations, at most 1000/);
  });
  await t.step("a value over 64 KiB", async () => {
    const write = new Write(store).set(["big"], { text: "x".repeat(70_000) });
    await assert.rejects(write.commit(), /a value of about \d+ bytes, at most 65536/);
  });
  await t.step("a key over 2 KiB", async () => {
    const write = new Write(store).set(["k", "y".repeat(2100)], 1);
    await assert.rejects(write.commit(), /a key of \d+ bytes, at most 2048/);
  });
  let n = 0;
  for await (const _ of kv.list({ prefix: [] })) n++;
  assert.equal(n, 0, "nothing was written");
  await t.step("sums of one key are merged into one mutation", () => {
    const write = new Write(store).sum(["c"]).sum(["c"]).sum(["d"]);
    assert.equal(write.size().mutations, 2);
  });
});

Deno.test("the store's caches expire by the injected clock and stay bounded", () => {
  let clock = 1000;
  const cache = new TtlCache<string>({ maxEntries: 3, clock: () => clock });
  cache.set("a", "A", 100);
  assert.equal(cache.get("a"), "A");
  clock += 99;
  assert.equal(cache.get("a"), "A");
  clock += 1;
  assert.equal(cache.get("a"), undefined);
  for (const k of ["b", "c", "d", "e"]) cache.set(k, k, 1000);
  assert.equal(cache.size, 3);
  assert.equal(cache.get("b"), undefined, "the oldest went first");
  assert.equal(cache.get("e"), "e");
});

Deno.test("a group renamed by another process shows once the directory cache age has passed", async () => {
  let clock = T0;
  await using w = await world({ now: () => clock, config: { directoryCacheMs: 5000 } });
  const id = (await w.call("POST", "/api/customer/update", { form: { fname: "G", group_name: "Old" } })).body.id;
  const name = async () => (await w.call("GET", "/api/customer", { query: { id } })).body.customers[0].group_name;
  assert.equal(await name(), "Old");
  // Another process renames it: straight through the store, bypassing this app's cache.
  const other = createStore(w.kv);
  const { saveDirectoryEntry } = await import("../usecases/mod.ts");
  await saveDirectoryEntry(other, { companyId: "acme", name: "test", userId: 1 }, {
    kind: "groups",
    id: 1,
    name: "New",
  });
  clock += 4999;
  assert.equal(await name(), "Old");
  clock += 2;
  assert.equal(await name(), "New");
});

Deno.test("a key revoked through the use case stops working at once in the process that revoked it", async () => {
  await using w = await world();
  const read = (await listApiKeys(w.kv, "acme")).find((k) => k.access === "read")!;
  const { revokeKey } = await import("../usecases/mod.ts");
  // An app over a store object we hold: the one whose cache keeps the key.
  const shared = createStore(w.kv);
  const config = { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false };
  const app = createApp({ kv: w.kv, store: shared, config });
  assert.equal((await app.request(`/api/customer?apikey=${w.readKey}`)).status, 200);
  await revokeKey(shared, read.id, { actorName: "test" });
  const after = await app.request(`/api/customer?apikey=${w.readKey}`);
  assert.equal(after.status, 401);
  assert.equal((await after.json()).info, `API key "${read.id}" is revoked`);
});
