import assert from "node:assert/strict";
import { requireWrite } from "../routes/auth.ts";
import { type Reply, snapshot, type World, world } from "./helpers.ts";

const JSON_TYPE = "application/json; charset=UTF-8";
const XML_TYPE = "application/xml; charset=UTF-8";
const WRITES = [
  "/api/customer/update",
  "/api/customer/updateCard",
  "/api/customer/insertCard",
  "/api/customer/deleteCard",
  "/api/customer/updateBonus",
  "/api/customergroup/update",
  "/api/cardtype/update",
  "/api/bonusprogram/update",
];
const READS = [
  "/api/customer",
  "/api/customer/bonusHistory",
  "/api/customergroup",
  "/api/cardtype",
  "/api/bonusprogram",
];

/** Sends exactly these bytes (or text) with this content type; `path` carries its own query. */
async function send(
  w: World,
  path: string,
  options: { method?: string; type?: string; body?: BodyInit; headers?: Record<string, string> } = {},
): Promise<Reply & { headers: Headers }> {
  const headers = new Headers(options.headers);
  if (options.type) headers.set("content-type", options.type);
  const res = await w.app.request(path, { method: options.method ?? "POST", headers, body: options.body });
  const text = await res.text();
  const type = res.headers.get("content-type") ?? "";
  return {
    status: res.status,
    type,
    text,
    body: type.includes("json") && text !== "" ? JSON.parse(text) : text,
    headers: res.headers,
  };
}
/** A world with customer 1 (card uid "U1") and bonus program 1, so that a write that slips through shows. */
async function seeded(): Promise<World> {
  const w = await world();
  const c = await w.call("POST", "/api/customer/update", { form: { fname: "Anna" } });
  assert.equal(c.body.id, 1);
  const p = await w.call("POST", "/api/bonusprogram/update", { form: { name: "Points" } });
  assert.equal(p.body.id, 1);
  const card = await w.call("POST", "/api/customer/insertCard", { query: { uid: "U1" }, form: { customer_id: 1 } });
  assert.equal(card.status, 200, card.text);
  return w;
}

Deno.test("HEAD and methods an endpoint does not take get 405 with Allow and change nothing", async (t) => {
  await using w = await seeded();
  const writeQuery = `apikey=${w.key}&customer_id=1&bonus_id=1&amount=100&fname=Eve&uid=U1&name=X&group_name=G`;

  await t.step("HEAD on a write endpoint runs nothing", async () => {
    for (const path of WRITES) {
      const before = await snapshot(w.kv);
      const r = await send(w, `${path}?${writeQuery}`, { method: "HEAD" });
      assert.equal(r.status, 405, path);
      assert.equal(r.headers.get("allow"), "GET, POST", path);
      assert.equal(r.text, "");
      assert.equal(await snapshot(w.kv), before, path);
    }
    const balance = await w.call("GET", "/api/customer/bonusHistory", { query: { customer_id: 1, bonus_id: 1 } });
    assert.equal(balance.body.balance, 0);
  });

  await t.step("other methods get the envelope, in the asked format", async () => {
    for (const path of WRITES) {
      for (const method of ["PUT", "DELETE", "PATCH", "OPTIONS"]) {
        const before = await snapshot(w.kv);
        const r = await send(w, `${path}?${writeQuery}`, { method });
        assert.equal(r.status, 405, `${method} ${path}`);
        assert.equal(r.headers.get("allow"), "GET, POST");
        assert.equal(r.type, JSON_TYPE);
        assert.deepEqual(r.body, { success: 0, info: `Method ${method} is not allowed for ${path}: use GET or POST` });
        assert.equal(await snapshot(w.kv), before);
      }
    }
    const xml = await send(w, `/api/customer/updateBonus?${writeQuery}&format=xml`, { method: "PUT" });
    assert.equal(xml.status, 405);
    assert.equal(xml.type, XML_TYPE);
    assert.equal(
      xml.text,
      '<?xml version="1.0" encoding="UTF-8"?>\n<root>\n<success>0</success>\n' +
        "<info>Method PUT is not allowed for /api/customer/updateBonus: use GET or POST</info>\n</root>\n",
    );
  });

  await t.step("read-only endpoints answer HEAD as GET without a body, and 405 to writes", async () => {
    for (const path of READS) {
      const query = `apikey=${w.key}` + (path.endsWith("bonusHistory") ? "&customer_id=1&bonus_id=1" : "");
      const get = await send(w, `${path}?${query}`, { method: "GET" });
      const head = await send(w, `${path}?${query}`, { method: "HEAD" });
      assert.equal(get.status, 200, path);
      assert.equal(head.status, 200, path);
      assert.equal(head.type, JSON_TYPE);
      assert.equal(head.text, "");
      const post = await send(w, `${path}?${query}`, { method: "POST" });
      assert.equal(post.status, 405, path);
      assert.equal(post.headers.get("allow"), "GET, HEAD");
      assert.equal(post.body.info, `Method POST is not allowed for ${path}: use GET or HEAD`);
    }
  });

  await t.step("the method is checked before the key", async () => {
    const r = await send(w, "/api/customer/updateBonus?customer_id=1&bonus_id=1&amount=1", { method: "HEAD" });
    assert.equal(r.status, 405);
  });

  await t.step("unknown paths stay 404 for every method", async () => {
    for (const method of ["GET", "HEAD", "POST", "PUT"]) {
      const r = await send(w, `/api/customer/nope?apikey=${w.key}`, { method });
      assert.equal(r.status, 404, method);
    }
  });

  await t.step(
    "every route of the app is covered: a path that takes POST or a write key never takes HEAD",
    async () => {
      const paths = new Map<string, { post: boolean; write: boolean }>();
      for (const r of w.app.routes) {
        if (r.method === "ALL") continue;
        const p = paths.get(r.path) ?? { post: false, write: false };
        p.post ||= r.method === "POST";
        p.write ||= r.handler === requireWrite;
        paths.set(r.path, p);
      }
      assert.ok(paths.size >= WRITES.length + READS.length);
      for (const [path, p] of paths) {
        const head = await send(w, `${path}?apikey=${w.key}`, { method: "HEAD" });
        assert.equal(head.status === 405, p.post || p.write, path);
        const put = await send(w, `${path}?apikey=${w.key}`, { method: "PUT" });
        assert.equal(put.status, 405, path);
      }
    },
  );
});
