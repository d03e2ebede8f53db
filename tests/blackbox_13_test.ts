/**
 * Outside review of 575224f (pages of a long list read from the nearer end of their bucket, kept; stale bucket sums
 * listed once, shared) and 10ca215 (find-or-create by external_id re-finds the customer on any clash). "DEFECT ..."
 * tests fail on the reviewed code; "held: ..." tests pass.
 */
import assert from "node:assert/strict";
import { createApp } from "../routes/app.ts";
import { DEFAULT_CONFIG } from "../config.ts";
import { blankCustomer, type Customer } from "../domain/customer.ts";
import { BUCKET_SIZE } from "../storage/limits.ts";
import { rawInsertCustomers } from "../storage/seed.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { directoryKeys, keys } from "../storage/keys.ts";
import { openKv } from "../storage/open.ts";
import { createStore } from "../storage/store.ts";
import { saveCustomer } from "../usecases/customers.ts";
import { assertJson, parseXml, request, snapshot, startServer, tempDir, world } from "./kit.ts";

const CONFIG = { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false };

/** A deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Presence = { phone: boolean; email: boolean };
type Filter = { with_phone?: 0 | 1; with_email?: 0 | 1 };

const FILTERS: Filter[] = [
  {},
  { with_phone: 1 },
  { with_phone: 0 },
  { with_email: 1 },
  { with_email: 0 },
  { with_phone: 1, with_email: 0 },
  { with_phone: 0, with_email: 1 },
  { with_phone: 1, with_email: 1 },
  { with_phone: 0, with_email: 0 },
];

const passes = (p: Presence, f: Filter) =>
  (f.with_phone === undefined || p.phone === (f.with_phone === 1)) &&
  (f.with_email === undefined || p.email === (f.with_email === 1));

/**
 * Two apps, each on its own handle of one file store opened as main.ts opens it (as two processes: nothing kept in memory is shared), with a
 * write key of "acme" and one of "globex" each. Each company holds 300 buckets: four members in most (one of each
 * phone/email presence, at spread positions), a single member in every tenth, 480 in the DENSE ones, so every list has over 256 buckets
 * and many buckets of one member.
 */
