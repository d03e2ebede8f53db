import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../config.ts";
import { blankCustomer, type Customer } from "../domain/customer.ts";
import type { Card } from "../domain/card.ts";
import { createApp } from "../routes/app.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { bonusKeys, cardKeys, directoryKeys, keys } from "../storage/keys.ts";
import { rawInsertBalances, rawInsertCards, rawInsertCustomers } from "../storage/seed.ts";
import { type Finding, verifyStore } from "../storage/verify.ts";
import { randomCustomer, request } from "./helpers.ts";
import { kvProxy } from "./kit.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const CID = "acme";

/** Fills a store through the real app (customers, groups, cards, bonus changes) and with seed.ts raw inserts. */
async function populate(kv: Deno.Kv): Promise<void> {
  const app = createApp({ kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  const key = (await createApiKey(kv, { companyId: CID, userId: 2, access: "write", now: Date.now() })).key;
  const call = async (path: string, form: Record<string, string | number>, query: Record<string, string> = {}) => {
    const res = await request(app, "POST", path, { key, form, query });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.success, 1, res.text);
    return res.body;
  };
  const program = (await call("/api/bonusprogram/update", { name: "Points" })).id as number;
  for (let i = 0; i < 12; i++) {
    const fields = randomCustomer(i % 3 === 0 ? { group_name: i % 2 ? "VIP" : "Staff" } : {});
    if (i % 4 === 1) delete fields.phone;
    if (i % 5 === 2) delete fields.email;
    const id = (await call("/api/customer/update", fields)).id as number;
    if (i % 2 === 0) await call("/api/customer/insertCard", { customer_id: id, type_name: "Gold" });
    if (i % 3 === 1) {
      await call("/api/customer/updateBonus", { customer_id: id, bonus_id: program, amount: "10.50" });
      await call("/api/customer/updateBonus", { customer_id: id, bonus_id: program, amount: "-3" });
    }
  }
  // An update that moves a customer between lists, and a card moved to another customer.
  await call("/api/customer/update", { phone: "+7 900 555-00-02", email: "" }, { id: "2" });
  await call("/api/customer/updateCard", { customer_id: 3 }, { card_id: "1" });
  await call("/api/customer/insertCard", { barcode: "123456" }, { uid: "X-1", external_id: "card-ext" });

  // Seeded customers from id 1000 on (other buckets), their cards and opening balances.
  const now = Date.now();
  const seeded: Customer[] = [];
  for (let id = 1000; id < 1100; id++) {
    const c = blankCustomer(id, { now, userId: 1 });
    c.phone = `7911${String(id).padStart(7, "0")}`;
    if (id % 2) c.email = `seed${id}@example.com`;
    c.external_id = `seed-${id}`;
    seeded.push(c);
  }
  await rawInsertCustomers(kv, CID, seeded);
  const cards: Card[] = [];
  for (let i = 0; i < 5; i++) {
    const id = 100 + i;
    cards.push({
      id,
      external_id: null,
      uid: String(id),
      uid_ean13: null,
      barcode: null,
      medium: null,
      status: "NEW",
      block_date: null,
      activate_date: null,
      type_id: null,
      customer_id: 1000 + i,
      created_date: now,
      created_by: 1,
      last_update_date: now,
      last_update_by: 1,
    });
  }
  await rawInsertCards(kv, CID, cards);
  await rawInsertBalances(kv, CID, {
    balances: [1000, 1001, 1002].map((customerId) => ({ customerId, bonusId: program, amount: 500 })),
    now,
    userId: 1,
  });
}

async function check(kv: Deno.Kv, repair = false): Promise<Finding[]> {
  const findings: Finding[] = [];
  await verifyStore(kv, { repair, onFinding: (f) => findings.push(f) });
  return findings;
}

function defects(findings: Finding[]): string[] {
  return findings.filter((f) => f.severity === "defect").map((f) => `${f.check}: ${f.message}`).sort();
}

async function customer(kv: Deno.Kv, id: number): Promise<Customer> {
  const c = (await kv.get<Customer>(keys.customer(CID, id))).value;
  assert.ok(c);
  return c;
}

Deno.test("verifyStore() finds a store made through the API and seed.ts clean", async () => {
  await using kv = await Deno.openKv(":memory:");
  await populate(kv);
  const findings = await check(kv);
  assert.deepEqual(findings, []);
  const summary = await verifyStore(kv);
  assert.deepEqual(summary.companies, [CID]);
  assert.ok(summary.scanned > 500, `read ${summary.scanned} keys`);
  assert.equal(summary.defects, 0);
});

Deno.test("verifyStore() finds each derivable defect, and repair fixes it for good", async () => {
  await using kv = await Deno.openKv(":memory:");
  await populate(kv);
  const c1 = await customer(kv, 1);
  const c4 = await customer(kv, 4);
  const c5 = await customer(kv, 5);
  assert.ok(c1.phone && c4.email);

  // Missing unique index, missing list entry, index pointing elsewhere, orphan index and list entry.
  await kv.delete(keys.customerByPhone(CID, c1.phone));
  await kv.delete(keys.customerListEntry(CID, "all", 1));
  await kv.set(keys.customerByEmail(CID, c4.email), 5);
  await kv.set(keys.customerByExternalId(CID, "ghost"), 999);
  await kv.set(keys.customerListEntry(CID, "phone0", 4), null);
  await kv.set(keys.customerListEntry(CID, "all", 0), null);
  await kv.set(keys.customerListEntry(CID, "all", 5000), null);
  await kv.set(keys.customerListEntry(CID, "old", 3), null);
  // Counters: a total and a bucket that disagree with the records.
  await kv.atomic().sum(keys.customerTotal(CID, "email1", "in"), 5n).commit();
  await kv.atomic().sum(keys.customerBucket(CID, "p1e1", 2, "out"), 1n).commit();
  // Sequences behind their highest id; a card without its owner entry; a directory without its name index.
  await kv.set(keys.sequence(CID, "customers"), 3);
  await kv.set(cardKeys.idSequence(CID), 1);
  await kv.delete(cardKeys.ofCustomerEntry(CID, 3, 1));
  await kv.set(cardKeys.ofCustomerEntry(CID, 7, 2), null);
  await kv.delete(directoryKeys.byName(CID, "groups", "vip"));

  const before = await kv.get(keys.customerBucket(CID, "p1e1", 2, "in"));
  const found = defects(await check(kv));
  assert.deepEqual(found, [
    'bucket_count: List "p1e1" bucket 2 (ids 1000-1499): counters say 49, records say 50',
    `index_elsewhere: Customer "4": email index "${c4.email}" points at "5", which does not claim it`,
    `missing_index: Customer "1": phone index "${c1.phone}" is missing`,
    'missing_index: Customer group "2": name index "vip" is missing',
    'missing_list_entry: Card "1": index entry ["cards_by_customer",3,1] is missing',
    'missing_list_entry: Customer "1": index entry ["customer_lists","all",1] is missing',
    `orphan_index: Customer email index "${c4.email}" points at "5", whose email is "${c5.email}"`,
    'orphan_index: Customer external_id index "ghost" points at "999", which does not exist',
    'orphan_list_entry: List entry ["customer_lists","all",0]: the customer does not exist',
    'orphan_list_entry: List entry ["customer_lists","all",5000]: the customer does not exist',
    'orphan_list_entry: List entry ["customer_lists","old",3]: customer "3" is not in list "old"',
    'orphan_list_entry: List entry ["customer_lists","phone0",4]: customer "4" is not in list "phone0"',
    'orphan_list_entry: Owner entry ["cards_by_customer",7,2]: card "2" belongs to customer "3"',
    'sequence_behind: Sequence ["sequences","cards"] is at 1, behind the highest card id 104',
    'sequence_behind: Sequence ["sequences","customers"] is at 3, behind the highest customer id 1099',
    'total_count: List "email1": total says 64, its bucket counts say 59',
    'total_count: List "p1e1": total says 57, its bucket counts say 56',
  ]);

  const repaired = await check(kv, true);
  // Fixing customer 4's email index also fixes the orphan view of it; the p1e1 total agrees once its bucket does.
  assert.equal(repaired.length, 15);
  for (const f of repaired) assert.equal(f.repair, "repaired", f.message);
  assert.deepEqual(await check(kv), []);

  // Counters only grew: the bucket went back up through "in", never by writing a smaller "out".
  const after = await kv.get<Deno.KvU64>(keys.customerBucket(CID, "p1e1", 2, "in"));
  assert.equal(after.value!.value, (before.value as Deno.KvU64).value + 1n);
  const out = await kv.get<Deno.KvU64>(keys.customerBucket(CID, "p1e1", 2, "out"));
  assert.equal(out.value!.value, 1n);
  assert.equal((await kv.get(keys.sequence(CID, "customers"))).value, 1099);
  assert.equal((await kv.get(keys.customerByPhone(CID, c1.phone))).value, 1);
  assert.equal((await kv.get(keys.customerByExternalId(CID, "ghost"))).versionstamp, null);
});

Deno.test("verifyStore() reports balances, duplicates and dangling references, and never repairs them", async () => {
  await using kv = await Deno.openKv(":memory:");
  await populate(kv);
  const c5 = await customer(kv, 5);
  const c7 = await customer(kv, 7);
  assert.ok(c5.phone && c7.phone);

  // Two records claiming one phone (the index holds 5); customer 7's own phone key becomes an orphan.
  await kv.set(keys.customer(CID, 7), { ...c7, phone: c5.phone });
  // A balance that differs from its ledger, and a ledger entry with the wrong running balance.
  const balanceKey = bonusKeys.balance(CID, 1000, 1);
  const balance = (await kv.get<{ balance: number; last_transaction_id: number }>(balanceKey)).value!;
  await kv.set(balanceKey, { ...balance, balance: balance.balance + 100 });
  await kv.set(bonusKeys.balance(CID, 1001, 1), { balance: 500, last_transaction_id: 3 });
  // A card of a customer that does not exist, and a customer in a group that does not exist.
  const card = (await kv.get<Card>(cardKeys.card(CID, 100))).value!;
  await kv.set(cardKeys.card(CID, 100), { ...card, customer_id: 4242 });
  await kv.delete(cardKeys.ofCustomerEntry(CID, 1000, 100));
  await kv.set(cardKeys.ofCustomerEntry(CID, 4242, 100), null);
  const c8 = await customer(kv, 8);
  await kv.set(keys.customer(CID, 8), { ...c8, group_id: 77 });

  const expected = [
    'balance_ledger: Balance of customer "1000" in program "1": balance is 600, its ledger sums to 500 ' +
    "(balances are never repaired)",
    'balance_ledger: Balance of customer "1001" in program "1": last_transaction_id is 3, ' +
    "the ledger's last id is 1 (balances are never repaired)",
    'card_owner_missing: Card "100": customer "4242" does not exist',
    `duplicate_unique: Customer phone "${c5.phone}" is claimed by customers "5" and "7"`,
    // The card's index entries name their owner (storage/cards.ts): the raw owner change left them naming 1000.
    `index_value: Card "100": uid index "${card.uid}" names owner 1000, the card's is 4242`,
    'missing_group: Customer "8": group "77" does not exist',
    `orphan_index: Customer phone index "${c7.phone}" points at "7", whose phone is "${c5.phone}"`,
  ];
  assert.deepEqual(defects(await check(kv)), expected);
  const repaired = await check(kv, true);
  const byCheck = Object.fromEntries(repaired.map((f) => [f.check, f.repair]));
  assert.equal(byCheck.orphan_index, "repaired");
  assert.equal(byCheck.index_value, "repaired");
  for (const name of ["balance_ledger", "card_owner_missing", "duplicate_unique", "missing_group"]) {
    assert.equal(byCheck[name], "not derivable", name);
  }
  assert.deepEqual(
    defects(await check(kv)),
    expected.filter((d) => !d.startsWith("orphan_index") && !d.startsWith("index_value")),
  );
  assert.equal((await kv.get<{ balance: number }>(balanceKey)).value!.balance, balance.balance + 100);
});

Deno.test("verifyStore() reports lots that disagree with their balance, below zero, or with bad ids", async () => {
  await using kv = await Deno.openKv(":memory:");
  await populate(kv);
  // Customers 1000-1002 hold 500 each (one ledger entry, a record from before lots): give them broken lots.
  assert.deepEqual(defects(await check(kv)), []);
  const lot = (id: number, remaining: number) => ({ id, remaining, available_at: 0, expires_at: null });
  const set = (customerId: number, lots: ReturnType<typeof lot>[], next: number) =>
    kv.set(bonusKeys.balance(CID, customerId, 1), { balance: 500, last_transaction_id: 1, lots, next_lot_id: next });
  await set(1000, [lot(1, 400), lot(2, 50)], 3);
  await set(1001, [lot(1, 505), lot(2, -5)], 3);
  await set(1002, [lot(1, 200), lot(1, 300), lot(4, 0)], 4);
  assert.deepEqual(defects(await check(kv)), [
    'balance_lots: Balance of customer "1000" in program "1": balance is 500, its lots hold 450 ' +
    "(balances are never repaired)",
    'balance_lots: Balance of customer "1001" in program "1": lot 2 holds -5, below zero ' +
    "(balances are never repaired)",
    'balance_lots: Balance of customer "1002" in program "1": lot id 1 is used twice (balances are never repaired)',
    'balance_lots: Balance of customer "1002" in program "1": lot id 4 is not below next_lot_id 4 ' +
    "(balances are never repaired)",
  ]);
  const repaired = await check(kv, true);
  assert.ok(repaired.every((f) => f.check !== "balance_lots" || f.repair === "not derivable"));
  assert.equal(defects(await check(kv)).length, 4);
});

/** Four clients writing through the app until stopped: creates, phone changes, bonus changes, card inserts. */
function writeBeside(kv: Deno.Kv, key: string): () => Promise<void> {
  const app = createApp({ kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  let stop = false;
  const writer = async (n: number) => {
    for (let i = 0; !stop; i++) {
      const id = 1 + ((i * 7 + n) % 12);
      const form = i % 3 === 0 ? randomCustomer() : { phone: i % 2 ? "" : randomCustomer().phone as string };
      const query: Record<string, number> = i % 3 === 0 ? {} : { id };
      await request(app, "POST", "/api/customer/update", { key, form, query });
      await request(app, "POST", "/api/customer/updateBonus", {
        key,
        form: { customer_id: id, bonus_id: 1, amount: 1 },
      });
      if (i % 4 === 0) await request(app, "POST", "/api/customer/insertCard", { key, form: { customer_id: id } });
    }
  };
  const writers = [0, 1, 2, 3].map(writer);
  return async () => {
    stop = true;
    await Promise.all(writers);
  };
}

Deno.test("verifyStore() reports no defect while the service writes beside it", async () => {
  await using kv = await Deno.openKv(":memory:");
  await populate(kv);
  const key = (await createApiKey(kv, { companyId: CID, userId: 2, access: "write", now: Date.now() })).key;
  const stop = writeBeside(kv, key);
  try {
    for (let run = 0; run < 3; run++) assert.deepEqual(defects(await check(kv)), []);
  } finally {
    await stop();
  }
  assert.deepEqual(await check(kv), []);
});

Deno.test("verifyStore() repairs beside the writing service without clobbering its writes", async () => {
  await using kv = await Deno.openKv(":memory:");
  await populate(kv);
  const key = (await createApiKey(kv, { companyId: CID, userId: 2, access: "write", now: Date.now() })).key;
  await kv.delete(keys.customerByPhone(CID, (await customer(kv, 1000)).phone!));
  // A bucket count off while its list's total is right: once the bucket is repaired the total agrees with it.
  await kv.atomic().sum(keys.customerBucket(CID, "email0", 1, "in"), 3n).commit();
  await kv.set(keys.customerListEntry(CID, "p0e0", 1001), null);
  const stop = writeBeside(kv, key);
  let repaired: Finding[];
  try {
    repaired = await check(kv, true);
  } finally {
    await stop();
  }
  // A list changing on every read may be left unchecked with a "busy" note: that is no defect.
  const outcomes = repaired.filter((f) => f.severity === "defect").map((f) => `${f.check} ${f.repair}`);
  assert.deepEqual(outcomes.sort(), [
    "bucket_count repaired",
    "missing_index repaired",
    "orphan_list_entry repaired",
  ]);
  assert.deepEqual(await check(kv), []);
});

Deno.test("deno task verify: exit 1 with a listing, --repair, then exit 0; 2 on a usage error", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/store.kv`;
  try {
    const kv = await Deno.openKv(path);
    await populate(kv);
    await kv.set(keys.sequence(CID, "customers"), 2);
    await kv.delete(keys.customerListEntry(CID, "email1", 1001));
    kv.close();
    const run = async (...args: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["task", "-q", "verify", ...args],
        cwd: ROOT,
        env: { KV_PATH: path },
        stdin: "null",
      }).output();
      return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
    };
    const first = await run();
    assert.equal(first.code, 1, first.stdout);
    assert.match(first.stdout, /^acme: defect sequence_behind: Sequence \["sequences","customers"\] is at 2/m);
    assert.match(first.stdout, /acme: defect missing_list_entry: Customer "1001": index entry/);
    assert.match(first.stdout, /^verify: 2 defects \(1 company, \d+ keys, 0 notes/m);
    const repaired = await run("--repair", "--company", CID);
    assert.equal(repaired.code, 0, repaired.stdout);
    assert.match(repaired.stdout, /\[repaired\]/);
    assert.match(repaired.stdout, /^verify: 2 defects, 2 repaired, 0 remaining/m);
    const clean = await run();
    assert.equal(clean.code, 0, clean.stdout);
    assert.match(clean.stdout, /^verify: clean \(1 company/m);
    const bad = await run("--bogus");
    assert.equal(bad.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("verifyStore() checks orders and returns: clean after real purchases, defects reported and never repaired", async () => {
  using kv = await Deno.openKv(":memory:");
  const config = { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false };
  const app = createApp({ kv, config });
  const { key } = await createApiKey(kv, { companyId: CID, userId: 1, access: "write" });
  const call = (path: string, form: Record<string, string | number>) => request(app, "POST", path, { key, form });
  const program = (await call("/api/bonusprogram/update", { name: "P", accrual_percent: "10" })).body.id;
  const id = (await call("/api/customer/update", { fname: "A" })).body.id;
  await call("/api/customer/updateBonus", { customer_id: id, bonus_id: program, amount: "20" });
  assert.equal(
    (await call("/api/purchase", { customer_id: id, bonus_id: program, order_id: "O-1", amount: "100", spend: "5" }))
      .status,
    200,
  );
  assert.equal((await call("/api/purchase/return", { order_id: "O-1", return_id: "R-1", amount: "40" })).status, 200);
  assert.deepEqual(defects(await check(kv)), []);
  assert.ok(!(await check(kv)).some((f) => f.check === "unknown_collection"), "orders are known collections");

  const orderKey = ["company", CID, "orders", "O-1"];
  const order = (await kv.get<Record<string, unknown>>(orderKey)).value!;
  await kv.set(orderKey, { ...order, returned: 1_000_000 });
  await kv.set(["company", CID, "order_returns", "GONE", "R-9"], { fingerprint: "x", reply: {}, created_date: 0 });
  const found = defects(await check(kv, true));
  assert.deepEqual(found, [
    'order: Order "O-1": returned 1000000 is not within 0..10000 (orders are never repaired)',
    'order_return_orphan: Return "R-9" of order "GONE": the order does not exist',
  ]);
  assert.equal(((await kv.get<Record<string, unknown>>(orderKey)).value!).returned, 1_000_000, "not repaired");
});

Deno.test("verifyStore() retries a list total's repair that a concurrent write made fail, and reports the last one", async (t) => {
  await using kv = await Deno.openKv(":memory:");
  await populate(kv);
  await kv.atomic().sum(keys.customerTotal(CID, "email1", "in"), 5n).commit();
  const moveTotal = () => kv.atomic().sum(keys.customerTotal(CID, "email1", "in"), 1n).commit();

  await t.step("a write before the first repair only: retried from a new reading, repaired", async () => {
    const proxy = kvProxy(kv);
    proxy.beforeCommit(moveTotal);
    const findings: Finding[] = [];
    await verifyStore(proxy.kv, { repair: true, onFinding: (f) => findings.push(f) });
    assert.deepEqual(findings.map((f) => `${f.check} ${f.repair ?? f.severity}`), ["total_count repaired"]);
    assert.deepEqual(await check(kv), []);
  });

  await t.step(
    "a write before every repair: one conflict reported, and no note that the total was not checked",
    async () => {
      await kv.atomic().sum(keys.customerTotal(CID, "email1", "in"), 5n).commit();
      const proxy = kvProxy(kv);
      for (let i = 0; i < 10; i++) proxy.beforeCommit(moveTotal);
      const findings: Finding[] = [];
      await verifyStore(proxy.kv, { repair: true, onFinding: (f) => findings.push(f) });
      assert.deepEqual(findings.map((f) => `${f.check} ${f.repair ?? f.severity}`), ["total_count conflict"]);
    },
  );
});
