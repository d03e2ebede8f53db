import assert from "node:assert/strict";
import { IGNORE, resolveColumns } from "./columns.ts";
import { CsvParser, detectDelimiter, detectEncoding } from "./csv.ts";
import { ClaimedLines, duplicateMessage, DuplicateTracker } from "./dupes.ts";
import { jsonItems, openRows, type ReadRow, xmlItems } from "./read.ts";
import { isoDate, plainNumber, splitBirthDate } from "./values.ts";

function streamOf(bytes: Uint8Array, chunk = 7): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      c.enqueue(bytes.slice(at, at + chunk));
      at += chunk;
    },
  });
}

async function rowsOf(gen: AsyncGenerator<ReadRow[]>): Promise<ReadRow[]> {
  const out: ReadRow[] = [];
  for await (const b of gen) out.push(...b);
  return out;
}

Deno.test("CsvParser reads quotes, doubled quotes, CRLF and newlines inside quotes, fed in any chunks", () => {
  const text = 'a;b\r\n"x;1";"say ""hi"""\r\n"two\nlines";3\n\n4;5';
  for (const size of [1, 2, 5, 100]) {
    const p = new CsvParser(";");
    const out = [];
    for (let i = 0; i < text.length; i += size) out.push(...p.push(text.slice(i, i + size)));
    out.push(...p.end());
    assert.deepEqual(out, [
      { line: 1, fields: ["a", "b"] },
      { line: 2, fields: ["x;1", 'say "hi"'] },
      { line: 3, fields: ["two\nlines", "3"] },
      { line: 5, fields: [""] },
      { line: 6, fields: ["4", "5"] },
    ], `chunks of ${size}`);
  }
});

Deno.test("detectEncoding() and detectDelimiter() tell UTF-8 (BOM or not) from Windows-1251, and , ; tab", () => {
  const cp1251 = new Uint8Array([0xd4, 0xe0, 0xec, 0xe8, 0xeb, 0xe8, 0xff]); // Фамилия
  assert.equal(detectEncoding(cp1251), "windows-1251");
  assert.equal(detectEncoding(new TextEncoder().encode("Фамилия")), "utf-8");
  assert.equal(detectEncoding(new TextEncoder().encode("Фамилия").slice(0, 3)), "utf-8", "a cut character");
  assert.equal(detectEncoding(new Uint8Array([0xef, 0xbb, 0xbf, 0x41])), "utf-8");
  assert.equal(detectDelimiter("a;b;c"), ";");
  assert.equal(detectDelimiter("a\tb\tc"), "\t");
  assert.equal(detectDelimiter('"a;b",c,d'), ",");
});

Deno.test("values: dates in three writings, decimal commas and space separators", () => {
  assert.deepEqual(splitBirthDate("01.02.1990", "birth_date"), {
    birth_day: "01",
    birth_month: "02",
    birth_year: "1990",
  });
  assert.deepEqual(splitBirthDate("1/2/1990", "birth_date"), { birth_day: "1", birth_month: "2", birth_year: "1990" });
  assert.deepEqual(splitBirthDate("1990-02-01", "birth_date"), {
    birth_day: "01",
    birth_month: "02",
    birth_year: "1990",
  });
  assert.throws(() => splitBirthDate("Feb 1", "birth_date"), /Invalid birth_date "Feb 1"/);
  assert.equal(plainNumber("1 250,50"), "1250.50");
  assert.equal(plainNumber("1\u00a0250,5"), "1250.5");
  assert.equal(plainNumber("1,250.50"), "1250.50");
  assert.equal(plainNumber("12,5"), "12.5");
  assert.equal(plainNumber("abc"), "abc");
  assert.equal(isoDate("02.11.2023 10:15"), "2023-11-02 10:15");
});

