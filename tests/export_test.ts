/**
 * `deno task export` and the export use case: every type in every format, checked against what the API replies,
 * through the real task and through the use case; CSV quoting, Cyrillic, leading zeros, big stores streamed, a
 * company other than default, and isolation between companies.
 */
import assert from "node:assert/strict";
import { XMLParser } from "fast-xml-parser";
import { type Config, DEFAULT_CONFIG } from "../config.ts";
import { blankCustomer } from "../domain/customer.ts";
import { EXPORT_FORMATS, type ExportFormat } from "../domain/export_format.ts";
import { EXPORT_TYPES, type ExportType } from "../domain/export_records.ts";
import { createApp } from "../routes/app.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { rawInsertCustomers } from "../storage/seed.ts";
import { createStore } from "../storage/store.ts";
import { exportRecords, exportText } from "../usecases/mod.ts";
import { parseXml, request, runTask, tempDir } from "./kit.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

/** A store file with companies "acme" (one bonus program) and "globex" (two programs), filled through the API. */
async function populatedStore(dir: string) {
  const kvPath = `${dir}/store.sqlite3`;
  const kv = await Deno.openKv(kvPath);
  const config: Config = { ...DEFAULT_CONFIG, kvPath, logRequests: false };
  const app = createApp({ kv, config });
  const now = Date.now();
  const acme = (await createApiKey(kv, { companyId: "acme", userId: 2, access: "write", now })).key;
  const globex = (await createApiKey(kv, { companyId: "globex", userId: 7, access: "write", now })).key;
  const call = async (key: string, path: string, form: Record<string, string | number>) => {
    // Cards are found (and made) by the uid in the query string.
    const { uid, ...rest } = form;
    const query = uid === undefined ? undefined : { uid };
    const r = await request(app, "POST", path, { key, form: rest, query });
    assert.equal(r.status, 200, `${path}: ${r.text}`);
    return r.body;
  };

  await call(acme, "/api/bonusprogram/update", { name: "Главная" });
  await call(acme, "/api/customergroup/update", { group_name: "VIP", accrual_percent: "7.5" });
  const a = await call(acme, "/api/customer/update", {
    external_id: "A-1",
    fname: 'Иван, "Ваня"',
    lname: "=SUM(A1)",
    custom_information: "line 1\nline 2\r\nline 3 <&>",
    phone: "+7 900 111-22-33",
    email: "ivan@example.com",
    birth_day: 5,
    birth_month: 2,
    birth_year: 1987,
    group_name: "VIP",
    accumulated_sales: "1250.50",
  });
  await call(acme, "/api/customer/insertCard", {
    uid: "000123",
    barcode: "0001230001",
    type_name: "Золотая",
    customer_id: a.id,
  });
  await call(acme, "/api/customer/updateBonus", { customer_id: a.id, bonus_id: 1, amount: "125.50" });
  await call(acme, "/api/customer/updateBonus", { customer_id: a.id, bonus_id: 1, amount: "-0.50", comment: "a, b" });
  const b = await call(acme, "/api/customer/update", { external_id: "B-2", fname: "Пётр", email: "petr@example.com" });
  await call(acme, "/api/customer/insertCard", { uid: "0777", customer_id: b.id, type_name: "Silver" });
  await call(acme, "/api/customer/insertCard", { uid: "0778", customer_id: b.id });
  await call(acme, "/api/customer/updateBonus", { customer_id: b.id, bonus_id: 1, amount: "3", order_id: "O-1" });
  await call(acme, "/api/customer/update", { fname: "Без карты" });
  await call(acme, "/api/customer/insertCard", { uid: "5550001" });

  await call(globex, "/api/bonusprogram/update", { name: "GlobexOne" });
  await call(globex, "/api/bonusprogram/update", { name: "GlobexTwo" });
  await call(globex, "/api/customergroup/update", { group_name: "GlobexGroup" });
  const g = await call(globex, "/api/customer/update", {
    external_id: "GLOBEX-SECRET",
    fname: "GlobexSecret",
    group_name: "GlobexGroup",
  });
  await call(globex, "/api/customer/insertCard", { uid: "9990001", customer_id: g.id, type_name: "GlobexType" });
  await call(globex, "/api/customer/updateBonus", { customer_id: g.id, bonus_id: 2, amount: "42" });

  return {
    kvPath,
    kv,
    app,
    config,
    acme,
    globex,
    get: async (key: string, path: string, query: Record<string, string | number> = {}) =>
      await request(app, "GET", path, { key, query }),
    [Symbol.asyncDispose]: () => Promise.resolve(kv.close()),
  };
}

