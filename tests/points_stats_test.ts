/**
 * The dashboard's aggregates (storage/points_stats.ts), kept in the write path: after a mix of changes, purchases,
 * returns, expiry and card changes they equal a recount of the ledger, the lots and the cards (verify finds
 * nothing), the dashboard's figures equal the balances' own, and verify --repair rebuilds them for a store made
 * before they existed.
 */
import assert from "node:assert/strict";
import { summarize, walletOf } from "../domain/points.ts";
import type { BalanceRecord } from "../storage/bonuses.ts";
import { bonusKeys, statKeys } from "../storage/keys.ts";
import { createStore } from "../storage/store.ts";
import { type Finding, verifyStore } from "../storage/verify.ts";
import { adminActor, dashboardStats } from "../usecases/admin_users.ts";
import { expirePoints } from "../usecases/admin.ts";
import { decimal, type Reply, type World, world } from "./kit.ts";

const DAY = 86_400_000;
/** 2026-03-10 10:17:23.456 UTC. */
const START = Date.UTC(2026, 2, 10, 10, 17, 23, 456);
const AGGREGATES = new Set(["points_total", "points_hours", "points_pending", "card_total"]);

// deno-lint-ignore no-explicit-any
async function ok(reply: Promise<Reply>): Promise<any> {
  const r = await reply;
  assert.equal(r.status, 200, r.text);
  return r.body;
}

async function findings(w: World, now: number, repair = false): Promise<Finding[]> {
  const out: Finding[] = [];
  await verifyStore(w.kv, { company: "acme", repair, now: () => now, onFinding: (f) => out.push(f) });
  return out.filter((f) => f.severity === "defect");
}

/** Spendable and pending points over every balance, read from the balances themselves. */
async function recount(w: World, now: number): Promise<{ outstanding: number; pending: number }> {
  let outstanding = 0;
  let pending = 0;
  for await (const e of w.kv.list<BalanceRecord>({ prefix: bonusKeys.balances("acme") })) {
    const wallet = walletOf(e.value);
    const s = summarize(wallet, now, "UTC");
    pending += s.pending;
    outstanding += wallet.total - s.pending;
  }
  return { outstanding, pending };
}

/** A shop with a clock: a program with pending days, expiry and spending, three customers with a card each. */
async function busyShop() {
  const clock = { now: START };
  const w = await world({ now: () => clock.now, config: { timeZone: "UTC" } });
  const bonus = (await ok(w.call("POST", "/api/bonusprogram/update", {
    form: { name: "Points", accrual_percent: "10", pending_days: 14, lifetime_days: 30, max_spend_percent: "50" },
  }))).id as number;
  const customers: number[] = [];
  for (let i = 0; i < 3; i++) {
    customers.push((await ok(w.call("POST", "/api/customer/update", { form: { fname: `Buyer${i}` } }))).id);
    await ok(w.call("POST", "/api/customer/insertCard", {
      query: { uid: `90000${i}` },
      form: { customer_id: customers[i]!, status: "ACTIVE" },
    }));
  }
  const tick = (ms: number) => clock.now += ms;
  const grant = (customer: number, amount: string, extra: Record<string, string> = {}) =>
    ok(
      w.call("POST", "/api/customer/updateBonus", {
        form: { customer_id: customer, bonus_id: bonus, amount, ...extra },
      }),
    );
  const buy = (customer: number, order: string, amount: number, spend: number) =>
    ok(w.call("POST", "/api/purchase", {
      form: { customer_id: customer, bonus_id: bonus, order_id: order, amount: decimal(amount), spend: decimal(spend) },
    }));
  const giveBack = (order: string, id: string, amount: number) =>
    ok(w.call("POST", "/api/purchase/return", { form: { order_id: order, return_id: id, amount: decimal(amount) } }));
  return { w, clock, bonus, customers, tick, grant, buy, giveBack };
}

