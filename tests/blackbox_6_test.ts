/**
 * Black-box review of the read-path round 3 (issue 13): card index entries naming the owner, customer ids from
 * reserved blocks (taken back after these tests: ids are in commit order again), bucket sums brought up to date from
 * the tail, and the point-lookup fast path. "fixed" tests failed on the code they were written against; "held" tests
 * are attacks that held.
 */
import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../config.ts";
import { createApp } from "../routes/app.ts";
import { cardKeys } from "../storage/keys.ts";
import { verifyStore } from "../storage/verify.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { rawInsertCustomers } from "../storage/seed.ts";
import { blankCustomer } from "../domain/customer.ts";
import { uidToEan13 } from "../domain/ean13.ts";
import { assertJson, randomCustomer, request, runTask, startServer, tempDir, type World, world } from "./kit.ts";

const CID = "acme";

async function made(w: World, form: Record<string, string | number>): Promise<number> {
  return assertJson(await w.call("POST", "/api/customer/update", { form }), 200).id as number;
}

async function ids(w: World, query: Record<string, string | number>): Promise<number[]> {
  const body = assertJson(await w.call("GET", "/api/customer", { query }), 200);
  return body.customers.map((c: { id: number }) => c.id);
}

async function defects(kv: Deno.Kv, repair = false): Promise<string[]> {
  const found: string[] = [];
  await verifyStore(kv, {
    repair,
    onFinding: (f) => f.severity === "defect" && found.push(`${f.check}: ${f.message}`),
  });
  return found;
}

Deno.test("fixed: a create after a lost create takes a lower id than customers made before it: a page walk repeats a customer", async () => {
  await using w = await world();
  const taken = "+79005550001";
  await made(w, randomCustomer({ phone: taken }));
  // A burst where one create loses on a taken phone: it gives its reserved id back to the block.
  const burst = await Promise.all([
    w.call("POST", "/api/customer/update", { form: randomCustomer() }),
    w.call("POST", "/api/customer/update", { form: randomCustomer({ phone: taken }) }),
    w.call("POST", "/api/customer/update", { form: randomCustomer() }),
    w.call("POST", "/api/customer/update", { form: randomCustomer() }),
  ]);
  assert.deepEqual(burst.map((r) => r.status), [200, 409, 200, 200]);
  const before = await ids(w, {});
  // A till walks the list by pages of one while a new customer is added near the end of the walk.
  const seen: number[] = [];
  for (let page = 1; page <= before.length + 1; page++) {
    seen.push(...await ids(w, { page, page_size: 1 }));
    if (page === before.length - 1) await made(w, randomCustomer());
  }
  const after = await ids(w, {});
  for (const id of before) {
    assert.equal(seen.filter((s) => s === id).length, 1, `before ${before}, after ${after}: walk saw ${seen}`);
  }
});

/** The customers a GET finds, as ids, with the reply's count. */
async function found(w: World, query: Record<string, string | number>, key = w.key) {
  const body = assertJson(await w.call("GET", "/api/customer", { query, key }), 200);
  return { count: body.count as number, ids: body.customers.map((c: { id: number }) => c.id) as number[] };
}

