import assert from "node:assert/strict";
import { JSON_TYPE, snapshot, world, XML_TYPE } from "./kit.ts";

Deno.test("GET|POST /api/customer/update creates and updates customers", async (t) => {
  await using w = await world();

  await t.step("creates from form fields and reads back in JSON", async () => {
    const created = await w.call("POST", "/api/customer/update", {
      form: { fname: "Сергей", lname: "Иванов", mname: "Степанович", phone: "8 (900) 123-45-67", gender: "m" },
    });
    assert.equal(created.status, 200);
    assert.equal(created.type, JSON_TYPE);
    assert.deepEqual(created.body, { success: 1, id: 1, isnew: 1 });

    const read = await w.call("GET", "/api/customer", { query: { id: 1 } });
    assert.equal(read.status, 200);
    const c = read.body.customers[0];
    assert.equal(read.body.count, 1);
    assert.equal(c.fname, "Сергей");
    assert.equal(c.phone, "79001234567");
    assert.equal(c.gender, "M");
    assert.equal(c.email, null);
    assert.equal(c.created_by, 2);
    assert.equal(c.last_update_by, 2);
    assert.equal(c.accumulated_sales, 0);
    assert.equal(c.send_sms, 0);
  });

  await t.step("updates by id from the query and keeps other fields", async () => {
    const res = await w.call("GET", "/api/customer/update", { query: { id: 1, email: "S.Ivanov@Example.com" } });
    assert.deepEqual(res.body, { success: 1, id: 1, isnew: 0 });
    const c = (await w.call("GET", "/api/customer", { query: { id: 1 } })).body.customers[0];
    assert.equal(c.email, "S.Ivanov@Example.com");
    assert.equal(c.fname, "Сергей");
  });

  await t.step("a field sent empty clears it", async () => {
    await w.call("POST", "/api/customer/update", { query: { id: 1 }, form: { mname: "" } });
    const c = (await w.call("GET", "/api/customer", { query: { id: 1 } })).body.customers[0];
    assert.equal(c.mname, null);
  });

  await t.step("JSON and multipart bodies are accepted", async () => {
    const a = await w.call("POST", "/api/customer/update", {
      json: { fname: "Anna", send_sms: true, accumulated_sales: 15200.5 },
    });
    assert.equal(a.body.isnew, 1);
    const b = await w.call("POST", "/api/customer/update", { multipart: { fname: "Boris", send_email: "1" } });
    assert.equal(b.body.isnew, 1);
    const ca = (await w.call("GET", "/api/customer", { query: { id: a.body.id } })).body.customers[0];
    assert.equal(ca.send_sms, 1);
    assert.equal(ca.accumulated_sales, 15200.5);
    const cb = (await w.call("GET", "/api/customer", { query: { id: b.body.id } })).body.customers[0];
    assert.equal(cb.fname, "Boris");
    assert.equal(cb.send_email, 1);
  });

  await t.step("external_id in the query finds, or creates with it", async () => {
    const created = await w.call("POST", "/api/customer/update", {
      query: { external_id: "1C-0001" },
      form: { fname: "Ext" },
    });
    assert.equal(created.body.isnew, 1);
    const again = await w.call("POST", "/api/customer/update", {
      query: { external_id: "1C-0001" },
      form: { lname: "Person" },
    });
    assert.deepEqual(again.body, { success: 1, id: created.body.id, isnew: 0 });
    const c = (await w.call("GET", "/api/customer", { query: { external_id: "1C-0001" } })).body.customers[0];
    assert.equal(c.fname, "Ext");
    assert.equal(c.lname, "Person");
    assert.equal(c.external_id, "1C-0001");
  });

  await t.step("create_if_not_exist=0 refuses to create", async () => {
    const before = await snapshot(w.kv);
    const res = await w.call("GET", "/api/customer/update", {
      query: { external_id: "nope", create_if_not_exist: 0, fname: "X" },
    });
    assert.equal(res.status, 404);
    assert.deepEqual(res.body, {
      success: 0,
      info: 'Customer with external_id "nope" not found',
      field: "external_id",
    });
    assert.equal(await snapshot(w.kv), before);
  });

  await t.step("an unknown id is 404 and creates nothing", async () => {
    const before = await snapshot(w.kv);
    const res = await w.call("GET", "/api/customer/update", { query: { id: 999, fname: "X" } });
    assert.equal(res.status, 404);
    assert.equal(res.body.info, 'Customer "999" not found');
    assert.equal(await snapshot(w.kv), before);
  });
});

