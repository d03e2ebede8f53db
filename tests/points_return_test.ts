/**
 * A full return undoes its purchase (issue 9): returns adding up to an order's amount leave balance, pending, expiry,
 * accumulated_sales and tier exactly as they were before the purchase, whatever the lots looked like.
 */
import assert from "node:assert/strict";
import { decimal, type Reply, type World, world } from "./kit.ts";

const DAY = 86_400_000;
/** 2026-03-10 10:17:23.456 UTC: not near a day boundary. */
const START = Date.UTC(2026, 2, 10, 10, 17, 23, 456);

/** "YYYY-MM-DD" of the UTC day `days` after the clock's. */
function dayAfter(now: number, days: number): string {
  return new Date(now + days * DAY).toISOString().slice(0, 10);
}

/** A world with a clock, one customer and one program with the given settings. */
async function shop(
  program: Record<string, string | number>,
  options: { groups?: Record<string, string>[] } = {},
): Promise<{ w: World; clock: { now: number }; customer: number; bonus: number }> {
  const clock = { now: START };
  const w = await world({ now: () => clock.now, config: { timeZone: "UTC" } });
  const bonus = (await ok(w.call("POST", "/api/bonusprogram/update", { form: { name: "Points", ...program } }))).id;
  for (const g of options.groups ?? []) await ok(w.call("POST", "/api/customergroup/update", { form: g }));
  const customer = (await ok(w.call("POST", "/api/customer/update", { form: { fname: "Buyer" } }))).id;
  return { w, clock, customer, bonus };
}

// deno-lint-ignore no-explicit-any
async function ok(reply: Promise<Reply>): Promise<any> {
  const r = await reply;
  assert.equal(r.status, 200, r.text);
  return r.body;
}

/** What a full return must restore: the customer's sales, group and balances (spendable, pending, expiry). */
async function state(w: World, customer: number): Promise<unknown> {
  const c = (await ok(w.call("GET", "/api/customer", { query: { id: customer, bonuses: 1 } }))).customers[0];
  return { accumulated_sales: c.accumulated_sales, group_name: c.group_name, bonuses: c.bonuses };
}

/** Buys, then returns the whole order in the given parts; checks the replies add up and the state is restored. */
async function buyAndReturn(
  s: { w: World; customer: number; bonus: number },
  order: { id: string; amount: number; spend: number; parts: number[] },
): Promise<{ accrued: number; spent: number }> {
  assert.equal(order.parts.reduce((a, b) => a + b, 0), order.amount, "the parts must add up to the order");
  const before = await state(s.w, s.customer);
  const bought = await ok(s.w.call("POST", "/api/purchase", {
    form: {
      customer_id: s.customer,
      bonus_id: s.bonus,
      order_id: order.id,
      amount: decimal(order.amount),
      spend: decimal(order.spend),
    },
  }));
  assert.equal(bought.spent, order.spend / 100);
  let taken = 0;
  let given = 0;
  for (const [i, part] of order.parts.entries()) {
    const back = await ok(s.w.call("POST", "/api/purchase/return", {
      form: { order_id: order.id, return_id: `${order.id}-r${i}`, amount: decimal(part) },
    }));
    assert.equal(back.shortfall, 0, JSON.stringify(back));
    taken += Math.round(back.taken_back * 100);
    given += Math.round(back.given_back * 100);
  }
  assert.equal(taken, Math.round(bought.accrued * 100), "returns take back exactly what was accrued");
  assert.equal(given, order.spend, "returns give back exactly what was spent");
  assert.deepEqual(await state(s.w, s.customer), before, "a full return restores the state before the purchase");
  // Nothing is left to return.
  const more = await s.w.call("POST", "/api/purchase/return", {
    form: { order_id: order.id, return_id: `${order.id}-more`, amount: "0.01" },
  });
  assert.equal(more.status, 409, more.text);
  assert.equal(more.body.field, "amount");
  return { accrued: Math.round(bought.accrued * 100), spent: order.spend };
}

