import assert from "node:assert/strict";
import {
  accrual,
  addLot,
  giveBack,
  lotDates,
  shareOf,
  summarize,
  takeBack,
  takeSpendable,
  tierFor,
  walletOf,
} from "./points.ts";
import { DEFAULT_RULES } from "./points.ts";

const NOW = Date.UTC(2025, 0, 10, 12);
const DAY = 86_400_000;

Deno.test("accrual() rounds down, to nearest (half up) or up, to the minor unit", () => {
  assert.equal(accrual(999, 350, "down"), 34); // 34.965
  assert.equal(accrual(999, 350, "nearest"), 35);
  assert.equal(accrual(1000, 350, "nearest"), 35); // exact: 35.0
  assert.equal(accrual(100, 350, "nearest"), 4); // 3.5: half up
  assert.equal(accrual(1, 5_000, "nearest"), 1); // 0.5 rounds half up
  assert.equal(accrual(1, 4_999, "nearest"), 0);
  assert.equal(accrual(101, 100, "up"), 2); // 1.01
  assert.equal(accrual(0, 500, "up"), 0);
});

Deno.test("shareOf() is cumulative: the parts of a whole add up to the total exactly", () => {
  const total = 67;
  const parts = [333, 1, 366];
  let before = 0;
  let sum = 0;
  for (const p of parts) {
    sum += shareOf(total, before + p, 700) - shareOf(total, before, 700);
    before += p;
  }
  assert.equal(sum, total);
});

Deno.test("spending takes the soonest-expiring spendable lots first; pending and expired lots are not spent", () => {
  let w = walletOf(null);
  w = addLot(w, { amount: 500, available_at: 0, expires_at: null, now: NOW }).wallet;
  w = addLot(w, { amount: 300, available_at: 0, expires_at: NOW + 5 * DAY, now: NOW }).wallet;
  w = addLot(w, { amount: 200, available_at: NOW + DAY, expires_at: NOW + 2 * DAY, now: NOW }).wallet;
  w = addLot(w, { amount: 100, available_at: 0, expires_at: NOW - 1, now: NOW }).wallet;
  assert.deepEqual(summarize(w, NOW, "UTC"), {
    balance: 800,
    pending: 200,
    nextExpireDate: "2025-01-12",
    nextExpireAmount: 200,
  });
  assert.equal(takeSpendable(w, 801, NOW), null);
  const spent = takeSpendable(w, 400, NOW)!;
  assert.deepEqual(spent.taken.map((a) => [a.lot, a.amount]), [[2, 300], [1, 100]]);
  assert.equal(summarize(spent.wallet, NOW, "UTC").balance, 400);
  // Given back, the points return to the lots they came from, even to one that was emptied and dropped.
  const back = giveBack(spent.wallet, { amount: 400, spent: spent.taken, returned: [0, 0], now: NOW });
  assert.deepEqual(summarize(back.wallet, NOW, "UTC"), summarize(w, NOW, "UTC"));
  assert.deepEqual(back.returned, [300, 100]);
  // Points of a lot that expired since are not given back.
  const late = giveBack(spent.wallet, { amount: 400, spent: spent.taken, returned: [0, 0], now: NOW + 6 * DAY });
  assert.deepEqual([late.given, late.expired], [100, 300]);
});

Deno.test("takeBack() takes from the named lot first, then spendable, then pending, never below zero", () => {
  let w = walletOf(null);
  w = addLot(w, { amount: 50, available_at: 0, expires_at: null, now: NOW }).wallet;
  w = addLot(w, { amount: 30, available_at: NOW + DAY, expires_at: null, now: NOW }).wallet;
  const r = takeBack(w, { amount: 100, first: 2, now: NOW });
  assert.deepEqual([r.taken, r.shortfall, r.wallet.total], [80, 20, 0]);
});

Deno.test("lotDates(): pending days start at midnight in the zone; lifetime ends at the end of a day", () => {
  const rules = { ...DEFAULT_RULES, pendingDays: 14, lifetimeDays: 365 };
  const d = lotDates(rules, { now: NOW, timeZone: "Europe/Moscow" });
  assert.equal(new Date(d.available_at).toISOString(), "2025-01-23T21:00:00.000Z"); // 2025-01-24 00:00 MSK
  assert.equal(new Date(d.expires_at!).toISOString(), "2026-01-24T20:59:59.999Z"); // 2026-01-24 23:59:59.999 MSK
  const atOnce = lotDates(DEFAULT_RULES, { now: NOW, timeZone: "UTC" });
  assert.deepEqual(atOnce, { available_at: NOW, expires_at: null });
});

Deno.test("tierFor() moves a customer in a tier or none to the highest tier reached, and never out of another group", () => {
  const groups = [{ id: 1, minSales: 0 }, { id: 2, minSales: 50_000 }, { id: 3, minSales: null }, {
    id: 4,
    minSales: 50_000,
  }];
  assert.equal(tierFor(null, 60_000, groups), 2);
  assert.equal(tierFor(2, 10_000, groups), 1);
  assert.equal(tierFor(3, 99_000, groups), 3);
  assert.equal(tierFor(null, 10, [{ id: 5, minSales: 100 }]), null);
});

Deno.test("a frequent buyer's balance keeps at most MAX_OWN_LOTS purchase lots: older ones join the other points", async () => {
  const { MAX_OWN_LOTS } = await import("./points.ts");
  let w = walletOf(null);
  for (let i = 0; i < MAX_OWN_LOTS + 50; i++) {
    w = addLot(w, { amount: 100, available_at: NOW - DAY, expires_at: null, now: NOW, own: true }).wallet;
  }
  assert.equal(w.lots.filter((l) => l.order).length, MAX_OWN_LOTS);
  assert.equal(w.lots.length, MAX_OWN_LOTS + 1, "the released ones merged into one lot of their expiry");
  assert.equal(w.total, (MAX_OWN_LOTS + 50) * 100);
  assert.equal(w.lots.reduce((s, l) => s + l.remaining, 0), w.total);
});

Deno.test("credits made while pending join their peers of the same expiry once spendable", () => {
  let w = walletOf(null);
  for (let day = 0; day < 5; day++) {
    w = addLot(w, { amount: 100, available_at: NOW + day * DAY, expires_at: NOW + 400 * DAY, now: NOW }).wallet;
  }
  assert.equal(w.lots.length, 5, "pending lots stay apart: each becomes spendable on its own day");
  const later = NOW + 10 * DAY;
  w = addLot(w, { amount: 1, available_at: later, expires_at: NOW + 400 * DAY, now: later }).wallet;
  assert.equal(w.lots.length, 1, "all spendable now, one expiry: one lot");
  assert.equal(w.lots[0]!.remaining, 501);
  assert.equal(w.total, 501);
});
