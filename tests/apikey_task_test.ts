import assert from "node:assert/strict";
import { createApp } from "../routes/app.ts";
import { DEFAULT_CONFIG } from "../config.ts";
import { request, runTask } from "./kit.ts";

function task(kvPath: string, ...args: string[]) {
  return runTask("apikey", args, { kvPath });
}

Deno.test("deno task apikey creates, lists and revokes keys that the service honours", async (t) => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/keys.kv`;
  try {
    let key = "";
    let id = "";
    await t.step("create makes the company and prints the key once", async () => {
      const r = await task(
        kvPath,
        "create",
        "--company",
        "acme",
        "--name",
        "Acme LLC",
        "--user",
        "4",
        "--access",
        "read",
      );
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, /Created company "acme"\./);
      key = /Key \(shown only now, store it safely\): (lk_\S+)/.exec(r.out)![1]!;
      id = /Created read key (\w+) for company "acme", user 4\./.exec(r.out)![1]!;
      const again = await task(kvPath, "create", "--company", "acme");
      assert.doesNotMatch(again.out, /Created company/);
    });
    await t.step("list shows ids, never keys", async () => {
      const r = await task(kvPath, "list", "--company", "acme");
      assert.equal(r.code, 0);
      assert.ok(r.out.includes(id));
      assert.ok(!r.out.includes(key));
      assert.equal(r.out.trim().split("\n").length, 3);
    });
    await t.step("the key works for reading, not writing", async () => {
      const kv = await Deno.openKv(kvPath);
      try {
        const app = createApp({ kv, config: { ...DEFAULT_CONFIG, kvPath, authCacheMs: 0 } });
        assert.equal((await request(app, "GET", "/api/customer", { key })).status, 200);
        assert.equal((await request(app, "POST", "/api/customer/update", { key, form: { fname: "x" } })).status, 403);
      } finally {
        kv.close();
      }
    });
    await t.step("revoke stops the key", async () => {
      const r = await task(kvPath, "revoke", id);
      assert.equal(r.code, 0, r.err);
      assert.match(r.out, new RegExp(`Revoked key ${id} of company "acme"`));
      const kv = await Deno.openKv(kvPath);
      try {
        const app = createApp({ kv, config: { ...DEFAULT_CONFIG, kvPath, authCacheMs: 0 } });
        const res = await request(app, "GET", "/api/customer", { key });
        assert.equal(res.status, 401);
        assert.equal(res.body.info, `API key "${id}" is revoked`);
      } finally {
        kv.close();
      }
    });
    await t.step("bad arguments are refused with usage", async () => {
      const bad = await task(kvPath, "create", "--company", "Bad Name!");
      assert.equal(bad.code, 2);
      assert.match(bad.err, /Invalid --company "Bad Name!"/);
      const unknown = await task(kvPath, "revoke", "nope");
      assert.equal(unknown.code, 2);
      assert.match(unknown.err, /No key with id "nope"/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
