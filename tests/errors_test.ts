import assert from "node:assert/strict";
import { bonusKeys } from "../storage/keys.ts";
import { assertJson, assertRefused, assertXml, type KvCall, type KvProxy, kvProxy, snapshot, world } from "./kit.ts";

const STORE_CALLS: KvCall[] = ["get", "getMany", "list", "commit"];

/** A world whose app talks to the store through a fault proxy, with the app's log lines kept. */
async function faultyWorld(logRequests = true) {
  let proxy: KvProxy | undefined;
  const lines: string[] = [];
  const w = await world({
    kv: (kv) => (proxy = kvProxy(kv)).kv,
    log: (line) => lines.push(line),
    config: { logRequests },
  });
  return { w, proxy: proxy!, lines };
}

Deno.test("a store fault during a request is 500 Internal error, logged with its stack and never with the key", async (t) => {
  const { w, proxy, lines } = await faultyWorld();
  await using _w = w;
  const created = await w.call("POST", "/api/customer/update", { form: { fname: "A", phone: "9001234567" } });
  assertJson(created, 200, { success: 1, id: 1, isnew: 1 });

  for (const format of ["json", "xml"] as const) {
    await t.step(`a read, ${format}`, async () => {
      lines.length = 0;
      for (const call of STORE_CALLS) proxy.fail(call, { error: new Error("disk on fire") });
      const r = await w.call("GET", "/api/customer", { query: { id: 1, format } });
      proxy.heal();
      if (format === "xml") assertXml(r, 500, { success: "0", info: "Internal error" });
      else assertJson(r, 500, { success: 0, info: "Internal error" });
      assert.ok(!r.text.includes("disk on fire"), "the cause stays in the log");
      const error = lines.find((l) => l.includes("disk on fire"));
      assert.ok(error, `an error line is logged: ${JSON.stringify(lines)}`);
      assert.match(error, /\n\s+at /, "with its stack");
      assert.ok(lines.some((l) => /GET \/api\/customer 500/.test(l)), "the request line shows the 500");
      for (const line of lines) assert.ok(!line.includes(w.key), "no line holds the key");
    });
  }

  await t.step("a write whose commit fails is 500 and changes nothing", async () => {
    lines.length = 0;
    proxy.fail("commit", { error: new Error("disk on fire") });
    await assertRefused(
      w.kv,
      () => w.call("POST", "/api/customer/update", { query: { id: 1 }, form: { fname: "B" } }),
      { status: 500, info: "Internal error" },
    );
    proxy.heal();
    assert.ok(lines.some((l) => l.includes("disk on fire")));
    const read = await w.call("GET", "/api/customer", { query: { id: 1 } });
    assert.equal(read.body.customers[0].fname, "A");
  });

  await t.step("a bonus change whose store keeps failing is 500 in XML too, and changes nothing", async () => {
    const program = await w.call("POST", "/api/bonusprogram/update", { form: { name: "Points" } });
    assert.equal(program.status, 200);
    proxy.fail("commit", { error: new Error("disk on fire") });
    await assertRefused(
      w.kv,
      () =>
        w.call("POST", "/api/customer/updateBonus", {
          query: { format: "xml" },
          form: { customer_id: 1, bonus_id: 1, amount: "10", idempotency_key: "r-1" },
        }),
      { status: 500, info: "Internal error" },
    );
    proxy.heal();
    // Nothing was remembered for the key: the same request is judged afresh once the store answers.
    const again = await w.call("POST", "/api/customer/updateBonus", {
      form: { customer_id: 1, bonus_id: 1, amount: "10", idempotency_key: "r-1" },
    });
    assertJson(again, 200, { success: 1, customer_id: 1, bonus_id: 1, balance: 10, pending: 0, transaction_id: 1 });
    assert.equal(again.headers.get("idempotent-replayed"), null);
  });

  await t.step("the app keeps serving once the store answers again", async () => {
    const r = await w.call("GET", "/api/customer", { query: { id: 1 } });
    assert.equal(r.status, 200);
  });
});

Deno.test("with LOG_REQUESTS=0 the request lines stop but errors are still logged", async () => {
  const { w, proxy, lines } = await faultyWorld(false);
  await using _w = w;
  assert.equal((await w.call("GET", "/api/customer")).status, 200);
  assert.deepEqual(lines, []);
  proxy.fail("getMany", { error: new Error("disk on fire") });
  proxy.fail("list", { error: new Error("disk on fire") });
  proxy.fail("get", { error: new Error("disk on fire") });
  const r = await w.call("GET", "/api/customer", { query: { id: 1 } });
  assertJson(r, 500, { success: 0, info: "Internal error" });
  assert.equal(lines.length, 1, JSON.stringify(lines));
  assert.match(lines[0]!, /disk on fire\n\s+at /);
});

