import assert from "node:assert/strict";
import { createApiKey } from "../storage/api_keys.ts";
import { request, startServer, tempDir } from "./kit.ts";

/** Whether the sqlite3 command line is installed (docs/operations.md names it for backups). */
async function hasSqlite3(): Promise<boolean> {
  try {
    return (await new Deno.Command("sqlite3", { args: ["-version"], stdout: "null", stderr: "null" }).output()).success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "docs/operations.md backups: sqlite3 .backup of a running, written store gives a copy the service serves",
  ignore: !(await hasSqlite3()),
  fn: async () => {
    await using dir = await tempDir();
    const kvPath = `${dir.path}/loyalty.kv`;
    const setup = await Deno.openKv(kvPath);
    const { key } = await createApiKey(setup, { companyId: "acme", userId: 2, access: "write", now: Date.now() });
    setup.close();

    const acknowledged: number[] = [];
    {
      await using server = startServer({ kvPath });
      await server.ready(key);
      for (let i = 0; i < 20; i++) {
        const r = await request(server.base, "POST", "/api/customer/update", { key, form: { fname: `Before${i}` } });
        assert.equal(r.status, 200, r.text);
        acknowledged.push(r.body.id);
      }
      // Writes go on while the copy is taken.
      const during = Promise.all(
        Array.from(
          { length: 30 },
          (_, i) => request(server.base, "POST", "/api/customer/update", { key, form: { fname: `During${i}` } }),
        ),
      );
      const backup = await new Deno.Command("sqlite3", { args: [kvPath, `.backup ${dir.path}/copy.kv`] }).output();
      assert.equal(backup.code, 0, new TextDecoder().decode(backup.stderr));
      assert.ok((await during).every((r) => r.status === 200));
    }

    await using restored = startServer({ kvPath: `${dir.path}/copy.kv` });
    await restored.ready(key);
    const page = await request(restored.base, "GET", "/api/customer", { key, query: { page: 1, page_size: 1000 } });
    assert.equal(page.status, 200);
    const ids = page.body.customers.map((c: { id: number }) => c.id);
    for (const id of acknowledged) assert.ok(ids.includes(id), `customer ${id}, written before the copy, is in it`);
    assert.equal(page.body.total_count, page.body.count, "counters agree with the records in the copy");
    assert.ok(page.body.count >= 20 && page.body.count <= 50);
  },
});
