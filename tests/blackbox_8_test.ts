/**
 * Black-box review 8: customer creates that wait for their company's queue go in together (storage/customers.ts,
 * createTogether). Attacked from outside, through the real app (app.request) and real server processes: bursts of
 * creates mixing callers, companies, unique values written in several ways, groups, updates that move phones,
 * imports, two apps on one store, `deno serve --parallel`, SIGKILL mid-burst and store errors mid-burst.
 * Tests named "DEFECT ..." fail on the code reviewed; "held: ..." are attacks that held.
 */
import assert from "node:assert/strict";
import { DEFAULT_CONFIG } from "../config.ts";
import { createApp } from "../routes/app.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { listHistory } from "../storage/audit.ts";
import { keys } from "../storage/keys.ts";
import { verifyStore } from "../storage/verify.ts";
import {
  assertJson,
  type Reply,
  request,
  runTask,
  type ServerProcess,
  startServer,
  tempDir,
  waitFor,
  type World,
  world,
} from "./kit.ts";

const phoneOf = (i: number) => `+7944${String(i).padStart(7, "0")}`;

function create(w: World, form: Record<string, string | number>, key = w.key): Promise<Reply> {
  return request(w.app, "POST", "/api/customer/update", { key, form });
}

async function defects(kv: Deno.Kv): Promise<string[]> {
  const found: string[] = [];
  await verifyStore(kv, { onFinding: (f) => f.severity === "defect" && found.push(f.message) });
  return found;
}

/** The ids of a company's customer records, in key order. */
async function recordIds(kv: Deno.Kv, cid: string): Promise<number[]> {
  const ids: number[] = [];
  for await (const e of kv.list({ prefix: keys.customers(cid) })) ids.push(e.key.at(-1) as number);
  return ids;
}

const dense = (n: number, from = 1) => Array.from({ length: n }, (_, i) => i + from);
const sorted = (ids: number[]) => [...ids].sort((a, b) => a - b);

/**
 * A store wrapper whose next atomic commit that writes two customer records or more throws: before applying it, or
 * (`afterApplying`) after, as a connection lost after the write would.
 */
function failNextGroupWrite(kv: Deno.Kv, cid: string, afterApplying = false): { kv: Deno.Kv; failed: number[] } {
  const prefix = JSON.stringify(keys.customers(cid)).slice(0, -1) + ",";
  const failed: number[] = [];
  let armed = true;
  const proxy = new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const records: number[] = [];
          const set = op.set.bind(op);
          op.set = (key, value, options) => {
            if (JSON.stringify(key).startsWith(prefix) && key.length === keys.customers(cid).length + 1) {
              records.push(key.at(-1) as number);
            }
            return set(key, value, options);
          };
          const commit = op.commit.bind(op);
          op.commit = () => {
            if (armed && records.length >= 2) {
              armed = false;
              failed.push(...records);
              const fault = new Error("injected store fault");
              return afterApplying ? commit().then(() => Promise.reject(fault)) : Promise.reject(fault);
            }
            return commit();
          };
          return op;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { kv: proxy, failed };
}

Deno.test("fixed: a store error in one write of creates together fails creates that were not in that write", async () => {
  let fault: ReturnType<typeof failNextGroupWrite> | null = null;
  await using w = await world({ kv: (kv) => (fault = failNextGroupWrite(kv, "acme")).kv });
  assertJson(await create(w, { fname: "first", phone: phoneOf(0) }), 200);
  // Phone-only creates: one write holds at most 9 of them (1 sequence check + 1 claim each, MAX_CHECKS 10).
  const replies = await Promise.all(dense(40).map((i) => create(w, { fname: `B${i}`, phone: phoneOf(i) })));
  const failedWrite = fault!.failed;
  assert.ok(failedWrite.length >= 2, "a write of creates together was made (and failed)");
  const errors = replies.filter((r) => r.status !== 200);
  assert.ok(errors.every((r) => r.status === 500), errors.map((r) => r.text).join("\n"));
  // Nothing of the failed write is stored, and every create not stored got an error (held) ...
  const stored = await recordIds(w.kv, "acme");
  assert.equal(stored.length, 1 + replies.filter((r) => r.status === 200).length);
  // ... but only the creates of that write should have failed: one store error failed others that were never sent.
  assert.equal(
    errors.length,
    failedWrite.length,
    `${errors.length} creates failed for one write of ${failedWrite.length}`,
  );
});