Deno.test("GET /api/customer answers XML in the specification's shape", async () => {
  await using w = await world({ now: () => Date.UTC(2016, 9, 24, 10, 0, 0) });
  await w.call("POST", "/api/customer/update", {
    form: {
      fname: "Сергей",
      lname: "Иванов",
      mname: "Степанович",
      gender: "F",
      custom_information: "очень требовательный & <важный>",
      birth_day: 24,
      birth_month: 10,
      birth_year: 1992,
      register_date: "2016-07-18 13:54:37",
      accumulated_sales: 15200,
      send_push: 1,
      send_email: "true",
      send_sms: 1,
    },
  });
  const res = await w.call("GET", "/api/customer", { query: { format: "xml", id: 1 } });
  assert.equal(res.status, 200);
  assert.equal(res.type, XML_TYPE);
  assert.equal(
    res.text,
    `<?xml version="1.0" encoding="UTF-8"?>
<root>
<success>1</success>
<type>customer</type>
<count>1</count>
<customers>
<customer>
<id>1</id>
<external_id/>
<fname>Сергей</fname>
<lname>Иванов</lname>
<mname>Степанович</mname>
<age>24</age>
<email/>
<phone/>
<gender>F</gender>
<custom_information>очень требовательный &amp; &lt;важный&gt;</custom_information>
<birth_day>24</birth_day>
<birth_month>10</birth_month>
<birth_year>1992</birth_year>
<register_date>2016-07-18 13:54:37</register_date>
<accumulated_sales>15200</accumulated_sales>
<send_push>1</send_push>
<send_email>1</send_email>
<send_sms>1</send_sms>
<group_id/>
<group_name/>
<created_date>2016-10-24 10:00:00</created_date>
<created_by>2</created_by>
<last_update_date>2016-10-24 10:00:00</last_update_date>
<last_update_by>2</last_update_by>
</customer>
</customers>
</root>
`,
  );

  const paged = await w.call("GET", "/api/customer", { query: { format: "xml", page: 1, page_size: 200 } });
  assert.match(
    paged.text,
    /<\/customers>\n<page>1<\/page>\n<page_size>200<\/page_size>\n<total_count>1<\/total_count>\n/,
  );

  const update = await w.call("GET", "/api/customer/update", { query: { format: "xml", id: 1, fname: "Sergey" } });
  assert.equal(
    update.text,
    `<?xml version="1.0" encoding="UTF-8"?>\n<root>\n<success>1</success>\n<id>1</id>\n<isnew>0</isnew>\n</root>\n`,
  );

  const error = await w.call("GET", "/api/customer/update", { query: { format: "xml", id: 1, age: 3 } });
  assert.equal(error.status, 400);
  assert.equal(error.type, XML_TYPE);
  assert.equal(
    error.text,
    `<?xml version="1.0" encoding="UTF-8"?>\n<root>\n<success>0</success>\n` +
      `<info>Parameter "age" is not accepted: age is computed from birth_day, birth_month and birth_year</info>\n` +
      `<field>age</field>\n</root>\n`,
  );
});