/** The whole text of an export through the use case. */
async function exportOf(
  kv: Deno.Kv,
  options: { company: string; type: ExportType; format: ExportFormat; batch?: number },
): Promise<string> {
  let out = "";
  const actor = { companyId: options.company, name: "test", userId: 0 };
  for await (const chunk of exportText(createStore(kv), actor, { ...options, timeZone: DEFAULT_CONFIG.timeZone })) {
    out += chunk;
  }
  return out;
}

/** Parses RFC 4180 CSV (CRLF records, quoted fields with doubled quotes) into rows of fields. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let i = 0;
  while (i < text.length) {
    let value = "";
    if (text[i] === '"') {
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        assert.ok(q !== -1, "unterminated quoted field");
        value += text.slice(i, q);
        if (text[q + 1] === '"') {
          value += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
    } else {
      const m = /[,\r]/.exec(text.slice(i));
      const end = m ? i + m.index : text.length;
      value = text.slice(i, end);
      assert.ok(!value.includes('"') && !value.includes("\n"), `bare field with a quote or newline: ${value}`);
      i = end;
    }
    row.push(value);
    if (text[i] === ",") i++;
    else if (text.startsWith("\r\n", i) || i >= text.length) {
      rows.push(row);
      row = [];
      i += 2;
    } else assert.fail(`unexpected character at ${i}: ${JSON.stringify(text.slice(i, i + 10))}`);
  }
  return rows;
}

/** Records of an export in any format, every value as the text it would be in CSV or XML ("" for empty). */
function recordsOf(format: ExportFormat, text: string, list: string): Record<string, string>[] {
  const asText = (r: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v === null ? "" : String(v)]));
  switch (format) {
    case "csv": {
      const [header, ...rows] = parseCsv(text);
      return rows.map((r) => Object.fromEntries(header!.map((h, i) => [h, r[i]!])));
    }
    case "ndjson":
      return text.split("\n").filter((l) => l !== "").map((l) => asText(JSON.parse(l)));
    case "json": {
      const doc = JSON.parse(text);
      assert.equal(doc.success, 1);
      assert.equal(doc.count, doc[list].length);
      return doc[list].map(asText);
    }
    case "xml": {
      assert.ok(text.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<root>\n'));
      // Character references (`&#13;` for a carriage return) decoded, as a client reading back the text would.
      const root = new XMLParser({ parseTagValue: false, htmlEntities: true }).parse(text).root;
      assert.equal(root.success, "1");
      const items = root[list] === "" ? [] : root[list][Object.keys(root[list])[0]!];
      const all: Record<string, string>[] = Array.isArray(items) ? items : [items];
      assert.equal(root.count, String(all.length));
      return all.map(asText);
    }
  }
}

const LISTS: Record<ExportType, string> = {
  customers: "customers",
  cards: "cards",
  bonuses: "bonuses",
  ledger: "transactions",
  groups: "groups",
  cardtypes: "card_types",
  bonusprograms: "bonus_programs",
};

/** What the API shows for each type in company "acme" (JSON values), the reference every export is checked against. */
async function apiRecords(s: Awaited<ReturnType<typeof populatedStore>>, key: string, type: ExportType) {
  const customers = (await s.get(key, "/api/customer", { cards: 1, bonuses: 1 })).body.customers as Any[];
  switch (type) {
    case "customers":
      return customers.map(({ cards, bonuses, ...c }) => ({
        ...c,
        card_uid: cards[0]?.uid ?? null,
        card_barcode: cards[0]?.barcode ?? null,
        ...(bonuses.length === 1 ? { bonus: bonuses[0].balance } : {}),
      }));
    case "cards": {
      const owned = customers.flatMap((c) => c.cards as Any[]);
      // Cards without an owner are not in customer replies: look them up one by one.
      const all: Any[] = [];
      for (let id = 1; id <= 10; id++) {
        const found = owned.find((c) => c.card_id === id) ??
          (await s.get(key, "/api/card", { card_id: id })).body.card;
        if (found) all.push(found);
      }
      return all;
    }
    case "bonuses":
      return customers.flatMap((c) =>
        (c.bonuses as Any[]).filter((b) => b.balance !== 0 || b.pending !== 0).map((b) => ({
          customer_id: c.id,
          customer_external_id: c.external_id,
          bonus_id: b.bonus_id,
          amount: b.balance,
          overwrite: 1,
        }))
      );
    case "ledger": {
      const out: Any[] = [];
      for (const c of customers) {
        for (const b of c.bonuses as Any[]) {
          const h = (await s.get(key, "/api/customer/bonusHistory", { customer_id: c.id, bonus_id: b.bonus_id })).body;
          for (const t of (h.transactions as Any[]).toReversed()) {
            const { customer_id, ...rest } = t;
            out.push({ transaction_id: t.transaction_id, customer_id, customer_external_id: c.external_id, ...rest });
          }
        }
      }
      return out;
    }
    case "groups":
      return (await s.get(key, "/api/customergroup")).body.groups;
    case "cardtypes":
      return (await s.get(key, "/api/cardtype")).body.card_types;
    case "bonusprograms":
      return (await s.get(key, "/api/bonusprogram")).body.bonus_programs;
  }
}

