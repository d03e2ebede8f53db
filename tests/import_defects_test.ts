/**
 * The issue 10 black-box defects that tests/blackbox_3_test.ts does not cover: the batched create writes the same
 * index keys as the API's create; the CSV parser's caps; the bulk endpoint's row cap; rows beyond the header, two
 * columns of one name, binary files, nested NDJSON values and a --company typo refused.
 */
import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../config.ts";
import { CsvParser, MAX_FIELD_CHARS } from "../domain/import/csv.ts";
import { openRows } from "../domain/import/read.ts";
import { createStore } from "../storage/store.ts";
import { IMPORT_MAX_ROWS_PER_REQUEST, importRows, saveCustomer } from "../usecases/mod.ts";
import { runTask, tempDir, world } from "./kit.ts";

const SETTINGS = { defaultCountryCode: DEFAULT_CONFIG.defaultCountryCode, timeZone: "UTC" };
const HEADERS = { "content-type": "application/x-ndjson" };

function streamOf(text: string | Uint8Array): ReadableStream<Uint8Array> {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  return new ReadableStream({
    start(c) {
      c.enqueue(bytes);
      c.close();
    },
  });
}

/** Every key under a company but its records, audit and sequences: the index keys, company prefix dropped. */
async function indexKeys(kv: Deno.Kv, cid: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of kv.list({ prefix: ["company", cid] })) {
    const rest = e.key.slice(2);
    if (["customers", "audit", "sequences", "claims"].includes(rest[0] as string)) continue;
    out.push(JSON.stringify(rest));
  }
  return out.sort();
}

Deno.test("import: the batched create writes the same index keys as the API's create (shared computation)", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const store = createStore(kv);
    const people = [
      { external_id: "x1", fname: "Анна", lname: "Смирнова", phone: "79001110001", email: "a@x.com" },
      { external_id: "x2", fname: "Bob", lname: "Smith", phone: "79001110002", email: "" },
      { external_id: "x3", fname: "Ли", lname: "", phone: "", email: "c@x.com" },
    ];
    const api = { companyId: "api", name: "test", userId: 0 };
    for (const p of people) {
      const patch = Object.fromEntries(Object.entries(p).filter(([, v]) => v !== ""));
      await saveCustomer(store, api, { create: true, patch, timeZone: "UTC" });
    }
    const csv = ["external_id,fname,lname,phone,email", ...people.map((p) => Object.values(p).join(","))].join("\n");
    const opened = await openRows(streamOf(csv), { format: "csv", type: "customers" });
    const report = await importRows(store, { companyId: "imp", name: "import:test", userId: 0 }, {
      type: "customers",
      settings: SETTINGS,
      batches: opened.batches,
    });
    assert.equal(report.created, 3);
    const imported = await indexKeys(kv, "imp");
    assert.ok(imported.some((k) => k.startsWith('["customers_by_lname"')), imported.join("\n"));
    assert.deepEqual(imported, await indexKeys(kv, "api"));
  } finally {
    kv.close();
  }
});

Deno.test("CsvParser: a field over 1 MiB is a file error naming its line; fields are built whole", () => {
  const p = new CsvParser(",");
  assert.deepEqual(p.push('a,"b ""q"" c",d\ne,f'), [{ line: 1, fields: ["a", 'b "q" c', "d"] }]);
  assert.deepEqual(p.end(), [{ line: 2, fields: ["e", "f"] }]);
  const long = new CsvParser(",");
  long.push("x,y\n1,");
  const chunk = "z".repeat(256 * 1024);
  assert.throws(() => {
    for (let i = 0; i <= MAX_FIELD_CHARS / chunk.length; i++) long.push(chunk);
  }, { message: `Invalid file: line 2 has a field longer than ${MAX_FIELD_CHARS} characters (an unclosed quote?)` });
});

Deno.test("POST /api/import: at most IMPORT_MAX_ROWS_PER_REQUEST rows per request (413 naming the cap)", async () => {
  await using w = await world();
  const rows = Array.from(
    { length: IMPORT_MAX_ROWS_PER_REQUEST + 1 },
    (_, i) => JSON.stringify({ line: i + 1, values: { external_id: `r${i}` } }),
  );
  const r = await w.call("POST", "/api/import", {
    query: { type: "customers", dry_run: "1" },
    body: rows.join("\n") + "\n",
    headers: HEADERS,
  });
  assert.equal(r.status, 413);
  assert.equal(
    r.body.info,
    `Request has too many rows: at most ${IMPORT_MAX_ROWS_PER_REQUEST} rows per request, send them in batches`,
  );
});