Deno.test("GET /api/customer filters by phone, email, external_id and presence", async (t) => {
  await using w = await world();
  const a = await w.call("POST", "/api/customer/update", {
    form: { fname: "A", phone: "+7 900 111-22-33", email: "Anna@Mail.RU", external_id: "A-1" },
  });
  const b = await w.call("POST", "/api/customer/update", { form: { fname: "B", phone: "9002223344" } });
  const c = await w.call("POST", "/api/customer/update", { form: { fname: "C", email: "c@example.com" } });
  const d = await w.call("POST", "/api/customer/update", { form: { fname: "D" } });
  const ids = (r: { body: { customers: { id: number }[] } }) => r.body.customers.map((x) => x.id);

  await t.step("phone matches in any format", async () => {
    for (const phone of ["89001112233", "+79001112233", "79001112233", "(900) 111 22 33", "9001112233"]) {
      const r = await w.call("GET", "/api/customer", { query: { phone } });
      assert.deepEqual(ids(r), [a.body.id], phone);
    }
  });
  await t.step("email matches case-insensitively", async () => {
    const r = await w.call("GET", "/api/customer", { query: { email: "anna@mail.ru" } });
    assert.deepEqual(ids(r), [a.body.id]);
    assert.equal(r.body.customers[0].email, "Anna@Mail.RU");
  });
  await t.step("external_id finds one", async () => {
    assert.deepEqual(ids(await w.call("GET", "/api/customer", { query: { external_id: "A-1" } })), [a.body.id]);
    assert.deepEqual(ids(await w.call("GET", "/api/customer", { query: { external_id: "a-1" } })), []);
  });
  await t.step("filters combine with AND", async () => {
    const hit = await w.call("GET", "/api/customer", { query: { phone: "89001112233", email: "anna@mail.ru" } });
    assert.deepEqual(ids(hit), [a.body.id]);
    const miss = await w.call("GET", "/api/customer", { query: { phone: "89002223344", email: "anna@mail.ru" } });
    assert.deepEqual(ids(miss), []);
    assert.equal(miss.body.count, 0);
    const noEmail = await w.call("GET", "/api/customer", { query: { phone: "89002223344", with_email: 0 } });
    assert.deepEqual(ids(noEmail), [b.body.id]);
    const withEmail = await w.call("GET", "/api/customer", { query: { phone: "89002223344", with_email: 1 } });
    assert.deepEqual(ids(withEmail), []);
    const byIdAndExt = await w.call("GET", "/api/customer", { query: { id: b.body.id, external_id: "A-1" } });
    assert.deepEqual(ids(byIdAndExt), []);
  });
  await t.step("with_phone / with_email select by presence, with counts", async () => {
    const cases: [Record<string, string>, number[]][] = [
      [{}, [a.body.id, b.body.id, c.body.id, d.body.id]],
      [{ with_phone: "1" }, [a.body.id, b.body.id]],
      [{ with_phone: "false" }, [c.body.id, d.body.id]],
      [{ with_email: "true" }, [a.body.id, c.body.id]],
      [{ with_email: "0" }, [b.body.id, d.body.id]],
      [{ with_phone: "1", with_email: "1" }, [a.body.id]],
      [{ with_phone: "1", with_email: "0" }, [b.body.id]],
      [{ with_phone: "0", with_email: "1" }, [c.body.id]],
      [{ with_phone: "0", with_email: "0" }, [d.body.id]],
    ];
    for (const [query, expected] of cases) {
      const r = await w.call("GET", "/api/customer", { query });
      assert.deepEqual(ids(r), expected, JSON.stringify(query));
      assert.equal(r.body.count, expected.length);
      const paged = await w.call("GET", "/api/customer", { query: { ...query, page: 1 } });
      assert.equal(paged.body.total_count, expected.length, JSON.stringify(query));
    }
  });
  await t.step("lists follow changes of phone and email", async () => {
    await w.call("POST", "/api/customer/update", { query: { id: d.body.id }, form: { phone: "9005556677" } });
    await w.call("POST", "/api/customer/update", { query: { id: a.body.id }, form: { phone: "" } });
    const r = await w.call("GET", "/api/customer", { query: { with_phone: 1, page: 1 } });
    assert.deepEqual(ids(r), [b.body.id, d.body.id]);
    assert.equal(r.body.total_count, 2);
    const old = await w.call("GET", "/api/customer", { query: { phone: "89001112233" } });
    assert.deepEqual(ids(old), []);
  });
});