Deno.test("held: the fast path answers odd, repeated, prototype-named and cross-company lookups as the generic path", async (t) => {
  await using w = await world();
  const generic = createApp({
    kv: w.kv,
    config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false },
    fastPaths: false,
  });
  const anna = await made(w, randomCustomer({ phone: "+79001112233", email: "anna@example.com", external_id: "A-1" }));
  const boris = await made(w, randomCustomer({ phone: "+79001112244" }));
  const card = (query: Record<string, string | number>, form: Record<string, string | number>) =>
    w.call("POST", "/api/customer/insertCard", { query, form });
  assertJson(await card({ uid: "100500" }, { barcode: "4600682003144", customer_id: anna }), 200);
  assertJson(await card({ uid: "100501" }, { barcode: "2000000000015" }), 200); // no owner
  assertJson(await card({ uid: "100502" }, { barcode: "2000000000022", customer_id: boris, status: "BLOCKED" }), 200);
  // A bare-id entry, as a store written before the owner was named holds.
  const old = await w.kv.get<[number, number]>(cardKeys.byUid(CID, "100502"));
  await w.kv.set(cardKeys.byUid(CID, "100502"), old.value![0]);
  // Company globex: the same phone and a card with anna's barcode, owned by its own customer.
  const other = assertJson(
    await w.call("POST", "/api/customer/update", { key: w.otherKey, form: { fname: "G", phone: "+79001112233" } }),
    200,
  ).id;
  assertJson(
    await w.call("POST", "/api/customer/insertCard", {
      key: w.otherKey,
      query: { uid: "900" },
      form: { barcode: "4600682003144", customer_id: other },
    }),
    200,
  );
  const raw: string[] = [
    `id=${anna}&id=${anna}`,
    `id=${anna}&id=${boris}`,
    `card_barcode=4600682003144&card_barcode=4600682003144`,
    `__proto__=1`,
    `constructor=1`,
    `toString=1`,
    `hasOwnProperty=${anna}`,
    `id=${anna}&__proto__=1`,
    `uid=100501`,
    `uid=100502`,
    `card_barcode=2000000000022`,
    `card_barcode=%204600682003144%20`,
    `card_barcode=4600682003145`,
    `uid=0100500`,
    `uid=100500.0`,
    `phone=%2B7%20900%20111%2022%2033`,
    `phone=89001112233`,
    `email=ANNA%40example.com%20`,
    `external_id=a-1`,
    `external_id=%20A-1`,
    `id=${anna}%00`,
    `id=1e0`,
    `id=-1`,
    `id=${"9".repeat(30)}`,
    `id`,
    `=1`,
    `id=${anna}&format=xml&format=json`,
    `card_barcode=%FF`,
    `cards=1&id=${anna}`,
    `bonuses=0&uid=100500`,
    `with_phone=1&phone=89001112233`,
    `page=1&uid=100500`,
  ];
  for (const key of [w.key, w.otherKey, w.readKey]) {
    for (const q of raw) {
      for (const format of ["", "&format=xml"]) {
        await t.step(`${key === w.otherKey ? "globex" : "acme"} ${q}${format}`, async () => {
          const url = `/api/customer?${q}${format}&apikey=${key}`;
          const fast = await w.app.request(url);
          const slow = await generic.request(url);
          assert.equal(fast.status, slow.status);
          assert.equal(fast.headers.get("content-type"), slow.headers.get("content-type"));
          assert.equal(await fast.text(), await slow.text());
        });
      }
    }
  }
  await t.step("globex never sees acme's customers by card barcode, phone or id", async () => {
    assert.deepEqual((await found(w, { card_barcode: "4600682003144" }, w.otherKey)).ids, [other]);
    assert.deepEqual((await found(w, { phone: "+79001112233" }, w.otherKey)).ids, [other]);
    assert.deepEqual((await found(w, { id: anna }, w.otherKey)).ids, anna === other ? [other] : []);
    assert.deepEqual((await found(w, { uid: "100500" }, w.otherKey)).ids, []);
    assert.deepEqual((await found(w, { card_barcode: "4600682003144" })).ids, [anna]);
  });
});

Deno.test("held: owner changes racing lookups by barcode and uid only ever name an owner of the moment", async () => {
  await using w = await world();
  const a = await made(w, randomCustomer());
  const b = await made(w, randomCustomer());
  const never = await made(w, randomCustomer());
  assertJson(
    await w.call("POST", "/api/customer/insertCard", {
      query: { uid: "555", external_id: "E-555" },
      form: { barcode: "4600682003144", customer_id: a },
    }),
    200,
  );
  const owners = [b, "", a, b, "", a, b, a, "", b];
  const moves = (async () => {
    for (const owner of owners) {
      const r = await w.call("POST", "/api/customer/updateCard", {
        query: { external_id: "E-555" },
        form: { customer_id: owner },
      });
      assertJson(r, 200);
    }
  })();
  const seen = new Set<number>();
  const looks = (async () => {
    for (let i = 0; i < 60; i++) {
      const [byBarcode, byUid, purchase] = await Promise.all([
        found(w, { card_barcode: "4600682003144" }),
        found(w, { uid: "555" }),
        found(w, { uid: "555", cards: 1 }),
      ]);
      for (const r of [byBarcode, byUid, purchase]) {
        assert.ok(r.ids.length <= 1 && r.count === r.ids.length);
        r.ids.forEach((id) => seen.add(id));
      }
    }
  })();
  await Promise.all([moves, looks]);
  assert.ok(!seen.has(never), "a customer who never owned the card was named");
  for (const id of seen) assert.ok(id === a || id === b);
  assert.deepEqual((await found(w, { card_barcode: "4600682003144" })).ids, [b]);
  assert.deepEqual((await found(w, { uid: "555" })).ids, [b]);
  assert.deepEqual(await defects(w.kv), []);
  // Delete: no owner by any lookup, and no entry left behind.
  assertJson(await w.call("POST", "/api/customer/deleteCard", { query: { uid: "555" } }), 200);
  assert.deepEqual((await found(w, { card_barcode: "4600682003144" })).ids, []);
  assert.deepEqual((await found(w, { uid: "555" })).ids, []);
  assert.deepEqual(await defects(w.kv), []);
});