Deno.test("resolveColumns(): API names, Russian and English headers, read-only columns, unknown ones named", () => {
  assert.deepEqual(
    resolveColumns(["Фамилия", "Имя", "E-mail", "Номер карты", "Баллы", "id", "created_date"], { type: "customers" }),
    ["lname", "fname", "email", "card_uid", "bonus", IGNORE, IGNORE],
  );
  assert.deepEqual(resolveColumns(["First Name", "Last Name", "Birthday"], { type: "customers" }), [
    "fname",
    "lname",
    "birth_date",
  ]);
  assert.throws(() => resolveColumns(["fname", "Color"], { type: "customers" }), {
    name: "ValidationError",
    message: 'Unknown column "Color": map it with --map, or pass --ignore-unknown to skip it',
  });
  assert.deepEqual(resolveColumns(["fname", "Color"], { type: "customers", ignoreUnknown: true }), ["fname", IGNORE]);
  assert.deepEqual(resolveColumns(["Color"], { type: "customers", map: { Color: "custom_information" } }), [
    "custom_information",
  ]);
  assert.throws(() => resolveColumns(["Color"], { type: "customers", map: { Color: "colour" } }), /not a field/);
  assert.deepEqual(resolveColumns(["uid", "type_id", "type_name"], { type: "cards" }), ["uid", IGNORE, "type_name"]);
  assert.deepEqual(resolveColumns(["balance", "amount", "bonus_name"], { type: "bonuses" }), [
    IGNORE,
    "amount",
    IGNORE,
  ]);
  assert.deepEqual(resolveColumns(["balance", "customer_id"], { type: "bonuses" }), ["amount", "customer_id"]);
  assert.throws(() => resolveColumns(["Имя", "First Name"], { type: "customers" }), {
    message: 'Columns "Имя" and "First Name" both fill fname',
  });
});

Deno.test("DuplicateTracker: the first line wins, a rejected row claims nothing", () => {
  const t = new DuplicateTracker();
  assert.equal(t.claim(2, { phone: "1", email: "a" }), null);
  const d = t.claim(3, { phone: "2", email: "a" });
  assert.deepEqual(d, { field: "email", value: "a", line: 2 });
  assert.equal(duplicateMessage(d!), 'email "a" is already in line 2 of this file');
  assert.equal(t.claim(4, { phone: "2" }), null, "line 3 was rejected, so its phone is free");
});

Deno.test("openRows(): a Windows-1251 CSV with ; is detected and read as a stream; an empty line stays, to be skipped", async () => {
  const text = "Фамилия;Имя;Бонусы\r\nИванов;Иван;1 250,50\r\n\r\nПетров;Пётр;10\r\n";
  const bytes = new Uint8Array([...text].map((ch) => {
    const code = ch.charCodeAt(0);
    if (code < 128) return code;
    if (ch === "ё") return 0xb8;
    return code - 0x410 + 0xc0;
  }));
  const opened = await openRows(streamOf(bytes), { format: "csv", type: "customers" });
  assert.equal(opened.encoding, "windows-1251");
  assert.equal(opened.delimiter, ";");
  assert.deepEqual(await rowsOf(opened.batches), [
    { line: 2, values: { lname: "Иванов", fname: "Иван", bonus: "1250.50" } },
    { line: 3, values: {} },
    { line: 4, values: { lname: "Петров", fname: "Пётр", bonus: "10" } },
  ]);
});

Deno.test("jsonItems() and xmlItems() find the records of the API's own reply shapes", () => {
  assert.deepEqual(jsonItems('{"success":1,"customers":[{"fname":"A"}]}'), [{ fname: "A" }]);
  assert.deepEqual(jsonItems('[{"fname":"A"}]'), [{ fname: "A" }]);
  assert.deepEqual(
    xmlItems("<root><customers><customer><uid>007</uid></customer></customers></root>"),
    [{ uid: "007" }],
  );
  assert.throws(() => jsonItems("{"), /Invalid JSON file/);
});

Deno.test("openRows(): batches hold at most batchSize rows, however large the chunks read", async () => {
  const text = "external_id\n" + Array.from({ length: 25 }, (_, i) => `e${i}`).join("\n") + "\n";
  const opened = await openRows(streamOf(new TextEncoder().encode(text), 1000), {
    format: "csv",
    type: "customers",
    batchSize: 10,
  });
  const sizes: number[] = [];
  for await (const b of opened.batches) sizes.push(b.length);
  assert.deepEqual(sizes, [10, 10, 5]);
});

Deno.test("ClaimedLines: the first line per record and field, in pages; unknown fields and ids are null", () => {
  const t = new ClaimedLines(["phone", "email"]);
  assert.equal(t.get(5, "phone"), null);
  t.set(5, "phone", 12);
  t.set(5, "phone", 40);
  t.set(5000, "email", 7);
  t.set(5, "other", 3);
  assert.equal(t.get(5, "phone"), 12, "the first line wins");
  assert.equal(t.get(5, "email"), null);
  assert.equal(t.get(5000, "email"), 7);
  assert.equal(t.get(5, "other"), null);
  assert.equal(t.get(4096, "phone"), null);
});