Deno.test("GET /api/customer pages by number and by cursor", async (t) => {
  await using w = await world();
  const all: number[] = [];
  for (let i = 0; i < 23; i++) {
    const r = await w.call("POST", "/api/customer/update", { form: i % 3 ? { phone: `900000${1000 + i}` } : {} });
    all.push(r.body.id);
  }
  const withPhone = all.filter((_, i) => i % 3 !== 0);
  const ids = (r: { body: { customers: { id: number }[] } }) => r.body.customers.map((x) => x.id);

  await t.step("pages cover the list exactly, last page short, past the end empty", async () => {
    const seen: number[] = [];
    for (let page = 1; page <= 5; page++) {
      const r = await w.call("GET", "/api/customer", { query: { page, page_size: 5 } });
      assert.equal(r.body.page, page);
      assert.equal(r.body.page_size, 5);
      assert.equal(r.body.total_count, 23);
      assert.equal(r.body.count, page === 5 ? 3 : 5);
      seen.push(...ids(r));
    }
    assert.deepEqual(seen, all);
    const past = await w.call("GET", "/api/customer", { query: { page: 6, page_size: 5 } });
    assert.deepEqual(ids(past), []);
    assert.equal(past.body.total_count, 23);
  });
  await t.step("filtered pages", async () => {
    const r = await w.call("GET", "/api/customer", { query: { with_phone: 1, page: 2, page_size: 4 } });
    assert.deepEqual(ids(r), withPhone.slice(4, 8));
    assert.equal(r.body.total_count, withPhone.length);
  });
  await t.step("page_size defaults to 200 and page to 1", async () => {
    const r = await w.call("GET", "/api/customer", { query: { page: 1 } });
    assert.equal(r.body.page_size, 200);
    const s = await w.call("GET", "/api/customer", { query: { page_size: 2 } });
    assert.equal(s.body.page, 1);
    assert.deepEqual(ids(s), all.slice(0, 2));
  });
  await t.step("page_size 0, negative and huge are refused by name", async () => {
    for (const page_size of ["0", "-5", "1001", "100000000000", "abc"]) {
      const r = await w.call("GET", "/api/customer", { query: { page: 1, page_size } });
      assert.equal(r.status, 400, page_size);
      assert.equal(r.body.field, "page_size");
      assert.equal(r.body.info, `Invalid page_size "${page_size}": must be a whole number from 1 to 1000`);
    }
    const r = await w.call("GET", "/api/customer", { query: { page: 0 } });
    assert.equal(r.status, 400);
    assert.equal(r.body.field, "page");
  });
  await t.step("a cursor walks the whole list", async () => {
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const query: Record<string, string> = { page_size: "7", with_phone: "1" };
      if (cursor) query.cursor = cursor;
      const r = await w.call("GET", "/api/customer", { query });
      assert.equal(r.status, 200);
      seen.push(...ids(r));
      cursor = r.body.next_cursor;
    } while (cursor);
    assert.deepEqual(seen, withPhone);
    const bad = await w.call("GET", "/api/customer", { query: { cursor: "zzz" } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.field, "cursor");
  });
});

