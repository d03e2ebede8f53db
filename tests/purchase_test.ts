import assert from "node:assert/strict";
import { type World, world } from "./kit.ts";

const DAY = 24 * 60 * 60 * 1000;
const T0 = Date.UTC(2025, 0, 10, 12, 0, 0);

/** A world with one customer and one program with the given rules, and a clock the test moves. */
async function shop(rules: Record<string, string | number> = {}) {
  let clock = T0;
  const w = await world({ now: () => clock });
  const customer = (await w.call("POST", "/api/customer/update", { form: { fname: "Anna" } })).body.id as number;
  const program = (await w.call("POST", "/api/bonusprogram/update", { form: { name: "Points", ...rules } })).body
    .id as number;
  return {
    w,
    customer,
    program,
    tick: (ms: number) => clock += ms,
    buy: (form: Record<string, string | number>) =>
      w.call("POST", "/api/purchase", { form: { customer_id: customer, bonus_id: program, ...form } }),
    giveBack: (form: Record<string, string | number>) => w.call("POST", "/api/purchase/return", { form }),
    balance: async () =>
      (await w.call("GET", "/api/customer", { query: { id: customer, bonuses: 1 } })).body.customers[0],
  };
}

async function ledgerKinds(w: World, customer: number, program: number): Promise<string[]> {
  const r = await w.call("GET", "/api/customer/bonusHistory", { query: { customer_id: customer, bonus_id: program } });
  return r.body.transactions.map((t: { kind: string }) => t.kind).reverse();
}

Deno.test("a purchase accrues by the program's percent on the money paid, spends, and replays by order_id", async (t) => {
  const s = await shop({ accrual_percent: "5", max_spend_percent: "50" });
  await using _ = s.w;
  await t.step("accrual on the amount", async () => {
    const r = await s.buy({ order_id: "A-1", amount: "1000" });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, {
      success: 1,
      order_id: "A-1",
      customer_id: s.customer,
      bonus_id: s.program,
      accrued: 50,
      spent: 0,
      balance: 50,
      pending: 0,
      next_expire_date: null,
      next_expire_amount: 0,
      tier: null,
    });
  });
  await t.step("spend is refused above the spendable balance and above max_spend_percent, naming spend", async () => {
    const over = await s.buy({ order_id: "A-2", amount: "1000", spend: "60" });
    assert.equal(over.status, 409);
    assert.equal(over.body.field, "spend");
    assert.equal(over.body.info, "Cannot spend 60.00 points: only 50.00 are spendable");
    const limit = await s.buy({ order_id: "A-2", amount: "80", spend: "41" });
    assert.equal(limit.status, 409);
    assert.equal(
      limit.body.info,
      "Cannot spend 41.00 points: at most 40.00 of this order may be paid with points (max_spend_percent 50.00)",
    );
  });
  await t.step("a spend accrues on what is left to pay", async () => {
    const r = await s.buy({ order_id: "A-2", amount: "100", spend: "40" });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.spent, 40);
    assert.equal(r.body.accrued, 3);
    assert.equal(r.body.balance, 13);
  });
  await t.step("the same order again replays; with other parameters it is 422", async () => {
    const again = await s.buy({ order_id: "A-2", amount: "100", spend: "40" });
    assert.equal(again.status, 200);
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(again.body.balance, 13);
    const other = await s.buy({ order_id: "A-2", amount: "101", spend: "40" });
    assert.equal(other.status, 422);
    assert.equal(other.body.field, "order_id");
    assert.equal((await s.balance()).bonuses[0].balance, 13);
    assert.equal((await s.balance()).accumulated_sales, 1100);
  });
  await t.step("the ledger shows kinds and orders", async () => {
    assert.deepEqual(await ledgerKinds(s.w, s.customer, s.program), ["accrual", "spend", "accrual"]);
  });
});