Deno.test("held: a store error mid-burst: each failed create is absent, each acknowledged one present, ids dense", async () => {
  let fault: ReturnType<typeof failNextGroupWrite> | null = null;
  await using w = await world({ kv: (kv) => (fault = failNextGroupWrite(kv, "acme")).kv });
  assertJson(await create(w, { fname: "first", phone: phoneOf(0) }), 200);
  const replies = await Promise.all(dense(40).map((i) => create(w, { fname: `B${i}`, phone: phoneOf(i) })));
  assert.ok(fault!.failed.length >= 2);
  const ok = replies.map((r, i) => ({ r, i: i + 1 })).filter(({ r }) => r.status === 200);
  const ids = ok.map(({ r }) => assertJson(r, 200).id as number);
  assert.deepEqual(sorted(ids), dense(ids.length, 2));
  for (const [n, r] of replies.entries()) {
    const found = assertJson(await w.call("GET", "/api/customer", { query: { phone: phoneOf(n + 1) } }), 200);
    assert.equal(found.customers.length, r.status === 200 ? 1 : 0, `create ${n + 1} answered ${r.status}`);
  }
  // The values the failed creates claimed are free again: creating them now succeeds.
  for (const [n, r] of replies.entries()) {
    if (r.status !== 200) assertJson(await create(w, { fname: "again", phone: phoneOf(n + 1) }), 200);
  }
  assert.deepEqual(sorted(await recordIds(w.kv, "acme")), dense(41));
  assert.deepEqual(await defects(w.kv), []);
});

Deno.test("held: a mixed burst (two companies, two keys, values written two ways, groups, big records): one holder per value, right 409 fields, dense ids, counts, audit", async () => {
  await using w = await world();
  const second = await createApiKey(w.kv, { companyId: "acme", userId: 9, access: "write" });
  assertJson(await w.call("POST", "/api/customer/update", { form: { fname: "g", group_name: "Silver" } }), 200);
  const big = 'Я"\\'.repeat(1300);
  type Plan = { key: string; company: string; form: Record<string, string | number>; wants?: string };
  const plans: Plan[] = [];
  for (let i = 0; i < 120; i++) {
    const company = i % 5 === 4 ? "globex" : "acme";
    const key = company === "globex" ? w.otherKey : i % 3 === 0 ? second.key : w.key;
    const form: Record<string, string | number> = { fname: `M${i}`, lname: i % 2 ? `Last${i % 7}` : "" };
    const slot = i % 12;
    if (slot === 0) form.phone = "+7 (955) 000-00-01"; // the same phone written in two ways
    else if (slot === 1) form.phone = "89550000001";
    else if (slot === 2) form.email = "Same.Person@Example.com"; // the same email in two cases
    else if (slot === 3) form.email = "same.person@example.COM";
    else if (slot === 4) form.external_id = "ext-shared";
    else form.phone = phoneOf(1000 + i);
    if (slot === 5) form.email = `u${i}@example.com`;
    if (slot === 6) form.custom_information = big;
    if (slot === 7) form.group_name = "Silver";
    if (slot === 8) form.group_name = i % 2 ? "Gold" : "gold";
    if (slot === 9) form.external_id = `own-${i}`;
    plans.push({ key, company, form });
  }
  const replies = await Promise.all(
    plans.map((p) => request(w.app, "POST", "/api/customer/update", { key: p.key, form: p.form })),
  );
  for (const company of ["acme", "globex"]) {
    const mine = plans.map((p, i) => ({ p, r: replies[i]! })).filter(({ p }) => p.company === company);
    // Each shared value: exactly one create holds it; the others are 409 naming that field.
    const shared: [string, (f: Record<string, string | number>) => boolean][] = [
      ["phone", (f) => f.phone === "+7 (955) 000-00-01" || f.phone === "89550000001"],
      ["email", (f) => typeof f.email === "string" && f.email.toLowerCase() === "same.person@example.com"],
    ];
    for (const [field, wants] of shared) {
      const group = mine.filter(({ p }) => wants(p.form));
      assert.equal(group.filter(({ r }) => r.status === 200).length, 1, `${company} ${field}`);
      for (const { r } of group.filter(({ r }) => r.status !== 200)) assert.equal(assertJson(r, 409).field, field);
    }
    // external_id given as a field (not a lookup): one holds it, the others 409 naming external_id.
    const ext = mine.filter(({ p }) => p.form.external_id === "ext-shared");
    assert.equal(ext.filter(({ r }) => r.status === 200).length, 1);
    for (const { r } of ext.filter(({ r }) => r.status !== 200)) assert.equal(assertJson(r, 409).field, "external_id");
    const others = mine.filter(({ p }) =>
      !shared.some(([, wants]) => wants(p.form)) && p.form.external_id !== "ext-shared"
    );
    for (const { r } of others) assertJson(r, 200);
    const made = mine.filter(({ r }) => r.status === 200);
    const ids = made.map(({ r }) => r.body.id as number);
    const base = company === "acme" ? 2 : 1;
    assert.deepEqual(sorted(ids), dense(ids.length, base), `${company} ids`);
    const key = company === "acme" ? w.key : w.otherKey;
    const page = assertJson(await w.call("GET", "/api/customer", { key, query: { page: 1, page_size: 200 } }), 200);
    assert.equal(page.total_count, ids.length + base - 1);
    const withPhone = assertJson(
      await w.call("GET", "/api/customer", { key, query: { page: 1, page_size: 200, with_phone: 1 } }),
      200,
    );
    assert.equal(withPhone.total_count, page.customers.filter((c: { phone: unknown }) => c.phone !== null).length);
    const withEmail = assertJson(
      await w.call("GET", "/api/customer", { key, query: { page: 1, page_size: 200, with_email: 1 } }),
      200,
    );
    assert.equal(withEmail.total_count, page.customers.filter((c: { email: unknown }) => c.email !== null).length);
    for (const { p, r } of made) {
      const c = page.customers.find((x: { id: number }) => x.id === r.body.id);
      assert.equal(c.fname, p.form.fname);
      if (p.form.custom_information) assert.equal(c.custom_information, big);
      const [entry] = await listHistory(w.kv, company, { entity: "customer", entityId: String(r.body.id), limit: 5 });
      assert.equal(entry!.entry.action, "create");
      const userId = company === "globex" ? 7 : p.key === second.key ? 9 : 2;
      assert.equal(entry!.entry.user_id, userId);
    }
  }
  const groups = assertJson(await w.call("GET", "/api/customergroup"), 200);
  const names = groups.groups.map((g: { group_name: string }) => g.group_name.toLowerCase());
  assert.equal(names.filter((n: string) => n === "gold").length, 1, JSON.stringify(groups));
  assert.deepEqual(await defects(w.kv), []);
});