Deno.test("phone, email and external_id are unique within a company", async (t) => {
  await using w = await world();
  const first = await w.call("POST", "/api/customer/update", {
    form: { phone: "+79001234567", email: "a@b.ru", external_id: "E1" },
  });
  for (
    const [field, value, message] of [
      ["phone", "8 900 123 45 67", 'Cannot create customer: phone "79001234567" is already taken'],
      ["email", "A@B.RU", 'Cannot create customer: email "A@B.RU" is already taken'],
      ["external_id", "E1", 'Cannot create customer: external_id "E1" is already taken'],
    ]
  ) {
    await t.step(`${field} clash on create is 409 and writes nothing`, async () => {
      const before = await snapshot(w.kv);
      const r = await w.call("POST", "/api/customer/update", { form: { fname: "Dup", [field!]: value! } });
      assert.equal(r.status, 409);
      assert.deepEqual(r.body, { success: 0, info: message, field });
      assert.equal(await snapshot(w.kv), before);
    });
  }
  await t.step("clash on update is 409 naming the field", async () => {
    const other = await w.call("POST", "/api/customer/update", { form: { phone: "+79009999999" } });
    const before = await snapshot(w.kv);
    const r = await w.call("POST", "/api/customer/update", {
      query: { id: other.body.id },
      form: { fname: "New name", email: "a@b.ru" },
    });
    assert.equal(r.status, 409);
    assert.deepEqual(r.body, {
      success: 0,
      info: 'Cannot update customer: email "a@b.ru" is already taken',
      field: "email",
    });
    assert.equal(await snapshot(w.kv), before);
  });
  await t.step("a freed value can be taken again", async () => {
    await w.call("POST", "/api/customer/update", { query: { id: first.body.id }, form: { phone: "" } });
    const r = await w.call("POST", "/api/customer/update", { form: { phone: "89001234567" } });
    assert.equal(r.status, 200);
    assert.equal(r.body.isnew, 1);
  });
  await t.step("the same value in another company is fine", async () => {
    const r = await w.call("POST", "/api/customer/update", {
      key: w.otherKey,
      form: { email: "a@b.ru", external_id: "E1" },
    });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { success: 1, id: 1, isnew: 1 });
  });
});

Deno.test("concurrent creates with one phone: exactly one wins, ids never repeat", async () => {
  await using w = await world();
  const results = await Promise.all(
    Array.from(
      { length: 20 },
      (_, i) => w.call("POST", "/api/customer/update", { form: { fname: `P${i}`, phone: "+7 900 000-00-01" } }),
    ),
  );
  const ok = results.filter((r) => r.status === 200);
  assert.equal(ok.length, 1);
  for (const r of results.filter((r) => r.status !== 200)) {
    assert.equal(r.status, 409);
    assert.equal(r.body.field, "phone");
  }
  const many = await Promise.all(
    Array.from({ length: 30 }, (_, i) => w.call("POST", "/api/customer/update", { form: { fname: `N${i}` } })),
  );
  const ids = many.map((r) => r.body.id as number);
  assert.equal(new Set(ids).size, 30);
  const total = await w.call("GET", "/api/customer", { query: { page: 1 } });
  assert.equal(total.body.total_count, 31);
  assert.equal(total.body.count, 31);
});

Deno.test("tenant isolation: company B never sees or changes company A's customers", async () => {
  await using w = await world();
  const a = await w.call("POST", "/api/customer/update", {
    form: { fname: "Secret", phone: "9001230000", email: "s@a.ru", external_id: "X" },
  });
  const asB = { key: w.otherKey };
  const queries: Record<string, string>[] = [
    { id: String(a.body.id) },
    { phone: "9001230000" },
    { email: "s@a.ru" },
    { external_id: "X" },
    {},
  ];
  for (const query of queries) {
    const r = await w.call("GET", "/api/customer", { ...asB, query });
    assert.equal(r.status, 200);
    assert.equal(r.body.count, 0, JSON.stringify(query));
  }
  const before = await snapshot(w.kv);
  const upd = await w.call("POST", "/api/customer/update", {
    ...asB,
    query: { id: a.body.id },
    form: { fname: "Hacked" },
  });
  assert.equal(upd.status, 404);
  assert.equal(await snapshot(w.kv), before);
  const mine = await w.call("GET", "/api/customer", { query: { id: a.body.id } });
  assert.equal(mine.body.customers[0].fname, "Secret");
});

