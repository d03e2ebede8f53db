/**
 * Review of round 12's four fixes (bb12): create retries, find-or-create by external id, bucket sums of long lists,
 * the log writer's flush. "fixed: ..." tests failed on the reviewed code (DEFECTs the review found, fixed after it);
 * "held: ..." tests pass.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { bufferedWriter } from "../routes/log.ts";
import { createApp } from "../routes/app.ts";
import { DEFAULT_CONFIG } from "../config.ts";
import { blankCustomer, type Customer } from "../domain/customer.ts";
import { BUCKET_SIZE } from "../storage/limits.ts";
import { rawInsertCustomers } from "../storage/seed.ts";
import { openRows } from "../domain/import/read.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { keys } from "../storage/keys.ts";
import { createStore } from "../storage/store.ts";
import { importRows, saveCustomer } from "../usecases/mod.ts";
import {
  assertJson,
  kvProxy,
  request,
  runTask,
  snapshot,
  startServer,
  storeDefects,
  tempDir,
  waitFor,
  world,
} from "./kit.ts";

Deno.test("fixed: find-or-create racing its own retry (same external_id, phone and email) updates the customer the retry made", async () => {
  await using w = await world();
  const proxy = kvProxy(w.kv);
  const racyApp = createApp({ kv: proxy.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  const same = {
    query: { external_id: "1C-7" },
    form: { fname: "Same", phone: "+79440000007", email: "same@example.com" },
  };
  // The till's retry, through another process, lands just before the original's commit.
  proxy.beforeCommit(() => w.call("POST", "/api/customer/update", same));
  const original = await request(racyApp, "POST", "/api/customer/update", { key: w.key, ...same });
  // Had it come a moment later it would have found 1C-7 and updated it (isnew 0), as a lone external_id does.
  assert.equal(original.status, 200, original.text);
  assert.equal(original.body.isnew, 0);
});

Deno.test("fixed: concurrent identical find-or-creates (external_id with phone and email) on two processes all answer 200", async () => {
  await using w = await world();
  const other = createApp({ kv: w.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  const replies = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      request(i % 2 === 0 ? other : w.app, "POST", "/api/customer/update", {
        key: w.key,
        query: { external_id: "1C-8" },
        form: { fname: "Same", phone: "+79440000008", email: "same8@example.com" },
      })),
  );
  assert.deepEqual(replies.map((r) => r.status), replies.map(() => 200), replies.map((r) => r.text).join("\n"));
});

Deno.test("fixed: find-or-create of a new external_id whose body sets another, taken one is 409 naming external_id (a regression of d4ddf0a)", async () => {
  await using w = await world();
  assertJson(await w.call("POST", "/api/customer/update", { form: { fname: "Held", external_id: "TAKEN" } }), 200);
  const before = await snapshot(w.kv);
  const r = await w.call("POST", "/api/customer/update", {
    query: { external_id: "NEW" },
    form: { fname: "X", external_id: "TAKEN" },
  });
  assert.equal(assertJson(r, 409).field, "external_id");
  assert.equal(await snapshot(w.kv), before);
});

// ---------------------------------------------------------------------------------------------------------------
// 3. bucketSums of a list of over 1,000 counters, validated by tailUpdate

Deno.test("held: long lists' cached bucket sums stay exact with changes in the last-but-one bucket, two buckets past the last, 'out' counters, creates, mid-listing", async () => {
  const cid = "acme";
  const now = Date.now();
  let listings = 0;
  let during: (() => Promise<unknown>) | undefined;
  let real!: Deno.Kv;
  const prefix = JSON.stringify(["company", cid, "customer_buckets"]);
  const wrap = (kv: Deno.Kv): Deno.Kv => {
    real = kv;
    return new Proxy(kv, {
      get(target, prop) {
        if (prop !== "list") {
          const v = Reflect.get(target, prop, target);
          return typeof v === "function" ? v.bind(target) : v;
        }
        return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
          const iter = target.list(selector, options);
          if (!("prefix" in selector) || !JSON.stringify(selector.prefix).startsWith(prefix.slice(0, -1))) return iter;
          listings++;
          const hook = during;
          during = undefined;
          return (async function* () {
            let n = 0;
            for await (const e of iter) {
              yield e;
              // Mid-listing: after the first batch (1,000 counters) and at the very end.
              if (++n === 1000 || n === 1001) await hook?.();
            }
            await hook?.();
          })();
        };
      },
    });
  };
  await using w = await world({ kv: wrap });
  // Bucket b holds id b*500+1 (with a phone) and, for even b, b*500+2 (without one): 1,100 buckets per list.
  const phones = new Map<number, boolean>();
  const seed: Customer[] = [];
  for (let b = 0; b < 1100; b++) {
    for (
      const [id, phone] of [[b * BUCKET_SIZE + 1, true], [b * BUCKET_SIZE + 2, b % 2 === 0 ? false : null]] as const
    ) {
      if (phone === null) continue;
      phones.set(id, phone);
      seed.push({
        ...blankCustomer(id, { now, userId: 1 }),
        fname: `F${id}`,
        phone: phone ? `7900${String(id).padStart(7, "0")}` : null,
      });
    }
  }
  await rawInsertCustomers(real, cid, seed);
  const setPhone = async (id: number, on: boolean) => {
    const r = await w.call("POST", "/api/customer/update", {
      query: { id },
      form: { phone: on ? `+7955${String(id).padStart(7, "0")}` : "" },
    });
    assert.equal(r.status, 200, r.text);
    phones.set(id, on);
  };
  const create = async (phone: boolean) => {
    const r = await w.call("POST", "/api/customer/update", {
      form: { fname: "New", ...(phone ? { phone: `+7966${String(phones.size).padStart(7, "0")}` } : {}) },
    });
    phones.set(assertJson(r, 200).id, phone);
  };
  const forge = async (id: number, phone: boolean) => {
    await rawInsertCustomers(real, cid, [{
      ...blankCustomer(id, { now, userId: 1 }),
      phone: phone ? `7977${String(id).padStart(7, "0")}` : null,
    }]);
    phones.set(id, phone);
  };
  let imported = 0;
  /** Imports `n` new customers (every other with a phone) as the importer does, then reads who is stored. */
  const importSome = async (n: number) => {
    const lines = ["external_id,fname,phone"];
    for (let i = 0; i < n; i++, imported++) {
      lines.push(`imp${imported},I${imported},${imported % 2 ? `7988${String(imported).padStart(7, "0")}` : ""}`);
    }
    const opened = await openRows(new Blob([lines.join("\n") + "\n"]).stream(), {
      format: "csv",
      type: "customers",
      batchSize: 300,
    });
    const report = await importRows(createStore(real), { companyId: cid, name: "import:bb12.csv", userId: 0 }, {
      type: "customers",
      settings: { defaultCountryCode: "7", timeZone: "UTC" },
      batches: opened.batches,
    });
    assert.equal(report.created, n, JSON.stringify(report.rejects));
    phones.clear();
    for await (const e of real.list<Customer>({ prefix: keys.customers(cid) })) {
      phones.set(e.value.id, e.value.phone !== null);
    }
  };
  /** Every page of the list (size 97) against the ids it should hold. */
  const check = async (what: string) => {
    const filters: Record<string, number>[] = [{}, { with_phone: 1 }, { with_phone: 0 }];
    for (const filter of filters) {
      // A deep page first: the listing (or the bring-up-to-date) it makes is where a change `during` lands.
      assertJson(await w.call("GET", "/api/customer", { query: { ...filter, page: 11, page_size: 97 } }), 200);
      const want = [...phones].filter(([, p]) => !("with_phone" in filter) || p === (filter.with_phone === 1)).map((
        [id],
      ) => id).sort((a, b) => a - b);
      const got: number[] = [];
      for (let page = 1;; page++) {
        const r = await w.call("GET", "/api/customer", { query: { ...filter, page, page_size: 97 } });
        const body = assertJson(r, 200);
        assert.equal(body.total_count, want.length, `${what} ${JSON.stringify(filter)} total`);
        got.push(...body.customers.map((c: { id: number }) => c.id));
        if (body.customers.length < 97) break;
      }
      assert.deepEqual(got, want, `${what} ${JSON.stringify(filter)}`);
    }
  };
  await check("seeded");
  /** The last bucket holding anyone now (every list here has a customer in it). */
  const last = () => Math.floor(Math.max(...phones.keys()) / BUCKET_SIZE);
  /** A customer of bucket b (its first or second seeded one), with or without a phone as asked, or a forged one. */
  const inBucket = (b: number, slot: 1 | 2) => b * BUCKET_SIZE + slot;
  const toggle = (id: number) => phones.has(id) ? setPhone(id, !phones.get(id)) : forge(id, true);
  const scenarios: [string, () => Promise<unknown>][] = [
    ["a phone cleared or set in the last-but-one bucket", () => toggle(inBucket(last() - 1, 1))],
    ["a phone set or cleared in the last-but-one bucket's second customer", () => toggle(inBucket(last() - 1, 2))],
    ["a phone cleared or set in the last bucket", () => toggle(inBucket(last(), 1))],
    ["a create", () => create(true)],
    ["a create without a phone", () => create(false)],
    ["a phone changed in bucket 3", () => toggle(inBucket(3, 1))],
    ["a forged customer two buckets past the last", () => forge(inBucket(last() + 2, 1), true)],
    ["a forged customer without a phone one bucket past the last", () => forge(inBucket(last() + 1, 1), false)],
    ["an import of 700 customers", () => importSome(700)],
    [
      "an import of 40 customers with a change in the last-but-one bucket",
      () => importSome(40).then(() => toggle(inBucket(last() - 1, 1))),
    ],
    [
      "a change in the last-but-one bucket with a create",
      () => Promise.all([toggle(inBucket(last() - 1, 1)), create(true)]),
    ],
    [
      "a change in the last-but-one bucket with a forged one two past",
      () => Promise.all([toggle(inBucket(last() - 1, 1)), forge(inBucket(last() + 2, 1), false)]),
    ],
  ];
  for (const [what, change] of scenarios) {
    // The change lands while the lists are read (listed or brought up to date), then again between pages.
    // A change in bucket 5 first makes the phone lists be listed again, with `change` landing mid-listing.
    await toggle(inBucket(5, 1));
    const before = listings;
    during = change;
    await check(`${what}, during`);
    assert.equal(during, undefined, `${what}: the change landed during a listing`);
    assert.ok(listings > before);
    await change();
    await check(`${what}, after`);
  }
  assert.ok(listings > 0);
  assert.deepEqual(await storeDefects(real), []);
});

