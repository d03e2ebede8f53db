/**
 * The importer's batched create under the claims epoch, raced by the API's own creates on the same phones, emails
 * and card numbers: no unique value ever points at two records, the store verifies clean, and every row is either
 * in (created, or merged into the customer the API made) or rejected naming the clash.
 */
import assert from "node:assert/strict";
import { openRows } from "../domain/import/read.ts";
import type { Customer } from "../domain/customer.ts";
import { cardKeys, keys } from "../storage/keys.ts";
import { createStore } from "../storage/store.ts";
import { verifyStore } from "../storage/verify.ts";
import { importRows, saveCard, saveCustomer, saveDirectoryEntry } from "../usecases/mod.ts";

const SETTINGS = { defaultCountryCode: "7", timeZone: "UTC" };
const actor = { companyId: "acme", name: "import:race.csv", userId: 0 };
const api = { companyId: "acme", name: "key:till", userId: 0 };
const ROWS = 1200;

const phone = (i: number) => `7950${String(i).padStart(7, "0")}`;
const email = (i: number) => `race${i}@example.com`;
const uid = (i: number) => `77${String(i).padStart(8, "0")}`;

/** The store seen by the import: before each commit, `onCommit` hears the keys it sets (and may race it). */
function racingKv(kv: Deno.Kv, onCommit: (setKeys: Deno.KvKey[]) => Promise<void>): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const setKeys: Deno.KvKey[] = [];
          const set = op.set.bind(op);
          op.set = (key, value, options) => {
            setKeys.push(key);
            return set(key, value, options);
          };
          const commit = op.commit.bind(op);
          op.commit = async () => {
            await onCommit(setKeys);
            return await commit();
          };
          return op;
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function streamOf(text: string): ReadableStream<Uint8Array> {
  return new Blob([new TextEncoder().encode(text)]).stream();
}

Deno.test("API creates racing an import on the same phones, emails and cards: no value held twice, verify clean", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const store = createStore(kv);
    await saveDirectoryEntry(store, actor, { kind: "bonus_programs", name: "Main" });
    const lines = ["external_id,fname,phone,email,card_uid,bonus"];
    for (let i = 1; i <= ROWS; i++) lines.push(`r${i},Row${i},${phone(i)},${email(i)},${uid(i)},${i % 50}`);
    const opened = await openRows(streamOf(lines.join("\n") + "\n"), {
      format: "csv",
      type: "customers",
      batchSize: 300,
    });
    // The till claims a value of the batch the import is about to commit, just before it commits (and keeps
    // creating its own customers from the last row backwards): the operation must lose, never overwrite.
    const tillStore = createStore(kv);
    let stolen = 0;
    let apiDone = 0;
    const tillCreate = async (i: number, which: number) => {
      try {
        if (which === 0) {
          await saveCustomer(tillStore, api, { create: true, patch: { phone: phone(i) }, timeZone: "UTC" });
        } else if (which === 1) {
          await saveCustomer(tillStore, api, { create: true, patch: { email: email(i) }, timeZone: "UTC" });
        } else {
          await saveCard(tillStore, api, { mode: "insert", lookup: { uid: uid(i) }, change: {}, refs: {} });
        }
        apiDone++;
      } catch (e) {
        // The import claimed it first: the API's 409.
        assert.match((e as Error).message, /already taken|already exists/);
      }
    };
    const racing = racingKv(kv, async (setKeys) => {
      const phones = setKeys.filter((k) => k[2] === "customers_by_phone");
      if (phones.length < 10 || stolen >= 12) return;
      const row = Number(String(phones[3]![3]).slice(4));
      await tillCreate(row, stolen++ % 3);
    });
    const importing = importRows(createStore(racing), actor, {
      type: "customers",
      settings: SETTINGS,
      needsProgram: true,
      batches: opened.batches,
    });
    const till = (async () => {
      for (let i = ROWS; i >= 1; i -= 7) await tillCreate(i, i % 3);
    })();
    const [report] = await Promise.all([importing, till]);
    assert.ok(apiDone > 0, "some API creates went in");
    assert.equal(stolen, 12, "the till raced 12 batched operations");
    assert.equal(report.created + report.updated + report.rejected, ROWS, JSON.stringify(report));
    for (const r of report.rejects) {
      assert.match(r.info, /is already taken|belongs to another customer|belongs to the customer/, JSON.stringify(r));
    }

    // Every unique value of the file is held by exactly one record, and the index points at it.
    const byPhone = new Map<string, number[]>();
    const byEmail = new Map<string, number[]>();
    for await (const e of kv.list<Customer>({ prefix: keys.customers("acme") })) {
      if (e.value.phone) byPhone.set(e.value.phone, [...byPhone.get(e.value.phone) ?? [], e.value.id]);
      if (e.value.email) byEmail.set(e.value.email, [...byEmail.get(e.value.email) ?? [], e.value.id]);
    }
    for (let i = 1; i <= ROWS; i++) {
      const p = byPhone.get(phone(i)) ?? [];
      assert.ok(p.length <= 1, `phone ${phone(i)} held by ${p}`);
      if (p.length === 1) assert.equal((await kv.get(keys.customerByPhone("acme", phone(i)))).value, p[0]);
      const m = byEmail.get(email(i)) ?? [];
      assert.ok(m.length <= 1, `email ${email(i)} held by ${m}`);
      if (m.length === 1) assert.equal((await kv.get(keys.customerByEmail("acme", email(i)))).value, m[0]);
    }
    const cardsByUid = new Map<string, number>();
    for await (const e of kv.list<{ uid: string }>({ prefix: cardKeys.cards("acme") })) {
      cardsByUid.set(e.value.uid, (cardsByUid.get(e.value.uid) ?? 0) + 1);
    }
    for (const [u, n] of cardsByUid) assert.equal(n, 1, `card ${u} held by ${n} cards`);

    const findings: unknown[] = [];
    await verifyStore(kv, { onFinding: (f) => findings.push(f) });
    assert.deepEqual(findings, []);
  } finally {
    kv.close();
  }
});