Deno.test("held: bare-id card entries still read, an owner change rewrites them, verify reports and repairs the rest", async () => {
  await using w = await world();
  const a = await made(w, randomCustomer());
  const b = await made(w, randomCustomer());
  for (const [uid, barcode] of [["1", "4600682003144"], ["2", "2000000000015"]]) {
    assertJson(
      await w.call("POST", "/api/customer/insertCard", {
        query: { uid: uid!, external_id: `X${uid}` },
        form: { barcode: barcode!, customer_id: a },
      }),
      200,
    );
  }
  for (const [uid, barcode] of [["1", "4600682003144"], ["2", "2000000000015"]]) {
    for (
      const key of [cardKeys.byUid(CID, uid!), cardKeys.byBarcode(CID, barcode!), cardKeys.byExternalId(CID, `X${uid}`)]
    ) {
      const e = await w.kv.get<[number, number]>(key);
      await w.kv.set(key, e.value![0]);
    }
  }
  assert.deepEqual((await found(w, { card_barcode: "4600682003144" })).ids, [a]);
  assert.deepEqual((await found(w, { uid: "2" })).ids, [a]);
  assertJson(await w.call("POST", "/api/customer/updateCard", { query: { uid: "1" }, form: { customer_id: b } }), 200);
  assert.deepEqual((await found(w, { card_barcode: "4600682003144" })).ids, [b]);
  assert.deepEqual((await found(w, { uid: "1" })).ids, [b]);
  assert.equal((await defects(w.kv)).filter((d) => d.startsWith("index_value")).length, 3);
  await defects(w.kv, true);
  assert.deepEqual(await defects(w.kv), []);
  assert.deepEqual((await found(w, { card_barcode: "2000000000015" })).ids, [a]);
});

/** Every customer of a list (no paging: whole or streamed), in id order. */
async function wholeList(w: World, filter: Record<string, string | number>): Promise<number[]> {
  return (await found(w, filter)).ids;
}

/** Checks every page of a list at one page size against the whole list, with count and total_count. */
async function checkPages(w: World, filter: Record<string, string | number>, pageSize: number, label: string) {
  const truth = await wholeList(w, filter);
  const pages = Math.ceil(truth.length / pageSize) + 1;
  for (let page = 1; page <= pages; page++) {
    const body = assertJson(
      await w.call("GET", "/api/customer", { query: { ...filter, page, page_size: pageSize } }),
      200,
    );
    const got = body.customers.map((c: { id: number }) => c.id);
    const want = truth.slice((page - 1) * pageSize, page * pageSize);
    assert.deepEqual(got, want, `${label} ${JSON.stringify(filter)} page ${page} of ${pageSize}`);
    assert.equal(body.count, want.length, `${label}: count`);
    assert.equal(body.total_count, truth.length, `${label}: total_count`);
  }
}

Deno.test("held: pages at every offset stay exact through creates at the tail, moves between lists and bursts", async (t) => {
  await using w = await world();
  const all: number[] = [];
  const create = async (withPhone: boolean, withEmail = true) => {
    const form = randomCustomer();
    if (!withPhone) form.phone = "";
    if (!withEmail) form.email = "";
    const id = await made(w, form);
    all.push(id);
    return id;
  };
  // 1,100 customers over three buckets, every third without a phone, created eight at a time.
  for (let i = 0; i < 1100; i += 8) {
    await Promise.all(Array.from({ length: 8 }, (_, j) => create((i + j) % 3 !== 0, (i + j) % 5 !== 0)));
  }
  const filters: Record<string, number>[] = [{}, { with_phone: 1 }, { with_phone: 0 }, { with_email: 0 }];
  const check = async (label: string) => {
    for (const filter of filters) {
      for (const size of [200, 97]) await checkPages(w, filter, size, label);
    }
  };
  const setPhone = async (id: number, phone: string) =>
    assertJson(await w.call("POST", "/api/customer/update", { query: { id }, form: { phone } }), 200);
  await t.step("seeded", () => check("seeded"));
  await t.step("one create with a phone, one without", async () => {
    await create(true);
    await create(false);
    await check("tail creates");
  });
  await t.step("a phone cleared in the first bucket, set in the second", async () => {
    await setPhone(all[4]!, "");
    await setPhone(all[600]!, "");
    await setPhone(all[3]!, randomCustomer().phone as string);
    await check("moves");
  });
  await t.step("creates that start a new bucket, then a move in it", async () => {
    sort();
    while (Math.max(...all) < 1498) await create(all.length % 2 === 0);
    await check("bucket end");
    await create(true);
    await checkPages(w, { with_phone: 1 }, 200, "at the bucket's edge");
    await create(false);
    await create(true);
    await create(true);
    await check("new bucket");
    await setPhone(all.at(-1)!, "");
    await setPhone(all.at(-2)!, randomCustomer().phone as string);
    await check("move in the new bucket");
  });
  await t.step("a burst of creates beside moves, then pages read between creates", async () => {
    await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => create(i % 2 === 0)),
      setPhone(all[10]!, ""),
      setPhone(all[700]!, randomCustomer().phone as string),
    ]);
    await check("burst");
    for (let i = 0; i < 3; i++) {
      await create(true);
      await checkPages(w, { with_phone: 1 }, 200, `create ${i}`);
    }
    await check("after");
  });
  function sort() {
    all.sort((x, y) => x - y);
  }
  assert.deepEqual(await defects(w.kv), []);
});

