import assert from "node:assert/strict";
import { XMLParser } from "fast-xml-parser";
import { blankCustomer, type Customer } from "../domain/customer.ts";
import { BUCKET_SIZE } from "../storage/limits.ts";
import { rawInsertCustomers } from "../storage/seed.ts";
import { type KvProxy, kvProxy, world } from "./kit.ts";

/** A seeded customer: every 3rd without a phone, every 4th without an email, ids with gaps. */
function seeded(i: number, now: number): Customer {
  return {
    ...blankCustomer(i * 2 + (i % 5 === 0 ? 1 : 0), { now, userId: 1 }),
    external_id: `S${i}`,
    fname: `F${i}`,
    email: i % 4 === 0 ? null : `s${i}@example.com`,
    phone: i % 3 === 0 ? null : `7900${String(i).padStart(7, "0")}`,
  };
}

Deno.test("deep pages across count buckets return exactly the right customers", async (t) => {
  await using w = await world();
  const count = BUCKET_SIZE * 3 + 137;
  const customers = Array.from({ length: count }, (_, i) => seeded(i + 1, Date.now()));
  await rawInsertCustomers(w.kv, "acme", customers);
  // Move some customers between lists through the API, so bucket counts see "out" as well as "in".
  for (const c of customers.slice(0, 40)) {
    await w.call("POST", "/api/customer/update", {
      query: { id: c.id },
      form: { phone: c.phone ? "" : `+7955${c.id}00` },
    });
  }
  const current = await Promise.all(
    customers.map(async (c) => (await w.call("GET", "/api/customer", { query: { id: c.id } })).body.customers[0]),
  );
  const filters: Record<string, (c: { phone: string | null; email: string | null }) => boolean> = {
    "": () => true,
    "with_phone=1": (c) => c.phone !== null,
    "with_phone=0": (c) => c.phone === null,
    "with_email=1": (c) => c.email !== null,
    "with_phone=1&with_email=0": (c) => c.phone !== null && c.email === null,
  };
  for (const [filter, keep] of Object.entries(filters)) {
    await t.step(`pages of ${filter || "all"}`, async () => {
      const expected = current.filter(keep).map((c) => c.id as number);
      const query = Object.fromEntries(new URLSearchParams(filter));
      for (const pageSize of [BUCKET_SIZE, 333, 1000]) {
        const pages = Math.ceil(expected.length / pageSize);
        for (const page of [1, 2, Math.max(1, pages - 1), pages, pages + 1]) {
          const r = await w.call("GET", "/api/customer", { query: { ...query, page, page_size: pageSize } });
          assert.equal(r.status, 200);
          assert.equal(r.body.total_count, expected.length);
          assert.deepEqual(
            r.body.customers.map((c: { id: number }) => c.id),
            expected.slice((page - 1) * pageSize, page * pageSize),
            `${filter} page ${page} size ${pageSize}`,
          );
        }
      }
    });
  }
  await t.step("an unpaged list over 1000 customers is streamed whole, in JSON and XML", async () => {
    const expected = current.filter((c) => c.phone !== null).map((c) => c.id as number);
    assert.ok(expected.length > 1000);
    const json = await w.call("GET", "/api/customer", { query: { with_phone: 1 } });
    assert.equal(json.status, 200);
    assert.equal(json.body.count, expected.length);
    assert.deepEqual(json.body.customers.map((c: { id: number }) => c.id), expected);
    const xml = await w.call("GET", "/api/customer", { query: { with_phone: 1, format: "xml" } });
    assert.equal(xml.type, "application/xml; charset=UTF-8");
    const parsed = new XMLParser({ parseTagValue: false }).parse(xml.text);
    assert.equal(parsed.root.success, "1");
    assert.equal(parsed.root.count, String(expected.length));
    assert.deepEqual(parsed.root.customers.customer.map((c: { id: string }) => Number(c.id)), expected);
    assert.ok(xml.text.endsWith("</customers>\n</root>\n"));
  });
});

