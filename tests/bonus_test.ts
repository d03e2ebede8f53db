import assert from "node:assert/strict";
import { bonusKeys } from "../storage/bonuses.ts";
import { JSON_TYPE, pickBalance, type Reply, snapshot, type World, world, XML_TYPE } from "./kit.ts";

const NOW = Date.UTC(2024, 0, 2, 3, 4, 5);

/** Creates a customer and returns its id. */
async function customer(w: World, form: Record<string, string> = {}, key?: string): Promise<number> {
  const res = await w.call("POST", "/api/customer/update", { form: { fname: "Anna", ...form }, key: key ?? w.key });
  assert.equal(res.status, 200, res.text);
  return res.body.id;
}

/** Creates a bonus program and returns its id. */
async function program(w: World, name: string, key?: string): Promise<number> {
  const res = await w.call("POST", "/api/bonusprogram/update", { form: { name }, key: key ?? w.key });
  assert.equal(res.status, 200, res.text);
  return res.body.id;
}

function update(
  w: World,
  params: Record<string, string | number>,
  options: { key?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return w.call("POST", "/api/customer/updateBonus", { form: params, ...options });
}

/** A ledger entry as bonusHistory shows it. */
interface Transaction {
  transaction_id: number;
  amount: number;
  balance: number;
  order_id: string | null;
}

/** The whole ledger of a balance, newest first, read through bonusHistory. */
async function ledger(w: World, customerId: number, bonusId: number): Promise<Transaction[]> {
  const res = await w.call("GET", "/api/customer/bonusHistory", {
    query: { customer_id: customerId, bonus_id: bonusId, page_size: 1000 },
  });
  assert.equal(res.status, 200, res.text);
  return res.body.transactions;
}

Deno.test("GET|POST /api/customer/updateBonus adds, removes and overwrites", async (t) => {
  await using w = await world({ now: () => NOW });
  const c = await customer(w);
  const b = await program(w, "Points");

  await t.step("adds to a balance that never changed", async () => {
    const res = await update(w, { customer_id: c, bonus_id: b, amount: "100.50" });
    assert.equal(res.status, 200);
    assert.equal(res.type, JSON_TYPE);
    assert.deepEqual(res.body, {
      success: 1,
      customer_id: c,
      bonus_id: b,
      balance: 100.5,
      pending: 0,
      transaction_id: 1,
    });
  });

  await t.step("removes with a negative amount, from the query string too", async () => {
    const res = await w.call("GET", "/api/customer/updateBonus", {
      query: { customer_id: c, bonus_id: b, amount: "-0.5" },
    });
    assert.deepEqual(res.body, {
      success: 1,
      customer_id: c,
      bonus_id: b,
      balance: 100,
      pending: 0,
      transaction_id: 2,
    });
  });

  await t.step("overwrite sets the balance and records the difference", async () => {
    const res = await update(w, { customer_id: c, bonus_id: b, amount: 30, overwrite: "true", comment: " reset " });
    assert.deepEqual(res.body, { success: 1, customer_id: c, bonus_id: b, balance: 30, pending: 0, transaction_id: 3 });
    const [last] = await ledger(w, c, b);
    assert.deepEqual(last, {
      transaction_id: 3,
      customer_id: c,
      bonus_id: b,
      amount: -70,
      kind: "overwrite",
      source: "api",
      pending: 0,
      return_id: null,
      balance: 30,
      overwrite: 1,
      comment: "reset",
      order_id: null,
      created_date: "2024-01-02 03:04:05",
      created_by: 2,
    });
  });

  await t.step("a JSON body works, with order_id", async () => {
    const res = await w.call("POST", "/api/customer/updateBonus", {
      json: { customer_id: c, bonus_id: b, amount: 0.1, order_id: "ORD-7" },
    });
    assert.equal(res.body.balance, 30.1);
    assert.equal((await ledger(w, c, b))[0]!.order_id, "ORD-7");
  });

  await t.step("customer_external_id finds the customer; customer_id wins when both are given", async () => {
    const other = await customer(w, { external_id: "1C-42" });
    const byExternal = await update(w, { customer_external_id: "1C-42", bonus_id: b, amount: 5 });
    assert.deepEqual(byExternal.body, {
      success: 1,
      customer_id: other,
      bonus_id: b,
      balance: 5,
      pending: 0,
      transaction_id: 1,
    });
    const both = await update(w, { customer_id: c, customer_external_id: "1C-42", bonus_id: b, amount: 1 });
    assert.equal(both.body.customer_id, c);
    assert.equal(both.body.balance, 31.1);
  });

  await t.step("the XML reply", async () => {
    const res = await w.call("GET", "/api/customer/updateBonus", {
      query: { format: "xml", customer_id: c, bonus_id: b, amount: "-1.1" },
    });
    assert.equal(res.type, XML_TYPE);
    assert.equal(
      res.text,
      `<?xml version="1.0" encoding="UTF-8"?>\n<root>\n<success>1</success>\n<customer_id>${c}</customer_id>\n` +
        `<bonus_id>${b}</bonus_id>\n<balance>30</balance>\n<pending>0</pending>\n<transaction_id>6</transaction_id>\n</root>\n`,
    );
  });

  await t.step("the balance equals the sum of the ledger's deltas", async () => {
    const entries = await ledger(w, c, b);
    assert.deepEqual(entries.map((e) => e.amount), [-1.1, 1, 0.1, -70, -0.5, 100.5]);
    const cents = entries.reduce((sum, e) => sum + Math.round(e.amount * 100), 0);
    assert.equal(cents, 3000);
  });
});

Deno.test("updateBonus refuses a removal below zero and changes nothing", async () => {
  await using w = await world();
  const c = await customer(w);
  const b = await program(w, "Points");
  await update(w, { customer_id: c, bonus_id: b, amount: 20 });
  const before = await snapshot(w.kv);

  const res = await update(w, { customer_id: c, bonus_id: b, amount: -50, idempotency_key: "k1" });
  assert.equal(res.status, 409);
  assert.equal(res.type, JSON_TYPE);
  assert.deepEqual(res.body, {
    success: 0,
    info: "Cannot remove 50.00 bonus points: the balance is 20.00",
    field: "amount",
  });
  const overwrite = await update(w, { customer_id: c, bonus_id: b, amount: -1, overwrite: 1 });
  assert.equal(overwrite.status, 400);
  assert.deepEqual(overwrite.body, {
    success: 0,
    info: 'Invalid amount "-1.00": overwrite sets the balance, which cannot be negative',
    field: "amount",
  });
  const xml = await w.call("GET", "/api/customer/updateBonus", {
    query: { format: "xml", customer_id: c, bonus_id: b, amount: "-20.01" },
  });
  assert.equal(xml.status, 409);
  assert.equal(
    xml.text,
    `<?xml version="1.0" encoding="UTF-8"?>\n<root>\n<success>0</success>\n` +
      `<info>Cannot remove 20.01 bonus points: the balance is 20.00</info>\n<field>amount</field>\n</root>\n`,
  );
  assert.equal(await snapshot(w.kv), before);

  // A refused request leaves its idempotency key unused: the same request may succeed later.
  await update(w, { customer_id: c, bonus_id: b, amount: 40 });
  const later = await update(w, { customer_id: c, bonus_id: b, amount: -50, idempotency_key: "k1" });
  assert.equal(later.status, 200);
  assert.equal(later.body.balance, 10);
});

Deno.test("updateBonus is exact: 0.1 and 0.2 added 1000 times each make 300.00", async () => {
  await using w = await world();
  const c = await customer(w);
  const b = await program(w, "Points");
  for (let i = 0; i < 1000; i++) {
    for (const amount of ["0.1", "0.2"]) {
      const res = await update(w, { customer_id: c, bonus_id: b, amount });
      assert.equal(res.status, 200);
    }
  }
  const balance = await w.kv.get<{ balance: number; last_transaction_id: number }>(bonusKeys.balance("acme", c, b));
  assert.deepEqual(pickBalance(balance.value), { balance: 30000, last_transaction_id: 2000 });
  const read = await w.call("GET", "/api/customer", { query: { id: c, bonuses: 1 } });
  assert.deepEqual(read.body.customers[0].bonuses, [{
    bonus_id: b,
    bonus_name: "Points",
    balance: 300,
    pending: 0,
    next_expire_date: null,
    next_expire_amount: 0,
  }]);
  let sum = 0;
  for await (const e of w.kv.list<{ amount: number }>({ prefix: bonusKeys.ledger("acme", c, b) })) {
    sum += e.value.amount;
  }
  assert.equal(sum, 30000);
});

Deno.test("updateBonus with an idempotency key applies a request at most once", async (t) => {
  await using w = await world();
  const c = await customer(w);
  const b = await program(w, "Points");
  const params = { customer_id: c, bonus_id: b, amount: "10" };

  const first = await update(w, { ...params, idempotency_key: "order-1" });
  assert.deepEqual(first.body, { success: 1, customer_id: c, bonus_id: b, balance: 10, pending: 0, transaction_id: 1 });
  const after = await snapshot(w.kv);

  await t.step("a retry returns the first reply and changes nothing", async () => {
    const retries = [
      await update(w, { ...params, idempotency_key: "order-1" }),
      await update(w, { ...params, amount: "10.00" }, { headers: { "Idempotency-Key": "order-1" } }),
      await update(w, { ...params, amount: "+10,0", idempotency_key: "order-1", overwrite: "0" }, {
        headers: { "Idempotency-Key": "order-1" },
      }),
      await w.call("POST", "/api/customer/updateBonus", {
        json: { customer_id: c, bonus_id: b, amount: 10, idempotency_key: "order-1" },
      }),
    ];
    for (const res of retries) {
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, first.body);
    }
    assert.equal(await snapshot(w.kv), after);
  });

  await t.step("a replay is marked and can be read in the other format", async () => {
    const res = await w.app.request(
      `/api/customer/updateBonus?format=xml&apikey=${w.key}&customer_id=${c}&bonus_id=${b}&amount=10`,
      { headers: { "Idempotency-Key": "order-1" } },
    );
    assert.equal(res.headers.get("Idempotent-Replayed"), "true");
    assert.match(
      await res.text(),
      /<balance>10<\/balance>\n<pending>0<\/pending>\n<transaction_id>1<\/transaction_id>/,
    );
    const fresh = await w.app.request(
      `/api/customer/updateBonus?apikey=${w.key}&customer_id=${c}&bonus_id=${b}&amount=1`,
      { headers: { "Idempotency-Key": "order-2" } },
    );
    assert.equal(fresh.headers.get("Idempotent-Replayed"), null);
    assert.equal((await fresh.json()).balance, 11);
  });

  await t.step("the first reply comes back even after the balance moved on", async () => {
    const res = await update(w, { ...params, idempotency_key: "order-1" });
    assert.deepEqual(res.body, first.body);
  });

  await t.step("the same key with other parameters is 422 and changes nothing", async () => {
    const before = await snapshot(w.kv);
    const variants: Record<string, string | number>[] = [
      { ...params, amount: "10.01" },
      { ...params, amount: "-10" },
      { ...params, overwrite: 1 },
      { ...params, comment: "x" },
      { ...params, order_id: "x" },
      { customer_id: c, bonus_id: b + 1, amount: 10 },
      { customer_id: c + 1, bonus_id: b, amount: 10 },
    ];
    for (const v of variants) {
      const res = await update(w, { ...v, idempotency_key: "order-1" });
      assert.equal(res.status, 422, JSON.stringify(v));
      assert.deepEqual(res.body, {
        success: 0,
        info: 'Cannot update bonus: idempotency key "order-1" was already used with different parameters',
        field: "idempotency_key",
      });
    }
    assert.equal(await snapshot(w.kv), before);
  });

  await t.step("two different keys in header and parameter are refused", async () => {
    const res = await update(w, { ...params, idempotency_key: "a" }, { headers: { "Idempotency-Key": "b" } });
    assert.equal(res.status, 400);
    assert.equal(
      res.body.info,
      'Two different idempotency keys were sent: header "b" and idempotency_key "a"; send one',
    );
    const empty = await update(w, { ...params, idempotency_key: "" });
    assert.equal(empty.status, 400);
    assert.equal(empty.body.info, 'Invalid idempotency_key "": must not be empty');
  });

  await t.step("keys are kept with an expiry of at least 24 hours", async () => {
    const record = await w.kv.get<{ fingerprint: string }>(bonusKeys.idempotency("acme", "order-1"));
    assert.ok(record.value);
    assert.match(record.value.fingerprint, /^\["updateBonus",1,"customer_id",/);
  });

  await t.step("simultaneous requests with one key apply once", async () => {
    const res = await Promise.all(
      Array.from({ length: 20 }, () => update(w, { customer_id: c, bonus_id: b, amount: 5, idempotency_key: "burst" })),
    );
    for (const r of res) assert.deepEqual(r.body, res[0]!.body);
    const bad = await Promise.all(
      Array.from(
        { length: 10 },
        (_, i) => update(w, { customer_id: c, bonus_id: b, amount: i + 1, idempotency_key: "mixed" }),
      ),
    );
    assert.equal(bad.filter((r) => r.status === 200).length, 1);
    assert.equal(bad.filter((r) => r.status === 422).length, 9);
    const entries = await ledger(w, c, b);
    assert.equal(entries.length, 4);
  });
});

Deno.test("updateBonus: unknown customer or program is 404 naming the field", async () => {
  await using w = await world();
  const c = await customer(w, { external_id: "E-1" });
  const b = await program(w, "Points");
  const before = await snapshot(w.kv);
  const cases: [Record<string, string | number>, string, string][] = [
    [{ customer_id: 999, bonus_id: b, amount: 1 }, 'Customer "999" not found', "customer_id"],
    [
      { customer_external_id: "nope", bonus_id: b, amount: 1 },
      'Customer with external_id "nope" not found',
      "customer_external_id",
    ],
    [{ customer_id: c, bonus_id: 77, amount: 1 }, 'Bonus program "77" not found', "bonus_id"],
    [{ customer_id: 999, bonus_id: 77, amount: 1 }, 'Customer "999" not found', "customer_id"],
  ];
  for (const [params, info, field] of cases) {
    const res = await update(w, { ...params, idempotency_key: "k" });
    assert.equal(res.status, 404);
    assert.deepEqual(res.body, { success: 0, info, field });
    const history = await w.call("GET", "/api/customer/bonusHistory", {
      query: Object.fromEntries(Object.entries(params).filter(([k]) => k !== "amount")),
    });
    assert.equal(history.status, 404);
    assert.deepEqual(history.body, { success: 0, info, field });
  }
  assert.equal(await snapshot(w.kv), before);
});

Deno.test("updateBonus refuses malformed input with a 400 naming the field, and changes nothing", async () => {
  await using w = await world();
  const c = await customer(w);
  const b = await program(w, "Points");
  const before = await snapshot(w.kv);
  const cases: [Record<string, string | number>, string, string][] = [
    [{ amount: "1.005" }, "amount", 'Invalid amount "1.005": at most 2 decimal places'],
    [{ amount: "NaN" }, "amount", 'Invalid amount "NaN": must be a number like 123.45'],
    [{ amount: "Infinity" }, "amount", 'Invalid amount "Infinity": must be a number like 123.45'],
    [{ amount: "-Infinity" }, "amount", 'Invalid amount "-Infinity": must be a number like 123.45'],
    [{ amount: "" }, "amount", 'Invalid amount "": must not be empty'],
    [{ amount: "1e3" }, "amount", 'Invalid amount "1e3": must be a number like 123.45'],
    [{ amount: "abc" }, "amount", 'Invalid amount "abc": must be a number like 123.45'],
    [{ amount: "0x10" }, "amount", 'Invalid amount "0x10": must be a number like 123.45'],
    [{ amount: "1 000" }, "amount", 'Invalid amount "1 000": must be a number like 123.45'],
    [{ amount: "100000000000.01" }, "amount", 'Invalid amount "100000000000.01": too large'],
    [{ overwrite: "yes" }, "overwrite", 'Invalid overwrite "yes": must be 1, 0, true or false'],
    [
      { bonus_id: "x" },
      "bonus_id",
      `Invalid bonus_id "x": must be a whole number from 1 to ${Number.MAX_SAFE_INTEGER}`,
    ],
    [{ comment: "x".repeat(501) }, "comment", `Invalid comment "${"x".repeat(40)}…": at most 500 characters`],
    [{ order_id: "x".repeat(101) }, "order_id", `Invalid order_id "${"x".repeat(40)}…": at most 100 characters`],
    [{ points: 1 }, "points", 'Unknown parameter "points"'],
  ];
  for (const [patch, field, info] of cases) {
    const res = await update(w, { customer_id: c, bonus_id: b, amount: 1, ...patch });
    assert.equal(res.status, 400, JSON.stringify(patch));
    assert.deepEqual(res.body, { success: 0, info, field });
  }
  const missing: [Record<string, string | number>, string, string][] = [
    [{ bonus_id: b, amount: 1 }, "customer_id", 'Parameter "customer_id" or "customer_external_id" is required'],
    [{ customer_id: c, amount: 1 }, "bonus_id", 'Parameter "bonus_id" is required'],
    [{ customer_id: c, bonus_id: b }, "amount", 'Parameter "amount" is required'],
  ];
  for (const [params, field, info] of missing) {
    const res = await update(w, params);
    assert.equal(res.status, 400);
    assert.deepEqual(res.body, { success: 0, info, field });
  }
  const readOnly = await update(w, { customer_id: c, bonus_id: b, amount: 1 }, { key: w.readKey });
  assert.equal(readOnly.status, 403);
  assert.equal(await snapshot(w.kv), before);
});

Deno.test("bonus balances, ledgers and idempotency keys are per company", async () => {
  await using w = await world();
  const c = await customer(w);
  const b = await program(w, "Points");
  await update(w, { customer_id: c, bonus_id: b, amount: 10, idempotency_key: "same" });

  // globex has no customer or program yet: acme's ids mean nothing there.
  const foreign = await update(w, { customer_id: c, bonus_id: b, amount: 1 }, { key: w.otherKey });
  assert.equal(foreign.status, 404);
  assert.equal(foreign.body.info, `Customer "${c}" not found`);

  const gc = await customer(w, {}, w.otherKey);
  const gb = await program(w, "Globex points", w.otherKey);
  assert.equal(gc, c);
  assert.equal(gb, b);
  const own = await update(w, { customer_id: gc, bonus_id: gb, amount: 3, idempotency_key: "same" }, {
    key: w.otherKey,
  });
  assert.deepEqual(own.body, { success: 1, customer_id: gc, bonus_id: gb, balance: 3, pending: 0, transaction_id: 1 });

  const acme = await w.call("GET", "/api/customer", { query: { id: c, bonuses: 1 } });
  assert.deepEqual(acme.body.customers[0].bonuses, [{
    bonus_id: b,
    bonus_name: "Points",
    balance: 10,
    pending: 0,
    next_expire_date: null,
    next_expire_amount: 0,
  }]);
  const globex = await w.call("GET", "/api/customer", { query: { id: gc, bonuses: 1 }, key: w.otherKey });
  assert.deepEqual(globex.body.customers[0].bonuses, [{
    bonus_id: gb,
    bonus_name: "Globex points",
    balance: 3,
    pending: 0,
    next_expire_date: null,
    next_expire_amount: 0,
  }]);
  const history = await w.call("GET", "/api/customer/bonusHistory", {
    query: { customer_id: gc, bonus_id: gb },
    key: w.otherKey,
  });
  assert.deepEqual(history.body.transactions.map((t: { amount: number }) => t.amount), [3]);
});

Deno.test("GET /api/customer?bonuses=1 lists every program's balance per customer", async () => {
  await using w = await world({ now: () => NOW });
  const a = await customer(w, { fname: "A" });
  const b = await customer(w, { fname: "B" });

  const none = await w.call("GET", "/api/customer", { query: { bonuses: 1 } });
  assert.deepEqual(none.body.customers.map((x: { bonuses: unknown }) => x.bonuses), [[], []]);

  const p1 = await program(w, "Points");
  const p2 = await program(w, "Miles & <more>");
  await update(w, { customer_id: a, bonus_id: p2, amount: "12.5" });
  await update(w, { customer_id: b, bonus_id: p1, amount: "0.05" });

  const json = await w.call("GET", "/api/customer", { query: { bonuses: 1 } });
  assert.equal(json.status, 200);
  assert.deepEqual(json.body.customers.map((x: { id: number; bonuses: unknown }) => [x.id, x.bonuses]), [
    [a, [
      { bonus_id: p1, bonus_name: "Points", balance: 0, pending: 0, next_expire_date: null, next_expire_amount: 0 },
      {
        bonus_id: p2,
        bonus_name: "Miles & <more>",
        balance: 12.5,
        pending: 0,
        next_expire_date: null,
        next_expire_amount: 0,
      },
    ]],
    [b, [{
      bonus_id: p1,
      bonus_name: "Points",
      balance: 0.05,
      pending: 0,
      next_expire_date: null,
      next_expire_amount: 0,
    }, {
      bonus_id: p2,
      bonus_name: "Miles & <more>",
      balance: 0,
      pending: 0,
      next_expire_date: null,
      next_expire_amount: 0,
    }]],
  ]);
  const without = await w.call("GET", "/api/customer", { query: { id: a } });
  assert.equal("bonuses" in without.body.customers[0], false);

  const xml = await w.call("GET", "/api/customer", { query: { format: "xml", id: a, bonuses: 1 } });
  assert.equal(xml.type, XML_TYPE);
  assert.equal(
    xml.text,
    `<?xml version="1.0" encoding="UTF-8"?>
<root>
<success>1</success>
<type>customer</type>
<count>1</count>
<customers>
<customer>
<id>${a}</id>
<external_id/>
<fname>A</fname>
<lname/>
<mname/>
<age/>
<email/>
<phone/>
<gender/>
<custom_information/>
<birth_day/>
<birth_month/>
<birth_year/>
<register_date>2024-01-02 03:04:05</register_date>
<accumulated_sales>0</accumulated_sales>
<send_push>0</send_push>
<send_email>0</send_email>
<send_sms>0</send_sms>
<group_id/>
<group_name/>
<created_date>2024-01-02 03:04:05</created_date>
<created_by>2</created_by>
<last_update_date>2024-01-02 03:04:05</last_update_date>
<last_update_by>2</last_update_by>
<bonuses>
<bonus>
<bonus_id>${p1}</bonus_id>
<bonus_name>Points</bonus_name>
<balance>0</balance>
<pending>0</pending>
<next_expire_date/>
<next_expire_amount>0</next_expire_amount>
</bonus>
<bonus>
<bonus_id>${p2}</bonus_id>
<bonus_name>Miles &amp; &lt;more&gt;</bonus_name>
<balance>12.5</balance>
<pending>0</pending>
<next_expire_date/>
<next_expire_amount>0</next_expire_amount>
</bonus>
</bonuses>
</customer>
</customers>
</root>
`,
  );
});

Deno.test("GET /api/customer?bonuses=1 reads many customers' balances in batches", async () => {
  await using w = await world();
  const programs = [await program(w, "P1"), await program(w, "P2"), await program(w, "P3")];
  const ids: number[] = [];
  for (let i = 0; i < 25; i++) ids.push(await customer(w, { fname: `C${i}` }));
  for (const [i, id] of ids.entries()) {
    await update(w, { customer_id: id, bonus_id: programs[i % 3]!, amount: i + 1 });
  }
  let getManyCalls = 0;
  const getMany = w.kv.getMany.bind(w.kv);
  // Counts the store's round trips without changing what they do.
  w.kv.getMany = ((keys: Deno.KvKey[], options?: { consistency?: Deno.KvConsistencyLevel }) => {
    getManyCalls++;
    return getMany(keys, options);
  }) as typeof w.kv.getMany;
  const res = await w.call("GET", "/api/customer", { query: { bonuses: 1, page_size: 100 } });
  w.kv.getMany = getMany;
  assert.equal(res.body.count, 25);
  for (const [i, cu] of res.body.customers.entries()) {
    const expected = programs.map((p, j) => ({
      bonus_id: p,
      bonus_name: `P${j + 1}`,
      balance: j === i % 3 ? i + 1 : 0,
      pending: 0,
      next_expire_date: null,
      next_expire_amount: 0,
    }));
    assert.deepEqual(cu.bonuses, expected);
  }
  // 25 customers x 3 programs = 75 balances: 8 getMany calls of at most 10 keys, plus the group lookup.
  assert.ok(getManyCalls <= 10, `${getManyCalls} getMany calls`);
});

Deno.test("GET /api/customer/bonusHistory pages the ledger newest first", async (t) => {
  await using w = await world({ now: () => NOW });
  const c = await customer(w, { external_id: "E-9" });
  const b = await program(w, "Points");
  for (let i = 1; i <= 7; i++) await update(w, { customer_id: c, bonus_id: b, amount: i });
  const ids = (r: Reply) => r.body.transactions.map((x: { transaction_id: number }) => x.transaction_id);

  await t.step("the default page is the newest 50", async () => {
    const res = await w.call("GET", "/api/customer/bonusHistory", {
      query: { customer_external_id: "E-9", bonus_id: b },
    });
    assert.equal(res.status, 200);
    assert.equal(res.type, JSON_TYPE);
    const { transactions, ...rest } = res.body;
    assert.deepEqual(rest, {
      success: 1,
      type: "transaction",
      customer_id: c,
      bonus_id: b,
      balance: 28,
      pending: 0,
      next_expire_date: null,
      next_expire_amount: 0,
      count: 7,
      page: 1,
      page_size: 50,
      total_count: 7,
      next_cursor: null,
    });
    assert.deepEqual(transactions.map((x: { transaction_id: number }) => x.transaction_id), [7, 6, 5, 4, 3, 2, 1]);
    assert.deepEqual(transactions.map((x: { balance: number }) => x.balance), [28, 21, 15, 10, 6, 3, 1]);
  });

  await t.step("page numbers", async () => {
    const pages = [];
    for (let page = 1; page <= 4; page++) {
      pages.push(
        ids(
          await w.call("GET", "/api/customer/bonusHistory", {
            query: { customer_id: c, bonus_id: b, page, page_size: 3 },
          }),
        ),
      );
    }
    assert.deepEqual(pages, [[7, 6, 5], [4, 3, 2], [1], []]);
  });

  await t.step("a cursor continues where the page ended, unmoved by new transactions", async () => {
    const first = await w.call("GET", "/api/customer/bonusHistory", {
      query: { customer_id: c, bonus_id: b, page_size: 3 },
    });
    assert.deepEqual(ids(first), [7, 6, 5]);
    await update(w, { customer_id: c, bonus_id: b, amount: 100 });
    const seen = [...ids(first)];
    let cursor = first.body.next_cursor;
    while (cursor) {
      const next = await w.call("GET", "/api/customer/bonusHistory", {
        query: { customer_id: c, bonus_id: b, page_size: 3, cursor },
      });
      assert.equal(next.body.page, undefined);
      seen.push(...ids(next));
      cursor = next.body.next_cursor;
    }
    assert.deepEqual(seen, [7, 6, 5, 4, 3, 2, 1]);
  });

  await t.step("XML", async () => {
    const res = await w.call("GET", "/api/customer/bonusHistory", {
      query: { format: "xml", customer_id: c, bonus_id: b, page_size: 1 },
    });
    assert.equal(res.type, XML_TYPE);
    assert.equal(
      res.text,
      `<?xml version="1.0" encoding="UTF-8"?>
<root>
<success>1</success>
<type>transaction</type>
<customer_id>${c}</customer_id>
<bonus_id>${b}</bonus_id>
<balance>128</balance>
<pending>0</pending>
<next_expire_date/>
<next_expire_amount>0</next_expire_amount>
<count>1</count>
<transactions>
<transaction>
<transaction_id>8</transaction_id>
<customer_id>${c}</customer_id>
<bonus_id>${b}</bonus_id>
<kind>adjust</kind>
<source>api</source>
<amount>100</amount>
<balance>128</balance>
<pending>0</pending>
<overwrite>0</overwrite>
<comment/>
<order_id/>
<return_id/>
<created_date>2024-01-02 03:04:05</created_date>
<created_by>2</created_by>
</transaction>
</transactions>
<page>1</page>
<page_size>1</page_size>
<total_count>8</total_count>
<next_cursor>${res.text.match(/<next_cursor>(.+)<\/next_cursor>/)?.[1]}</next_cursor>
</root>
`,
    );
  });

  await t.step("a balance never changed has an empty history; read keys may read it", async () => {
    const other = await customer(w);
    const res = await w.call("GET", "/api/customer/bonusHistory", {
      query: { customer_id: other, bonus_id: b },
      key: w.readKey,
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.balance, 0);
    assert.deepEqual(res.body.transactions, []);
    assert.equal(res.body.total_count, 0);
  });

  await t.step("bad paging is refused", async () => {
    const cases: [Record<string, string | number>, string, string][] = [
      [
        { page: 1, cursor: "YTM" },
        "cursor",
        'Parameters "page" and "cursor" cannot be combined: use either page or cursor, not both',
      ],
      [{ cursor: "zzz" }, "cursor", 'Invalid cursor "zzz": not a cursor this service gave out'],
      [{ page_size: 1001 }, "page_size", 'Invalid page_size "1001": must be a whole number from 1 to 1000'],
      [{ page: 0 }, "page", 'Invalid page "0": must be a whole number from 1 to 1000000000'],
    ];
    for (const [params, field, info] of cases) {
      const res = await w.call("GET", "/api/customer/bonusHistory", {
        query: { customer_id: c, bonus_id: b, ...params },
      });
      assert.equal(res.status, 400, JSON.stringify(params));
      assert.deepEqual(res.body, { success: 0, info, field });
    }
    const post = await w.call("POST", "/api/customer/bonusHistory", { form: { customer_id: c, bonus_id: b } });
    assert.equal(post.status, 405, "bonusHistory takes GET only");
  });
});