Deno.test("a body in a content type other than JSON, form or multipart is refused and changes nothing", async (t) => {
  await using w = await world();
  const post = (body: BodyInit, headers: Record<string, string>, format?: string) =>
    w.call("POST", "/api/customer/update", { query: format ? { format } : {}, body, headers });
  const refusal = (type: string) => ({
    status: 400,
    info: `Invalid body: content type "${type}" is not accepted; use JSON, form or multipart`,
    field: "body",
  });

  await t.step("text/plain", async () => {
    await assertRefused(w.kv, () => post("fname=A", { "content-type": "text/plain" }), refusal("text/plain"));
  });
  await t.step("application/xml, answered in XML when asked", async () => {
    const xml = "<customer><fname>A</fname></customer>";
    await assertRefused(w.kv, () => post(xml, { "content-type": "application/xml" }), refusal("application/xml"));
    const r = await assertRefused(
      w.kv,
      () => post(xml, { "content-type": "application/xml; charset=utf-8" }, "xml"),
      refusal("application/xml"),
    );
    assertXml(r, 400);
  });
  await t.step("a body without a content type", async () => {
    await assertRefused(w.kv, () => post(new TextEncoder().encode("fname=A"), {}), refusal(""));
  });
  await t.step("a JSON content type with a form body is malformed JSON", async () => {
    await assertRefused(w.kv, () => post("fname=A", { "content-type": "application/json" }), {
      status: 400,
      info: "Invalid body: malformed JSON",
      field: "body",
    });
  });
  await t.step("a JSON array or scalar is not an object of parameters", async () => {
    for (const body of ['["fname","A"]', '"A"', "1"]) {
      await assertRefused(w.kv, () => post(body, { "content-type": "application/json" }), {
        status: 400,
        info: "Invalid body: a JSON object of parameters is expected",
        field: "body",
      });
    }
  });
  await t.step("an empty body is no body, whatever its type", async () => {
    const r = await w.call("POST", "/api/customer/update", {
      query: { fname: "Q" },
      body: "",
      headers: { "content-type": "text/plain" },
    });
    assertJson(r, 200, { success: 1, id: 1, isnew: 1 });
  });
  await t.step("content types are matched without case and parameters", async () => {
    const json = await post('{"fname":"J"}', { "content-type": "Application/JSON; charset=UTF-8" });
    assertJson(json, 200, { success: 1, id: 2, isnew: 1 });
    const form = await post("fname=F", { "content-type": "application/x-www-form-urlencoded; charset=UTF-8" });
    assertJson(form, 200, { success: 1, id: 3, isnew: 1 });
  });
});

Deno.test("an idempotency key is kept 24 hours through KV expiry; balances and ledger entries never expire", async () => {
  let proxy: KvProxy | undefined;
  await using w = await world({ kv: (kv) => (proxy = kvProxy(kv)).kv });
  await w.call("POST", "/api/customer/update", { form: { fname: "A" } });
  await w.call("POST", "/api/bonusprogram/update", { form: { name: "Points" } });
  proxy!.sets.length = 0;
  const r = await w.call("POST", "/api/customer/updateBonus", {
    form: { customer_id: 1, bonus_id: 1, amount: "5" },
    headers: { "Idempotency-Key": "order-7" },
  });
  assertJson(r, 200);

  const idempotency = bonusKeys.idempotency("acme", "order-7");
  const sets = proxy!.sets.map((s) => ({ key: JSON.stringify(s.key), expireIn: s.options?.expireIn }));
  assert.deepEqual(sets.filter((s) => s.key === JSON.stringify(idempotency)), [
    { key: JSON.stringify(idempotency), expireIn: 24 * 60 * 60 * 1000 },
  ]);
  // Audit entries expire by their own retention (tests/audit_test.ts); everything else of the change is kept.
  const others = sets.filter((s) => s.key !== JSON.stringify(idempotency) && !s.key.includes('"audit"'));
  assert.ok(others.length >= 2, "the balance and its ledger entry are written too");
  assert.deepEqual(others.filter((s) => s.expireIn !== undefined), [], "nothing else expires");
  assert.ok(
    others.some((s) => s.key === JSON.stringify(bonusKeys.balance("acme", 1, 1))),
    "the balance is among them",
  );

  // A replay writes nothing, so it does not extend the key's life either.
  proxy!.sets.length = 0;
  const before = await snapshot(w.kv, { versionstamps: true });
  const replay = await w.call("POST", "/api/customer/updateBonus", {
    form: { customer_id: 1, bonus_id: 1, amount: "5" },
    headers: { "Idempotency-Key": "order-7" },
  });
  assertJson(replay, 200, r.body);
  assert.equal(replay.headers.get("idempotent-replayed"), "true");
  assert.deepEqual(proxy!.sets, []);
  assert.equal(await snapshot(w.kv, { versionstamps: true }), before);
});