/** Creates `n` customers against a server, `parallel` at a time; their ids by external id (only those acknowledged). */
async function createBurst(
  base: string,
  key: string,
  options: { n: number; parallel: number; tag: string; acked: Map<string, number> },
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < options.n) {
      const ext = `${options.tag}-${next++}`;
      try {
        const r = await request(base, "POST", "/api/customer/update", {
          key,
          form: { fname: "P", external_id: ext, ...(next % 2 ? { phone: randomCustomer().phone as string } : {}) },
        });
        if (r.status === 200) options.acked.set(ext, r.body.id);
      } catch {
        return; // the server went away
      }
    }
  };
  await Promise.all(Array.from({ length: options.parallel }, worker));
}

/** Every customer of the store through a server: whole list, and a walk of pages of 7; each id must come once. */
async function checkStoreThrough(base: string, key: string, acked: Map<string, number>): Promise<void> {
  const whole = await request(base, "GET", "/api/customer", { key });
  const ids: number[] = whole.body.customers.map((c: { id: number }) => c.id);
  assert.equal(whole.body.count, ids.length);
  assert.equal(new Set(ids).size, ids.length, "duplicate ids in the whole list");
  const byExt = new Map<string, number>(
    whole.body.customers.map((c: { id: number; external_id: string }) => [c.external_id, c.id]),
  );
  for (const [ext, id] of acked) assert.equal(byExt.get(ext), id, `acknowledged ${ext} is not customer ${id}`);
  const walked: number[] = [];
  for (let page = 1; page <= Math.ceil(ids.length / 7); page++) {
    const r = await request(base, "GET", "/api/customer", { key, query: { page, page_size: 7 } });
    assert.equal(r.body.total_count, ids.length);
    walked.push(...r.body.customers.map((c: { id: number }) => c.id));
  }
  assert.deepEqual(walked, ids);
}

Deno.test({
  name: "held: two server processes on one store, one killed -9 mid-burst and restarted: unique ids, none reused",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir("bb6_");
    const kvPath = `${dir.path}/store.kv`;
    const setup = await Deno.openKv(kvPath);
    const key = (await createApiKey(setup, { companyId: CID, userId: 2, access: "write", now: Date.now() })).key;
    setup.close();
    await using one = startServer({ kvPath });
    let two = startServer({ kvPath });
    try {
      await Promise.all([one.ready(key), two.ready(key)]);
      const acked = new Map<string, number>();
      await Promise.all([
        createBurst(one.base, key, { n: 80, parallel: 8, tag: "one", acked }),
        createBurst(two.base, key, { n: 80, parallel: 8, tag: "two", acked }),
      ]);
      assert.equal(acked.size, 160);
      await checkStoreThrough(one.base, key, acked);
      // A burst on both, the second server killed -9 once some of its creates are acknowledged.
      const before = acked.size;
      const burst = Promise.all([
        createBurst(one.base, key, { n: 60, parallel: 8, tag: "one-b", acked }),
        createBurst(two.base, key, { n: 400, parallel: 8, tag: "two-b", acked }),
      ]);
      while (acked.size < before + 40) await new Promise((r) => setTimeout(r, 5));
      await two.stop("SIGKILL");
      await burst;
      two = startServer({ kvPath, port: two.port });
      await two.ready(key);
      const afterCrash = new Set(acked.values());
      const fresh = new Map<string, number>();
      await Promise.all([
        createBurst(one.base, key, { n: 40, parallel: 8, tag: "one-c", acked: fresh }),
        createBurst(two.base, key, { n: 40, parallel: 8, tag: "two-c", acked: fresh }),
      ]);
      assert.equal(fresh.size, 80);
      for (const id of fresh.values()) assert.ok(!afterCrash.has(id), `id ${id} given again after the crash`);
      for (const [k, v] of fresh) acked.set(k, v);
      await checkStoreThrough(two.base, key, acked);
    } finally {
      await two.stop();
    }
    await one.stop();
    const kv = await Deno.openKv(kvPath);
    try {
      assert.deepEqual(await defects(kv), []);
    } finally {
      kv.close();
    }
  },
});