function asText(records: Any[]): Record<string, string>[] {
  return records.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v === null ? "" : String(v)])));
}

Deno.test("export: every type in every format holds what the API shows, through the use case and the task", async (t) => {
  await using dir = await tempDir("export_test_");
  await using s = await populatedStore(dir.path);
  for (const type of EXPORT_TYPES) {
    const expected = await apiRecords(s, s.acme, type);
    assert.ok(expected.length > 0, `${type}: the fixture has rows`);
    await t.step(`${type}`, async () => {
      const json = JSON.parse(await exportOf(s.kv, { company: "acme", type, format: "json" }));
      assert.deepEqual(json[LISTS[type]], expected);
      for (const format of EXPORT_FORMATS) {
        const text = await exportOf(s.kv, { company: "acme", type, format, batch: 2 });
        assert.deepEqual(recordsOf(format, text, LISTS[type]), asText(expected), `${type} ${format}`);
        const out = `${dir.path}/${type}.${format}`;
        const task = await runTask("export", ["--type", type, "--company", "acme", "--out", out], {
          kvPath: s.kvPath,
        });
        assert.equal(task.code, 0, task.err);
        assert.equal(task.out, "");
        assert.match(
          task.err,
          new RegExp(`^export: ${expected.length} ${type} rows \\(${format}\\) of company "acme"`),
        );
        assert.equal(await Deno.readTextFile(out), text, `${type} ${format} through the task`);
      }
    });
  }
});

Deno.test("export: CSV quotes commas, quotes and line breaks, keeps Cyrillic, formulas and leading zeros as text", async () => {
  await using dir = await tempDir("export_test_");
  await using s = await populatedStore(dir.path);
  const customers = await exportOf(s.kv, { company: "acme", type: "customers", format: "csv" });
  assert.ok(customers.startsWith("id,external_id,fname,lname,mname,age,email,phone,gender,custom_information,"));
  assert.ok(customers.split("\r\n")[0]!.endsWith(",last_update_by,card_uid,card_barcode,bonus"));
  assert.ok(customers.includes(`,A-1,"Иван, ""Ваня""",=SUM(A1),,`), customers);
  assert.ok(customers.includes(`,"line 1\nline 2\r\nline 3 <&>",5,2,1987,`), customers);
  assert.ok(customers.includes(",VIP,"));
  assert.ok(customers.includes(",000123,0001230001,125\r\n"), customers);
  const cards = parseCsv(await exportOf(s.kv, { company: "acme", type: "cards", format: "csv" }));
  assert.deepEqual(cards.slice(1).map((r) => r[2]), ["000123", "0777", "0778", "5550001"]);
  assert.deepEqual(cards.slice(1).map((r) => r[10]), ["Золотая", "Silver", "", ""]);
  const ledger = await exportOf(s.kv, { company: "acme", type: "ledger", format: "csv" });
  assert.ok(ledger.includes(`,-0.5,125,0,0,"a, b",,,`), ledger);
  // The task writes UTF-8 to standard output, and the format defaults to CSV.
  const task = await runTask("export", ["--type", "customers", "--company", "acme"], { kvPath: s.kvPath });
  assert.equal(task.code, 0, task.err);
  assert.equal(task.out, customers);
});

