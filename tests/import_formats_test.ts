/**
 * Imports of generated files in every format and encoding, with bad rows sprinkled in: every reject named with its
 * line, field and the API's words; the good rows in the store exactly once; a second run all unchanged; a dry run
 * writes nothing. The real use cases over a real in-memory store.
 */
import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../config.ts";
import { openRows, type ReadOptions } from "../domain/import/read.ts";
import type { Customer } from "../domain/customer.ts";
import { keys } from "../storage/keys.ts";
import { getBalanceRecord } from "../storage/bonuses.ts";
import { findCard } from "../storage/cards.ts";
import { createStore, type Store } from "../storage/store.ts";
import { importRows, listImports, recordImport, saveCustomer, saveDirectoryEntry } from "../usecases/mod.ts";
import { kvProxy, snapshot } from "./kit.ts";
import { countList } from "../storage/customers.ts";
import { verifyStore } from "../storage/verify.ts";

const SETTINGS = { defaultCountryCode: DEFAULT_CONFIG.defaultCountryCode, timeZone: "UTC" };
const actor = { companyId: "acme", name: "import:test", userId: 0 };

/** The logical rows of the customers file; "" is an empty cell. */
const HEADER = [
  "external_id",
  "fname",
  "lname",
  "phone",
  "email",
  "birth_day",
  "birth_month",
  "birth_year",
  "accumulated_sales",
  "card_uid",
  "bonus",
];
const ROWS: string[][] = [
  ["c1", "Анна", "Смирнова", "+7 900 000-00-01", "a1@example.com", "1", "2", "1990", "2880,50", "0001", "1 250,50"],
  ["c2", "Пётр", "", "8 900 000-00-01", "", "", "", "", "", "", ""], // phone taken by row 1
  ["c3", "Ирина", "", "", "", "31", "2", "1987", "", "", ""], // impossible date
  [], // an empty line
  ["", "Олег", "", "", "", "", "", "", "", "", ""], // nothing to match by
  ["c5", "", "", "", "not-an-email", "", "", "", "", "", ""], // bad email
  ["c6", "", "", "+7 900 000-00-99", "", "", "", "", "", "", ""], // phone of a customer already in the store
  ["store1", "Новое", "", "", "", "", "", "", "", "", "10"], // updates the stored customer
  ["c7", "Вера", "", "", "", "", "", "", "1 000,5", "", ""],
  ["c1", "Дубль", "", "", "", "", "", "", "", "", ""], // external id of row 1
  ["c8", "", "", "", "", "", "", "", "", "0001", ""], // card of row 1
];

/** The rejects expected, by logical row index (0-based) -> field and message. */
const EXPECTED_REJECTS: [number, string, string][] = [
  [1, "phone", 'phone "79000000001" is already in line {0} of this file'],
  [2, "birth_day", 'Invalid birth_day "31": 1987-02 has no day 31'],
  [
    4,
    "external_id",
    "Cannot import customer: the row has no external_id, phone, email or card_uid to find it by on a re-run",
  ],
  [5, "email", 'Invalid email "not-an-email": must be one address like name@example.com'],
  [6, "phone", 'Cannot import customer: phone "79000000099" belongs to the customer with external_id "store1"'],
  [9, "external_id", 'external_id "c1" is already in line {0} of this file'],
  [10, "card_uid", 'card_uid "0001" is already in line {0} of this file'],
];

function csvOf(delimiter: string, eol: string): string {
  const quote = (v: string) => v.includes(delimiter) || v.includes('"') ? `"${v.replaceAll('"', '""')}"` : v;
  return [HEADER, ...ROWS].map((r) => r.map(quote).join(delimiter)).join(eol) + eol;
}

function objectsOf(): Record<string, string>[] {
  return ROWS.map((r) => Object.fromEntries(r.flatMap((v, i) => v === "" ? [] : [[HEADER[i]!, v]])));
}

