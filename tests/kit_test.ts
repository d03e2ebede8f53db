import assert from "node:assert/strict";
import { assertError, assertRefused, freePort, kvProxy, world } from "./kit.ts";

Deno.test("assertRefused() fails when the request changed the store, even by rewriting the same value", async () => {
  await using w = await world();
  await w.kv.set(["probe"], 1);
  const refusal = { status: 404, info: "No such endpoint: /nowhere" };
  await assertRefused(w.kv, () => w.call("GET", "/nowhere"), refusal);
  await assert.rejects(
    () =>
      assertRefused(w.kv, async () => {
        await w.kv.set(["probe"], 1);
        return await w.call("GET", "/nowhere");
      }, refusal),
    /a refused request changed the store/,
  );
});

Deno.test("assertError() checks status, content type and envelope in JSON and in XML", async () => {
  await using w = await world();
  for (const format of ["json", "xml"]) {
    const r = await w.call("GET", "/nowhere", { query: { format } });
    assertError(r, { status: 404, info: "No such endpoint: /nowhere" });
    assert.throws(() => assertError(r, { status: 404, info: "No such endpoint: /nowhere", field: "x" }));
    assert.throws(() => assertError(r, { status: 400, info: "No such endpoint: /nowhere" }));
  }
});

Deno.test("kvProxy() fails the given number of calls, can apply a commit before failing it, and counts calls", async () => {
  using store = await Deno.openKv(":memory:");
  const proxy = kvProxy(store);
  const kv = proxy.kv;
  proxy.fail("get", { times: 2 });
  await assert.rejects(() => kv.get(["a"]), /injected store fault/);
  await assert.rejects(() => kv.get(["a"]), /injected store fault/);
  assert.equal((await kv.get(["a"])).value, null);
  assert.equal(proxy.calls.get, 3);

  proxy.fail("commit", { times: 1, afterApplying: true, error: new Error("lost reply") });
  await assert.rejects(() => kv.atomic().set(["a"], 1).commit(), /lost reply/);
  assert.equal((await store.get(["a"])).value, 1, "applied before the fault");
  proxy.fail("commit", { times: 1 });
  await assert.rejects(() => kv.atomic().set(["a"], 2).commit());
  assert.equal((await store.get(["a"])).value, 1, "refused before applying");

  proxy.fail("list");
  await assert.rejects(() => Array.fromAsync(kv.list({ prefix: [] })), /injected store fault/);
  proxy.heal();
  assert.equal((await Array.fromAsync(kv.list({ prefix: [] }))).length, 1);
  proxy.fail("getMany", { times: 1 });
  await assert.rejects(() => kv.getMany([["a"]]));
  assert.equal((await kv.getMany([["a"]]))[0].value, 1);

  await kv.set(["b"], 1, { expireIn: 1000 });
  assert.deepEqual(proxy.sets.map((s) => [s.key, s.options?.expireIn, s.atomic]), [
    [["a"], undefined, true],
    [["a"], undefined, true],
    [["b"], 1000, false],
  ]);
});

Deno.test("freePort() gives a port that can be listened on", () => {
  const port = freePort();
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  listener.close();
});