Deno.test("API keys: missing, wrong, read-only and revoked", async (t) => {
  await using w = await world({ config: { authCacheMs: 0 } });
  await t.step("missing key is 401", async () => {
    const r = await w.call("GET", "/api/customer", { key: null });
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, { success: 0, info: "Missing API key: pass the apikey parameter or an X-API-Key header" });
  });
  await t.step("wrong key is 401", async () => {
    const r = await w.call("GET", "/api/customer", { key: "lk_wrong" });
    assert.equal(r.status, 401);
    assert.equal(r.body.info, "Invalid API key");
  });
  await t.step("headers work: X-API-Key and Bearer", async () => {
    const x = await w.call("GET", "/api/customer", { key: null, headers: { "X-API-Key": w.key } });
    assert.equal(x.status, 200);
    const b = await w.call("GET", "/api/customer", { key: null, headers: { authorization: `Bearer ${w.key}` } });
    assert.equal(b.status, 200);
  });
  await t.step("the key may come in a POST body", async () => {
    const r = await w.call("POST", "/api/customer/update", { key: null, form: { apikey: w.key, fname: "Body" } });
    assert.equal(r.status, 200);
  });
  await t.step("read key reads but cannot write", async () => {
    assert.equal((await w.call("GET", "/api/customer", { key: w.readKey })).status, 200);
    const before = await snapshot(w.kv);
    const r = await w.call("POST", "/api/customer/update", { key: w.readKey, form: { fname: "No" } });
    assert.equal(r.status, 403);
    assert.equal(r.body.info, "API key is read-only: POST /api/customer/update needs a write key");
    assert.equal(await snapshot(w.kv), before);
  });
  await t.step("revoked key is refused", async () => {
    const { listApiKeys, revokeApiKey } = await import("../storage/api_keys.ts");
    const read = (await listApiKeys(w.kv, "acme")).find((k) => k.access === "read")!;
    await revokeApiKey(w.kv, read.id);
    const r = await w.call("GET", "/api/customer", { key: w.readKey });
    assert.equal(r.status, 401);
    assert.equal(r.body.info, `API key "${read.id}" is revoked`);
  });
  await t.step("keys are stored hashed, never in plain text", async () => {
    const all = await snapshot(w.kv);
    assert.ok(!all.includes(w.key));
    assert.ok(!all.includes(w.otherKey));
  });
});

Deno.test("groups: group_name finds or creates, group_id must exist", async (t) => {
  await using w = await world();
  await t.step("group_name creates the group once, case-insensitively", async () => {
    const a = await w.call("POST", "/api/customer/update", { form: { group_name: "VIP" } });
    const b = await w.call("POST", "/api/customer/update", { form: { group_name: "  vip " } });
    const ca = (await w.call("GET", "/api/customer", { query: { id: a.body.id } })).body.customers[0];
    const cb = (await w.call("GET", "/api/customer", { query: { id: b.body.id } })).body.customers[0];
    assert.equal(ca.group_id, 1);
    assert.equal(ca.group_name, "VIP");
    assert.equal(cb.group_id, 1);
    const c = await w.call("POST", "/api/customer/update", { form: { group_name: "Staff" } });
    const cc = (await w.call("GET", "/api/customer", { query: { id: c.body.id } })).body.customers[0];
    assert.equal(cc.group_id, 2);
    assert.equal(cc.group_name, "Staff");
  });
  await t.step("group_name is ignored when group_id is given", async () => {
    const r = await w.call("POST", "/api/customer/update", { form: { group_id: 2, group_name: "Ignored" } });
    const c = (await w.call("GET", "/api/customer", { query: { id: r.body.id } })).body.customers[0];
    assert.equal(c.group_id, 2);
    const none = await w.call("POST", "/api/customer/update", { form: { group_name: "ignored" } });
    const cn = (await w.call("GET", "/api/customer", { query: { id: none.body.id } })).body.customers[0];
    assert.equal(cn.group_id, 3);
  });
  await t.step("unknown group_id is 404 and nothing changes", async () => {
    const before = await snapshot(w.kv);
    const r = await w.call("POST", "/api/customer/update", { form: { group_id: 99, fname: "X" } });
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { success: 0, info: 'Customer group "99" not found', field: "group_id" });
    assert.equal(await snapshot(w.kv), before);
  });
  await t.step("concurrent creates of one new group make one group", async () => {
    await Promise.all(
      Array.from({ length: 10 }, () => w.call("POST", "/api/customer/update", { form: { group_name: "Rush" } })),
    );
    const r = await w.call("GET", "/api/customer", { query: { page: 1 } });
    const rush = r.body.customers.filter((c: { group_name: string }) => c.group_name === "Rush");
    assert.equal(rush.length, 10);
    assert.equal(new Set(rush.map((c: { group_id: number }) => c.group_id)).size, 1);
  });
  await t.step("group cleared by an empty group_id", async () => {
    const r = await w.call("POST", "/api/customer/update", { query: { id: 1 }, form: { group_id: "" } });
    assert.equal(r.status, 200);
    const c = (await w.call("GET", "/api/customer", { query: { id: 1 } })).body.customers[0];
    assert.equal(c.group_id, null);
    assert.equal(c.group_name, null);
  });
});

