import assert from "node:assert/strict";
import type { LedgerEntry } from "../domain/bonus.ts";
import type { BalanceRecord } from "../storage/bonuses.ts";
import { bonusKeys } from "../storage/keys.ts";
import { expiryKeys, releaseLease, takeLease } from "../storage/expiry.ts";
import { createStore, type Store } from "../storage/store.ts";
import { verifyStore } from "../storage/verify.ts";
import { createApp } from "../routes/app.ts";
import { createApiKey } from "../storage/api_keys.ts";
import { DEFAULT_CONFIG, loadConfig } from "../config.ts";
import { nextRunAt, startExpirySchedule } from "../server/expiry_schedule.ts";
import { expirePoints, expirePointsLeased } from "../usecases/admin.ts";
import { assertJson, request, runTask, snapshot, tempDir, type World, world } from "./kit.ts";

const DAY = 24 * 60 * 60 * 1000;
const START = Date.UTC(2026, 0, 10, 12, 0, 0);
const ACTOR = { companyId: "", name: "task:expire", userId: 0 };

async function ledgerOf(kv: Deno.Kv, cid: string, customerId: number, bonusId = 1): Promise<LedgerEntry[]> {
  const out: LedgerEntry[] = [];
  for await (const e of kv.list<LedgerEntry>({ prefix: bonusKeys.ledger(cid, customerId, bonusId) })) out.push(e.value);
  return out;
}

async function recordOf(kv: Deno.Kv, cid: string, customerId: number, bonusId = 1): Promise<BalanceRecord> {
  return (await kv.get<BalanceRecord>(bonusKeys.balance(cid, customerId, bonusId))).value!;
}

async function assertClean(kv: Deno.Kv): Promise<void> {
  const findings: string[] = [];
  const summary = await verifyStore(kv, { onFinding: (f) => findings.push(`${f.check}: ${f.message}`) });
  assert.deepEqual(findings.filter((f) => !f.startsWith("unknown")), []);
  assert.equal(summary.defects, 0, findings.join("\n"));
}

async function customer(w: World, key = w.key): Promise<number> {
  return assertJson(await w.call("POST", "/api/customer/update", { form: { fname: "Anna" }, key }), 200).id;
}

async function credit(w: World, form: Record<string, string | number>, key = w.key): Promise<void> {
  assertJson(await w.call("POST", "/api/customer/updateBonus", { form: { bonus_id: 1, ...form }, key }), 200);
}

Deno.test("expirePoints() writes one expire entry per expired lot, keeps the invariants, and twice is a no-op", async () => {
  let clock = START;
  await using w = await world({ now: () => clock });
  assertJson(await w.call("POST", "/api/bonusprogram/update", { form: { name: "Points" } }), 200);
  assertJson(await w.call("POST", "/api/bonusprogram/update", { form: { name: "Miles" }, key: w.otherKey }), 200);
  const anna = await customer(w);
  const boris = await customer(w);
  const other = await customer(w, w.otherKey);
  await credit(w, { customer_id: anna, amount: "10", expire_date: "2026-01-10" });
  await credit(w, { customer_id: anna, amount: "5", expire_date: "2026-01-11" });
  await credit(w, { customer_id: anna, amount: "3" }); // never expires
  await credit(w, { customer_id: anna, amount: "2", expire_date: "2026-02-01" }); // not yet
  await credit(w, { customer_id: boris, amount: "7.25", expire_date: "2026-01-10" });
  await credit(w, { customer_id: other, amount: "4", expire_date: "2026-01-10" }, w.otherKey);

  clock = START + 2 * DAY; // 2026-01-12 12:00: the lots of the 10th and the 11th have expired
  const store = createStore(w.kv, { clock: () => clock });
  const summary = await expirePoints(store, ACTOR, { company: "acme" });
  assert.deepEqual(summary, {
    companies: ["acme"],
    balances: 2,
    expiredBalances: 2,
    lots: 3,
    points: 2225,
    retried: 0,
    skipped: 0,
  });

  const entries = (await ledgerOf(w.kv, "acme", anna)).slice(-2);
  assert.deepEqual(entries.map((e) => [e.kind, e.amount, e.balance, e.lots, e.created_by, e.comment]), [
    ["expire", -1000, 1000, [[1, 1000]], 0, null],
    ["expire", -500, 500, [[2, 500]], 0, null],
  ]);
  const record = await recordOf(w.kv, "acme", anna);
  assert.equal(record.balance, 500);
  assert.equal(record.last_transaction_id, 6);
  assert.deepEqual(record.lots!.map((l) => l.remaining).sort(), [200, 300]);
  assert.equal((await recordOf(w.kv, "acme", boris)).balance, 0);
  // --company left the other company alone.
  assert.equal((await recordOf(w.kv, "globex", other)).balance, 400);
  await assertClean(w.kv);

  // The history shows the entries with their kind; the spendable balance is unchanged by the write-off.
  const history = assertJson(
    await w.call("GET", "/api/customer/bonusHistory", { query: { customer_id: anna, bonus_id: 1 } }),
    200,
  );
  assert.equal(history.balance, 5);

  // A second run finds nothing and writes nothing.
  const before = await snapshot(w.kv);
  const again = await expirePoints(store, ACTOR, { company: "acme" });
  assert.equal(again.lots, 0);
  assert.equal(again.balances, 2);
  assert.equal(await snapshot(w.kv), before);

  // Every company by default; the audit trail files the change under the customer, by task:expire.
  const all = await expirePoints(store, ACTOR);
  assert.deepEqual([all.lots, all.points], [1, 400]);
  assert.ok(all.companies.includes("globex") && all.companies.includes("acme"));
  const audit = [];
  for await (const e of w.kv.list<{ actor: string }>({ prefix: ["company", "globex", "audit", "customer"] })) {
    audit.push(e.value.actor);
  }
  assert.equal(audit.at(-1), "task:expire");
  await assertClean(w.kv);
});