function xmlOf(): string {
  const esc = (v: string) => v.replaceAll("&", "&amp;").replaceAll("<", "&lt;");
  const items = objectsOf().map((o) =>
    `<customer>${Object.entries(o).map(([k, v]) => `<${k}>${esc(v)}</${k}>`).join("")}</customer>`
  );
  return `<?xml version="1.0" encoding="UTF-8"?>\n<root><success>1</success><customers>${
    items.join("\n")
  }</customers></root>`;
}

function cp1251(text: string): Uint8Array {
  return new Uint8Array([...text].map((ch) => {
    const code = ch.charCodeAt(0);
    if (code < 128) return code;
    if (ch === "ё") return 0xb8;
    if (ch === "Ё") return 0xa8;
    if (code >= 0x410 && code <= 0x44f) return code - 0x410 + 0xc0;
    throw new Error(`no cp1251 for ${ch}`);
  }));
}

const utf8 = (t: string) => new TextEncoder().encode(t);

/** Each variant: its bytes, how it is read, and the line of the first row. */
const VARIANTS: { name: string; bytes: Uint8Array; format: ReadOptions["format"]; first: number }[] = [
  { name: "CSV, UTF-8, comma, LF", bytes: utf8(csvOf(",", "\n")), format: "csv", first: 2 },
  {
    name: "CSV, UTF-8 with BOM, semicolon, CRLF",
    bytes: new Uint8Array([0xef, 0xbb, 0xbf, ...utf8(csvOf(";", "\r\n"))]),
    format: "csv",
    first: 2,
  },
  { name: "CSV, Windows-1251, semicolon, CRLF", bytes: cp1251(csvOf(";", "\r\n")), format: "csv", first: 2 },
  { name: "CSV, UTF-8, tab", bytes: utf8(csvOf("\t", "\n")), format: "csv", first: 2 },
  {
    name: "JSON, the API's reply shape",
    bytes: utf8(JSON.stringify({ success: 1, customers: objectsOf() })),
    format: "json",
    first: 1,
  },
  {
    name: "NDJSON",
    bytes: utf8(objectsOf().map((o) => Object.keys(o).length ? JSON.stringify(o) : "").join("\n") + "\n"),
    format: "ndjson",
    first: 1,
  },
  { name: "XML, the API's shape", bytes: utf8(xmlOf()), format: "xml", first: 1 },
];

function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + 13));
      at += 13;
    },
  });
}

async function seeded(): Promise<{ store: Store; programId: number } & Disposable> {
  const kv = await Deno.openKv(":memory:");
  const store = createStore(kv);
  const program = await saveDirectoryEntry(store, actor, { kind: "bonus_programs", name: "Main" });
  await saveCustomer(store, actor, {
    create: true,
    externalId: "store1",
    patch: { phone: "79000000099", fname: "Старое" },
    timeZone: "UTC",
  });
  return { store, programId: program.entry.id, [Symbol.dispose]: () => kv.close() };
}

async function run(store: Store, v: (typeof VARIANTS)[number], options: { dryRun?: boolean } = {}) {
  const opened = await openRows(streamOf(v.bytes), { format: v.format, type: "customers", batchSize: 4 });
  return await importRows(store, actor, {
    type: "customers",
    settings: SETTINGS,
    needsProgram: true,
    dryRun: options.dryRun,
    batches: opened.batches,
  });
}

async function customerBy(store: Store, ext: string): Promise<Customer | null> {
  const id = (await store.kv.get<number>(keys.customerByExternalId("acme", ext))).value;
  return id === null ? null : (await store.kv.get<Customer>(keys.customer("acme", id))).value;
}