Deno.test("age is computed from the birth date on every read", async (t) => {
  let now = Date.UTC(2024, 1, 29, 12, 0, 0);
  await using w = await world({ now: () => now });
  const make = async (form: Record<string, number>) =>
    (await w.call("POST", "/api/customer/update", { form })).body.id as number;
  const age = async (id: number) => (await w.call("GET", "/api/customer", { query: { id } })).body.customers[0].age;
  const today = await make({ birth_day: 29, birth_month: 2, birth_year: 2000 });
  const tomorrow = await make({ birth_day: 1, birth_month: 3, birth_year: 2000 });
  const noYear = await make({ birth_day: 1, birth_month: 3 });
  const onlyYear = await make({ birth_year: 1990 });
  await t.step("birthday today counts, tomorrow does not", async () => {
    assert.equal(await age(today), 24);
    assert.equal(await age(tomorrow), 23);
  });
  await t.step("missing parts give no age", async () => {
    assert.equal(await age(noYear), null);
    assert.equal(await age(onlyYear), null);
  });
  await t.step("leap-day birthday is reached on 1 March in other years", async () => {
    now = Date.UTC(2025, 1, 28, 12);
    assert.equal(await age(today), 24);
    now = Date.UTC(2025, 2, 1, 12);
    assert.equal(await age(today), 25);
  });
  await t.step("age is never accepted as input", async () => {
    const r = await w.call("POST", "/api/customer/update", { form: { age: 30 } });
    assert.equal(r.status, 400);
    assert.equal(r.body.field, "age");
  });
});