Deno.test("fixed: two processes on one store: a create on one takes an id below the other's customers, a page walk repeats one", async () => {
  await using w = await world();
  // A second app on the same store: its own Store, so its own id blocks, as a second process (or worker) has.
  const second = createApp({ kv: w.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  const burst = (app: typeof second) =>
    Promise.all(
      Array.from({ length: 6 }, () =>
        request(app, "POST", "/api/customer/update", { key: w.key, form: randomCustomer() })
          .then((r) => assertJson(r, 200).id as number)),
    );
  const first = await burst(w.app);
  const other = await burst(second);
  const before = await ids(w, {});
  assert.equal(before.length, first.length + other.length);
  // A till walks the list by pages of 2; the first app adds one customer alone when the walk is near the end.
  const seen: number[] = [];
  const pages = Math.ceil(before.length / 2) + 1;
  let added = 0;
  for (let page = 1; page <= pages; page++) {
    seen.push(...await ids(w, { page, page_size: 2 }));
    if (page === pages - 2) added = await made(w, randomCustomer());
  }
  for (const id of before) {
    assert.equal(seen.filter((s) => s === id).length, 1, `before ${before}, added ${added}: walk saw ${seen}`);
  }
});

Deno.test("held: imports of customers with cards and of cards moving owners keep lookups by card on the owner", async () => {
  await using w = await world();
  const ndjson = (rows: Record<string, string>[]) =>
    rows.map((values, i) => JSON.stringify({ line: i + 1, values })).join("\n") + "\n";
  const post = async (type: string, rows: Record<string, string>[]) => {
    const r = await w.call("POST", "/api/import", {
      query: { type },
      body: ndjson(rows),
      headers: { "content-type": "application/x-ndjson" },
    });
    const body = assertJson(r, 200);
    for (const row of body.results) assert.notEqual(row.status, "rejected", JSON.stringify(row));
  };
  await post("customers", [
    { external_id: "c1", fname: "A", card_uid: "7001", card_barcode: "4600682003144" },
    { external_id: "c2", fname: "B", card_uid: "7002" },
    { external_id: "c3", fname: "C" },
  ]);
  const idOf = async (ext: string) => (await found(w, { external_id: ext })).ids[0]!;
  const [c1, c2, c3] = [await idOf("c1"), await idOf("c2"), await idOf("c3")];
  assert.deepEqual((await found(w, { card_barcode: "4600682003144" })).ids, [c1]);
  assert.deepEqual((await found(w, { uid: "7002" })).ids, [c2]);
  // Cards file: card 7001 moves to c3, card 7002 to c1, a new card to c2.
  await post("cards", [
    { uid: "7001", customer_external_id: "c3" },
    { uid: "7002", customer_external_id: "c1" },
    { uid: "7003", barcode: "2000000000015", customer_external_id: "c2" },
  ]);
  assert.deepEqual((await found(w, { card_barcode: "4600682003144" })).ids, [c3]);
  assert.deepEqual((await found(w, { uid: "7001" })).ids, [c3]);
  assert.deepEqual((await found(w, { uid: "7002" })).ids, [c1]);
  assert.deepEqual((await found(w, { card_barcode: "2000000000015" })).ids, [c2]);
  const program = assertJson(await w.call("POST", "/api/bonusprogram/update", { form: { name: "Points" } }), 200).id;
  const bought = await w.call("POST", "/api/purchase", {
    form: { card_barcode: "4600682003144", bonus_id: program, order_id: "P-1", amount: "10.00" },
  });
  assert.equal(assertJson(bought, 200).customer_id, c3);
  assert.deepEqual(await defects(w.kv), []);
});

Deno.test({
  name: "held: deno task verify reports bare-id card entries and --repair rewrites them beside a server moving owners",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir("bb6_");
    const kvPath = `${dir.path}/store.kv`;
    const kv = await Deno.openKv(kvPath);
    try {
      const key = (await createApiKey(kv, { companyId: CID, userId: 2, access: "write", now: Date.now() })).key;
      await using server = startServer({ kvPath });
      await server.ready(key);
      const call = (
        path: string,
        options: { query?: Record<string, string | number>; form?: Record<string, string | number> },
      ) =>
        request(server.base, path.startsWith("GET ") ? "GET" : "POST", path.replace(/^GET /, ""), { key, ...options });
      const owners: number[] = [];
      for (let i = 0; i < 3; i++) {
        owners.push(assertJson(await call("/api/customer/update", { form: { fname: `O${i}` } }), 200).id);
      }
      const uids = Array.from({ length: 20 }, (_, i) => String(9000 + i));
      for (const [i, uid] of uids.entries()) {
        assertJson(
          await call("/api/customer/insertCard", { query: { uid }, form: { customer_id: owners[i % 3]! } }),
          200,
        );
      }
      // Every card's entries back to the bare card id, as an older store holds them.
      let rewritten = 0;
      for (const prefix of [cardKeys.byUid(CID, "").slice(0, -1), cardKeys.byBarcode(CID, "").slice(0, -1)]) {
        for await (const e of kv.list<[number, number]>({ prefix })) {
          await kv.set(e.key, e.value[0]);
          rewritten++;
        }
      }
      assert.equal(rewritten, 40);
      const ownerOf = async (uid: string) => {
        const r = assertJson(await call("GET /api/customer", { query: { uid } }), 200);
        return r.customers.map((c: { id: number }) => c.id);
      };
      assert.deepEqual(await ownerOf("9004"), [owners[1]]);
      const first = await runTask("verify", [], { kvPath });
      assert.equal(first.code, 1, first.out + first.err);
      assert.match(first.out, /bare card id/);
      // Owners move through the server while the repair runs.
      let moving = true;
      const moves = (async () => {
        for (let n = 0; moving || n < 20; n++) {
          const uid = uids[n % uids.length]!;
          assertJson(
            await call("/api/customer/updateCard", { query: { uid }, form: { customer_id: owners[n % 3]! } }),
            200,
          );
        }
      })();
      const repair = await runTask("verify", ["--repair"], { kvPath });
      moving = false;
      await moves;
      // A repair that lost to a concurrent owner change says so (conflict, exit 1); a second run finds it clean.
      const lines = repair.out.split("\n").filter((l) => l.includes(" defect "));
      assert.ok(lines.every((l) => /\[(repaired|conflict)\]$/.test(l)), repair.out);
      assert.equal(repair.code, lines.every((l) => l.endsWith("[repaired]")) ? 0 : 1, repair.out + repair.err);
      const again = await runTask("verify", ["--repair"], { kvPath });
      assert.equal(again.code, 0, again.out + again.err);
      const after = await runTask("verify", [], { kvPath });
      assert.equal(after.code, 0, after.out + after.err);
      for (const uid of uids) {
        // The card's own record (GET /api/card reads it) against the owner named by the index entry.
        const card = assertJson(await call("GET /api/card", { query: { uid } }), 200);
        assert.deepEqual(await ownerOf(uid), [card.card.customer_id], `card ${uid}`);
      }
    } finally {
      kv.close();
    }
  },
});

Deno.test({
  name: "held: a server's cached page sums stay exact while another server on the store creates and moves customers",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir("bb6_");
    const kvPath = `${dir.path}/store.kv`;
    const kv = await Deno.openKv(kvPath);
    const now = Date.now();
    await rawInsertCustomers(
      kv,
      CID,
      Array.from({ length: 1480 }, (_, i) => ({
        ...blankCustomer(i + 1, { now, userId: 2 }),
        fname: `C${i + 1}`,
        phone: (i + 1) % 3 ? `79${1e8 + i + 1}` : null,
      })),
    );
    const key = (await createApiKey(kv, { companyId: CID, userId: 2, access: "write", now })).key;
    kv.close();
    await using reader = startServer({ kvPath });
    await using writer = startServer({ kvPath });
    await Promise.all([reader.ready(key), writer.ready(key)]);
    const get = async (base: string, query: Record<string, string | number>) =>
      (await request(base, "GET", "/api/customer", { key, query })).body;
    const check = async (label: string) => {
      for (const filter of [{ with_phone: 1 }, { with_phone: 0 }, {}] as Record<string, number>[]) {
        const truth = (await get(writer.base, filter)).customers.map((c: { id: number }) => c.id);
        for (const page of [1, 2, 4, 6, 7, 8, 9]) {
          const body = await get(reader.base, { ...filter, page, page_size: 200 });
          assert.deepEqual(
            body.customers.map((c: { id: number }) => c.id),
            truth.slice((page - 1) * 200, page * 200),
            `${label} ${JSON.stringify(filter)} page ${page}`,
          );
          assert.equal(body.total_count, truth.length, `${label} total_count`);
        }
      }
    };
    const write = (query: Record<string, string | number>, form: Record<string, string | number>) =>
      request(writer.base, "POST", "/api/customer/update", { key, query, form }).then((r) => assertJson(r, 200).id);
    await check("seeded");
    for (let i = 0; i < 30; i++) await write({}, { fname: "tail", ...(i % 2 ? { phone: `79${2e8 + i}` } : {}) });
    await check("tail creates crossing into a new bucket");
    await write({ id: 2 }, { phone: "" });
    await write({ id: 3 }, { phone: "+79300000003" });
    await check("moves in the first bucket");
    await Promise.all([
      ...Array.from({ length: 12 }, (_, i) => write({}, { fname: "burst", phone: `79${4e8 + i}` })),
      write({ id: 700 }, { phone: "" }),
    ]);
    await check("burst beside a move");
  },
});