Deno.test("expirePoints() writes off a balance with more lots than one write takes, in several writes", async () => {
  let clock = START;
  await using w = await world({ now: () => clock });
  assertJson(await w.call("POST", "/api/bonusprogram/update", { form: { name: "Points" } }), 200);
  const anna = await customer(w);
  // 230 lots with different expiry days, all expired 400 days later.
  for (let i = 0; i < 230; i++) {
    const day = new Date(START + i * DAY).toISOString().slice(0, 10);
    await credit(w, { customer_id: anna, amount: "0.01", expire_date: day });
  }
  clock += 400 * DAY;
  const store = createStore(w.kv, { clock: () => clock });
  const summary = await expirePoints(store, ACTOR, { batch: 3 });
  assert.deepEqual([summary.lots, summary.points, summary.expiredBalances], [230, 230, 1]);
  const record = await recordOf(w.kv, "acme", anna);
  assert.deepEqual([record.balance, record.lots, record.last_transaction_id], [0, [], 460]);
  await assertClean(w.kv);
});

Deno.test("expirePoints() beside purchases and credits of the same balances loses nothing", async () => {
  let clock = START;
  await using w = await world({ now: () => clock });
  assertJson(
    await w.call("POST", "/api/bonusprogram/update", { form: { name: "Points", accrual_percent: "10" } }),
    200,
  );
  const ids: number[] = [];
  for (let i = 0; i < 24; i++) {
    const id = await customer(w);
    ids.push(id);
    await credit(w, { customer_id: id, amount: "10", expire_date: "2026-01-10" });
    // One expiring lot each: see the ignored test below for two lots expired by one write.
    await credit(w, { customer_id: id, amount: "1" });
  }
  clock = START + 2 * DAY;
  const store = createStore(w.kv, { clock: () => clock });
  let accrued = 0;
  let credited = 0;
  let stop = false;
  const buyer = async (n: number) => {
    for (let i = 0; !stop || i < 6; i++) {
      const id = ids[(n * 7 + i) % ids.length]!;
      const sale = assertJson(
        await w.call("POST", "/api/purchase", {
          form: { customer_id: id, bonus_id: 1, order_id: `o-${n}-${i}`, amount: "20" },
        }),
        200,
      );
      accrued += Math.round(sale.accrued * 100);
      await credit(w, { customer_id: id, amount: "0.5" });
      credited += 50;
    }
  };
  const buyers = [0, 1, 2, 3].map(buyer);
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await expirePoints(store, ACTOR, { batch: 4 }));
  stop = true;
  await Promise.all(buyers);
  const last = await expirePoints(store, ACTOR);

  // Every expired lot was written off exactly once: by the job or by the write that came first.
  let expired = 0;
  let total = 0;
  for (const id of ids) {
    const entries = await ledgerOf(w.kv, "acme", id);
    const expires = entries.filter((e) => e.kind === "expire");
    assert.deepEqual(expires.map((e) => e.amount), [-1000], `customer ${id}`);
    expired += expires.reduce((a, e) => a - e.amount, 0);
    total += (await recordOf(w.kv, "acme", id)).balance;
  }
  assert.equal(expired, ids.length * 1000);
  assert.equal(total, ids.length * 100 + accrued + credited);
  const byJob = runs.reduce((a, r) => a + r.points, 0) + last.points;
  assert.ok(byJob <= expired);
  assert.equal(last.lots, 0);
  await assertClean(w.kv);
});