Deno.test("a full return restores balance, pending and expiry when the purchase's points are pending", async () => {
  const s = await shop({ accrual_percent: "10", pending_days: 14, lifetime_days: 365, rounding: "up" });
  await using _w = s.w;
  // Spendable points (a dated credit is available at once) and pending ones (a plain credit waits 14 days).
  await ok(s.w.call("POST", "/api/customer/updateBonus", {
    form: { customer_id: s.customer, bonus_id: s.bonus, amount: "500", expire_date: dayAfter(START, 200) },
  }));
  await ok(s.w.call("POST", "/api/customer/updateBonus", {
    form: { customer_id: s.customer, bonus_id: s.bonus, amount: "70.07" },
  }));
  const st = (await state(s.w, s.customer)) as { bonuses: { balance: number; pending: number }[] };
  assert.equal(st.bonuses[0]!.balance, 500);
  assert.equal(st.bonuses[0]!.pending, 70.07);

  const shapes = [
    { amount: 1_000_00, spend: 333_33, parts: [1_000_00] },
    { amount: 333_33, spend: 100_01, parts: [111_11, 111_11, 111_11] },
    { amount: 99_99, spend: 0, parts: [1, 99_97, 1] },
    { amount: 12_345, spend: 12_345, parts: [12_344, 1] },
  ];
  for (const [i, shape] of shapes.entries()) {
    const { accrued } = await buyAndReturn(s, { id: `pending-${i}`, ...shape });
    assert.equal(accrued, Math.ceil((shape.amount - shape.spend) / 10));
  }
});

Deno.test("a full return gives spent points back to the lots they came from, soonest-expiring ones included", async () => {
  const s = await shop({ accrual_percent: "5", lifetime_days: 30, max_spend_percent: "50", rounding: "nearest" });
  await using _w = s.w;
  for (const [amount, days] of [["10.50", 1], ["20", 2], ["300", 100]] as const) {
    await ok(s.w.call("POST", "/api/customer/updateBonus", {
      form: { customer_id: s.customer, bonus_id: s.bonus, amount, expire_date: dayAfter(START, days) },
    }));
  }
  // The purchase's spend takes tomorrow's and the day after's lots and part of the third one; its accrual is a new
  // lot expiring in 30 days; the full return must put every lot back as it was.
  const before = await state(s.w, s.customer) as { bonuses: Record<string, unknown>[] };
  assert.deepEqual(
    { date: before.bonuses[0]!.next_expire_date, amount: before.bonuses[0]!.next_expire_amount },
    { date: dayAfter(START, 1), amount: 10.5 },
  );
  await buyAndReturn(s, { id: "soon-1", amount: 200_00, spend: 100_00, parts: [50_00, 150_00] });
  await buyAndReturn(s, { id: "soon-2", amount: 61_01, spend: 30_50, parts: [30_00, 31_01] });
  // The next day (00:17) the soonest lot is still spendable until that day ends; a full return then still restores it.
  s.clock.now += 14 * 3_600_000;
  await buyAndReturn(s, { id: "soon-3", amount: 20_00, spend: 10_00, parts: [7_00, 7_00, 6_00] });
});

Deno.test("a full return moves the customer back to the tier they were in before the purchase", async () => {
  const s = await shop({ accrual_percent: "1", rounding: "down" }, {
    groups: [
      { group_name: "Silver", min_accumulated_sales: "100", accrual_percent: "5" },
      { group_name: "Gold", min_accumulated_sales: "500", accrual_percent: "20" },
    ],
  });
  await using _w = s.w;
  // No group yet: a full return of the first purchase (which reaches Silver) leaves the customer in none.
  await buyAndReturn(s, { id: "first", amount: 150_00, spend: 0, parts: [75_00, 75_00] });
  assert.equal(((await state(s.w, s.customer)) as { group_name: unknown }).group_name, null);

  // Settle into Silver with points to spend, then a purchase that reaches Gold, returned in full.
  const settled = await ok(s.w.call("POST", "/api/purchase", {
    form: { customer_id: s.customer, bonus_id: s.bonus, order_id: "settle", amount: "150" },
  }));
  assert.equal(settled.tier, "Silver");
  assert.equal(settled.accrued, 1.5, "the rate before the purchase (no group: the program's 1%)");
  const { accrued } = await buyAndReturn(s, { id: "gold", amount: 400_00, spend: 1_50, parts: [399_99, 1] });
  assert.equal(accrued, Math.floor((400_00 - 1_50) * 5 / 100), "accrued at Silver's rate, the group before");
  const after = (await state(s.w, s.customer)) as { group_name: unknown; accumulated_sales: unknown };
  assert.deepEqual([after.group_name, after.accumulated_sales], ["Silver", 150]);
});