Deno.test("held: card creates taken without reads stay unique against another process's cards, taken numbers and barcodes", async () => {
  await using w = await world();
  const second = createApp({ kv: w.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  const owner = await made(w, randomCustomer());
  const insert = (app: typeof second, query: Record<string, string>, form: Record<string, string | number> = {}) =>
    request(app, "POST", "/api/customer/insertCard", { key: w.key, query, form: { customer_id: owner, ...form } })
      .then((r) => assertJson(r, 200));
  const cardOf = async (id: number) =>
    assertJson(await request(w.app, "GET", "/api/card", { key: w.key, query: { card_id: id } }), 200).card;
  const first = await cardOf((await insert(w.app, {})).card_id);
  const next = String(Number(first.uid) + 1);
  // The other process takes the next number as an explicit uid, then a card of its own; this one goes on.
  await insert(second, { uid: next });
  await insert(second, {});
  const mine = await Promise.all(Array.from({ length: 4 }, () => insert(w.app, {})));
  // An explicit barcode equal to the next generated one (the EAN-13 of the next number), then creates again.
  const last = await cardOf(mine.at(-1)!.card_id);
  const upcoming = await cardOf((await insert(w.app, {})).card_id);
  await insert(second, { uid: "X-1" }, { barcode: uidToEan13(String(Number(upcoming.uid) + 1))! });
  assertJson(
    await request(w.app, "POST", "/api/customer/deleteCard", { key: w.key, query: { card_id: last.card_id } }),
    200,
  );
  for (let i = 0; i < 3; i++) await insert(w.app, {});
  await Promise.all([insert(w.app, {}), insert(second, {}), insert(w.app, {}), insert(second, {})]);
  const cards = assertJson(
    await request(w.app, "GET", "/api/customer", { key: w.key, query: { id: owner, cards: 1 } }),
    200,
  ).customers[0].cards as { uid: string; barcode: string; card_id?: number; id?: number }[];
  assert.equal(cards.length, 15);
  assert.equal(new Set(cards.map((c) => c.uid)).size, cards.length);
  assert.equal(new Set(cards.map((c) => c.barcode)).size, cards.length);
  assert.deepEqual(await defects(w.kv), []);
});

Deno.test("fixed: a whole (streamed) list read while another process adds a customer leaves out an existing customer", async () => {
  await using w = await world();
  const second = createApp({ kv: w.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  for (let i = 0; i < 1100; i++) await made(w, { fname: `C${i}` });
  // The second process makes customers several at once: it reserves a block of ids and keeps the rest of it.
  const burst = await Promise.all(
    [0, 1, 2, 3, 4, 5].map(() => request(second, "POST", "/api/customer/update", { key: w.key, form: { fname: "S" } })),
  );
  const spare = Math.max(...burst.map((r) => assertJson(r, 200).id as number)) + 1;
  for (let i = 0; i < 20; i++) await made(w, { fname: `D${i}` });
  const existing = (await found(w, { with_phone: 0 })).ids;
  assert.ok(existing.length > 1000);
  // A client reads the whole list (more than 1000: streamed); the second process adds a customer as it starts.
  const res = await w.app.request(`/api/customer?apikey=${w.key}`);
  const reader = res.body!.getReader();
  const chunks: Uint8Array[] = [];
  const firstChunk = await reader.read();
  if (firstChunk.value) chunks.push(firstChunk.value);
  const added = assertJson(
    await request(second, "POST", "/api/customer/update", { key: w.key, form: { fname: "late" } }),
    200,
  ).id;
  for (let r = await reader.read(); !r.done; r = await reader.read()) chunks.push(r.value);
  const body = JSON.parse(new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c]))));
  const listed: number[] = body.customers.map((c: { id: number }) => c.id);
  const missing = existing.filter((id) => !listed.includes(id));
  assert.deepEqual(missing, [], `added ${added} (spare id ${spare}); count ${body.count}, listed ${listed.length}`);
});