Deno.test("deno task expire: --now writes off as of that day, a second run finds nothing, 2 on a usage error", async () => {
  await using dir = await tempDir();
  const kvPath = `${dir.path}/store.kv`;
  {
    const kv = await Deno.openKv(kvPath);
    const app = createApp({ kv, config: { ...DEFAULT_CONFIG, kvPath, logRequests: false } });
    const { key } = await createApiKey(kv, { companyId: "acme", userId: 2, access: "write", now: Date.now() });
    assertJson(await request(app, "POST", "/api/bonusprogram/update", { key, form: { name: "Points" } }), 200);
    const id = assertJson(await request(app, "POST", "/api/customer/update", { key, form: { fname: "A" } }), 200).id;
    for (const [amount, expire_date] of [["10", "2099-01-01"], ["2.5", "2099-06-30"], ["1", "2100-01-01"]]) {
      assertJson(
        await request(app, "POST", "/api/customer/updateBonus", {
          key,
          form: { customer_id: id, bonus_id: 1, amount: amount!, expire_date: expire_date! },
        }),
        200,
      );
    }
    kv.close();
  }
  const first = await runTask("expire", ["--now", "2099-07-01 00:00:01"], { kvPath });
  assert.equal(first.code, 0, first.err);
  assert.match(first.out, /^expire: 2 lots, 12\.50 points written off in 1 of 1 balances \(1 company, [\d.]+ s\)\n$/);
  const second = await runTask("expire", ["--now", "2099-07-01", "--company", "acme"], { kvPath });
  assert.equal(second.code, 0, second.err);
  assert.match(second.out, /^expire: 0 lots, 0\.00 points written off in 0 of 1 balances/);
  const bad = await runTask("expire", ["--now", "1st of July"], { kvPath });
  assert.equal(bad.code, 2);
  assert.match(bad.err, /Invalid --now "1st of July": must look like YYYY-MM-DD HH:MM:SS\nUsage: deno task expire/);
  assert.equal((await runTask("expire", ["--what"], { kvPath })).code, 2);
  const kv = await Deno.openKv(kvPath);
  try {
    await assertClean(kv);
  } finally {
    kv.close();
  }
});

Deno.test("the expiry lease: of two processes only one runs the job at a time", async () => {
  let clock = START;
  await using w = await world({ now: () => clock });
  const a: Store = createStore(w.kv, { clock: () => clock });
  const b: Store = createStore(w.kv, { clock: () => clock });
  assert.equal(await takeLease(a, "a", { ttlMs: 60_000 }), true);
  assert.equal(await takeLease(b, "b", { ttlMs: 60_000 }), false);
  assert.equal(await expirePointsLeased(b, ACTOR, { holder: "b", leaseMs: 60_000 }), null);
  // Both at once: exactly one gets it.
  await releaseLease(a, "a");
  const both = await Promise.all([takeLease(a, "a", { ttlMs: 60_000 }), takeLease(b, "b", { ttlMs: 60_000 })]);
  assert.equal(both.filter(Boolean).length, 1);
  const [winner, loser] = both[0] ? [a, b] : [b, a];
  const loserName = both[0] ? "b" : "a";
  // A holder that crashed: its lease lapses after its time, then another takes it over.
  clock += 60_001;
  assert.equal(await takeLease(loser, loserName, { ttlMs: 60_000 }), true);
  assert.equal(await takeLease(winner, both[0] ? "a" : "b", { ttlMs: 60_000 }), false);
  await releaseLease(loser, loserName);
  // A run under the lease gives it back when done.
  assert.notEqual(await expirePointsLeased(a, ACTOR, { holder: "a", leaseMs: 60_000 }), null);
  assert.equal((await w.kv.get(expiryKeys.lease())).value, null);
});