Deno.test("malformed input is refused with a clear error naming the field, and changes nothing", async (t) => {
  await using w = await world({ now: () => Date.UTC(2026, 10, 29, 12) });
  const existing = await w.call("POST", "/api/customer/update", { form: { fname: "Keep", birth_month: 2 } });
  const id = existing.body.id;
  const long = "x".repeat(101);
  const cases: [
    string,
    { query?: Record<string, string | number>; form?: Record<string, string | number> },
    string,
    string,
  ][] = [
    ["unknown parameter", { form: { fnmae: "x" } }, "fnmae", 'Unknown parameter "fnmae"'],
    [
      "age",
      { form: { age: "5" } },
      "age",
      'Parameter "age" is not accepted: age is computed from birth_day, birth_month and birth_year',
    ],
    [
      "created_date",
      { form: { created_date: "2020-01-01" } },
      "created_date",
      'Parameter "created_date" is not accepted: it is set by the service',
    ],
    ["id in the body", { form: { id: "1" } }, "id", 'Parameter "id" must be passed in the query string'],
    ["gender", { form: { gender: "X" } }, "gender", 'Invalid gender "X": must be one of M, F'],
    ["long name", { form: { fname: long } }, "fname", `Invalid fname "${"x".repeat(40)}…": at most 100 characters`],
    [
      "control characters",
      { form: { lname: "a\u0001b" } },
      "lname",
      'Invalid lname "a\u0001b": control characters are not allowed',
    ],
    [
      "31 February",
      { form: { birth_day: 31, birth_month: 2, birth_year: 2000 } },
      "birth_day",
      'Invalid birth_day "31": 2000-02 has no day 31',
    ],
    [
      "29 February 2023",
      { form: { birth_day: 29, birth_month: 2, birth_year: 2023 } },
      "birth_day",
      'Invalid birth_day "29": 2023-02 has no day 29',
    ],
    [
      "birth_day 32",
      { form: { birth_day: 32 } },
      "birth_day",
      'Invalid birth_day "32": must be a whole number from 1 to 31',
    ],
    [
      "birth_month 13",
      { form: { birth_month: 13 } },
      "birth_month",
      'Invalid birth_month "13": must be a whole number from 1 to 12',
    ],
    [
      "birth_year text",
      { form: { birth_year: "19x0" } },
      "birth_year",
      'Invalid birth_year "19x0": must be a whole number from 1900 to 2200',
    ],
    ["register_date impossible", { form: { register_date: "2023-02-30 10:00:00" } }, "register_date", ""],
    [
      "register_date future",
      { form: { register_date: "2030-01-01 00:00:00" } },
      "register_date",
      "Invalid register_date: it is in the future",
    ],
    ["accumulated_sales 3 decimals", { form: { accumulated_sales: "1.005" } }, "accumulated_sales", ""],
    ["accumulated_sales NaN", { form: { accumulated_sales: "NaN" } }, "accumulated_sales", ""],
    ["accumulated_sales negative", { form: { accumulated_sales: "-1" } }, "accumulated_sales", ""],
    ["send_sms", { form: { send_sms: "yes" } }, "send_sms", 'Invalid send_sms "yes": must be 1, 0, true or false'],
    ["phone letters", { form: { phone: "call me" } }, "phone", ""],
    ["phone short", { form: { phone: "12" } }, "phone", ""],
    ["email", { form: { email: "not-an-email" } }, "email", ""],
    ["group_id text", { form: { group_id: "abc" } }, "group_id", ""],
    ["group_name long", { form: { group_name: long } }, "group_name", ""],
    ["id not a number", { query: { id: "abc" } }, "id", ""],
    ["create_if_not_exist", { query: { create_if_not_exist: "maybe" } }, "create_if_not_exist", ""],
    [
      "duplicate parameter",
      { query: { fname: "a" }, form: { fname: "b" } },
      "fname",
      'Parameter "fname" is given more than once',
    ],
    ["format", { query: { format: "yaml" } }, "format", 'Invalid format "yaml": must be json or xml'],
  ];
  for (const [name, request, field, info] of cases) {
    await t.step(name, async () => {
      const before = await snapshot(w.kv);
      const r = await w.call("POST", "/api/customer/update", {
        query: { id, ...request.query },
        form: request.form,
      });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.body.success, 0);
      assert.equal(r.body.field, field, r.text);
      assert.ok(r.body.info.includes(field), r.body.info);
      if (info) assert.equal(r.body.info, info);
      assert.equal(await snapshot(w.kv), before);
    });
  }
  await t.step("malformed JSON body", async () => {
    const r = await w.app.request(`/api/customer/update?apikey=${w.key}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{nope",
    });
    assert.equal(r.status, 400);
    assert.deepEqual(await r.json(), { success: 0, info: "Invalid body: malformed JSON", field: "body" });
  });
  await t.step("nested JSON value", async () => {
    const r = await w.call("POST", "/api/customer/update", { json: { fname: { a: 1 } } });
    assert.equal(r.status, 400);
    assert.equal(r.body.field, "fname");
  });
  await t.step("body over the limit is 413", async () => {
    const r = await w.call("POST", "/api/customer/update", { form: { custom_information: "x".repeat(1_100_000) } });
    assert.equal(r.status, 413);
    assert.equal(r.body.success, 0);
  });
  await t.step("unknown endpoint is 404 in the envelope", async () => {
    const r = await w.call("GET", "/api/nothing");
    assert.equal(r.status, 404);
    assert.equal(r.body.success, 0);
  });
});