Deno.test("import task: files and options it refuses, and rows it rejects", async (t) => {
  await using dir = await tempDir("impfix_");
  const kvPath = `${dir.path}/kv.db`;
  const put = async (name: string, text: string | Uint8Array) => {
    const path = `${dir.path}/${name}`;
    if (typeof text === "string") await Deno.writeTextFile(path, text);
    else await Deno.writeFile(path, text);
    return path;
  };
  await t.step("a cell beyond the header's columns rejects its row", async () => {
    const r = await runTask("import", [await put("extra.csv", "external_id,fname\ne1,A\ne2,B,oops\n")], { kvPath });
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(r.out, /line 3: : Invalid row: 3 cells, but the header has 2 columns/);
  });
  await t.step("two columns of one name stop before the first row", async () => {
    const r = await runTask("import", [await put("two.csv", "phone,phone\n79001112201,79001112202\n")], { kvPath });
    assert.equal(r.code, 2);
    assert.match(r.err, /Columns 1 and 2 are both "phone": only one column may fill phone/);
  });
  await t.step("a binary file (an .xlsx renamed .csv) is a file error", async () => {
    const zip = new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x06, 0x00, 0x08, 0x00]);
    const r = await runTask("import", [await put("book.csv", zip)], { kvPath });
    assert.equal(r.code, 2);
    assert.match(r.err, /Invalid file: it is binary \(an Excel workbook\?\), not text/);
  });
  await t.step("an object where a value goes rejects the row naming the field", async () => {
    const n = await put("nested.ndjson", '{"external_id":"n1","fname":{"x":1}}\n');
    const r = await runTask("import", [n], { kvPath });
    assert.equal(r.code, 1);
    assert.match(r.out, /line 1: fname: Invalid fname: an object or list, not a value/);
  });
  await t.step("a second row finding the customer an earlier row re-keyed names that line", async () => {
    assert.equal(
      (await runTask("import", [await put("k1.csv", "phone,email\n79995550101,rk@x.com\n")], { kvPath })).code,
      0,
    );
    const two = await put("k2.csv", "external_id,phone,email\nrk1,79995550101,\nrk2,,rk@x.com\n");
    const r = await runTask("import", [two], { kvPath });
    assert.equal(r.code, 1);
    assert.match(
      r.out,
      /line 3: email: Cannot import customer: email "rk@x.com" belongs to the customer with external_id "rk1" \(set by line 2 of this file\)/,
    );
  });
  await t.step("an unknown --company is refused unless --create-company", async () => {
    const f = await put("c.csv", "external_id\nt1\n");
    const typo = await runTask("import", [f, "--company", "acmee"], { kvPath });
    assert.equal(typo.code, 2);
    assert.match(typo.err, /Company "acmee" not found in the store/);
    const made = await runTask("import", [f, "--company", "acmee", "--create-company"], { kvPath });
    assert.equal(made.code, 0, made.err);
  });
  await t.step("a CSV ending inside quotes after rows went in: exit 1 with a file-level reject", async () => {
    const rows = Array.from({ length: 3 }, (_, i) => `q${i},A`);
    const f = await put("open.csv", ["external_id,fname", ...rows, 'q9,"never closed'].join("\n"));
    const r = await runTask("import", [f, "--batch-size", "2", "--report", `${dir.path}/open.json`], { kvPath });
    assert.equal(r.code, 1, r.out + r.err);
    const report = JSON.parse(await Deno.readTextFile(`${dir.path}/open.json`));
    assert.equal(report.created, 2);
    assert.deepEqual(report.rejects.at(-1).field, "file");
    assert.match(report.rejects.at(-1).info, /The file ends inside a quoted field \(the import stopped here/);
  });
});

Deno.test("OpenAPI of POST /api/import: its NDJSON requestBody, query parameters not 'get only', lower-case types", async () => {
  await using w = await world();
  const doc = await (await w.app.request("/openapi.json")).json();
  const op = doc.paths["/api/import"].post;
  assert.deepEqual(Object.keys(op.requestBody.content), ["application/x-ndjson"]);
  assert.deepEqual(op.requestBody.content["application/x-ndjson"].schema.required, ["line", "values"]);
  const type = op.parameters.find((p: { name?: string }) => p.name === "type");
  assert.deepEqual(type.schema.enum, ["customers", "cards", "bonuses"]);
  assert.equal(op.parameters.some((p: Record<string, unknown>) => p["x-get-only"] === true), false);
  const r = await w.call("POST", "/api/import", { query: { type: "Cards", dry_run: "1" }, body: "", headers: HEADERS });
  assert.equal(r.status, 200);
});