Deno.test("held: creates racing updates that move phones: each phone has one holder, 409s only for held phones", async () => {
  await using w = await world();
  const movers: number[] = [];
  for (let i = 0; i < 20; i++) {
    movers.push(assertJson(await create(w, { fname: `old${i}`, phone: phoneOf(5000 + i) }), 200).id);
  }
  const work: Promise<Reply>[] = [];
  for (let i = 0; i < 20; i++) {
    // the mover gives up its phone while two creates want it
    work.push(
      w.call("POST", "/api/customer/update", { query: { id: movers[i]! }, form: { phone: phoneOf(6000 + i) } }),
    );
    work.push(create(w, { fname: `new${i}a`, phone: phoneOf(5000 + i) }));
    work.push(create(w, { fname: `new${i}b`, phone: phoneOf(5000 + i), email: `n${i}@example.com` }));
  }
  const replies = await Promise.all(work);
  for (let i = 0; i < 20; i++) {
    assertJson(replies[3 * i]!, 200);
    const pair = [replies[3 * i + 1]!, replies[3 * i + 2]!];
    assert.ok(pair.filter((r) => r.status === 200).length <= 1);
    for (const r of pair.filter((r) => r.status !== 200)) assert.equal(assertJson(r, 409).field, "phone");
    const holder = assertJson(await w.call("GET", "/api/customer", { query: { phone: phoneOf(5000 + i) } }), 200);
    const won = pair.find((r) => r.status === 200);
    assert.equal(holder.customers.length, 1);
    assert.equal(holder.customers[0].id, won ? won.body.id : movers[i], `phone ${i}`);
  }
  assert.deepEqual(await defects(w.kv), []);
});

