import assert from "node:assert/strict";
import { runTask, snapshot, world } from "./kit.ts";

Deno.test("GET|POST /api/customergroup and /api/bonusprogram manage per-company directories", async (t) => {
  await using w = await world();
  await t.step("create, list, rename", async () => {
    const a = await w.call("POST", "/api/customergroup/update", { form: { group_name: "VIP", description: "best" } });
    assert.equal(a.status, 200);
    assert.deepEqual(a.body, { success: 1, group_id: 1, isnew: 1 });
    const r = await w.call("POST", "/api/customergroup/update", {
      query: { group_id: 1 },
      form: { group_name: "Gold" },
    });
    assert.deepEqual(r.body, { success: 1, group_id: 1, isnew: 0 });
    const list = await w.call("GET", "/api/customergroup");
    assert.equal(list.body.type, "group");
    assert.equal(list.body.count, 1);
    assert.equal(list.body.groups[0].group_name, "Gold");
    assert.equal(list.body.groups[0].description, "best");
    const customer = await w.call("POST", "/api/customer/update", { form: { group_name: "gold" } });
    const c = (await w.call("GET", "/api/customer", { query: { id: customer.body.id } })).body.customers[0];
    assert.equal(c.group_id, 1);
    assert.equal(c.group_name, "Gold");
  });
  await t.step("XML list", async () => {
    const xml = await w.call("GET", "/api/customergroup", { query: { format: "xml" } });
    assert.match(xml.text, /<groups>\n<group>\n<group_id>1<\/group_id>\n<group_name>Gold<\/group_name>\n/);
  });
  await t.step("name clash, missing name, unknown id and read keys are refused without change", async () => {
    await w.call("POST", "/api/bonusprogram/update", { form: { name: "Main" } });
    const before = await snapshot(w.kv);
    const clash = await w.call("POST", "/api/bonusprogram/update", { form: { name: " MAIN " } });
    assert.equal(clash.status, 409);
    assert.deepEqual(clash.body, {
      success: 0,
      info: 'Cannot create bonus program: name "MAIN" is already taken',
      field: "name",
    });
    const none = await w.call("POST", "/api/bonusprogram/update", { form: { description: "x" } });
    assert.equal(none.status, 400);
    assert.equal(none.body.field, "name");
    const missing = await w.call("POST", "/api/bonusprogram/update", { query: { id: 9 }, form: { name: "X" } });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.info, 'Bonus program "9" not found');
    const read = await w.call("POST", "/api/bonusprogram/update", { key: w.readKey, form: { name: "R" } });
    assert.equal(read.status, 403);
    assert.equal(await snapshot(w.kv), before);
  });
  await t.step("another company sees its own directory only", async () => {
    const other = await w.call("GET", "/api/bonusprogram", { key: w.otherKey });
    assert.equal(other.body.count, 0);
    const rename = await w.call("POST", "/api/bonusprogram/update", {
      key: w.otherKey,
      query: { id: 1 },
      form: { name: "Stolen" },
    });
    assert.equal(rename.status, 404);
  });
});

Deno.test("deno task cardtype creates, renames and lists card types", async () => {
  const dir = await Deno.makeTempDir();
  const run = (...args: string[]) => runTask("cardtype", args, { kvPath: `${dir}/d.kv` });
  try {
    assert.equal((await run("create", "--company", "acme", "--name", "Gold")).out, 'Created cardtype 1: "Gold"\n');
    const clash = await run("create", "--company", "acme", "--name", "gold");
    assert.equal(clash.code, 2);
    assert.match(clash.err, /Cannot create card type: name "gold" is already taken/);
    assert.equal((await run("update", "--company", "acme", "--id", "1", "--name", "Platinum")).code, 0);
    assert.equal((await run("list", "--company", "acme")).out, "id\tname\tdescription\n1\tPlatinum\t\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