Deno.test("XML and JSON replies carry the same data", async () => {
  await using w = await world();
  await w.call("POST", "/api/customer/update", {
    form: {
      fname: "A & B <c>",
      phone: "9001112233",
      group_name: "VIP",
      birth_day: 1,
      birth_month: 2,
      birth_year: 1990,
    },
  });
  await w.call("POST", "/api/customer/update", {
    form: { fname: "Second", email: "x@y.ru", accumulated_sales: "10.5" },
  });
  const json = await w.call("GET", "/api/customer", { query: { page: 1, page_size: 10 } });
  const xml = await w.call("GET", "/api/customer", { query: { page: 1, page_size: 10, format: "xml" } });
  const parsed = new XMLParser({ parseTagValue: false }).parse(xml.text).root;
  const asText = (v: unknown) => (v === null ? "" : String(v));
  assert.equal(parsed.total_count, String(json.body.total_count));
  json.body.customers.forEach((c: Record<string, unknown>, i: number) => {
    const x = parsed.customers.customer[i];
    for (const [k, v] of Object.entries(c)) assert.equal(asText(x[k]), asText(v), k);
  });
});

Deno.test("deep pages stay exact while creates extend the list and changes reach earlier buckets", async () => {
  const proxies: KvProxy[] = [];
  await using w = await world({ kv: (kv) => proxies[proxies.push(kvProxy(kv)) - 1]!.kv });
  const calls = proxies[0]!.calls;
  const now = Date.now();
  // Ids 1 .. 2.5 buckets, all with a phone, so both "all" and "with_phone=1" span several buckets.
  const count = BUCKET_SIZE * 2 + BUCKET_SIZE / 2;
  await rawInsertCustomers(
    w.kv,
    "acme",
    Array.from({ length: count }, (_, i) => ({
      ...blankCustomer(i + 1, { now, userId: 1 }),
      fname: `F${i}`,
      phone: `7900${String(i + 1).padStart(7, "0")}`,
    })),
  );
  const ids = async (filter: Record<string, string>) => {
    const out: number[] = [];
    for (let page = 1;; page++) {
      const r = await w.call("GET", "/api/customer", { query: { ...filter, page, page_size: 97 } });
      assert.equal(r.status, 200);
      out.push(...r.body.customers.map((c: { id: number }) => c.id));
      if (r.body.customers.length < 97) return out;
    }
  };
  const expected = Array.from({ length: count }, (_, i) => i + 1);
  assert.deepEqual(await ids({}), expected);
  assert.deepEqual(await ids({ with_phone: "1" }), expected);
  // Creates (through the API: each takes the next id) add to the last bucket, then start new ones.
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 150; i++) {
      const made = await w.call("POST", "/api/customer/update", {
        form: { fname: "New", phone: `+7955${round}${i}00` },
      });
      expected.push(made.body.id);
    }
    const lists: number = calls.list;
    const deep = await w.call("GET", "/api/customer", { query: { page: 20, page_size: 50 } });
    assert.deepEqual(deep.body.customers.map((c: { id: number }) => c.id), expected.slice(950, 1000));
    // The cached sums were brought up to date from the counters of the last buckets (no list of every bucket), and
    // the ids of the page's bucket, which the creates did not touch, were kept: one list, the page's own.
    assert.equal(calls.list - lists, 1, "one list: the page's own");
    assert.deepEqual(await ids({}), expected);
    assert.deepEqual(await ids({ with_phone: "1" }), expected);
  }
  // A change in an early bucket (a phone cleared) is seen too: the phone list's sums are read again.
  await w.call("POST", "/api/customer/update", { query: { id: 3 }, form: { phone: "" } });
  assert.deepEqual(await ids({ with_phone: "1" }), expected.filter((id) => id !== 3));
  assert.deepEqual(await ids({ with_phone: "0" }), [3]);
  assert.deepEqual(await ids({}), expected);
});

/**
 * A store whose `list` calls go through `hook`, which may count them, run writes around them or replace their
 * entries; every other call reaches the store unchanged.
 */
function listHook(
  kv: Deno.Kv,
  hook: (
    selector: Deno.KvListSelector,
    options: Deno.KvListOptions | undefined,
    list: () => AsyncIterable<Deno.KvEntry<unknown>>,
  ) => AsyncIterable<Deno.KvEntry<unknown>>,
): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      if (prop !== "list") {
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      }
      return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) =>
        hook(selector, options, () => target.list(selector, options));
    },
  });
}