Deno.test("held: a page walk by cursor and by page number during a burst shows no customer twice, and all after it", async () => {
  await using w = await world();
  for (let i = 0; i < 30; i++) assertJson(await create(w, { fname: `pre${i}`, phone: phoneOf(7000 + i) }), 200);
  let done = false;
  const burst = Promise.all(dense(150).map((i) => create(w, { fname: `b${i}`, phone: phoneOf(8000 + i) })))
    .finally(() => done = true);
  const walks: number[][] = [];
  while (!done || walks.length < 2) {
    const seen: number[] = [];
    let cursor: string | null = null;
    let first = true;
    while (first || cursor) {
      const query: Record<string, string | number> = cursor ? { cursor, page_size: 7 } : { page: 1, page_size: 7 };
      const r = assertJson(await w.call("GET", "/api/customer", { query }), 200);
      seen.push(...r.customers.map((c: { id: number }) => c.id));
      cursor = r.next_cursor;
      first = false;
    }
    assert.equal(new Set(seen).size, seen.length, "no customer twice in a cursor walk");
    assert.deepEqual(seen, sorted(seen));
    assert.deepEqual(seen, dense(seen.length), "a cursor walk shows a prefix of the ids, with no hole");
    const byPage: number[] = [];
    for (let page = 1; page <= 40; page++) {
      const r = assertJson(await w.call("GET", "/api/customer", { query: { page, page_size: 9 } }), 200);
      byPage.push(...r.customers.map((c: { id: number }) => c.id));
      if (r.customers.length < 9) break;
    }
    assert.equal(new Set(byPage).size, byPage.length, "no customer twice in a walk by page number");
    walks.push(seen);
  }
  const replies = await burst;
  for (const r of replies) assertJson(r, 200);
  const whole = assertJson(await w.call("GET", "/api/customer", {}), 200);
  assert.deepEqual(whole.customers.map((c: { id: number }) => c.id), dense(180));
  assert.deepEqual(await defects(w.kv), []);
});

Deno.test("held: two apps (processes) on one store bursting creates of two keys: no error, dense ids, verify clean", async () => {
  await using w = await world();
  const second = await createApiKey(w.kv, { companyId: "acme", userId: 9, access: "write" });
  const other = createApp({ kv: w.kv, config: { ...DEFAULT_CONFIG, kvPath: ":memory:", logRequests: false } });
  const replies = await Promise.all(
    dense(300).map((i) =>
      request(i % 2 ? other : w.app, "POST", "/api/customer/update", {
        key: i % 3 ? w.key : second.key,
        form: { fname: `two${i}`, phone: phoneOf(9000 + i), email: `two${i}@example.com` },
      })
    ),
  );
  const bad = replies.filter((r) => r.status !== 200);
  assert.deepEqual(bad.map((r) => r.text), []);
  assert.deepEqual(sorted(replies.map((r) => r.body.id)), dense(300));
  assert.deepEqual(await defects(w.kv), []);
});

Deno.test("held: POST /api/import and webhook-less creates in one burst: no id twice, every row and create stored", async () => {
  await using w = await world();
  const rows =
    dense(300).map((i) =>
      JSON.stringify({ line: i + 1, values: { external_id: `imp${i}`, phone: phoneOf(20000 + i) } })
    )
      .join("\n") + "\n";
  const headers = { "content-type": "application/x-ndjson" };
  const importing = w.call("POST", "/api/import", { query: { type: "customers" }, body: rows, headers });
  const creates = Promise.all(dense(80).map((i) => create(w, { fname: `c${i}`, phone: phoneOf(30000 + i) })));
  const [imp, made] = await Promise.all([importing, creates]);
  assert.equal(imp.status, 200, imp.text);
  assert.equal(imp.body.created, 300, imp.text);
  for (const r of made) assertJson(r, 200);
  const ids = await recordIds(w.kv, "acme");
  assert.equal(ids.length, 380);
  const page = assertJson(await w.call("GET", "/api/customer", { query: { page: 1, page_size: 50 } }), 200);
  assert.equal(page.total_count, 380);
  assert.deepEqual(await defects(w.kv), []);
});

/** Makes a write key of company "acme" in the store file, before any server opens it. */
async function makeKey(kvPath: string): Promise<string> {
  const kv = await Deno.openKv(kvPath);
  try {
    return (await createApiKey(kv, { companyId: "acme", userId: 4, access: "write", now: Date.now() })).key;
  } finally {
    kv.close();
  }
}

