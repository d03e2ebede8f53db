import assert from "node:assert/strict";
import { XMLParser } from "fast-xml-parser";
import { csvField, type DocumentShape, exportEncoder, type ExportFormat, formatOfPath } from "./export_format.ts";

const SHAPE: DocumentShape = { type: "card", list: "cards", columns: ["card_id", "uid", "comment"] };

function write(format: ExportFormat, batches: Record<string, string | number | null>[][]): string {
  const e = exportEncoder(format, SHAPE);
  let out = e.head();
  let count = 0;
  for (const b of batches) {
    out += e.rows(b);
    count += b.length;
  }
  return out + e.tail(count);
}

Deno.test("csvField() quotes only commas, quotes and line breaks, and prefixes nothing", () => {
  assert.equal(csvField(null), "");
  assert.equal(csvField(""), "");
  assert.equal(csvField(0), "0");
  assert.equal(csvField(-12.5), "-12.5");
  assert.equal(csvField("000123"), "000123");
  assert.equal(csvField("=1+2"), "=1+2");
  assert.equal(csvField("Иванов"), "Иванов");
  assert.equal(csvField("a,b"), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField("a\nb"), '"a\nb"');
  assert.equal(csvField("a\r\nb"), '"a\r\nb"');
  assert.equal(csvField(" padded "), " padded ");
});

Deno.test("exportEncoder() writes CSV with a header and CRLF records, missing fields empty", () => {
  assert.equal(write("csv", []), "card_id,uid,comment\r\n");
  assert.equal(
    write("csv", [[{ card_id: 1, uid: "007", comment: "a,b" }], [{ card_id: 2, uid: "8", comment: null }, {
      card_id: 3,
      uid: "9",
    }]]),
    'card_id,uid,comment\r\n1,007,"a,b"\r\n2,8,\r\n3,9,\r\n',
  );
});

Deno.test("exportEncoder() writes NDJSON one record per line, nothing for none", () => {
  assert.equal(write("ndjson", []), "");
  assert.equal(
    write("ndjson", [[{ card_id: 1, uid: "007" }], [{ card_id: 2, uid: "x\ny" }]]),
    [
      '{"card_id":1,"uid":"007"}',
      '{"card_id":2,"uid":"x\\ny"}',
      "",
    ].join("\n"),
  );
});

Deno.test("exportEncoder() writes JSON as the API's list reply, with the count after the list", () => {
  assert.deepEqual(JSON.parse(write("json", [])), { success: 1, type: "card", cards: [], count: 0 });
  const rows = [{ card_id: 1, uid: "007", comment: null }, { card_id: 2, uid: "Ё", comment: "" }];
  assert.deepEqual(JSON.parse(write("json", [rows.slice(0, 1), [], rows.slice(1)])), {
    success: 1,
    type: "card",
    cards: rows,
    count: 2,
  });
});

Deno.test("exportEncoder() writes XML in the API's layout, escaped, empty values as empty elements", () => {
  assert.equal(
    write("xml", []),
    '<?xml version="1.0" encoding="UTF-8"?>\n<root>\n<success>1</success>\n<type>card</type>\n<cards>\n</cards>\n' +
      "<count>0</count>\n</root>\n",
  );
  const text = write("xml", [[{ card_id: 1, uid: "007", comment: "<a & b>\r\nc" }], [{
    card_id: 2,
    uid: "8",
    comment: null,
  }]]);
  assert.ok(
    text.includes("<card>\n<card_id>1</card_id>\n<uid>007</uid>\n<comment>&lt;a &amp; b&gt;&#13;\nc</comment>\n"),
  );
  assert.ok(text.includes("<comment/>\n</card>\n</cards>\n<count>2</count>\n</root>\n"));
  const parsed = new XMLParser({ parseTagValue: false, htmlEntities: true }).parse(text).root;
  assert.deepEqual(parsed.cards.card, [
    { card_id: "1", uid: "007", comment: "<a & b>\r\nc" },
    { card_id: "2", uid: "8", comment: "" },
  ]);
});

Deno.test("formatOfPath() reads the format from the extension", () => {
  assert.equal(formatOfPath("out/customers.CSV"), "csv");
  assert.equal(formatOfPath("a.json"), "json");
  assert.equal(formatOfPath("a.ndjson"), "ndjson");
  assert.equal(formatOfPath("a.jsonl"), "ndjson");
  assert.equal(formatOfPath("a.xml"), "xml");
  assert.equal(formatOfPath("a.xlsx"), null);
  assert.equal(formatOfPath("noext"), null);
});