Deno.test("export: a customer with several cards shows the first; several programs leave the bonus column out", async () => {
  await using dir = await tempDir("export_test_");
  await using s = await populatedStore(dir.path);
  const acme = JSON.parse(await exportOf(s.kv, { company: "acme", type: "customers", format: "json" })).customers;
  assert.deepEqual(acme.map((c: Any) => [c.external_id, c.card_uid, c.bonus]), [
    ["A-1", "000123", 125],
    ["B-2", "0777", 3],
    [null, null, 0],
  ]);
  const globex = JSON.parse(await exportOf(s.kv, { company: "globex", type: "customers", format: "json" })).customers;
  assert.equal(globex.length, 1);
  assert.equal("bonus" in globex[0], false);
  const bonuses = JSON.parse(await exportOf(s.kv, { company: "globex", type: "bonuses", format: "json" })).bonuses;
  assert.deepEqual(bonuses, [
    { customer_id: 1, customer_external_id: "GLOBEX-SECRET", bonus_id: 2, amount: 42, overwrite: 1 },
  ]);
});

Deno.test("export: one company's export never holds another company's rows", async () => {
  await using dir = await tempDir("export_test_");
  await using s = await populatedStore(dir.path);
  for (const type of EXPORT_TYPES) {
    for (const format of EXPORT_FORMATS) {
      const acme = await exportOf(s.kv, { company: "acme", type, format });
      assert.doesNotMatch(acme, /Globex|GLOBEX|9990001/, `${type} ${format}`);
      const globex = await exportOf(s.kv, { company: "globex", type, format });
      assert.doesNotMatch(globex, /A-1|B-2|Иван|Главная|VIP|000123|Золотая/, `${type} ${format}`);
    }
  }
  const groups = JSON.parse(await exportOf(s.kv, { company: "globex", type: "groups", format: "json" }));
  assert.deepEqual(groups.groups.map((g: Any) => g.group_name), ["GlobexGroup"]);
});

Deno.test("export: XML parses back into the API's own XML shape", async () => {
  await using dir = await tempDir("export_test_");
  await using s = await populatedStore(dir.path);
  const api = parseXml((await s.get(s.acme, "/api/customer", { format: "xml" })).text).root;
  const exported = parseXml(await exportOf(s.kv, { company: "acme", type: "customers", format: "xml" })).root;
  assert.equal(exported.type, api.type);
  assert.equal(exported.count, api.count);
  const strip = ({ card_uid: _u, card_barcode: _b, bonus: _n, ...c }: Any) => c;
  assert.deepEqual(exported.customers.customer.map(strip), api.customers.customer);
  const groups = parseXml((await s.get(s.acme, "/api/customergroup", { format: "xml" })).text).root;
  const exportedGroups = parseXml(await exportOf(s.kv, { company: "acme", type: "groups", format: "xml" })).root;
  assert.deepEqual(exportedGroups, groups);
});

Deno.test("export: a company other than default, the default company, and an unknown one", async () => {
  await using dir = await tempDir("export_test_");
  const kvPath = `${dir.path}/store.sqlite3`;
  {
    await using s = await populatedStore(dir.path);
    const other = await runTask("export", ["--type", "customers", "--format", "ndjson", "--company", "globex"], {
      kvPath,
    });
    assert.equal(other.code, 0, other.err);
    assert.deepEqual(other.out.trimEnd().split("\n").map((l) => JSON.parse(l).fname), ["GlobexSecret"]);
    const unknown = await runTask("export", ["--type", "customers", "--out", `${dir.path}/x.csv`], { kvPath });
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /^Company "default" not found in the store\nUsage: deno task export/);
    await assert.rejects(Deno.stat(`${dir.path}/x.csv`), Deno.errors.NotFound);
    await createApiKey(s.kv, { companyId: "default", userId: 1, access: "write", now: Date.now() });
    await rawInsertCustomers(s.kv, "default", [{ ...blankCustomer(1, { now: 0, userId: 1 }), fname: "Default" }]);
  }
  const task = await runTask("export", ["--type", "customers", "--format", "json"], { kvPath });
  assert.equal(task.code, 0, task.err);
  assert.deepEqual(JSON.parse(task.out).customers.map((c: Any) => c.fname), ["Default"]);
});