Deno.test({
  name:
    "held: deno serve --parallel (2 workers), a second server and `deno task import` on one store, bursting creates: dense ids, verify clean",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir("bb8_par_");
    const kvPath = `${dir.path}/s.kv`;
    const key = await makeKey(kvPath);
    await using a = startServer({ kvPath, workers: 2 });
    await using b = startServer({ kvPath, via: "task" });
    await a.ready(key);
    await b.ready(key);
    const csv = `${dir.path}/rows.csv`;
    await Deno.writeTextFile(
      csv,
      "external_id,phone\n" + dense(150).map((i) => `cli${i},${phoneOf(45000 + i)}`).join("\n"),
    );
    const importing = runTask("import", [csv, "--company", "acme"], { kvPath });
    const replies = await Promise.all(
      dense(240).map((i) =>
        request(i % 3 === 0 ? b.base : a.base, "POST", "/api/customer/update", {
          key,
          form: { fname: `p${i}`, phone: phoneOf(40000 + (i % 200)), email: `p${i}@example.com` },
        })
      ),
    );
    const imported = await importing;
    assert.equal(imported.code, 0, imported.out + imported.err);
    const ok = replies.filter((r) => r.status === 200);
    const refused = replies.filter((r) => r.status !== 200);
    // 40 phones are wanted twice: one of each pair wins, the other is 409 naming phone.
    assert.equal(ok.length, 200, refused.map((r) => r.text).join("\n"));
    for (const r of refused) assert.equal(assertJson(r, 409).field, "phone");
    assert.equal(new Set(ok.map((r) => r.body.id)).size, 200);
    const walk = assertJson(await request(a.base, "GET", "/api/customer", { key }), 200);
    assert.deepEqual(walk.customers.map((c: { id: number }) => c.id), dense(350));
    for (const i of [1, 75, 150]) {
      const r = assertJson(
        await request(b.base, "GET", "/api/customer", { key, query: { external_id: `cli${i}` } }),
        200,
      );
      assert.equal(r.customers[0]?.phone, phoneOf(45000 + i).slice(1));
    }
    await a.stop();
    await b.stop();
    const v = await runTask("verify", [], { kvPath });
    assert.equal(v.code, 0, v.out + v.err);
  },
});

Deno.test({
  name: "held: SIGKILL of the server mid-burst: every acknowledged create survives, ids dense, nothing half-written",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using dir = await tempDir("bb8_kill_");
    const kvPath = `${dir.path}/s.kv`;
    const key = await makeKey(kvPath);
    let server: ServerProcess = startServer({ kvPath });
    try {
      await server.ready(key);
      const base = server.base;
      const acked = new Map<number, number>();
      let dead = false;
      let serial = 0;
      const client = async () => {
        while (!dead) {
          const n = serial++;
          try {
            const r = await request(base, "POST", "/api/customer/update", {
              key,
              form: { fname: `k${n}`, phone: phoneOf(50000 + n), email: `k${n}@example.com` },
            });
            if (r.status === 200) acked.set(n, r.body.id);
            else throw new Error(`create answered ${r.status}: ${r.text}`);
          } catch (e) {
            if (dead) return;
            throw e;
          }
        }
      };
      const clients = Array.from({ length: 32 }, () => client());
      await waitFor("acknowledged creates", () => acked.size >= 100 + Math.floor(Math.random() * 200) || undefined);
      dead = true;
      await server.stop("SIGKILL");
      await Promise.allSettled(clients);
      server = startServer({ kvPath, port: server.port });
      await server.ready(key);
      for (const [n, id] of acked) {
        const r = assertJson(
          await request(server.base, "GET", "/api/customer", { key, query: { phone: phoneOf(50000 + n) } }),
          200,
        );
        assert.equal(r.customers[0]?.id, id, `acknowledged create ${n} (id ${id}) was lost`);
      }
      const whole = assertJson(await request(server.base, "GET", "/api/customer", { key }), 200);
      const ids = whole.customers.map((c: { id: number }) => c.id);
      assert.deepEqual(ids, dense(ids.length));
      // creates go on after the restart from the sequence as it was left
      const next = assertJson(
        await request(server.base, "POST", "/api/customer/update", {
          key,
          form: { fname: "after", phone: phoneOf(1) },
        }),
        200,
      );
      assert.equal(next.id, ids.length + 1);
      await server.stop();
      const v = await runTask("verify", [], { kvPath });
      assert.equal(v.code, 0, v.out + v.err);
    } finally {
      await server.stop();
    }
  },
});

