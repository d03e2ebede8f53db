import assert from "node:assert/strict";
import { IdLines, IdSet } from "./dupes.ts";

Deno.test("IdSet: each id is new once, across growth, and ids do not alias", () => {
  const set = new IdSet();
  const ids = [0, 1, 7, 8, 9, 8191, 8192, 1_000_003, 65_537];
  for (const id of ids) assert.equal(set.add(id), true, `first ${id}`);
  for (const id of ids) assert.equal(set.add(id), false, `again ${id}`);
  for (const id of [2, 6, 10, 8190, 8193, 1_000_002, 1_000_004, 65_536]) assert.equal(set.add(id), true, `other ${id}`);
});

Deno.test("IdLines: the line of each id, 0 for none, across growth", () => {
  const lines = new IdLines();
  assert.equal(lines.get(5), 0);
  lines.set(5, 12);
  lines.set(70_000, 99);
  assert.equal(lines.get(5), 12);
  assert.equal(lines.get(70_000), 99);
  assert.equal(lines.get(69_999), 0);
  assert.equal(lines.get(10_000_000), 0);
});