Deno.test("a list's bucket sums are read again in one listing while customers keep being created, then cached", async () => {
  const cid = "acme";
  const bucketPrefix = JSON.stringify(["company", cid, "customer_buckets", "all"]);
  let bucketListings = 0;
  let nextId = 0;
  let real!: Deno.Kv;
  const now = Date.now();
  // Every listing of the bucket counters is followed, before the listing ends, by another customer created: a
  // steady stream of creates, so no two readings of the totals around a listing are ever equal.
  const wrap = (kv: Deno.Kv): Deno.Kv => {
    real = kv;
    return listHook(kv, (selector, _options, list) => {
      const prefix = "prefix" in selector ? JSON.stringify(selector.prefix) : "";
      if (prefix !== bucketPrefix) return list();
      bucketListings++;
      return (async function* () {
        yield* list();
        await rawInsertCustomers(kv, cid, [seeded(++nextId, now)]);
      })();
    });
  };
  await using w = await world({ kv: wrap });
  const first = Array.from({ length: BUCKET_SIZE * 2 }, (_, i) => seeded(i + 1, now));
  await rawInsertCustomers(real, cid, first);
  nextId = first.length;
  const ids = async (page: number) =>
    ((await w.call("GET", "/api/customer", { query: { page, page_size: 50 } })).body.customers as { id: number }[])
      .map((c) => c.id);
  const expected = (page: number) => first.slice((page - 1) * 50, page * 50).map((c) => c.id);
  assert.deepEqual(await ids(3), expected(3));
  // Far more creates than the cached sums can be brought up to date from (the last two buckets).
  const more = Array.from({ length: BUCKET_SIZE * 3 }, (_, i) => seeded(nextId + i + 1, now));
  await rawInsertCustomers(real, cid, more);
  nextId += more.length;
  const listingsBefore = bucketListings;
  assert.deepEqual(await ids(7), expected(7));
  assert.equal(bucketListings - listingsBefore, 1, "one listing is enough, though a create followed it");
  // Cached now: later pages read no bucket counters again (the creates since sit in the last bucket).
  assert.deepEqual(await ids(12), expected(12));
  assert.deepEqual(await ids(2), expected(2));
  assert.equal(bucketListings - listingsBefore, 1);
});

/** Hooks into the listings of a list's bucket counters: what runs after a listing's first entry, or after its last. */
type ListingHooks = { afterFirst?: () => Promise<unknown>; afterLast?: () => Promise<unknown> };

/**
 * An app over a store of one customer in each of 1,100 buckets (1,100 counters, more than one listing batch of 1,000
 * reads at once), whose listings of the "all" list's bucket counters are counted and can run hooks.
 */
async function longList() {
  const cid = "acme";
  const bucketPrefix = JSON.stringify(["company", cid, "customer_buckets", "all"]);
  const now = Date.now();
  const customer = (id: number): Customer => ({ ...blankCustomer(id, { now, userId: 1 }), fname: `F${id}` });
  const stats = { listings: 0 };
  const during: ListingHooks[] = [];
  let real!: Deno.Kv;
  const wrap = (kv: Deno.Kv): Deno.Kv => {
    real = kv;
    return listHook(kv, (selector, _options, list) => {
      const prefix = "prefix" in selector ? JSON.stringify(selector.prefix) : "";
      if (prefix !== bucketPrefix) return list();
      stats.listings++;
      const hooks = during.shift() ?? {};
      return (async function* () {
        let n = 0;
        for await (const e of list()) {
          yield e;
          if (n++ === 0) await hooks.afterFirst?.();
        }
        await hooks.afterLast?.();
      })();
    });
  };
  const w = await world({ kv: wrap });
  const ids = Array.from({ length: 1100 }, (_, b) => b * BUCKET_SIZE + 1);
  await rawInsertCustomers(real, cid, ids.map(customer));
  let lastId = ids.at(-1)!;
  return {
    w,
    ids,
    stats,
    during,
    /** Writes customers straight to the store (as another process would), by id. */
    insert: (...more: number[]) => {
      ids.push(...more);
      return rawInsertCustomers(real, cid, more.map(customer));
    },
    /** A create: the next id. */
    create: () => {
      ids.push(++lastId);
      return rawInsertCustomers(real, cid, [customer(lastId)]);
    },
    page: async (n: number) => {
      const r = await w.call("GET", "/api/customer", { query: { page: n, page_size: 50 } });
      assert.equal(r.status, 200, r.text);
      return (r.body.customers as { id: number }[]).map((c) => c.id);
    },
    expected: (n: number) => [...ids].sort((a, b) => a - b).slice((n - 1) * 50, n * 50),
  };
}