// ---------------------------------------------------------------------------------------------------------------
// 4. bufferedWriter: flushSync while a write is under way

/**
 * An output whose asynchronous writes may be held pending until released. `landAt`: when a write's bytes reach the
 * output, as it is called ("call", as routes/log_test.ts has it) or as it finishes ("finish").
 */
function heldOutput(landAt: "call" | "finish") {
  const bytes: number[] = [];
  const pending: (() => void)[] = [];
  const state = { hold: false };
  return {
    state,
    pending,
    text: () => new TextDecoder().decode(new Uint8Array(bytes)),
    write(chunk: Uint8Array): Promise<number> {
      const copy = chunk.slice();
      if (!state.hold || landAt === "call") bytes.push(...copy);
      if (!state.hold) return Promise.resolve(copy.length);
      return new Promise((resolve) =>
        pending.push(() => {
          if (landAt === "finish") bytes.push(...copy);
          resolve(copy.length);
        })
      );
    },
    writeSync(chunk: Uint8Array): number {
      bytes.push(...chunk);
      return chunk.length;
    },
  };
}

for (const landAt of ["call", "finish"] as const) {
  const promise = landAt === "call" ? "every line once, in order" : "every line once (the write under way lands late)";
  Deno.test(`held: bufferedWriter with flushSync at any moment, then the held writes released (bytes land at ${landAt}): ${promise}`, async () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("plain" as const), n: fc.integer({ min: 1, max: 3 }) }),
      fc.record({ kind: fc.constant("bulk" as const), n: fc.integer({ min: 500, max: 4000 }) }),
      fc.record({ kind: fc.constant("wait" as const), n: fc.integer({ min: 0, max: 30 }) }),
      fc.record({ kind: fc.constant("release" as const), n: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant("hold" as const), n: fc.integer({ min: 0, max: 1 }) }),
      fc.record({ kind: fc.constant("flushSync" as const), n: fc.constant(0) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
        const out = heldOutput(landAt);
        const w = bufferedWriter(out);
        const expected: string[] = [];
        let serial = 0;
        for (const o of ops) {
          if (o.kind === "plain" || o.kind === "bulk") {
            for (let i = 0; i < o.n; i++) {
              const line = `line ${serial++} ${"é€😀".repeat(serial % 5)}${"z".repeat(serial % 90)}`;
              w.write(line);
              expected.push(line);
            }
          } else if (o.kind === "wait") await turn(o.n);
          else if (o.kind === "release") {
            for (let i = 0; i < o.n && out.pending.length > 0; i++) out.pending.shift()!();
          } else if (o.kind === "hold") out.state.hold = o.n === 1;
          else {
            w.flushSync();
            // What an exit at this moment leaves: every line so far, in order (a write under way has landed, as its
            // bytes land when it is called).
            if (landAt === "call") assert.equal(out.text(), expected.map((l) => l + "\n").join(""), "at the exit");
          }
        }
        out.state.hold = false;
        for (let round = 0; round < 3; round++) {
          while (out.pending.length > 0) {
            out.pending.shift()!();
            await turn(5);
          }
          await turn(40);
        }
        w.flushSync();
        const got = out.text();
        const want = expected.map((l) => l + "\n").join("");
        if (landAt === "call") assert.equal(got, want);
        else {
          assert.ok(got.endsWith("\n") || got === "");
          assert.deepEqual(got.split("\n").slice(0, -1).sort(), [...expected].sort());
        }
      }),
      { numRuns: 40 },
    );
  });
}