Deno.test("startExpirySchedule() runs once after start under the lease, logs, and stops its timers", async () => {
  let clock = START;
  await using w = await world({ now: () => clock });
  assertJson(await w.call("POST", "/api/bonusprogram/update", { form: { name: "Points" } }), 200);
  const id = await customer(w);
  await credit(w, { customer_id: id, amount: "3", expire_date: "2026-01-10" });
  clock += DAY;
  const store = createStore(w.kv, { clock: () => clock });
  const lines: string[] = [];
  // The schedule's timers are unref'd (they never hold a process): this one keeps the test's event loop alive.
  const alive = setInterval(() => {}, 1000);
  let logged!: () => void;
  const done = new Promise<void>((resolve) => logged = resolve);
  const schedule = startExpirySchedule(store, {
    atHour: 3,
    timeZone: "UTC",
    startDelayMs: 0,
    timersOnly: true,
    log: (line) => {
      lines.push(line);
      logged();
    },
  });
  try {
    await done;
    assert.equal(schedule.mode, "timer");
    assert.match(lines[0]!, /^expire: 1 lots \(3 points\) written off in 1 of 1 balances, 2 companies, [\d.]+ s$/);
    // Another process holding the lease: this one skips.
    await takeLease(store, "someone else", { ttlMs: 60_000 });
    assert.equal(await schedule.runNow(), null);
    assert.equal(lines.at(-1), "expire: skipped, another process is running it");
  } finally {
    schedule.stop();
    clearInterval(alive);
  }
});

Deno.test("nextRunAt() is the next start of the hour in the zone", () => {
  const now = Date.UTC(2026, 2, 28, 12, 0, 0);
  assert.equal(nextRunAt(now, 3, "UTC"), Date.UTC(2026, 2, 29, 3, 0, 0));
  assert.equal(nextRunAt(now, 13, "UTC"), Date.UTC(2026, 2, 28, 13, 0, 0));
  assert.equal(nextRunAt(now, 12, "UTC"), Date.UTC(2026, 2, 29, 12, 0, 0));
  // Moscow is UTC+3: 03:00 there is 00:00 UTC.
  assert.equal(nextRunAt(now, 3, "Europe/Moscow"), Date.UTC(2026, 2, 29, 0, 0, 0));
  // Berlin moves to summer time on 2026-03-29: 03:00 that day is 01:00 UTC.
  assert.equal(nextRunAt(now, 3, "Europe/Berlin"), Date.UTC(2026, 2, 29, 1, 0, 0));
});

Deno.test("loadConfig() reads EXPIRE_SCHEDULE and EXPIRE_AT_HOUR", () => {
  const load = (env: Record<string, string>) => loadConfig((name) => env[name]);
  assert.deepEqual([DEFAULT_CONFIG.expireSchedule, DEFAULT_CONFIG.expireAtHour], [true, 3]);
  assert.equal(load({ EXPIRE_SCHEDULE: "0" }).expireSchedule, false);
  assert.equal(load({ EXPIRE_SCHEDULE: "no" }).expireSchedule, false);
  assert.equal(load({ EXPIRE_SCHEDULE: "1" }).expireSchedule, true);
  assert.equal(load({ EXPIRE_AT_HOUR: "0" }).expireAtHour, 0);
  assert.equal(load({ EXPIRE_AT_HOUR: "23" }).expireAtHour, 23);
  assert.throws(() => load({ EXPIRE_AT_HOUR: "24" }), {
    message: 'Invalid EXPIRE_AT_HOUR "24": must be an hour from 0 to 23',
  });
  assert.throws(() => load({ EXPIRE_AT_HOUR: "3am" }), {
    message: 'Invalid EXPIRE_AT_HOUR "3am": must be a whole number',
  });
});

Deno.test({
  name: "updateBonus expiring two lots at once records each entry's running balance",
  fn: async () => {
    let clock = START;
    await using w = await world({ now: () => clock });
    assertJson(await w.call("POST", "/api/bonusprogram/update", { form: { name: "Points" } }), 200);
    const id = await customer(w);
    await credit(w, { customer_id: id, amount: "10", expire_date: "2026-01-10" });
    await credit(w, { customer_id: id, amount: "1", expire_date: "2026-01-11" });
    clock += 2 * DAY;
    await credit(w, { customer_id: id, amount: "2" });
    const entries = await ledgerOf(w.kv, "acme", id);
    assert.deepEqual(entries.map((e) => [e.kind, e.amount, e.balance]).slice(2), [
      ["expire", -1000, 100],
      ["expire", -100, 0],
      ["adjust", 200, 200],
    ]);
    await assertClean(w.kv);
  },
});