Deno.test("held: creates together across a count bucket's edge (id 500): deep pages, list counts and the streamed list stay exact", async () => {
  await using w = await world();
  const rows =
    dense(488).map((i) =>
      JSON.stringify({ line: i + 1, values: { phone: phoneOf(60000 + i), lname: i % 2 ? "Edge" : "" } })
    ).join("\n") + "\n";
  const headers = { "content-type": "application/x-ndjson" };
  const imp = await w.call("POST", "/api/import", { query: { type: "customers" }, body: rows, headers });
  assert.equal(imp.body.created, 488, imp.text);
  // pages read before the burst, so that their counts are cached
  for (const page of [1, 9, 10]) {
    assertJson(await w.call("GET", "/api/customer", { query: { page, page_size: 50 } }), 200);
  }
  let done = false;
  const burst = Promise.all(
    dense(40).map((i) => create(w, { fname: `e${i}`, lname: i % 3 ? "Edge" : "Other", phone: phoneOf(70000 + i) })),
  ).finally(() => done = true);
  while (!done) {
    const whole = assertJson(await w.call("GET", "/api/customer", {}), 200);
    const ids = whole.customers.map((c: { id: number }) => c.id);
    assert.deepEqual(ids, dense(ids.length), "the whole list during the burst is a prefix of the ids");
    assert.equal(whole.count, ids.length);
  }
  for (const r of await burst) assertJson(r, 200);
  const total = 528;
  for (const [page, size] of [[1, 50], [10, 50], [11, 50], [3, 200], [2, 250]] as const) {
    const r = assertJson(await w.call("GET", "/api/customer", { query: { page, page_size: size } }), 200);
    assert.equal(r.total_count, total);
    const from = (page - 1) * size + 1;
    assert.deepEqual(
      r.customers.map((c: { id: number }) => c.id),
      dense(Math.max(0, Math.min(size, total - from + 1)), from),
      `page ${page} of ${size}`,
    );
  }
  const phones = assertJson(
    await w.call("GET", "/api/customer", { query: { page: 11, page_size: 50, with_phone: 1 } }),
    200,
  );
  assert.equal(phones.total_count, total);
  assert.deepEqual(phones.customers.map((c: { id: number }) => c.id), dense(28, 501));
  assert.deepEqual(await defects(w.kv), []);
});

Deno.test("fixed: a create of one key waits behind creates of another key that were sent after it (they go first, turn after turn)", async () => {
  await using w = await world();
  const other = await createApiKey(w.kv, { companyId: "acme", userId: 9, access: "write" });
  let sent = 0;
  let stop = false;
  const made: { sentAs: number; id: number }[] = [];
  // 32 clients of one key create customers (phone and email: four go in one write) as fast as answered
  const flood = async (c: number) => {
    for (let n = 0; !stop && n < 60; n++) {
      const sentAs = sent++;
      const r = await create(w, {
        fname: `a${c}-${n}`,
        phone: phoneOf(100000 + c * 100 + n),
        email: `a${c}-${n}@x.org`,
      });
      made.push({ sentAs, id: assertJson(r, 200).id });
    }
  };
  const clients = Array.from({ length: 32 }, (_, c) => flood(c));
  await waitFor("the flood under way", () => made.length >= 64 || undefined);
  const mine = sent++;
  const reply = await create(w, { fname: "b", phone: phoneOf(1), email: "b@x.org" }, other.key);
  const id = assertJson(reply, 200).id as number;
  stop = true;
  await Promise.all(clients);
  // A fair queue lets at most the creates already waiting go first (one per flooding client); here creates sent
  // after it by the other key keep going first.
  const overtook = made.filter((m) => m.sentAs > mine && m.id < id).length;
  assert.ok(overtook <= 64, `${overtook} creates sent after it were committed before it`);
});

Deno.test("held: a write of creates together lost after it was applied: later creates go on densely, verify clean", async () => {
  let fault: ReturnType<typeof failNextGroupWrite> | null = null;
  await using w = await world({ kv: (kv) => (fault = failNextGroupWrite(kv, "acme", true)).kv });
  assertJson(await create(w, { fname: "first", phone: phoneOf(0) }), 200);
  const replies = await Promise.all(dense(40).map((i) => create(w, { fname: `L${i}`, phone: phoneOf(i) })));
  const applied = fault!.failed;
  assert.ok(applied.length >= 2);
  for (const [n, r] of replies.entries()) {
    const found = assertJson(await w.call("GET", "/api/customer", { query: { phone: phoneOf(n + 1) } }), 200);
    if (r.status === 200) assert.equal(found.customers[0]?.id, r.body.id);
    else {
      assert.equal(r.status, 500);
      if (found.customers.length > 0) assert.ok(applied.includes(found.customers[0].id));
    }
  }
  const more = await Promise.all(dense(20).map((i) => create(w, { fname: `M${i}`, phone: phoneOf(500 + i) })));
  for (const r of more) assertJson(r, 200);
  const ids = await recordIds(w.kv, "acme");
  assert.deepEqual(ids, dense(ids.length));
  assert.deepEqual(await defects(w.kv), []);
});