for (const v of VARIANTS) {
  Deno.test(`import of customers: ${v.name}: every bad row named, good rows in once, a re-run unchanged`, async () => {
    using s = await seeded();
    const { store, programId } = s;
    const before = await snapshot(store.kv);
    const dry = await run(store, v, { dryRun: true });
    assert.equal(await snapshot(store.kv), before, "a dry run writes nothing");

    const report = await run(store, v);
    const lineOf = (i: number) => v.first + i;
    assert.deepEqual(
      report.rejects,
      EXPECTED_REJECTS.map(([i, field, info]) => ({
        line: lineOf(i),
        field,
        info: info.replace("{0}", String(lineOf(0))),
      })),
    );
    assert.deepEqual(
      { ...report, rejects: [] },
      { created: 2, updated: 1, unchanged: 0, rejected: 7, skipped: 1, rejects: [] },
    );
    assert.deepEqual({ ...dry, rejects: dry.rejects.length }, { ...report, rejects: 7 }, "the dry run's report");

    const c1 = await customerBy(store, "c1");
    assert.equal(c1?.fname, "Анна");
    assert.equal(c1?.phone, "79000000001");
    assert.deepEqual([c1?.birth_day, c1?.birth_month, c1?.birth_year], [1, 2, 1990]);
    assert.equal(c1?.accumulated_sales, 288050);
    const card = await findCard(store.kv, "acme", { uid: "0001" });
    assert.equal(card?.customer_id, c1?.id, "the card, leading zeros kept, belongs to row 1's customer");
    const balance = await getBalanceRecord(store.kv, "acme", { customerId: c1!.id, bonusId: programId });
    assert.equal(balance?.balance, 125050);
    assert.equal((await customerBy(store, "c7"))?.accumulated_sales, 100050);
    const stored = await customerBy(store, "store1");
    assert.equal(stored?.fname, "Новое");
    assert.equal(stored?.phone, "79000000099", "an empty cell leaves the stored value");
    for (const ext of ["c2", "c3", "c5", "c6", "c8"]) assert.equal(await customerBy(store, ext), null, ext);

    const again = await run(store, v);
    assert.deepEqual({ ...again, rejects: again.rejects.length }, {
      created: 0,
      updated: 0,
      unchanged: 3,
      rejected: 7,
      skipped: 1,
      rejects: 7,
    });
  });
}

Deno.test("import of cards: unknown card types by id and owners by external id are rejected by name", async () => {
  using s = await seeded();
  const { store } = s;
  await saveDirectoryEntry(store, actor, { kind: "card_types", name: "Gold" });
  const csv = "uid,barcode,type_id,status,customer_external_id\n" +
    "100,,1,ACTIVE,store1\n" +
    "101,,999,,\n" +
    "102,,,NOPE,\n" +
    "103,,,,nobody\n" +
    "100,,,,\n";
  const opened = await openRows(streamOf(utf8(csv)), { format: "csv", type: "cards" });
  const report = await importRows(store, actor, { type: "cards", settings: SETTINGS, batches: opened.batches });
  assert.deepEqual(report.rejects, [
    { line: 3, field: "type_id", info: 'Card type "999" not found' },
    { line: 4, field: "status", info: 'Invalid status "NOPE": must be one of NEW, ACTIVE, BLOCKED' },
    { line: 5, field: "customer_external_id", info: 'Customer with external_id "nobody" not found' },
    { line: 6, field: "uid", info: 'uid "100" is already in line 2 of this file' },
  ]);
  assert.equal(report.created, 1);
  const card = await findCard(store.kv, "acme", { uid: "100" });
  assert.equal(card?.status, "ACTIVE");
  assert.equal(card?.type_id, 1);
  assert.equal(card?.customer_id, (await customerBy(store, "store1"))?.id);
});