const turn = (ms = 0) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------------
// 2. find-or-create by external id (held parts)

Deno.test("held: find-or-create by one external_id under concurrency: one customer; a phone/email another customer holds is 409 naming it, nothing written; create_if_not_exist=0 is 404", async () => {
  await using w = await world();
  const other = createApp({ kv: w.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  const holder = assertJson(
    await w.call("POST", "/api/customer/update", {
      form: { fname: "Holder", phone: "+79440000100", email: "h@example.com" },
    }),
    200,
  ).id;
  const replies = await Promise.all(
    Array.from({ length: 24 }, (_, i) => {
      const form: Record<string, string> = { fname: `F${i}` };
      if (i % 6 === 1) form.phone = "+79440000100";
      if (i % 6 === 2) form.email = "H@example.com";
      return request(i % 2 === 0 ? other : w.app, i % 4 === 3 ? "GET" : "POST", "/api/customer/update", {
        key: w.key,
        query: i % 4 === 3 ? { external_id: "EXT-1", ...form } : { external_id: "EXT-1" },
        ...(i % 4 === 3 ? {} : { form }),
        ...(i % 5 === 0 ? { format: "xml" } : {}),
      });
    }),
  );
  const ok: number[] = [];
  for (const [i, r] of replies.entries()) {
    if (i % 6 === 1 || i % 6 === 2) {
      assert.equal(r.status, 409, r.text);
      assert.match(r.text, i % 6 === 1 ? /phone/ : /email/);
    } else {
      assert.equal(r.status, 200, `${i}: ${r.text}`);
      ok.push(i);
    }
  }
  const found = assertJson(await w.call("GET", "/api/customer", { query: { external_id: "EXT-1" } }), 200);
  assert.equal(found.count, 1);
  assert.equal(found.customers[0].phone, null, "a refused request wrote nothing");
  assert.equal(found.customers[0].email, null);
  const all = assertJson(await w.call("GET", "/api/customer", { query: { page: 1, page_size: 10 } }), 200);
  assert.deepEqual(all.customers.map((c: { id: number }) => c.id).sort(), [holder, found.customers[0].id].sort());
  const absent = await w.call("POST", "/api/customer/update", {
    query: { external_id: "EXT-2", create_if_not_exist: 0 },
    form: { fname: "No" },
  });
  assert.equal(absent.status, 404, absent.text);
  assert.deepEqual(await storeDefects(w.kv), []);
});

// ---------------------------------------------------------------------------------------------------------------
// 1. creates retried MAX_CREATE_RETRIES times

Deno.test("fixed: an import's id reservation outlasts 12 lost races to API creates (it gave up after 8)", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const seqKey = JSON.stringify(keys.sequence("acme", "customers"));
    const till = createStore(kv);
    let raced = 0;
    // storage/import_batch.ts reserve() kept MAX_RETRIES (8); it now takes MAX_CREATE_RETRIES. Seen for real: POST /api/import of 20 rows beside 32
    // clients creating customers on two workers answered 409 "the id sequence was changed concurrently too often"
    // for 1 to 5 of 60 imports per run. Here, deterministically:
    // another process's API create lands just before each of the import's next 12 commits that move the sequence
    // (a create lost 12 races lands: tests/customer_create_ids_test.ts).
    const racing = new Proxy(kv, {
      get(target, prop) {
        if (prop === "atomic") {
          return () => {
            const op = target.atomic();
            const setKeys: string[] = [];
            const set = op.set.bind(op);
            op.set = (key, value, options) => {
              setKeys.push(JSON.stringify(key));
              return set(key, value, options);
            };
            const commit = op.commit.bind(op);
            op.commit = async () => {
              if (setKeys.includes(seqKey) && raced < 12) {
                raced++;
                await saveCustomer(till, { companyId: "acme", name: "key:till", userId: 0 }, {
                  create: true,
                  patch: { fname: `Till${raced}` },
                  timeZone: "UTC",
                });
              }
              return await commit();
            };
            return op;
          };
        }
        const v = Reflect.get(target, prop);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    const lines = ["external_id,fname", ...Array.from({ length: 5 }, (_, i) => `imp${i},Row${i}`)];
    const opened = await openRows(new Blob([lines.join("\n") + "\n"]).stream(), {
      format: "csv",
      type: "customers",
      batchSize: 300,
    });
    const report = await importRows(createStore(racing), { companyId: "acme", name: "import:x.csv", userId: 0 }, {
      type: "customers",
      settings: { defaultCountryCode: "7", timeZone: "UTC" },
      batches: opened.batches,
    });
    assert.deepEqual(report.rejects, []);
    assert.equal(report.created, 5);
  } finally {
    kv.close();
  }
});

Deno.test({
  name:
    "held: a burst of card inserts and customer creates of two companies on two workers: no 409, ids unique and dense, verify clean",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir();
    const kvPath = `${dir.path}/s.kv`;
    const kv = await Deno.openKv(kvPath);
    const companies = ["bb12a", "bb12b"];
    const keysOf: string[] = [];
    try {
      for (const cid of companies) {
        keysOf.push((await createApiKey(kv, { companyId: cid, userId: 1, access: "write", now: Date.now() })).key);
      }
    } finally {
      kv.close();
    }
    await using server = startServer({ kvPath, workers: 2 });
    await server.ready(keysOf[0]!);
    const owners: number[][] = [[], []];
    for (const [c, key] of keysOf.entries()) {
      for (let i = 0; i < 4; i++) {
        const r = await request(server.base, "POST", "/api/customer/update", {
          key,
          form: { fname: "Owner", phone: `7900555${c}00${i}` },
        });
        owners[c]!.push(assertJson(r, 200).id);
      }
    }
    const customers: number[][] = [[...owners[0]!], [...owners[1]!]];
    const cards: number[][] = [[], []];
    const failures: string[] = [];
    let stop = false;
    let serial = 0;
    const client = async (n: number) => {
      const c = n % 2;
      const key = keysOf[c]!;
      while (!stop) {
        const i = serial++;
        const card = n % 4 < 2;
        const r = card
          ? await request(server.base, "POST", "/api/customer/insertCard", {
            key,
            form: { customer_id: owners[c]![i % 4]! },
          })
          : await request(server.base, "POST", "/api/customer/update", {
            key,
            form: { fname: `B${i}`, phone: `7933${String(i).padStart(7, "0")}` },
          });
        if (r.status !== 200) failures.push(`${r.status} ${r.text}`);
        else (card ? cards : customers)[c]!.push(card ? r.body.card_id : r.body.id);
      }
    };
    const clients = Array.from({ length: 32 }, (_, n) => client(n));
    await waitFor("a few seconds of creates", () => serial >= 15000 || undefined, { timeoutMs: 60_000 });
    stop = true;
    await Promise.all(clients);
    assert.deepEqual(failures, []);
    for (const c of [0, 1]) {
      for (const ids of [customers[c]!, cards[c]!]) {
        assert.equal(new Set(ids).size, ids.length, "ids unique");
        assert.deepEqual([...ids].sort((a, b) => a - b), Array.from({ length: ids.length }, (_, i) => i + 1), "dense");
      }
    }
    await server.stop();
    const v = await runTask("verify", [], { kvPath });
    assert.equal(v.code, 0, v.out + v.err);
  },
});
