/** `POST /api/import`: NDJSON in, one result per row out, its own body limit, write keys only, JSON or XML. */
import assert from "node:assert/strict";
import { world } from "./kit.ts";

const ndjson = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";
const HEADERS = { "content-type": "application/x-ndjson" };

Deno.test("POST /api/import: one result per row, in order, through the customer rules", async () => {
  await using w = await world();
  const body = ndjson([
    { line: 2, values: { external_id: "a1", phone: "+7 900 000-00-01" } },
    { line: 3, values: { external_id: "a2", phone: "89000000001" } },
    { line: 4, values: { external_id: "a3", gender: "X" } },
  ]);
  const r = await w.call("POST", "/api/import", { query: { type: "customers" }, body, headers: HEADERS });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body, {
    success: 1,
    type: "import",
    count: 3,
    created: 1,
    updated: 0,
    unchanged: 0,
    rejected: 2,
    skipped: 0,
    results: [
      { line: 2, status: "created" },
      { line: 3, status: "rejected", field: "phone", info: 'phone "79000000001" is already in line 2 of this file' },
      { line: 4, status: "rejected", field: "gender", info: 'Invalid gender "X": must be one of M, F' },
    ],
  });
  const found = await w.call("GET", "/api/customer", { query: { external_id: "a1" } });
  assert.equal(found.body.customers[0].phone, "79000000001");

  const xml = await w.call("POST", "/api/import", {
    query: { type: "customers", format: "xml" },
    body,
    headers: HEADERS,
  });
  assert.equal(xml.status, 200);
  assert.match(xml.text, /<results>\n<result>\n<line>2<\/line>\n<status>unchanged<\/status>\n<\/result>/);
});

Deno.test("POST /api/import: its own body limit, a write key, a type, NDJSON rows", async () => {
  await using w = await world({ config: { maxBodyBytes: 100, importMaxBodyBytes: 400 } });
  const rows = Array.from({ length: 3 }, (_, i) => ({ line: i + 1, values: { external_id: `x${i}`, fname: "Анна" } }));
  const body = ndjson(rows);
  assert.ok(body.length > 100 && body.length < 400);
  const ok = await w.call("POST", "/api/import", { query: { type: "customers" }, body, headers: HEADERS });
  assert.equal(ok.status, 200, "over MAX_BODY_BYTES, within IMPORT_MAX_BODY_BYTES");
  const big = ndjson([...rows, ...rows, ...rows, ...rows]);
  const tooBig = await w.call("POST", "/api/import", { query: { type: "customers" }, body: big, headers: HEADERS });
  assert.equal(tooBig.status, 413);
  assert.equal(tooBig.body.info, "Request body is too large: at most 400 bytes");
  const read = await w.call("POST", "/api/import", {
    key: w.readKey,
    query: { type: "customers" },
    body,
    headers: HEADERS,
  });
  assert.equal(read.status, 403);
  const noType = await w.call("POST", "/api/import", { body, headers: HEADERS });
  assert.deepEqual([noType.status, noType.body.field], [400, "type"]);
  const notRows = await w.call("POST", "/api/import", {
    query: { type: "customers" },
    body: "{}\n",
    headers: HEADERS,
  });
  assert.deepEqual(notRows.body, {
    success: 0,
    info: 'Invalid body: line 1 must be {"line": N, "values": {field: text}}',
    field: "body",
  });
});