Deno.test("import of balances: overwrite by default, credits once per line across re-runs", async () => {
  using s = await seeded();
  const { store, programId } = s;
  await saveCustomer(store, actor, { create: true, externalId: "store2", patch: {}, timeZone: "UTC" });
  const csv = "customer_external_id,amount,overwrite\nstore1,100,\nstore2,5,0\nnobody,1,\n";
  const go = async () => {
    const opened = await openRows(streamOf(utf8(csv)), { format: "csv", type: "bonuses" });
    return await importRows(store, actor, {
      type: "bonuses",
      settings: SETTINGS,
      needsProgram: true,
      fileKey: "f1",
      batches: opened.batches,
      concurrency: 1,
    });
  };
  const first = await go();
  assert.deepEqual(first.rejects, [
    { line: 4, field: "customer_external_id", info: 'Customer with external_id "nobody" not found' },
  ]);
  const balanceOf = async (ext: string) => {
    const customerId = (await customerBy(store, ext))!.id;
    return (await getBalanceRecord(store.kv, "acme", { customerId, bonusId: programId }))?.balance;
  };
  assert.deepEqual([await balanceOf("store1"), await balanceOf("store2")], [10000, 500]);
  const second = await go();
  assert.equal(second.unchanged, 2, "the overwrite finds 100.00 already; the credit of line 3 is replayed");
  assert.deepEqual([await balanceOf("store1"), await balanceOf("store2")], [10000, 500]);
});

Deno.test("a bonus column with two programs and no --bonus-id stops before the first row", async () => {
  using s = await seeded();
  const { store } = s;
  await saveDirectoryEntry(store, actor, { kind: "bonus_programs", name: "Second" });
  const before = await snapshot(store.kv);
  const opened = await openRows(streamOf(utf8("external_id,bonus\nx,1\n")), { format: "csv", type: "customers" });
  await assert.rejects(
    importRows(store, actor, { type: "customers", settings: SETTINGS, needsProgram: true, batches: opened.batches }),
    {
      name: "ImportSetupError",
      message: "Cannot import balances: the company has 2 bonus programs (1, 2), choose one with --bonus-id",
    },
  );
  assert.equal(await snapshot(store.kv), before);
});

Deno.test("listImports() lists recorded runs newest first", async () => {
  using s = await seeded();
  const { store } = s;
  const base = { type: "customers", actor: "import:a.csv", dry_run: false, created: 1, updated: 0, unchanged: 0 };
  const counts = { rejected: 0, skipped: 0, rejects: [] };
  await recordImport(store, actor, { ...base, ...counts, file: "a.csv", started: 1000, finished: 2000 });
  await recordImport(store, actor, { ...base, ...counts, file: "b.csv", started: 3000, finished: 4000 });
  const runs = await listImports(store, "acme", { limit: 10 });
  assert.deepEqual(runs.map((r) => r.file), ["b.csv", "a.csv"]);
  assert.deepEqual(await listImports(store, "other"), []);
});

Deno.test("a row with only a card number is its card's owner; with nothing to match by it is rejected", async () => {
  using s = await seeded();
  const { store } = s;
  const go = async (csv: string) => {
    const opened = await openRows(streamOf(utf8(csv)), { format: "csv", type: "customers" });
    return await importRows(store, actor, { type: "customers", settings: SETTINGS, batches: opened.batches });
  };
  await go("external_id,Номер карты\nstore1,00077\n");
  const report = await go("Номер карты,Имя\n00077,Карточный\n00078,Новый\n,Никто\n");
  assert.deepEqual({ ...report, rejects: report.rejects.map((r) => r.line) }, {
    created: 1,
    updated: 1,
    unchanged: 0,
    rejected: 1,
    skipped: 0,
    rejects: [4],
  });
  assert.equal((await customerBy(store, "store1"))?.fname, "Карточный");
  const owner = (await findCard(store.kv, "acme", { uid: "00078" }))?.customer_id;
  assert.equal((await store.kv.get<Customer>(keys.customer("acme", owner!))).value?.fname, "Новый");
});