async function longStore(path: string) {
  const kvA = await openKv(path);
  const kvB = await openKv(path);
  const now = Date.now();
  const model = new Map<string, Map<number, Presence>>([["acme", new Map()], ["globex", new Map()]]);
  let serial = 0;
  const make = (id: number, p: Presence): Customer => {
    serial++;
    return {
      ...blankCustomer(id, { now, userId: 1 }),
      fname: `F${id}`,
      phone: p.phone ? `7900${String(serial).padStart(7, "0")}` : null,
      email: p.email ? `s${serial}@example.com` : null,
    };
  };
  for (const [cid, members] of model) {
    const seed: Customer[] = [];
    for (let b = 0; b < 300; b++) {
      const kinds: [number, Presence][] = DENSE.includes(b)
        ? Array.from({ length: 480 }, (_, k) => [k + 10, { phone: k % 3 !== 0, email: k % 4 !== 1 }])
        : b % 10 === 3
        ? [[250, { phone: true, email: true }]]
        : [
          [1 + (b * 7) % 100, { phone: true, email: true }],
          [120 + (b * 13) % 100, { phone: true, email: false }],
          [260 + (b * 3) % 100, { phone: false, email: true }],
          [380 + (b * 11) % 119, { phone: false, email: false }],
        ];
      for (const [at, p] of kinds) {
        seed.push(make(b * BUCKET_SIZE + at, p));
        members.set(b * BUCKET_SIZE + at, p);
      }
    }
    await rawInsertCustomers(kvA, cid, seed);
  }
  const keyOf = async (companyId: string) =>
    (await createApiKey(kvA, { companyId, userId: 2, access: "write", now })).key;
  const apiKeys: Record<string, string> = { acme: await keyOf("acme"), globex: await keyOf("globex") };
  /** Reads of a bucket's list keys with a limit (idInBucket's nearer-end reads) through app 0, by direction. */
  const reads = { forward: 0, reverse: 0 };
  const counted = new Proxy(kvA, {
    get(target, prop) {
      if (prop === "list") {
        return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
          if ("start" in selector && "end" in selector && options?.limit !== undefined) {
            reads[options.reverse ? "reverse" : "forward"]++;
          }
          return target.list(selector, options);
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  const apps = [createApp({ kv: counted, config: CONFIG }), createApp({ kv: kvB, config: CONFIG })];
  const expected = (cid: string, f: Filter) =>
    [...model.get(cid)!].filter(([, p]) => passes(p, f)).map(([id]) => id).sort((a, b) => a - b);
  const page = async (app: number, cid: string, f: Filter, n: number, size: number) => {
    const r = await request(apps[app]!, "GET", "/api/customer", {
      key: apiKeys[cid]!,
      query: { ...f, page: n, page_size: size },
    });
    assert.equal(r.status, 200, r.text);
    return { ids: (r.body.customers as { id: number }[]).map((c) => c.id), total: r.body.total_count as number };
  };
  let phoneSerial = 0;
  /** Sets or clears a customer's phone or email through an app; the model follows. */
  const toggle = async (app: number, cid: string, id: number, field: "phone" | "email") => {
    const p = model.get(cid)!.get(id)!;
    phoneSerial++;
    const value = p[field]
      ? ""
      : field === "phone"
      ? `+7955${String(phoneSerial).padStart(6, "0")}`
      : `t${phoneSerial}@x.ru`;
    const r = await request(apps[app]!, "POST", "/api/customer/update", {
      key: apiKeys[cid]!,
      query: { id },
      form: { [field]: value },
    });
    assert.equal(r.status, 200, r.text);
    model.get(cid)!.set(id, { ...p, [field]: !p[field] });
  };
  /** Creates a customer through an app (it takes the next id: the last bucket). */
  const create = async (app: number, cid: string, p: Presence) => {
    phoneSerial++;
    const form: Record<string, string> = { fname: "New" };
    if (p.phone) form.phone = `+7966${String(phoneSerial).padStart(6, "0")}`;
    if (p.email) form.email = `n${phoneSerial}@x.ru`;
    const r = await request(apps[app]!, "POST", "/api/customer/update", { key: apiKeys[cid]!, form });
    assert.equal(r.status, 200, r.text);
    model.get(cid)!.set(r.body.id, p);
    return r.body.id as number;
  };
  return {
    model,
    reads,
    expected,
    page,
    toggle,
    create,
    [Symbol.asyncDispose]: () => {
      kvA.close();
      kvB.close();
      return Promise.resolve();
    },
  };
}

const SIZES = [1, 2, 3, 5, 50, 499, 500, 501, 1000];

/** Buckets of 480 members (both halves read from their nearer end), the last of them the list's last bucket. */
const DENSE = [40, 41, 150, 299];

Deno.test("held: long lists (300 buckets, two companies, nine filters) page exactly on two processes through moves in the page's bucket, creates, the last bucket and pages past the end", async () => {
  await using dir = await tempDir("bb13_paging_");
  await using s = await longStore(`${dir.path}/store.sqlite3`);
  const rand = prng(1313);
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]!;
  let last: { cid: string; f: Filter; n: number; size: number } | null = null;
  const check = async (app: number, q: { cid: string; f: Filter; n: number; size: number }, why: string) => {
    const want = s.expected(q.cid, q.f);
    const got = await s.page(app, q.cid, q.f, q.n, q.size);
    const label = `${why}: app ${app} ${q.cid} ${JSON.stringify(q.f)} page ${q.n} of ${q.size}`;
    assert.equal(got.total, want.length, label);
    assert.deepEqual(got.ids, want.slice((q.n - 1) * q.size, q.n * q.size), label);
    return want;
  };
  for (let step = 0; step < 1200; step++) {
    const r = rand();
    const app = rand() < 0.5 ? 0 : 1;
    if (r < 0.4 || last === null) {
      const cid = rand() < 0.75 ? "acme" : "globex";
      const f = pick(FILTERS);
      const size = pick(SIZES);
      const pages = Math.max(1, Math.ceil(s.expected(cid, f).length / size));
      const roll = rand();
      // Deep pages, the last page (the last bucket), one past the end, or any.
      const n = roll < 0.15
        ? pages
        : roll < 0.22
        ? pages + 1
        : roll < 0.26
        ? pages + 5
        : 1 + Math.floor(rand() * pages);
      last = { cid, f, n, size };
      await check(app, last, "page");
    } else if (r < 0.55) {
      await check(app, last, "asked again");
    } else if (r < 0.88) {
      // A customer of the page's bucket (or the one before or after) enters or leaves lists; the page asked for again
      // (on either process) must count it.
      const want = s.expected(last.cid, last.f);
      const first = want[(last.n - 1) * last.size] ?? want.at(-1)!;
      const bucket = Math.floor(first / BUCKET_SIZE) + pick([0, 0, 0, -1, 1]);
      const inBucket = [...s.model.get(last.cid)!.keys()].filter((id) => Math.floor(id / BUCKET_SIZE) === bucket);
      if (inBucket.length === 0) continue;
      await s.toggle(rand() < 0.5 ? 0 : 1, last.cid, pick(inBucket), rand() < 0.5 ? "phone" : "email");
      await check(app, last, "after a move");
    } else {
      await s.create(rand() < 0.5 ? 0 : 1, last.cid, { phone: rand() < 0.5, email: rand() < 0.5 });
      const pages = Math.max(1, Math.ceil(s.expected(last.cid, last.f).length / last.size));
      await check(app, { ...last, n: pages }, "last page after a create");
      await check(app, last, "after a create");
    }
  }
  // The long-list path was taken, from both ends of buckets.
  assert.ok(s.reads.forward > 20 && s.reads.reverse > 20, JSON.stringify(s.reads));
});

Deno.test("held: a page asked for after a write counts it while pages begun before the write are in flight (shared listings); those hold only members of either moment", async () => {
  await using dir = await tempDir("bb13_shared_");
  await using s = await longStore(`${dir.path}/store.sqlite3`);
  const rand = prng(77);
  const cid = "acme";
  for (let round = 0; round < 30; round++) {
    const f = FILTERS[round % FILTERS.length]!;
    const size = SIZES[round % SIZES.length]!;
    const before = s.expected(cid, f);
    const pages = Math.max(1, Math.ceil(before.length / size));
    const asked = Array.from({ length: 5 }, () => 1 + Math.floor(rand() * pages));
    // Pages begun before the write (on the process that will page after it).
    const inFlight = asked.map((n) => s.page(0, cid, f, n, size));
    // A move in an early bucket (so the cached sums cannot be brought up to date from the last buckets).
    const early = [...s.model.get(cid)!.keys()].filter((id) => id < 40 * BUCKET_SIZE);
    await s.toggle(round % 2, cid, early[Math.floor(rand() * early.length)]!, rand() < 0.5 ? "phone" : "email");
    const after = s.expected(cid, f);
    const n = asked[0]!;
    const late = await s.page(0, cid, f, n, size);
    assert.equal(late.total, after.length, `round ${round}: the late page's total`);
    assert.deepEqual(late.ids, after.slice((n - 1) * size, n * size), `round ${round}: the late page counts the write`);
    // A page overlapping the write is exact before or after it, or (seen: page 1 of a filtered list whose listed
    // customer left it between the read of the list's keys and of the records, which the reply re-checks against the
    // filter) the page before it less the customer who moved: never anyone outside either moment, always in order.
    const got = await Promise.all(inFlight);
    got.forEach((g, i) => {
      const m = asked[i]!;
      const either = new Set([...before.slice((m - 1) * size, m * size), ...after.slice((m - 1) * size, m * size)]);
      assert.ok(g.ids.every((id) => either.has(id)), `round ${round}: in-flight page ${m} holds only its members`);
      assert.ok(g.ids.every((id, k) => k === 0 || g.ids[k - 1]! < id), `round ${round}: in order`);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// 10ca215: find-or-create by external_id

Deno.test("held: 12 identical find-or-creates (same external_id, phone, email) on two processes make one customer, all 200, one isnew", async () => {
  await using dir = await tempDir("bb13_foc_");
  const path = `${dir.path}/store.sqlite3`;
  const kvA = await openKv(path);
  const kvB = await openKv(path);
  try {
    const key = (await createApiKey(kvA, { companyId: "acme", userId: 2, access: "write", now: Date.now() })).key;
    const apps = [createApp({ kv: kvA, config: CONFIG }), createApp({ kv: kvB, config: CONFIG })];
    for (const [round, format] of [[1, "json"], [2, "xml"]] as const) {
      const ext = `1C-${round}`;
      const replies = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          request(apps[i % 2]!, "POST", "/api/customer/update", {
            key,
            query: { external_id: ext, ...(format === "xml" ? { format } : {}) },
            form: { fname: "Same", phone: `+7944000000${round}`, email: `same${round}@example.com` },
          })),
      );
      assert.deepEqual(replies.map((r) => r.status), replies.map(() => 200), replies.map((r) => r.text).join("\n"));
      const isnew = replies.map((r) => Number(format === "xml" ? parseXml(r.text).root.isnew : r.body.isnew));
      assert.equal(isnew.filter((x) => x === 1).length, 1, `one create in ${format}`);
      const ids = new Set(replies.map((r) => Number(format === "xml" ? parseXml(r.text).root.id : r.body.id)));
      assert.equal(ids.size, 1);
    }
    const all = await request(apps[0]!, "GET", "/api/customer", { key, query: { page: 1, page_size: 100 } });
    assert.equal(all.body.total_count, 2);
  } finally {
    kvA.close();
    kvB.close();
  }
});

Deno.test("held: concurrent find-or-creates of one external_id with different phones make one customer, all 200", async () => {
  await using w = await world();
  const other = createApp({ kv: w.kv, config: CONFIG });
  const replies = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      request(i % 2 ? other : w.app, "POST", "/api/customer/update", {
        key: w.key,
        query: { external_id: "EXT-D" },
        form: { fname: `N${i}`, phone: `+79330000${String(i).padStart(3, "0")}` },
      })),
  );
  assert.deepEqual(replies.map((r) => r.status), replies.map(() => 200), replies.map((r) => r.text).join("\n"));
  assert.equal(new Set(replies.map((r) => r.body.id)).size, 1);
  const total = await w.call("GET", "/api/customer", { query: { page: 1, page_size: 50 } });
  assert.equal(total.body.total_count, 1);
  // The phones the losers set one after the other: only the customer's last one is still held.
  const held = await w.call("GET", "/api/customer", { query: { external_id: "EXT-D" } });
  const phone = held.body.customers[0].phone;
  for (let i = 0; i < 10; i++) {
    const p = `79330000${String(i).padStart(3, "0")}`;
    const found = await w.call("GET", "/api/customer", { query: { phone: p } });
    assert.equal(found.body.count, phone === p ? 1 : 0, p);
  }
});

Deno.test("held: a find-or-create whose phone, email or external_id another customer holds is 409 naming it and writes nothing, JSON and XML, also racing a create of its own external_id", async () => {
  await using w = await world();
  const z = assertJson(
    await w.call("POST", "/api/customer/update", {
      form: { fname: "Z", phone: "+79221112233", email: "z@example.com", external_id: "ZZ" },
    }),
    200,
  );
  for (const format of ["json", "xml"]) {
    for (
      const [field, form] of [
        ["phone", { fname: "Q", phone: "+79221112233" }],
        ["email", { fname: "Q", email: "Z@Example.com" }],
        ["external_id", { fname: "Q", external_id: "ZZ" }],
      ] as const
    ) {
      const before = await snapshot(w.kv);
      const r = await w.call("POST", "/api/customer/update", {
        query: { external_id: `NEW-${field}`, ...(format === "xml" ? { format } : {}) },
        form,
      });
      assert.equal(r.status, 409, r.text);
      const named = format === "xml" ? parseXml(r.text).root.field : r.body.field;
      assert.equal(named, field, r.text);
      assert.equal(await snapshot(w.kv), before, `${format} ${field}: nothing written`);
    }
  }
  // A body external_id taken, without a lookup: 409 external_id.
  assert.equal(
    assertJson(await w.call("POST", "/api/customer/update", { form: { fname: "Q", external_id: "ZZ" } }), 409).field,
    "external_id",
  );
  // create_if_not_exist=0: 404, nothing written.
  const before = await snapshot(w.kv);
  const nf = await w.call("POST", "/api/customer/update", {
    query: { external_id: "ABSENT", create_if_not_exist: 0 },
    form: { fname: "Q" },
  });
  assert.equal(assertJson(nf, 404).field, "external_id");
  assert.equal(await snapshot(w.kv), before);
  // Racing: one request finds-or-creates R with Z's phone, others create R with free phones. Whatever the order, the
  // one with Z's phone is 409 phone, R is one customer, and Z keeps its phone.
  const other = createApp({ kv: w.kv, config: CONFIG });
  const replies = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      request(i % 2 ? other : w.app, "POST", "/api/customer/update", {
        key: w.key,
        query: { external_id: "R" },
        form: { fname: `R${i}`, phone: i === 3 ? "+79221112233" : `+7922000000${i}` },
      })),
  );
  replies.forEach((r, i) => {
    if (i === 3) assert.equal(assertJson(r, 409).field, "phone");
    else assert.equal(r.status, 200, r.text);
  });
  const zNow = await w.call("GET", "/api/customer", { query: { id: z.id } });
  assert.equal(zNow.body.customers[0].phone, "79221112233");
  const r = await w.call("GET", "/api/customer", { query: { external_id: "R" } });
  assert.equal(r.body.count, 1);
  assert.equal(new Set(replies.filter((x) => x.status === 200).map((x) => x.body.id)).size, 1);
});

Deno.test("held: an external_id index left pointing at no record answers 409 external_id at once, no retry loop, nothing written", async () => {
  await using w = await world();
  await w.kv.set(keys.customerByExternalId("acme", "GHOST"), 999);
  const before = await snapshot(w.kv);
  let commits = 0;
  const counting = new Proxy(w.kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          op.commit = () => {
            commits++;
            return commit();
          };
          return op;
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  const app = createApp({ kv: counting, config: CONFIG });
  const r = await request(app, "POST", "/api/customer/update", {
    key: w.key,
    query: { external_id: "GHOST" },
    form: { fname: "G" },
  });
  assert.equal(assertJson(r, 409).field, "external_id");
  assert.ok(commits <= 2, `commits tried: ${commits}`);
  assert.equal(await snapshot(w.kv), before);
});

Deno.test("held: concurrent identical find-or-creates that also make a new group (group_name) make one customer and one group, all 200", async () => {
  await using w = await world();
  const other = createApp({ kv: w.kv, config: CONFIG });
  const replies = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      request(i % 2 ? other : w.app, "POST", "/api/customer/update", {
        key: w.key,
        query: { external_id: "G-1" },
        form: { fname: "Same", phone: "+79110000001", group_name: "Brand new" },
      })),
  );
  assert.deepEqual(replies.map((r) => r.status), replies.map(() => 200), replies.map((r) => r.text).join("\n"));
  assert.equal(new Set(replies.map((r) => r.body.id)).size, 1);
  assert.equal(replies.filter((r) => r.body.isnew === 1).length, 1);
  const found = await w.call("GET", "/api/customer", { query: { external_id: "G-1" } });
  const groupId = found.body.customers[0].group_id;
  assert.ok(typeof groupId === "number", found.text);
  const groups = await Array.fromAsync(w.kv.list({ prefix: directoryKeys.entries("acme", "groups") }));
  assert.deepEqual(groups.map((e) => e.key.at(-1)), [groupId], "one group");
  const total = await w.call("GET", "/api/customer", { query: { page: 1, page_size: 10 } });
  assert.equal(total.body.total_count, 1);
});

Deno.test("held: two server processes on one store file: a page of a long list asked again on one counts a move made in its bucket through the other; identical find-or-creates across them make one customer", async () => {
  await using dir = await tempDir("bb13_servers_");
  const kvPath = `${dir.path}/store.sqlite3`;
  const now = Date.now();
  const model = new Map<number, boolean>();
  {
    const kv = await Deno.openKv(kvPath);
    try {
      const seed: Customer[] = [];
      for (let b = 0; b < 280; b++) {
        for (let k = 0; k < (b % 7 === 0 ? 40 : 3); k++) {
          const id = b * BUCKET_SIZE + 5 + k * 11;
          const phone = (b + k) % 2 === 0;
          model.set(id, phone);
          seed.push({
            ...blankCustomer(id, { now, userId: 1 }),
            fname: `F${id}`,
            phone: phone ? `7900${String(id).padStart(7, "0")}` : null,
          });
        }
      }
      await rawInsertCustomers(kv, "acme", seed);
    } finally {
      kv.close();
    }
  }
  const key = await (async () => {
    const kv = await Deno.openKv(kvPath);
    try {
      return (await createApiKey(kv, { companyId: "acme", userId: 2, access: "write", now })).key;
    } finally {
      kv.close();
    }
  })();
  await using a = startServer({ kvPath });
  await using b = startServer({ kvPath });
  await a.ready(key);
  await b.ready(key);
  const expected = (phone: 0 | 1) =>
    [...model].filter(([, p]) => p === (phone === 1)).map(([id]) => id).sort((x, y) => x - y);
  const page = async (base: string, phone: 0 | 1, n: number, size: number) => {
    const r = await request(base, "GET", "/api/customer", {
      key,
      query: { with_phone: phone, page: n, page_size: size },
    });
    assert.equal(r.status, 200, r.text);
    return (r.body.customers as { id: number }[]).map((c) => c.id);
  };
  let serial = 0;
  for (const [phone, n, size] of [[1, 30, 7], [0, 40, 5], [1, 3, 50], [0, 77, 3], [1, 60, 9], [0, 2, 333]] as const) {
    for (let round = 0; round < 3; round++) {
      assert.deepEqual(await page(a.base, phone, n, size), expected(phone).slice((n - 1) * size, n * size));
      // A member of the page's bucket leaves or enters the list, through the other process.
      const first = expected(phone)[(n - 1) * size]!;
      const bucket = Math.floor(first / BUCKET_SIZE);
      const inBucket = [...model.keys()].filter((id) => Math.floor(id / BUCKET_SIZE) === bucket);
      const moved = inBucket[(round * 5 + n) % inBucket.length]!;
      const had = model.get(moved)!;
      serial++;
      const r = await request(b.base, "POST", "/api/customer/update", {
        key,
        query: { id: moved },
        form: { phone: had ? "" : `+7955${String(serial).padStart(6, "0")}` },
      });
      assert.equal(r.status, 200, r.text);
      model.set(moved, !had);
      assert.deepEqual(
        await page(a.base, phone, n, size),
        expected(phone).slice((n - 1) * size, n * size),
        `with_phone=${phone} page ${n} of ${size} after ${moved} moved`,
      );
      assert.ok(expected(phone).length > 500, "a long list");
    }
  }
  const replies = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      request(i % 2 ? a.base : b.base, "POST", "/api/customer/update", {
        key,
        query: { external_id: "SRV-1" },
        form: { fname: "Same", phone: "+79440000099", email: "srv@example.com" },
      })),
  );
  assert.deepEqual(replies.map((r) => r.status), replies.map(() => 200), replies.map((r) => r.text).join("\n"));
  assert.equal(new Set(replies.map((r) => r.body.id)).size, 1);
});

