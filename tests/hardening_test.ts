import assert from "node:assert/strict";
import { normalizePhone } from "../domain/phone.ts";
import { requireWrite } from "../routes/auth.ts";
import { decodeComponent, parsePairs, scanJsonObject } from "../routes/wire.ts";
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

/** Asserts a 400 in the JSON envelope naming the field, with the exact message, and that the store did not change. */
async function refused(
  w: World,
  attempt: () => Promise<Reply>,
  expected: { field: string; info: string; status?: number },
): Promise<void> {
  const before = await snapshot(w.kv);
  const r = await attempt();
  assert.equal(r.status, expected.status ?? 400, r.text);
  assert.equal(r.type, JSON_TYPE);
  assert.deepEqual(r.body, { success: 0, info: expected.info, field: expected.field });
  assert.equal(await snapshot(w.kv), before, "a refused request changed the store");
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

const bytes = (...parts: (string | number[])[]) =>
  new Uint8Array(parts.flatMap((p) => typeof p === "string" ? [...new TextEncoder().encode(p)] : p));

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

Deno.test("a JSON true/false is taken only by yes/no parameters", async (t) => {
  await using w = await seeded();
  const json = (path: string, body: string) => () =>
    send(w, `${path}${path.includes("?") ? "&" : "?"}apikey=${w.key}`, { type: "application/json", body });
  const reason = "must not be a boolean; true and false are only for yes/no parameters";

  await t.step("not for ids and amounts (the outside test credited customer 1)", async () => {
    await refused(w, json("/api/customer/updateBonus", '{"customer_id":true,"bonus_id":true,"amount":true}'), {
      field: "customer_id",
      info: `Invalid customer_id: ${reason}`,
    });
    await refused(w, json("/api/customer/updateBonus", '{"customer_id":1,"bonus_id":1,"amount":true}'), {
      field: "amount",
      info: `Invalid amount: ${reason}`,
    });
  });

  await t.step("not for text, numbers or dates", async () => {
    for (const field of ["fname", "external_id", "birth_day", "register_date", "accumulated_sales", "group_id"]) {
      await refused(w, json("/api/customer/update", `{"${field}":false}`), {
        field,
        info: `Invalid ${field}: ${reason}`,
      });
    }
    for (const field of ["customer_id", "block_date", "barcode"]) {
      await refused(w, json("/api/customer/updateCard?uid=U1", `{"${field}":true}`), {
        field,
        info: `Invalid ${field}: ${reason}`,
      });
    }
  });

  await t.step("not for the key", async () => {
    await refused(w, () => send(w, "/api/customer/update", { type: "application/json", body: '{"apikey":true}' }), {
      field: "apikey",
      info: "Invalid apikey: must be text, not a boolean",
    });
  });

  await t.step("yes/no parameters take them", async () => {
    const r = await json("/api/customer/update", '{"fname":"Bo","send_sms":true,"send_email":false}')();
    assert.equal(r.status, 200, r.text);
    const read = await w.call("GET", "/api/customer", { query: { id: r.body.id } });
    assert.equal(read.body.customers[0].send_sms, 1);
    assert.equal(read.body.customers[0].send_email, 0);
    const text = await json("/api/customer/update", '{"fname":"true"}')();
    assert.equal(text.status, 200, 'the text "true" is text');
  });
});

Deno.test("a multipart body cut short is refused, not read without its last part", async () => {
  await using w = await seeded();
  const type = "multipart/form-data; boundary=XyZ";
  const part = (name: string, value: string) =>
    `--XyZ\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  const whole = part("customer_id", "1") + part("bonus_id", "1") + part("amount", "5") + "--XyZ--\r\n";
  const cut = part("customer_id", "1") + part("bonus_id", "1") +
    '--XyZ\r\nContent-Disposition: form-data; name="overwrite"\r\n\r\n1';
  await refused(w, () => send(w, `/api/customer/updateBonus?apikey=${w.key}&amount=5`, { type, body: cut }), {
    field: "body",
    info: "Invalid body: the multipart body is cut short: its closing boundary is missing",
  });
  const ok = await send(w, `/api/customer/updateBonus?apikey=${w.key}`, { type, body: whole });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.body.balance, 5);
  const quoted = await send(w, `/api/customer/update?apikey=${w.key}`, {
    type: 'multipart/form-data; boundary="a b"',
    body: '--a b\r\nContent-Disposition: form-data; name="fname"\r\n\r\nQ\r\n--a b--',
  });
  assert.equal(quoted.status, 200, quoted.text);
});

Deno.test("text that is not valid UTF-8 is refused naming the field, from every source", async (t) => {
  await using w = await seeded();
  const path = `/api/customer/update?apikey=${w.key}`;
  const info = (field: string) => `Invalid ${field}: must be valid UTF-8 text`;

  await t.step("percent escapes in the query and in form bodies", async () => {
    await refused(w, () => send(w, `${path}&fname=Ivan%20%C3`, { method: "GET" }), {
      field: "fname",
      info: info("fname"),
    });
    await refused(w, () => send(w, `${path}&id=1&lname=%ED%A0%80`, { method: "GET" }), {
      field: "lname",
      info: info("lname"),
    });
    await refused(w, () => send(w, path, { type: "application/x-www-form-urlencoded", body: "fname=Ivan%20%C3" }), {
      field: "fname",
      info: info("fname"),
    });
    await refused(w, () => send(w, `${path}&%FF=1`, { method: "GET" }), {
      field: "query",
      info: "Invalid query: parameter names must be valid UTF-8 text",
    });
  });

  await t.step("raw bytes in form, JSON and multipart bodies", async () => {
    await refused(w, () =>
      send(w, path, {
        type: "application/x-www-form-urlencoded",
        body: bytes("lname=A&fname=Iv", [0xc3, 0x28], "n"),
      }), { field: "fname", info: info("fname") });
    await refused(w, () =>
      send(w, path, {
        type: "application/x-www-form-urlencoded",
        body: bytes("f", [0xff], "=Ivan"),
      }), { field: "body", info: "Invalid body: parameter names must be valid UTF-8 text" });
    await refused(w, () =>
      send(w, path, {
        type: "application/json",
        body: bytes('{"lname":"A","fname":"Iv', [0xff], 'n"}'),
      }), { field: "fname", info: info("fname") });
    await refused(w, () =>
      send(w, path, {
        type: "application/json",
        body: bytes('{"lname":"A","fn', [0xff], 'ame":"Ivan"}'),
      }), { field: "body", info: info("body") });
    await refused(w, () =>
      send(w, path, {
        type: "multipart/form-data; boundary=B",
        body: bytes(
          '--B\r\nContent-Disposition: form-data; name="lname"\r\n\r\nA\r\n',
          '--B\r\nContent-Disposition: form-data; name="fname"\r\n\r\nIv',
          [0xc3, 0x28],
          "n\r\n--B--\r\n",
        ),
      }), { field: "fname", info: info("fname") });
  });

  await t.step("lone surrogates spelled as JSON escapes", async () => {
    await refused(w, () => send(w, path, { type: "application/json", body: '{"fname":"Iv\\ud800an"}' }), {
      field: "fname",
      info: info("fname"),
    });
    await refused(w, () => send(w, path, { type: "application/json", body: '{"\\udc00":"x"}' }), {
      field: "body",
      info: "Invalid body: parameter names must be valid UTF-8 text",
    });
  });

  await t.step("valid text passes unchanged, and a lone % stays text", async () => {
    const r = await send(w, `${path}&fname=%D0%98%D0%B2%D0%B0%D0%BD&lname=100%25+sure&mname=50%`, { method: "GET" });
    assert.equal(r.status, 200, r.text);
    const read = await w.call("GET", "/api/customer", { query: { id: r.body.id } });
    assert.equal(read.body.customers[0].fname, "Иван");
    assert.equal(read.body.customers[0].lname, "100% sure");
    assert.equal(read.body.customers[0].mname, "50%");
    const json = await send(w, path, { type: "application/json", body: '{"fname":"\\ud83d\\ude00"}' });
    assert.equal(json.status, 200, "a surrogate pair is one character");
  });
});

Deno.test("API keys: one rule for every source", async (t) => {
  await using w = await seeded();
  const two = { field: "apikey", info: "Two different API keys were sent: send one" };
  const form = "application/x-www-form-urlencoded";

  await t.step("two different non-empty keys are refused, whichever sources", async () => {
    const cases: [string, Record<string, string>, string | undefined][] = [
      ["", { "x-api-key": w.key }, `apikey=${w.otherKey}&fname=X`],
      ["", { authorization: `Bearer ${w.key}` }, `apikey=${w.otherKey}&fname=X`],
      ["", { "x-api-key": w.key, authorization: `Bearer ${w.otherKey}` }, "fname=X"],
      [`apikey=${w.key}`, { authorization: `Bearer ${w.otherKey}` }, "fname=X"],
      [`apikey=${w.key}`, {}, `apikey=${w.otherKey}&fname=X`],
      ["", { "x-api-key": w.key }, `apikey=lk_unknown&fname=X`],
    ];
    for (const [query, headers, body] of cases) {
      await refused(w, () => send(w, `/api/customer/update?${query}`, { type: form, headers, body }), two);
    }
  });

  await t.step("empty keys are ignored and the same key twice is fine", async () => {
    const cases: [string, Record<string, string>, string][] = [
      [`apikey=${w.key}`, { "x-api-key": "" }, "fname=A"],
      ["apikey=", { "x-api-key": w.key }, "fname=A"],
      ["", { "x-api-key": w.key, authorization: "Bearer " }, "apikey=&fname=A"],
      ["", { "x-api-key": w.key }, `apikey=${w.key}&fname=A`],
      [`apikey=${w.key}`, {}, `apikey=${w.key}&fname=A`],
      [`apikey=${w.key}`, { authorization: `Bearer ${w.key}`, "x-api-key": w.key }, "fname=A"],
    ];
    for (const [query, headers, body] of cases) {
      const r = await send(w, `/api/customer/update?${query}`, { type: form, headers, body });
      assert.equal(r.status, 200, `${query} ${JSON.stringify(headers)} ${body}: ${r.text}`);
    }
  });

  await t.step("only empty keys is a missing key", async () => {
    const r = await send(w, "/api/customer/update?apikey=", { type: form, headers: { "x-api-key": "" }, body: "a=" });
    assert.equal(r.status, 401);
  });
});

Deno.test("duplicate JSON keys are refused like duplicate form parameters", async () => {
  await using w = await seeded();
  const path = `/api/customer/updateBonus?apikey=${w.key}`;
  const json = (body: string) => () => send(w, path, { type: "application/json", body });
  await refused(w, json('{"customer_id":1,"bonus_id":1,"amount":1,"amount":2}'), {
    field: "amount",
    info: 'Parameter "amount" is given more than once',
  });
  await refused(w, json('{"customer_id":1,"bonus_id":1,"amount":1,"\\u0061mount":2}'), {
    field: "amount",
    info: 'Parameter "amount" is given more than once',
  });
  const ok = await json('{"customer_id":1,"bonus_id":1,"amount":3,"comment":"\\"amount\\":4, {\\"amount\\""}')();
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.body.balance, 3);
});

Deno.test("scanJsonObject() finds the top-level keys as JSON.parse reads them", () => {
  assert.deepEqual(scanJsonObject('{"a":1,"b":{"a":2,"c":[{"a":3}]},"d":"}\\",\\"a\\":"}').keys, ["a", "b", "d"]);
  assert.deepEqual(scanJsonObject('{"\\u0061":1, "a\\\\":2 ,"\\"":[1,"x"]}').keys, ["a", "a\\", '"']);
  assert.deepEqual(scanJsonObject("{}").keys, []);
  assert.deepEqual(scanJsonObject('{"a":"xy').openValueOf, "a");
  assert.deepEqual(scanJsonObject('{"a":{"b":"xy').openValueOf, "a");
  assert.deepEqual(scanJsonObject('{"a":1,"b').openValueOf, undefined);
});

Deno.test("parsePairs() and decodeComponent() decode strictly and keep what they cannot read as text", () => {
  assert.deepEqual(parsePairs("a=1&&b=%2B+x&c&a=2", "query"), [["a", "1"], ["b", "+ x"], ["c", ""], ["a", "2"]]);
  assert.equal(decodeComponent("%zz%4"), "%zz%4");
  assert.equal(decodeComponent("%E2%82%AC"), "€");
  assert.equal(decodeComponent("%E2%82"), null);
  assert.equal(decodeComponent("%C0%AF"), null, "overlong");
});

Deno.test("constructor, __proto__ or toString are parameter names like any other", async (t) => {
  await using w = await seeded();

  await t.step("constructor, __proto__ and toString sent once are unknown, not repeated", async () => {
    for (const name of ["constructor", "__proto__", "toString", "hasOwnProperty"]) {
      const info = `Unknown parameter "${name}"`;
      await refused(w, () => send(w, `/api/customer?apikey=${w.key}&${name}=1`, { method: "GET" }), {
        field: name,
        info,
      });
      await refused(w, () =>
        send(w, `/api/customer/update?apikey=${w.key}`, {
          type: "application/x-www-form-urlencoded",
          body: `${name}=1`,
        }), { field: name, info });
      await refused(w, () =>
        send(w, `/api/customer/update?apikey=${w.key}`, {
          type: "application/json",
          body: `{"${name}":"1"}`,
        }), { field: name, info });
    }
  });

  await t.step("__proto__ in JSON does not pollute", async () => {
    await refused(w, () =>
      send(w, `/api/customer/update?apikey=${w.key}`, {
        type: "application/json",
        body: '{"__proto__":{"polluted":1},"fname":"X"}',
      }), { field: "__proto__", info: "Invalid __proto__: must be a single text, number or boolean value" });
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

Deno.test("messages: page with cursor, bad phone characters", async (t) => {
  await using w = await seeded();

  await t.step("page with cursor says to use one of them", async () => {
    const info = 'Parameters "page" and "cursor" cannot be combined: use either page or cursor, not both';
    for (const path of ["/api/customer?", "/api/customer/bonusHistory?customer_id=1&bonus_id=1&"]) {
      await refused(w, () => send(w, `${path}apikey=${w.key}&page=1&cursor=YTE`, { method: "GET" }), {
        field: "cursor",
        info,
      });
    }
  });

  await t.step("a phone with letters names them", async () => {
    await refused(w, () => send(w, `/api/customer/update?apikey=${w.key}&phone=%2B7+(900)+abc`, { method: "GET" }), {
      field: "phone",
      info: 'Invalid phone "+7 (900) abc": only digits, spaces, a leading + and - ( ) . are allowed, not "a", "b", "c"',
    });
    assert.equal(normalizePhone("+7 (900) 123-45-67", "phone", "7"), "79001234567");
  });
});

Deno.test("two different X-API-Key headers are two different keys: 400, not an unknown key", async () => {
  await using w = await world();
  const headers = new Headers();
  headers.append("x-api-key", w.key);
  headers.append("x-api-key", w.readKey);
  const r = await w.app.request("/api/customer", { headers });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).info, "Two different API keys were sent: send one");
  const same = new Headers();
  same.append("x-api-key", w.key);
  same.append("x-api-key", w.key);
  const ok = await w.app.request("/api/customer", { headers: same });
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
});

Deno.test("black-box findings: compressed bodies, CR in XML, lengths in characters, messages cut between whole characters", async (t) => {
  await using w = await world();
  await t.step("a body with a content-encoding is refused, naming it", async () => {
    const before = await snapshot(w.kv);
    const r = await w.app.request(`/api/customer/update?apikey=${w.key}`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "br" },
      body: '{"fname":"A"}',
    });
    assert.equal(r.status, 400);
    assert.equal(
      (await r.json()).info,
      'Invalid body: content-encoding "br" is not accepted; send the body uncompressed',
    );
    assert.equal(await snapshot(w.kv), before);
  });
  await t.step("a CR survives the XML reply as a character reference", async () => {
    const id = (await w.call("POST", "/api/customer/update", { json: { custom_information: "a\r\nb" } })).body.id;
    const r = await w.call("GET", "/api/customer", { query: { id, format: "xml" } });
    assert.match(r.text, /<custom_information>a&#13;\nb<\/custom_information>/);
  });
  await t.step("100 emoji are 100 characters; 101 are refused, the message cut between whole characters", async () => {
    const ok = await w.call("POST", "/api/customer/update", { json: { fname: "😀".repeat(100) } });
    assert.equal(ok.status, 200, ok.text);
    const over = await w.call("POST", "/api/customer/update", { json: { fname: "😀".repeat(101) } });
    assert.equal(over.status, 400);
    assert.equal(over.body.info, `Invalid fname "${"😀".repeat(40)}…": at most 100 characters`);
  });
});