Deno.test("a full return leaves balance, sales and tier as before the purchase; partial returns add up", async () => {
  const s = await shop({ accrual_percent: "10" });
  await using _ = s.w;
  await s.w.call("POST", "/api/customergroup/update", { form: { group_name: "Gold", min_accumulated_sales: "500" } });
  await s.w.call("POST", "/api/customer/updateBonus", {
    form: { customer_id: s.customer, bonus_id: s.program, amount: "30" },
  });
  const before = await s.balance();
  const buy = await s.buy({ order_id: "B-1", amount: "700", spend: "30" });
  assert.equal(buy.status, 200, buy.text);
  assert.equal(buy.body.accrued, 67);
  assert.equal(buy.body.tier, "Gold");
  const first = await s.giveBack({ order_id: "B-1", return_id: "R-1", amount: "350" });
  assert.equal(first.status, 200, first.text);
  assert.equal(first.body.taken_back, 33.5);
  assert.equal(first.body.given_back, 15);
  const over = await s.giveBack({ order_id: "B-1", return_id: "R-2", amount: "351" });
  assert.equal(over.status, 409);
  assert.equal(over.body.field, "amount");
  const second = await s.giveBack({ order_id: "B-1", return_id: "R-2", amount: "350" });
  assert.equal(second.status, 200, second.text);
  assert.equal(second.body.taken_back, 33.5);
  assert.equal(second.body.given_back, 15);
  assert.equal(second.body.tier, null);
  const after = await s.balance();
  assert.deepEqual(
    { bonuses: after.bonuses, sales: after.accumulated_sales, group: after.group_name },
    { bonuses: before.bonuses, sales: before.accumulated_sales, group: before.group_name },
  );
  const replay = await s.giveBack({ order_id: "B-1", return_id: "R-1", amount: "350" });
  assert.equal(replay.status, 200);
  assert.equal(replay.headers.get("idempotent-replayed"), "true");
  assert.deepEqual(replay.body, first.body);
  const unknown = await s.giveBack({ order_id: "nope", return_id: "R-1", amount: "1" });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.field, "order_id");
});

Deno.test("points wait pending_days, then expire after lifetime_days with an explicit ledger entry", async () => {
  const s = await shop({ accrual_percent: "10", pending_days: 14, lifetime_days: 30 });
  await using _ = s.w;
  const r = await s.buy({ order_id: "C-1", amount: "100" });
  assert.deepEqual([r.body.balance, r.body.pending], [0, 10]);
  let b = (await s.balance()).bonuses[0];
  assert.deepEqual([b.balance, b.pending, b.next_expire_date, b.next_expire_amount], [0, 10, "2025-02-23", 10]);
  s.tick(14 * DAY);
  b = (await s.balance()).bonuses[0];
  assert.deepEqual([b.balance, b.pending], [10, 0]);
  s.tick(31 * DAY);
  b = (await s.balance()).bonuses[0];
  assert.deepEqual([b.balance, b.pending, b.next_expire_date], [0, 0, null]);
  // The next write to the balance writes the expiry first.
  const credit = await s.w.call("POST", "/api/customer/updateBonus", {
    form: { customer_id: s.customer, bonus_id: s.program, amount: "1" },
  });
  assert.equal(credit.status, 200, credit.text);
  assert.deepEqual(await ledgerKinds(s.w, s.customer, s.program), ["accrual", "expire", "adjust"]);
});