Deno.test("export: usage errors exit 2, a failed write exits 1, and neither leaves a file", async (t) => {
  await using dir = await tempDir("export_test_");
  const kvPath = `${dir.path}/store.sqlite3`;
  const out = `${dir.path}/out.csv`;
  const cases: [string[], RegExp][] = [
    [[], /^--type is required\n/],
    [["--type", "orders"], /^Invalid --type "orders"\n/],
    [["--type", "cards", "--format", "xlsx"], /^Invalid --format "xlsx"\n/],
    [["--type", "cards", "--company", " "], /^--company needs a company id\n/],
    [["--type", "cards", "extra"], /Unexpected argument 'extra'/],
    [["--type", "cards", "--bogus"], /Unknown option '--bogus'/],
  ];
  for (const [args, message] of cases) {
    await t.step(args.join(" ") || "(none)", async () => {
      const r = await runTask("export", [...args, "--out", out], { kvPath });
      assert.equal(r.code, 2, r.err);
      assert.match(r.err, message);
      assert.match(r.err, /Usage: deno task export --type TYPE/);
      assert.equal(r.out, "");
      await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
    });
  }
  await t.step("a file that cannot be written: exit 1, nothing left", async () => {
    await using _s = await populatedStore(dir.path);
    const r = await runTask(
      "export",
      ["--type", "cards", "--company", "acme", "--out", `${dir.path}/no/such/dir.csv`],
      {
        kvPath,
      },
    );
    assert.equal(r.code, 1, r.err);
    assert.match(r.err, /^export failed: No such file or directory/);
    assert.deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name).filter((n) => n.includes("csv")), []);
  });
  await t.step("--help", async () => {
    const r = await runTask("export", ["--help"], { kvPath });
    assert.equal(r.code, 0);
    assert.match(r.out, /^Usage: deno task export/);
  });
});

Deno.test("export: a big store is streamed in batches, and exports while another process writes", async (t) => {
  await using dir = await tempDir("export_test_");
  const kvPath = `${dir.path}/store.sqlite3`;
  const N = 20_000;
  const kv = await Deno.openKv(kvPath);
  try {
    await createApiKey(kv, { companyId: "big", userId: 1, access: "write", now: Date.now() });
    const now = Date.now();
    for (let from = 1; from <= N; from += 5000) {
      const batch = [];
      for (let i = from; i < from + 5000; i++) {
        batch.push({
          ...blankCustomer(i, { now, userId: 1 }),
          external_id: `EXT${i}`,
          fname: "Сергей",
          phone: `79${String(i).padStart(9, "0")}`,
        });
      }
      await rawInsertCustomers(kv, "big", batch);
    }
    await t.step("the use case yields batches no bigger than asked, every record once", async () => {
      const { batches } = await exportRecords(createStore(kv), { companyId: "big", name: "test", userId: 0 }, {
        type: "customers",
        timeZone: "UTC",
        batch: 1000,
      });
      let count = 0;
      let next = 1;
      for await (const records of batches) {
        assert.ok(records.length <= 1000);
        for (const r of records) assert.equal(r.id, next++);
        count += records.length;
      }
      assert.equal(count, N);
    });
    await t.step("a reader that stops early closes the export without reading on", async () => {
      const actor = { companyId: "big", name: "test", userId: 0 };
      const chunks: string[] = [];
      for await (
        const chunk of exportText(createStore(kv), actor, { type: "customers", format: "csv", timeZone: "UTC" })
      ) {
        chunks.push(chunk);
        if (chunks.length === 3) break;
      }
      assert.equal(chunks[1]!.split("\r\n").length - 1, 500);
      assert.ok(chunks[2]!.startsWith("501,EXT501,"));
    });
    await t.step("the task writes every row while the store is being written", async () => {
      const out = `${dir.path}/big.csv`;
      const task = runTask("export", ["--type", "customers", "--company", "big", "--out", out], { kvPath });
      const app = createApp({ kv, config: { ...DEFAULT_CONFIG, kvPath, logRequests: false } });
      const key = (await createApiKey(kv, { companyId: "big", userId: 2, access: "write", now: Date.now() })).key;
      let added = 0;
      for (let i = 0; i < 20; i++) {
        const r = await request(app, "POST", "/api/customer/update", { key, form: { fname: `Late ${i}` } });
        assert.equal(r.status, 200, r.text);
        added++;
      }
      const r = await task;
      assert.equal(r.code, 0, r.err);
      const lines = (await Deno.readTextFile(out)).split("\r\n");
      assert.equal(lines.at(-1), "");
      const rows = lines.length - 2;
      assert.ok(rows >= N && rows <= N + added, `${rows} rows`);
      assert.ok(lines[1]!.startsWith("1,EXT1,Сергей,"));
      assert.ok(lines[N]!.startsWith(`${N},EXT${N},Сергей,`));
    });
  } finally {
    kv.close();
  }
});