Deno.test("the dashboard's aggregates equal a recount after changes, purchases, returns, expiry and card changes", async (t) => {
  const s = await busyShop();
  await using _ = s.w;
  const [a, b, c] = s.customers as [number, number, number];
  const store = createStore(s.w.kv, { clock: () => s.clock.now });
  const actor = adminActor("acme", "test");

  const check = async (what: string) => {
    assert.deepEqual(await findings(s.w, s.clock.now), [], `${what}: verify finds the aggregates right`);
    const stats = await dashboardStats(store, actor, { timeZone: "UTC", fresh: true });
    const counted = await recount(s.w, s.clock.now);
    assert.equal(stats.pending, counted.pending, `${what}: pending`);
    assert.equal(stats.outstanding, counted.outstanding, `${what}: outstanding`);
    return stats;
  };

  await t.step(
    "grants (dated ones spendable at once, plain ones pending), a negative change and an overwrite",
    async () => {
      await s.grant(a, "500", { expire_date: new Date(START + 5 * DAY).toISOString().slice(0, 10) });
      s.tick(60_000);
      await s.grant(b, "70.07");
      await s.grant(c, "300", { expire_date: new Date(START + 60 * DAY).toISOString().slice(0, 10) });
      s.tick(60_000);
      await s.grant(c, "-20.5");
      await s.grant(b, "42", { overwrite: "1" });
      const stats = await check("after grants");
      assert.equal(stats.cards, 3);
      assert.equal(stats.days.at(-1)!.accrued > 0, true);
    },
  );

  await t.step("purchases spending points and accruing pending ones, partial and full returns", async () => {
    s.tick(3_600_000);
    await s.buy(a, "o-1", 1000_00, 200_00);
    await s.buy(c, "o-2", 333_33, 100_01);
    s.tick(60_000);
    await s.giveBack("o-1", "r-1", 400_00);
    await s.giveBack("o-2", "r-2", 333_33);
    const stats = await check("after purchases and returns");
    assert.equal(stats.pending > 0, true, "some points are pending");
  });

  await t.step("a card deleted and another made", async () => {
    await ok(s.w.call("POST", "/api/customer/deleteCard", { query: { uid: "900001" } }));
    await ok(s.w.call("POST", "/api/customer/insertCard", { query: { uid: "900009" }, form: { customer_id: a } }));
    const stats = await check("after card changes");
    assert.equal(stats.cards, 3);
  });

  await t.step("days later: pending points have become spendable, then lots expire and are written off", async () => {
    s.tick(20 * DAY);
    assert.equal((await check("pending matured")).pending, 0);
    s.tick(20 * DAY);
    const summary = await expirePoints(store, actor, { company: "acme", now: s.clock.now });
    assert.equal(summary.lots > 0, true, JSON.stringify(summary));
    const stats = await check("after expiry");
    assert.equal(stats.days.at(-1)!.spent > 0, true, "the write-off counts as spent that day");
    await s.buy(b, "o-3", 50_00, 0);
    s.tick(60_000);
    await s.giveBack("o-3", "r-3", 10_00);
    assert.equal((await check("after a purchase with pending points")).pending, 400);
  });
});

Deno.test("verify reports missing aggregates and --repair rebuilds them (a store made before they existed)", async () => {
  const s = await busyShop();
  await using _ = s.w;
  const [a, b] = s.customers as [number, number];
  await s.grant(a, "100", { expire_date: new Date(START + 10 * DAY).toISOString().slice(0, 10) });
  await s.buy(b, "o-1", 500_00, 0);
  s.tick(2 * DAY);
  await s.grant(a, "-3");
  const store = createStore(s.w.kv, { clock: () => s.clock.now });
  const before = await dashboardStats(store, adminActor("acme", "x"), { timeZone: "UTC", fresh: true });
  // What a store made before the aggregates holds: none of them.
  for (const prefix of [statKeys.pointsTotals("acme"), statKeys.pointsHours("acme"), statKeys.pendings("acme")]) {
    for await (const e of s.w.kv.list({ prefix })) await s.w.kv.delete(e.key);
  }
  await s.w.kv.delete(statKeys.cardTotal("acme", "in"));
  const found = await findings(s.w, s.clock.now);
  assert.deepEqual([...new Set(found.map((f) => f.check))].sort(), [...AGGREGATES].sort());
  assert.match(found.find((f) => f.check === "points_total")!.message, /Points credited: the total says 0, the ledger/);
  const repaired = await findings(s.w, s.clock.now, true);
  assert.equal(repaired.every((f) => f.repair === "repaired"), true, JSON.stringify(repaired));
  assert.deepEqual(await findings(s.w, s.clock.now), []);
  const after = await dashboardStats(store, adminActor("acme", "x"), { timeZone: "UTC", fresh: true });
  assert.deepEqual(after, before);
});