Deno.test("a till may name the buyer by card barcode or number; updateBonus credits may carry expire_date", async () => {
  const s = await shop({ accrual_percent: "1" });
  await using _ = s.w;
  const card = await s.w.call("POST", "/api/customer/insertCard", {
    query: { uid: "555" },
    form: { customer_id: s.customer },
  });
  assert.equal(card.status, 200, card.text);
  const byUid = await s.w.call("POST", "/api/purchase", {
    form: { uid: "555", bonus_id: s.program, order_id: "D-1", amount: "100" },
  });
  assert.equal(byUid.status, 200, byUid.text);
  assert.equal(byUid.body.customer_id, s.customer);
  await s.w.call("POST", "/api/customer/updateCard", { query: { uid: "555" }, form: { status: "BLOCKED" } });
  const blocked = await s.w.call("POST", "/api/purchase", {
    form: { uid: "555", bonus_id: s.program, order_id: "D-3", amount: "100" },
  });
  assert.equal(blocked.status, 409);
  assert.deepEqual([blocked.body.field, blocked.body.info], ["uid", 'Card with uid "555" is blocked']);
  const noCard = await s.w.call("POST", "/api/purchase", {
    form: { card_barcode: "0000000000000", bonus_id: s.program, order_id: "D-2", amount: "100" },
  });
  assert.equal(noCard.status, 404);
  assert.equal(noCard.body.field, "card_barcode");
  const dated = await s.w.call("POST", "/api/customer/updateBonus", {
    form: { customer_id: s.customer, bonus_id: s.program, amount: "5", expire_date: "2025-01-31" },
  });
  assert.equal(dated.status, 200, dated.text);
  const b = (await s.balance()).bonuses[0];
  assert.deepEqual([b.balance, b.next_expire_date, b.next_expire_amount], [6, "2025-01-31", 5]);
  const past = await s.w.call("POST", "/api/customer/updateBonus", {
    form: { customer_id: s.customer, bonus_id: s.program, amount: "5", expire_date: "2025-01-01" },
  });
  assert.equal(past.status, 400);
  assert.equal(past.body.field, "expire_date");
});

Deno.test("program and group settings are listed, reset by an empty value, and refused when out of range", async () => {
  const s = await shop({ accrual_percent: "3.5", lifetime_days: 365, rounding: "nearest" });
  await using _ = s.w;
  const list = await s.w.call("GET", "/api/bonusprogram");
  assert.deepEqual(
    (({ accrual_percent, max_spend_percent, pending_days, lifetime_days, rounding }) => ({
      accrual_percent,
      max_spend_percent,
      pending_days,
      lifetime_days,
      rounding,
    }))(list.body.bonus_programs[0]),
    { accrual_percent: 3.5, max_spend_percent: null, pending_days: null, lifetime_days: 365, rounding: "nearest" },
  );
  const reset = await s.w.call("POST", "/api/bonusprogram/update", {
    query: { id: s.program },
    form: { lifetime_days: "" },
  });
  assert.equal(reset.status, 200);
  assert.equal((await s.w.call("GET", "/api/bonusprogram")).body.bonus_programs[0].lifetime_days, null);
  const bad = await s.w.call("POST", "/api/bonusprogram/update", {
    query: { id: s.program },
    form: { accrual_percent: "101" },
  });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.field, "accrual_percent");
  const badRounding = await s.w.call("POST", "/api/bonusprogram/update", {
    query: { id: s.program },
    form: { rounding: "sideways" },
  });
  assert.equal(badRounding.status, 400);
  const groupOnProgram = await s.w.call("POST", "/api/bonusprogram/update", {
    query: { id: s.program },
    form: { min_accumulated_sales: "10" },
  });
  assert.equal(groupOnProgram.status, 400);
  assert.equal(groupOnProgram.body.info, 'Unknown parameter "min_accumulated_sales"');
});

Deno.test("a purchase that would take accumulated_sales past the limit is refused 409 naming amount, nothing changes", async () => {
  const s = await shop();
  await using _ = s.w;
  for (let i = 0; i < 100; i++) {
    const r = await s.buy({ order_id: `BIG-${i}`, amount: "100000000000" });
    if (r.status !== 200) {
      assert.equal(r.status, 409, r.text);
      assert.equal(r.body.field, "amount");
      assert.match(r.body.info, /^Cannot record purchase: accumulated_sales 100000000000\.00 would go over the limit/);
      break;
    }
  }
  const read = await s.w.call("GET", "/api/customer", { query: { id: s.customer } });
  assert.equal(read.status, 200, read.text);
  assert.equal(read.body.customers[0].accumulated_sales, 100_000_000_000);
});