Deno.test("held: random creates, moves and bursts through one store handle, pages read through another, stay exact", async () => {
  await using dir = await tempDir("bb6_");
  const kvPath = `${dir.path}/store.kv`;
  const writerKv = await Deno.openKv(kvPath);
  const readerKv = await Deno.openKv(kvPath);
  try {
    const now = Date.now();
    await rawInsertCustomers(
      writerKv,
      CID,
      Array.from({ length: 980 }, (_, i) => ({
        ...blankCustomer(i + 1, { now, userId: 2 }),
        phone: i % 4 ? `79${1e8 + i + 1}` : null,
        email: i % 7 ? null : `s${i + 1}@example.com`,
      })),
    );
    const key = (await createApiKey(writerKv, { companyId: CID, userId: 2, access: "write", now })).key;
    const config = { ...DEFAULT_CONFIG, kvPath, logRequests: false };
    const writer = createApp({ kv: writerKv, config });
    const reader = createApp({ kv: readerKv, config });
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    let phones = 0;
    const save = async (query: Record<string, number>, form: Record<string, string>) =>
      assertJson(await request(writer, "POST", "/api/customer/update", { key, query, form }), 200).id as number;
    const ids: number[] = Array.from({ length: 980 }, (_, i) => i + 1);
    const op = async () => {
      const kind = rand(5);
      const phone = () => rand(2) ? `79${5e8 + ++phones}` : "";
      const email = () => rand(3) ? "" : `r${++phones}@example.com`;
      if (kind === 0) ids.push(await save({}, { fname: "n", phone: phone(), email: email() }));
      else if (kind === 1) {
        const made = await Promise.all(
          Array.from({ length: 2 + rand(12) }, () => save({}, { fname: "b", phone: phone(), email: email() })),
        );
        ids.push(...made);
      } else if (kind === 2) await save({ id: ids[rand(ids.length)]! }, { phone: phone() });
      else if (kind === 3) {
        await save({ id: ids[ids.length - 1 - rand(Math.min(30, ids.length))]! }, { email: email() });
      } else {
        await Promise.all([
          save({ id: ids[rand(ids.length)]! }, { phone: phone() }),
          save({}, { fname: "m", phone: phone() }).then((id) => ids.push(id)),
        ]);
      }
    };
    const filters: Record<string, number>[] = [{}, { with_phone: 1 }, { with_phone: 0 }, { with_email: 1 }];
    for (let step = 0; step < 120; step++) {
      await op();
      const filter = filters[rand(filters.length)]!;
      const truth = (await request(writer, "GET", "/api/customer", { key, query: filter })).body.customers
        .map((c: { id: number }) => c.id) as number[];
      for (const size of [1 + rand(250), 200]) {
        const page = 1 + rand(Math.ceil(truth.length / size) + 1);
        const body =
          (await request(reader, "GET", "/api/customer", { key, query: { ...filter, page, page_size: size } }))
            .body;
        const want = truth.slice((page - 1) * size, page * size);
        assert.deepEqual(
          body.customers.map((c: { id: number }) => c.id),
          want,
          `step ${step} ${JSON.stringify(filter)} ${page}/${size}`,
        );
        assert.equal(body.total_count, truth.length);
      }
    }
    assert.deepEqual(await defects(writerKv), []);
  } finally {
    writerKv.close();
    readerKv.close();
  }
});