Deno.test("held: a move landing during a bucket's nearer-end read (either end, in or out of the list, before or after the page's position) is not served from what that read kept", async () => {
  const cid = "acme";
  /** A write run just before the next nearer-end read of a bucket's list keys. */
  let during: (() => Promise<unknown>) | null = null;
  let real!: Deno.Kv;
  const wrap = (kv: Deno.Kv): Deno.Kv => {
    real = kv;
    return new Proxy(kv, {
      get(target, prop) {
        if (prop === "list") {
          return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
            const hook = during;
            if (hook && "start" in selector && "end" in selector && options?.limit !== undefined) {
              during = null;
              return (async function* () {
                await hook();
                yield* target.list(selector, options);
              })();
            }
            return target.list(selector, options);
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  };
  await using w = await world({ kv: wrap });
  const now = Date.now();
  const phones = new Map<number, boolean>();
  const seed: Customer[] = [];
  for (let b = 0; b < 270; b++) {
    for (let k = 0; k < 20; k++) {
      const id = b * BUCKET_SIZE + 3 + k * 20;
      phones.set(id, k % 4 !== 3);
      seed.push({
        ...blankCustomer(id, { now, userId: 1 }),
        fname: `F${id}`,
        phone: k % 4 !== 3 ? `7900${String(id).padStart(7, "0")}` : null,
      });
    }
  }
  await rawInsertCustomers(real, cid, seed);
  const store = createStore(real);
  const actor = { companyId: cid, name: "key:other", userId: 0 };
  let serial = 0;
  const move = async (id: number) => {
    serial++;
    const has = phones.get(id)!;
    await saveCustomer(store, actor, {
      id,
      create: false,
      patch: { phone: has ? null : `7955${String(serial).padStart(7, "0")}` },
      timeZone: "UTC",
    });
    phones.set(id, !has);
  };
  const expected = () => [...phones].filter(([, p]) => p).map(([id]) => id).sort((a, b) => a - b);
  const page = async (n: number, size: number) => {
    const r = await w.call("GET", "/api/customer", { query: { with_phone: 1, page: n, page_size: size } });
    assert.equal(r.status, 200, r.text);
    return (r.body.customers as { id: number }[]).map((c) => c.id);
  };
  // Positions in a bucket of 15 phone members: early (forward read) and late (reverse read); the moved customer
  // before, at or after the page's position, in the same bucket.
  for (const bucket of [10, 100, 200]) {
    for (const at of [1, 4, 7, 8, 12, 14]) {
      for (const k of [0, 5, 9, 10, 11, 19]) {
        const n = bucket * 15 + at + 1;
        const moved = bucket * BUCKET_SIZE + 3 + k * 20;
        during = () => move(moved);
        await page(n, 1); // overlapped by the move: any answer
        assert.equal(during, null, "the move landed during the read");
        const label = `bucket ${bucket} position ${at}, ${moved} moved during the read`;
        for (const m of [n, n - 1, n + 1, n]) assert.deepEqual(await page(m, 1), expected().slice(m - 1, m), label);
        // Put the customer back, so each case starts from 15 members.
        await move(moved);
      }
    }
  }
});

Deno.test("held: a list of 1,100 buckets (listed in several reads): pages asked after writes in early buckets count them while earlier pages' listings are shared", async () => {
  await using w = await world();
  const other = createApp({ kv: w.kv, config: CONFIG });
  const now = Date.now();
  const phones = new Map<number, boolean>();
  const seed: Customer[] = [];
  for (let b = 0; b < 1100; b++) {
    for (const k of b % 3 === 0 ? [1, 2] : [1]) {
      const id = b * BUCKET_SIZE + k;
      phones.set(id, true);
      seed.push({
        ...blankCustomer(id, { now, userId: 1 }),
        fname: `F${id}`,
        phone: `7900${String(id).padStart(7, "0")}`,
      });
    }
  }
  await rawInsertCustomers(w.kv, "acme", seed);
  const rand = prng(11);
  const expected = () => [...phones].filter(([, p]) => p).map(([id]) => id).sort((a, b) => a - b);
  const page = async (n: number, size: number) => {
    const r = await w.call("GET", "/api/customer", { query: { with_phone: 1, page: n, page_size: size } });
    assert.equal(r.status, 200, r.text);
    return { ids: (r.body.customers as { id: number }[]).map((c) => c.id), total: r.body.total_count as number };
  };
  let serial = 0;
  for (let round = 0; round < 25; round++) {
    const size = [1, 7, 50, 333][round % 4]!;
    const pages = Math.ceil(expected().length / size);
    const inFlight = Array.from({ length: 6 }, () => page(1 + Math.floor(rand() * pages), size));
    // A move in an early bucket, through the other app (its own caches), then more in flight, then the late page.
    const ids = [...phones.keys()].filter((id) => id < 200 * BUCKET_SIZE);
    const moved = ids[Math.floor(rand() * ids.length)]!;
    serial++;
    const r = await request(other, "POST", "/api/customer/update", {
      key: w.key,
      query: { id: moved },
      form: { phone: phones.get(moved) ? "" : `+7955${String(serial).padStart(6, "0")}` },
    });
    assert.equal(r.status, 200, r.text);
    phones.set(moved, !phones.get(moved));
    const afterNs = Array.from({ length: 3 }, () => 1 + Math.floor(rand() * pages));
    inFlight.push(...afterNs.map((m) => page(m, size)));
    const n = 1 + Math.floor(rand() * pages);
    const late = await page(n, size);
    assert.equal(late.total, expected().length, `round ${round}`);
    assert.deepEqual(late.ids, expected().slice((n - 1) * size, n * size), `round ${round}: page ${n} of ${size}`);
    const started = await Promise.all(inFlight);
    // Those begun after the write (the last three) count it too.
    started.slice(6).forEach((g, i) => {
      const m = afterNs[i]!;
      assert.equal(g.total, expected().length, `round ${round}: a page begun after`);
      assert.deepEqual(g.ids, expected().slice((m - 1) * size, m * size), `round ${round}: page ${m} begun after`);
    });
  }
});