Deno.test("a list of over 1,000 bucket counters is cached after a listing that creates followed; a change behind it is not", async () => {
  const { w, stats, during, insert, create, page, expected } = await longList();
  await using _ = w;

  // A create lands after the listing has read the last bucket: the last buckets read again with the totals make the
  // listing exact, so it is cached (before, each page listed all 1,100 counters three times and cached nothing).
  during.push({ afterLast: create });
  assert.deepEqual(await page(3), expected(3));
  assert.equal(stats.listings, 1);
  await create();
  assert.deepEqual(await page(22), expected(22));
  assert.deepEqual(await page(2), expected(2));
  assert.equal(stats.listings, 1, "cached: later pages read no bucket counters, creates since included");

  // A customer enters an early bucket (as an update moving one into a list would), so the cached sums are stale; while
  // they are listed again, another enters bucket 5, which the listing's first batch has already read. That listing
  // is not exact and is not cached: it is read again, and the pages count both.
  await insert(2 * BUCKET_SIZE + 7);
  during.push({ afterFirst: () => insert(5 * BUCKET_SIZE + 9) });
  assert.deepEqual(await page(4), expected(4));
  assert.equal(stats.listings, 3, "the overlapped listing was read again");
  assert.deepEqual(await page(60), expected(60));
  assert.deepEqual(await page(23), expected(23));
  assert.equal(stats.listings, 3);
});