Deno.test("held: an import beside bursts of API creates: every customer once, counts exact, verify clean", async () => {
  await using w = await world();
  const rows = Array.from(
    { length: 300 },
    (_, i) => JSON.stringify({ line: i + 1, values: { external_id: `imp-${i}`, fname: "I", phone: `79${6e8 + i}` } }),
  );
  const imported = w.call("POST", "/api/import", {
    query: { type: "customers" },
    body: rows.join("\n") + "\n",
    headers: { "content-type": "application/x-ndjson" },
  });
  const api: Promise<number>[] = [];
  for (let i = 0; i < 60; i++) api.push(made(w, randomCustomer({ external_id: `api-${i}` })));
  const [reply, apiIds] = await Promise.all([imported, Promise.all(api)]);
  const results = assertJson(reply, 200).results as { status: string }[];
  assert.equal(results.filter((r) => r.status === "created").length, 300);
  const all = await found(w, {});
  assert.equal(all.count, 360);
  assert.equal(new Set(all.ids).size, 360);
  for (const id of apiIds) assert.ok(all.ids.includes(id));
  const walked: number[] = [];
  for (let page = 1; page <= 8; page++) walked.push(...(await found(w, { page, page_size: 50 })).ids);
  assert.deepEqual(walked, all.ids);
  assert.equal(
    assertJson(await w.call("GET", "/api/customer", { query: { with_phone: 1, page: 1, page_size: 1 } }), 200)
      .total_count,
    360,
  );
  assert.deepEqual(await defects(w.kv), []);
});