Deno.test("the batched create writes exactly what the one-at-a-time path writes", async () => {
  const csv = "external_id,fname,phone,email,birth_date,card_uid,card_barcode,bonus\n" +
    Array.from({ length: 25 }, (_, i) => {
      const n = i + 1;
      const card = n % 5 === 0 ? "" : String(1000 + n).padStart(8, "0");
      const barcode = n % 3 === 0 && card ? `99${n}` : "";
      const email = n % 2 ? `u${n}@example.com` : "";
      return `e${n},Имя${n},7902${String(n).padStart(7, "0")},${email},01.0${(n % 9) + 1}.1980,${card},${barcode},${n}`;
    }).join("\n") + "\n";
  const dump = async (batched: boolean) => {
    const kv = await Deno.openKv(":memory:");
    try {
      const proxy = kvProxy(kv);
      const store = createStore(proxy.kv, { clock: () => Date.UTC(2024, 0, 2, 3, 4, 5) });
      await saveDirectoryEntry(store, actor, { kind: "bonus_programs", name: "Main" });
      const opened = await openRows(streamOf(utf8(csv)), { format: "csv", type: "customers" });
      const report = await importRows(store, actor, {
        type: "customers",
        settings: SETTINGS,
        needsProgram: true,
        batched,
        concurrency: 1,
        batches: opened.batches,
      });
      assert.equal(report.created, 25, JSON.stringify(report.rejects));
      const out: string[] = [];
      for await (const e of kv.list({ prefix: [] })) {
        // The change counter counts commits, which batching makes fewer by design.
        if (e.key.includes("audit") || e.key[2] === "changes") continue;
        const value = e.value instanceof Deno.KvU64 ? `u64:${e.value.value}` : e.value;
        out.push(JSON.stringify([e.key, value], (k, v) => k === "request_id" ? "-" : v));
      }
      const audit: string[] = [];
      for await (const e of kv.list<{ entity: string; entity_id: string; changes: unknown }>({ prefix: [] })) {
        if (!e.key.includes("audit")) continue;
        audit.push(JSON.stringify([e.value.entity, e.value.entity_id, e.value.changes]));
      }
      return { out, audit: audit.sort(), commits: proxy.calls.commit };
    } finally {
      kv.close();
    }
  };
  const single = await dump(false);
  const batched = await dump(true);
  // Sequences end where the same rows leave them; every record, index, counter and ledger entry is the same.
  assert.deepEqual(batched.out, single.out);
  assert.deepEqual(batched.audit, single.audit);
  assert.ok(single.commits >= 25 * 2, `one at a time: ${single.commits} commits`);
  assert.ok(batched.commits <= 3 + 13, `batched: ${batched.commits} commits for 25 rows`);
});

Deno.test("a batch whose check fails writes nothing; its rows are re-read one at a time", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const proxy = kvProxy(kv);
    const store = createStore(proxy.kv);
    const csv = "external_id,phone\nb1,79030000001\nb2,79030000002\nb3,79030000003\nb4,79030000004\n";
    const opened = await openRows(streamOf(utf8(csv)), { format: "csv", type: "customers" });
    // Two id reservations, then the first batch operation: the till takes b2's phone just before it commits.
    proxy.beforeCommit(() => Promise.resolve());
    proxy.beforeCommit(() =>
      saveCustomer(createStore(kv), { ...actor, name: "key:till" }, {
        create: true,
        patch: { phone: "79030000002" },
        timeZone: "UTC",
      })
    );
    const report = await importRows(store, actor, { type: "customers", settings: SETTINGS, batches: opened.batches });
    assert.deepEqual(report.rejects, [
      { line: 3, field: "phone", info: 'Cannot create customer: phone "79030000002" is already taken' },
    ]);
    assert.equal(report.created, 3);
    assert.equal(await countList(kv, "acme", "all"), 4, "three imported and the till's");
    const findings: unknown[] = [];
    await verifyStore(kv, {
      onFinding: (f) => findings.push(f),
    });
    assert.deepEqual(findings, []);
  } finally {
    kv.close();
  }
});
