import assert from "node:assert/strict";
import { countNamed } from "../storage/customers.ts";
import { nameKeys } from "../storage/keys.ts";
import { type Finding, verifyStore } from "../storage/verify.ts";
import { world } from "./kit.ts";

async function defects(kv: Deno.Kv, repair = false): Promise<Finding[]> {
  const found: Finding[] = [];
  await verifyStore(kv, { repair, onFinding: (f) => found.push(f) });
  return found.filter((f) => f.severity === "defect");
}

async function entries(kv: Deno.Kv, cid: string): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix: nameKeys.all(cid) })) n++;
  return n;
}

Deno.test("the last-name index keeps its count through creates, renames and cleared names; verify rebuilds it", async () => {
  await using w = await world();
  const save = async (form: Record<string, string>, query: Record<string, string | number> = {}) => {
    const r = await w.call("POST", "/api/customer/update", { form, query });
    assert.equal(r.status, 200, r.text);
    return r.body.id as number;
  };
  const a = await save({ lname: "Петров", phone: "+79001112233" });
  const b = await save({ lname: "Сидорова", email: "s@example.com" });
  await save({ fname: "Без фамилии", email: "n@example.com" });
  assert.equal(await countNamed(w.kv, "acme"), 2);
  await save({ lname: "Иванов" }, { id: a }); // a rename moves the entry and keeps the count
  assert.equal(await countNamed(w.kv, "acme"), 2);
  await save({ lname: "" }, { id: b }); // a cleared name leaves the index
  assert.equal(await countNamed(w.kv, "acme"), 1);
  await save({ lname: "Сидорова" }, { id: b });
  assert.equal(await countNamed(w.kv, "acme"), 2);
  assert.equal(await entries(w.kv, "acme"), 2);
  assert.equal(await countNamed(w.kv, "globex"), 0, "another company's count is its own");
  assert.deepEqual(await defects(w.kv), []);

  // A store from before the count (or a count gone wrong): verify reports it and --repair sets it from the entries.
  await w.kv.delete(nameKeys.total("acme", "in"));
  assert.deepEqual((await defects(w.kv)).map((f) => f.check), ["name_count"]);
  await defects(w.kv, true);
  assert.deepEqual(await defects(w.kv), []);
  assert.equal(await countNamed(w.kv, "acme"), 2);
});