Deno.test("a list of more buckets than are kept: pages read from the nearer end of a bucket are exact, creates meanwhile too", async () => {
  const cid = "acme";
  const listPrefix = JSON.stringify(["company", cid, "customer_lists", "phone1"]);
  const now = Date.now();
  /** Reads of a bucket's index keys with a limit (the nearer-end reads), by direction. */
  const reads: { limit: number; reverse: boolean }[] = [];
  /** A write made just before the next such read. */
  let createDuringRead: (() => Promise<unknown>) | null = null;
  let real!: Deno.Kv;
  const wrap = (kv: Deno.Kv): Deno.Kv => {
    real = kv;
    return listHook(kv, (selector, options, list) => {
      const within = "start" in selector && "end" in selector && !("prefix" in selector) &&
        JSON.stringify(selector.start).startsWith(listPrefix.slice(0, -1));
      if (!within || options?.limit === undefined) return list();
      reads.push({ limit: options.limit, reverse: options.reverse === true });
      const during = createDuringRead;
      if (!during) return list();
      createDuringRead = null;
      return (async function* () {
        await during();
        yield* list();
      })();
    });
  };
  await using w = await world({ kv: wrap });
  // 300 buckets (more than the 256 whose ids are kept), four customers with a phone in each, one without.
  const customer = (id: number, phone: boolean): Customer => ({
    ...blankCustomer(id, { now, userId: 1 }),
    fname: `F${id}`,
    phone: phone ? `7900${String(id).padStart(7, "0")}` : null,
  });
  const withPhone: number[] = [];
  const all: Customer[] = [];
  for (let b = 0; b < 300; b++) {
    for (const at of [1, 100, 250, 499]) {
      all.push(customer(b * BUCKET_SIZE + at, true));
      withPhone.push(b * BUCKET_SIZE + at);
    }
    all.push(customer(b * BUCKET_SIZE + 300, false));
  }
  await rawInsertCustomers(real, cid, all);
  const page = async (n: number, size: number) => {
    const r = await w.call("GET", "/api/customer", { query: { with_phone: 1, page: n, page_size: size } });
    assert.equal(r.status, 200, r.text);
    return (r.body.customers as { id: number }[]).map((c) => c.id);
  };
  // Pages starting at every position in a bucket (page sizes 3 and 5 walk across the four members).
  for (const size of [3, 5]) {
    const pages = Math.ceil(withPhone.length / size);
    for (let n = 2; n <= pages; n += 7) {
      assert.deepEqual(await page(n, size), withPhone.slice((n - 1) * size, n * size), `page ${n} of ${size}`);
    }
    assert.deepEqual(await page(pages, size), withPhone.slice((pages - 1) * size));
    assert.deepEqual(await page(pages + 1, size), []);
  }
  assert.ok(reads.some((r) => r.reverse) && reads.some((r) => !r.reverse), JSON.stringify(reads.slice(0, 5)));
  assert.ok(reads.every((r) => r.limit <= BUCKET_SIZE / 2 || !r.reverse), "a reverse read takes at most half a bucket");
  assert.ok(reads.every((r) => r.limit <= 4), "each read stops at the page's first id");

  // A page asked for again reads no keys: what was read of its bucket is kept. A change to that bucket (a phone
  // cleared) moves its counters, so the next page there reads again, and is exact.
  const again = reads.length;
  assert.deepEqual(await page(10, 5), withPhone.slice(45, 50));
  assert.deepEqual(await page(10, 5), withPhone.slice(45, 50));
  assert.ok(reads.length - again <= 1, "read at most once");
  const repeat = reads.length;
  assert.deepEqual(await page(10, 5), withPhone.slice(45, 50));
  assert.equal(reads.length, repeat, "kept: no read");
  const cleared = withPhone.splice(46, 1)[0]!;
  const r = await w.call("POST", "/api/customer/update", { query: { id: cleared }, form: { phone: "" } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(await page(10, 5), withPhone.slice(45, 50));
  assert.equal(reads.length, repeat + 1, "the changed bucket is read again");

  // Creates start a new last bucket; one more lands there while a page in it is being read. Read from the bucket's
  // start, the page still begins at its position (read from the end, it would begin at the create).
  const created: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await w.call("POST", "/api/customer/update", { form: { fname: "New", phone: `+7955000000${i}` } });
    assert.equal(r.status, 200, r.text);
    created.push(r.body.id);
  }
  const lastBucket = Math.floor(created[0]! / BUCKET_SIZE);
  assert.ok(lastBucket >= 300 && created.every((id) => Math.floor(id / BUCKET_SIZE) === lastBucket));
  createDuringRead = () => rawInsertCustomers(real, cid, [customer(lastBucket * BUCKET_SIZE + 450, true)]);
  const before = reads.length;
  // Page size 1: the page at position 1202, the third create, the last of three members (a reverse read elsewhere).
  assert.deepEqual(await page(withPhone.length + 3, 1), [created[2]]);
  assert.equal(reads.length - before, 1);
  assert.equal(reads.at(-1)!.reverse, false, "the last bucket is read from its start");
  assert.equal(createDuringRead, null, "the create landed during the read");
});

Deno.test("pages that find a long list's sums stale at once share one listing, and each sees the writes before it", async () => {
  const { w, stats, during, create, insert, page, expected, ids } = await longList();
  await using _ = w;
  await create();
  // Six pages at once on a cold cache: one listing. While it runs, after it has read the early buckets, a customer
  // enters bucket 2, and then a seventh page is asked for: it must count that customer though the listing it may join
  // began before the write.
  const early = 2 * BUCKET_SIZE + 7;
  const stale = Object.fromEntries([3, 7, 11, 15, 19, 22].map((n) => [n, expected(n)]));
  let late: Promise<number[]> | undefined;
  during.push({
    afterFirst: async () => {
      await insert(early);
      late = page(4);
    },
  });
  const pages = [3, 7, 11, 15, 19, 22];
  const got = await Promise.all(pages.map((n) => page(n)));
  // Asked for before the write, each page may or may not count it, but is exact either way.
  pages.forEach((n, i) => assert.ok([stale[n], expected(n)].some((e) => deepEqualish(got[i]!, e!)), `page ${n}`));
  assert.deepEqual(await late!, expected(4), "the page asked for after the write counts it");
  assert.ok((await late!).length === 50 && ids.includes(early));
  assert.ok(
    stats.listings <= 3,
    `listings: ${stats.listings} (one shared, read again once, at most one of the late page)`,
  );
});

function deepEqualish(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
