/**
 * Model-based test of points (issue 9): random purchases, returns, credits, debits, overwrites, replays and clock
 * moves against a simple model written from the contract (/work/briefs/points_spec.md, folded into docs/api.md):
 * lots as plain arrays, no merging, every rule spelled out once. After every step the reply, the customer's
 * balance read (`bonuses=1`) and the ledger (`bonusHistory`) must match the model.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { decimal, type Reply, type World, world } from "./kit.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const PROGRAM = 1;
const PROGRAM_NAME = "Points";

// ---------------------------------------------------------------------------------------------------------------
// Dates in UTC (the test's TIME_ZONE): a local day is a UTC day.

/** Epoch ms of the start of the UTC day holding `t`, moved by `days`. */
function dayStart(t: number, days = 0): number {
  return Math.floor(t / DAY) * DAY + days * DAY;
}

/** The last millisecond of the UTC day holding `t`, moved by `days`. */
function dayEnd(t: number, days = 0): number {
  return dayStart(t, days + 1) - 1;
}

/** "YYYY-MM-DD" of the UTC day holding `t`. */
function ymd(t: number): string {
  return new Date(t).toISOString().slice(0, 10);
}

// ---------------------------------------------------------------------------------------------------------------
// The model

/** Program settings, percentages in hundredths of a percent. */
interface Rules {
  accrualBp: number;
  maxSpendBp: number;
  pendingDays: number;
  lifetimeDays: number | null;
  rounding: "down" | "nearest" | "up";
}

interface Group {
  id: number;
  name: string;
  /** Minor units; null: not a tier. */
  min: number | null;
  /** Hundredths of a percent; null: the program's. */
  accrualBp: number | null;
}

interface Lot {
  id: number;
  remaining: number;
  available_at: number;
  expires_at: number | null;
  /** A purchase's accrual. */
  order?: boolean;
}

/** A ledger entry as the model sees it (expire entries are compared as the sum of each run of them). */
interface Entry {
  kind: string;
  amount: number;
  balance: number;
  pending: number;
  order_id: string | null;
  return_id: string | null;
}

interface Customer {
  id: number;
  sales: number;
  group: number | null;
  lots: Lot[];
  entries: Entry[];
}

interface Order {
  order_id: string;
  customer: number;
  amount: number;
  spend: number;
  accrued: number;
  /** The lot the accrual made, or null when nothing was accrued. */
  lot: number | null;
  /** Where the spend came from, and how much of each part has been given back. */
  used: { lot: number; amount: number; returned: number }[];
  returnedMoney: number;
  reply: Record<string, unknown>;
  returns: Map<string, { amount: number; reply: Record<string, unknown> }>;
}

interface Model {
  now: number;
  rules: Rules;
  groups: Group[];
  customers: Customer[];
  orders: Map<string, Order>;
  nextLot: number;
}

/** What the service must answer: the status, and the body (success) or the field named (refusal). */
type Want = { status: 200; body: Record<string, unknown> } | {
  status: number;
  field?: string;
};

const isExpired = (l: Lot, now: number) => l.expires_at !== null && l.expires_at < now;
const isSpendable = (l: Lot, now: number) => l.available_at <= now && !isExpired(l, now) && l.remaining > 0;
const isPending = (l: Lot, now: number) => l.available_at > now && l.remaining > 0;

/**
 * Spending order: soonest expiry first (never last); among points expiring together, other points before a purchase's
 * own (kept for its returns); then earliest available, then oldest.
 */
function spendingOrder(a: Lot, b: Lot): number {
  return (a.expires_at ?? Infinity) - (b.expires_at ?? Infinity) ||
    Number(a.order ?? false) - Number(b.order ?? false) ||
    a.available_at - b.available_at || a.id - b.id;
}

function spendableOf(c: Customer, now: number): number {
  return c.lots.filter((l) => isSpendable(l, now)).reduce(
    (s, l) => s + l.remaining,
    0,
  );
}

function pendingOf(c: Customer, now: number): number {
  return c.lots.filter((l) => isPending(l, now)).reduce(
    (s, l) => s + l.remaining,
    0,
  );
}

/** The `bonuses=1` item of a customer. */
function summary(m: Model, c: Customer): Record<string, unknown> {
  const live = c.lots.filter((l) => l.remaining > 0 && !isExpired(l, m.now) && l.expires_at !== null);
  let soonest: number | null = null;
  for (const l of live) {
    if (soonest === null || l.expires_at! < soonest) soonest = l.expires_at;
  }
  const day = soonest === null ? null : ymd(soonest);
  const amount = live.filter((l) => ymd(l.expires_at!) === day).reduce(
    (s, l) => s + l.remaining,
    0,
  );
  return {
    bonus_id: PROGRAM,
    bonus_name: PROGRAM_NAME,
    balance: spendableOf(c, m.now) / 100,
    pending: pendingOf(c, m.now) / 100,
    next_expire_date: day,
    next_expire_amount: amount / 100,
  };
}

/** Writes an expire entry for every lot that has expired with points left: the first part of any balance write. */
function expire(m: Model, c: Customer): void {
  for (
    const l of c.lots.filter((l) => l.remaining > 0 && isExpired(l, m.now))
  ) {
    const amount = l.remaining;
    l.remaining = 0;
    record(m, c, { kind: "expire", amount: -amount });
  }
}

function record(
  m: Model,
  c: Customer,
  e: { kind: string; amount: number; order_id?: string; return_id?: string },
) {
  c.entries.push({
    kind: e.kind,
    amount: e.amount,
    balance: spendableOf(c, m.now),
    pending: pendingOf(c, m.now),
    order_id: e.order_id ?? null,
    return_id: e.return_id ?? null,
  });
}

/** Takes `amount` from spendable lots in spending order; the caller has checked there is enough. */
function spendLots(
  m: Model,
  c: Customer,
  amount: number,
): { lot: number; amount: number; returned: number }[] {
  const used = [];
  let left = amount;
  for (
    const l of c.lots.filter((l) => isSpendable(l, m.now)).sort(spendingOrder)
  ) {
    if (left === 0) break;
    const take = Math.min(left, l.remaining);
    l.remaining -= take;
    left -= take;
    used.push({ lot: l.id, amount: take, returned: 0 });
  }
  assert.equal(left, 0, "model: spent more than spendable");
  return used;
}

/** A new lot: available at once or at the start of a later day, expiring by the program's lifetime. */
function credit(
  m: Model,
  c: Customer,
  amount: number,
  dates: { available_at: number; expires_at: number | null },
  order = false,
) {
  const lot = { id: m.nextLot++, remaining: amount, ...dates, ...(order ? { order: true } : {}) };
  c.lots.push(lot);
  return lot.id;
}

/** The dates of a purchase accrual (and an updateBonus credit) made now. */
function accrualDates(
  m: Model,
): { available_at: number; expires_at: number | null } {
  const { pendingDays, lifetimeDays } = m.rules;
  const available_at = pendingDays > 0 ? dayStart(m.now, pendingDays) : m.now;
  return {
    available_at,
    expires_at: lifetimeDays === null ? null : dayEnd(available_at, lifetimeDays),
  };
}

function round(numerator: number, rounding: Rules["rounding"]): number {
  const q = Math.floor(numerator / 10_000);
  const r = numerator % 10_000;
  if (r === 0 || rounding === "down") return q;
  if (rounding === "up") return q + 1;
  return r >= 5_000 ? q + 1 : q;
}

/** The tier rule: a customer in no group or a tier moves to the highest tier reached (ties: lowest id). */
function applyTiers(m: Model, c: Customer): void {
  const tiers = m.groups.filter((g) => g.min !== null);
  if (c.group !== null && !tiers.some((t) => t.id === c.group)) return;
  const reached = tiers.filter((t) => t.min! <= c.sales).sort((a, b) => b.min! - a.min! || a.id - b.id);
  c.group = reached[0]?.id ?? null;
}

function groupName(m: Model, c: Customer): string | null {
  return m.groups.find((g) => g.id === c.group)?.name ?? null;
}

function purchase(
  m: Model,
  c: Customer,
  p: { order_id: string; amount: number; spend: number },
): Want {
  const earlier = m.orders.get(p.order_id);
  if (earlier) {
    const same = earlier.customer === c.id && earlier.amount === p.amount &&
      earlier.spend === p.spend;
    return same ? { status: 200, body: earlier.reply } : { status: 422, field: "order_id" };
  }
  const limit = Math.floor(p.amount * m.rules.maxSpendBp / 10_000);
  if (
    p.spend > p.amount || p.spend > limit || p.spend > spendableOf(c, m.now)
  ) return { status: 409, field: "spend" };
  const percent = m.groups.find((g) => g.id === c.group)?.accrualBp ??
    m.rules.accrualBp;
  const accrued = round((p.amount - p.spend) * percent, m.rules.rounding);
  expire(m, c);
  const used = spendLots(m, c, p.spend);
  if (p.spend > 0) {
    record(m, c, { kind: "spend", amount: -p.spend, order_id: p.order_id });
  }
  let lot: number | null = null;
  if (accrued > 0) {
    lot = credit(m, c, accrued, accrualDates(m), true);
    record(m, c, { kind: "accrual", amount: accrued, order_id: p.order_id });
  }
  c.sales += p.amount;
  applyTiers(m, c);
  const reply = {
    success: 1,
    order_id: p.order_id,
    customer_id: c.id,
    bonus_id: PROGRAM,
    accrued: accrued / 100,
    spent: p.spend / 100,
    balance: spendableOf(c, m.now) / 100,
    pending: pendingOf(c, m.now) / 100,
    next_expire_date: summary(m, c).next_expire_date,
    next_expire_amount: summary(m, c).next_expire_amount,
    tier: groupName(m, c),
  };
  m.orders.set(p.order_id, {
    order_id: p.order_id,
    customer: c.id,
    amount: p.amount,
    spend: p.spend,
    accrued,
    lot,
    used,
    returnedMoney: 0,
    reply,
    returns: new Map(),
  });
  return { status: 200, body: reply };
}

function purchaseReturn(
  m: Model,
  r: { order_id: string; return_id: string; amount: number },
): Want {
  const o = m.orders.get(r.order_id);
  if (!o) return { status: 404 };
  const earlier = o.returns.get(r.return_id);
  if (earlier) {
    return earlier.amount === r.amount ? { status: 200, body: earlier.reply } : { status: 422, field: "return_id" };
  }
  if (o.returnedMoney + r.amount > o.amount) {
    return { status: 409, field: "amount" };
  }
  const c = m.customers.find((x) => x.id === o.customer)!;
  expire(m, c);
  const before = o.returnedMoney;
  const after = before + r.amount;
  const share = (total: number, part: number) => Math.floor(total * part / o.amount);
  const takeBack = share(o.accrued, after) - share(o.accrued, before);
  const giveBack = share(o.spend, after) - share(o.spend, before);

  // Taking back: the order's own lot first (whatever its state), then spendable, then pending lots.
  let left = takeBack;
  const from = (l: Lot) => {
    const take = Math.min(left, l.remaining);
    l.remaining -= take;
    left -= take;
  };
  const own = c.lots.find((l) => l.id === o.lot);
  if (own && !isExpired(own, m.now)) from(own);
  for (
    const l of c.lots.filter((l) => isSpendable(l, m.now)).sort(spendingOrder)
  ) if (left > 0) from(l);
  for (
    const l of c.lots.filter((l) => isPending(l, m.now)).sort(spendingOrder)
  ) if (left > 0) from(l);
  const shortfall = left;
  const taken = takeBack - shortfall;

  // Giving back: to the lots the spend took from, in that order, never reviving an expired lot.
  let give = giveBack;
  let given = 0;
  for (const u of o.used) {
    const part = Math.min(give, u.amount - u.returned);
    if (part <= 0) continue;
    give -= part;
    u.returned += part;
    const lot = c.lots.find((l) => l.id === u.lot)!;
    if (isExpired(lot, m.now)) continue;
    lot.remaining += part;
    given += part;
  }
  o.returnedMoney = after;
  record(m, c, {
    kind: "return",
    amount: given - taken,
    order_id: r.order_id,
    return_id: r.return_id,
  });
  c.sales = Math.max(0, c.sales - r.amount);
  applyTiers(m, c);
  const reply = {
    success: 1,
    order_id: r.order_id,
    return_id: r.return_id,
    customer_id: c.id,
    bonus_id: PROGRAM,
    taken_back: taken / 100,
    given_back: given / 100,
    shortfall: shortfall / 100,
    balance: spendableOf(c, m.now) / 100,
    pending: pendingOf(c, m.now) / 100,
    next_expire_date: summary(m, c).next_expire_date,
    next_expire_amount: summary(m, c).next_expire_amount,
    tier: groupName(m, c),
  };
  o.returns.set(r.return_id, { amount: r.amount, reply });
  return { status: 200, body: reply };
}

/** updateBonus: a credit (optionally with expire_date), a debit, or an overwrite of the spendable balance. */
function updateBonus(
  m: Model,
  c: Customer,
  u: { amount: number; overwrite: boolean; expireDate: string | null },
): Want {
  if (u.expireDate !== null && u.expireDate < ymd(m.now)) {
    return { status: 400, field: "expire_date" };
  }
  const balance = spendableOf(c, m.now);
  const delta = u.overwrite ? u.amount - balance : u.amount;
  if (delta < 0 && -delta > balance) return { status: 409, field: "amount" };
  expire(m, c);
  if (delta < 0) spendLots(m, c, -delta);
  if (delta > 0) {
    const dates = u.expireDate !== null
      ? {
        available_at: m.now,
        expires_at: dayEnd(Date.parse(`${u.expireDate}T00:00:00Z`)),
      }
      : u.overwrite
      // Available now; lifetime counts from the day the points become spendable, today.
      ? {
        available_at: m.now,
        expires_at: m.rules.lifetimeDays === null ? null : dayEnd(m.now, m.rules.lifetimeDays),
      }
      : accrualDates(m);
    credit(m, c, delta, dates);
  }
  record(m, c, { kind: u.overwrite ? "overwrite" : "adjust", amount: delta });
  return {
    status: 200,
    body: {
      success: 1,
      customer_id: c.id,
      bonus_id: PROGRAM,
      balance: spendableOf(c, m.now) / 100,
      pending: pendingOf(c, m.now) / 100,
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Random settings and steps

const percent = (values: (string | null)[]) => fc.constantFrom(...values);
const settings = fc.record({
  accrual: percent([null, "0", "1", "3.5", "5", "10", "12.34", "33.33", "100"]),
  maxSpend: percent([null, "0", "20", "33.33", "50", "100"]),
  pendingDays: fc.constantFrom(0, 0, 1, 3, 14),
  lifetimeDays: fc.constantFrom(null, 1, 2, 7, 30, 365),
  rounding: fc.constantFrom(null, "down", "nearest", "up"),
  groups: fc.array(
    fc.record({
      min: fc.constantFrom(null, "0", "50", "100", "250.50", "400"),
      accrual: percent([null, "0", "2", "7.5", "15", "50"]),
    }),
    { minLength: 2, maxLength: 2 },
  ),
  customers: fc.constantFrom(1, 2),
  /** Points each customer starts with (an overwrite: spendable at once), minor units. */
  seed: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 50_000 })),
  secondInGroup: fc.boolean(),
  start: fc.integer({ min: 0, max: 364 * 24 }),
});
type Settings = typeof settings extends fc.Arbitrary<infer T> ? T : never;

type Step =
  | {
    kind: "purchase";
    c: number;
    amount: number;
    spendMode: number;
    x: number;
  }
  | { kind: "replay"; pick: number; change: number }
  | { kind: "return"; pick: number; mode: number; x: number }
  | { kind: "returnReplay"; pick: number; same: boolean }
  | { kind: "credit"; c: number; amount: number; expireIn: number | null }
  | { kind: "debit"; c: number; amount: number; all: boolean }
  | { kind: "overwrite"; c: number; amount: number }
  | { kind: "clock"; ms: number; edge: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("purchase" as const),
      c: fc.nat(1),
      amount: fc.oneof(
        fc.integer({ min: 1, max: 30_000 }),
        fc.constantFrom(1, 100, 9_999, 10_000),
      ),
      spendMode: fc.nat(9),
      x: fc.nat(10_000),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("replay" as const),
      pick: fc.nat(),
      change: fc.nat(3),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("return" as const),
      pick: fc.nat(),
      mode: fc.nat(4),
      x: fc.nat(10_000),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("returnReplay" as const),
      pick: fc.nat(),
      same: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("credit" as const),
      c: fc.nat(1),
      amount: fc.integer({ min: 1, max: 20_000 }),
      expireIn: fc.option(
        fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: 400 }) }, {
          weight: 1,
          arbitrary: fc.integer({ min: -3, max: -1 }),
        }),
        { freq: 2 },
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("debit" as const),
      c: fc.nat(1),
      amount: fc.integer({ min: 1, max: 20_000 }),
      all: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("overwrite" as const),
      c: fc.nat(1),
      amount: fc.nat(30_000),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("clock" as const),
      ms: fc.oneof(
        fc.integer({ min: 1, max: 48 }).map((h) => h * HOUR),
        fc.integer({ min: 1, max: 20 }).map((d) => d * DAY),
        fc.integer({ min: 30, max: 180 }).map((d) => d * DAY + 5 * HOUR),
      ),
      // 1: then on to the next midnight exactly, 2: to the last millisecond of that day (the edges of lot dates).
      edge: fc.constantFrom(0, 0, 0, 1, 2),
    }),
  },
);

/** Parses a setting as the service does: hundredths of a percent (or minor units of money). */
function hundredths(text: string | null, otherwise: number): number {
  return text === null ? otherwise : Math.round(Number(text) * 100);
}

/** Sets up the program, the two tier groups and the customers, in the service and in the model. */
async function setUp(w: World, s: Settings, now: number): Promise<Model> {
  const program: Record<string, string | number> = {
    name: PROGRAM_NAME,
    pending_days: s.pendingDays,
  };
  if (s.accrual !== null) program.accrual_percent = s.accrual;
  if (s.maxSpend !== null) program.max_spend_percent = s.maxSpend;
  if (s.lifetimeDays !== null) program.lifetime_days = s.lifetimeDays;
  if (s.rounding !== null) program.rounding = s.rounding;
  const made = await w.call("POST", "/api/bonusprogram/update", {
    form: program,
  });
  assert.equal(made.status, 200, made.text);
  assert.equal(made.body.id, PROGRAM);

  const groups: Group[] = [];
  for (const [i, g] of s.groups.entries()) {
    const name = ["Silver", "Gold"][i]!;
    const form: Record<string, string> = { group_name: name };
    if (g.min !== null) form.min_accumulated_sales = g.min;
    if (g.accrual !== null) form.accrual_percent = g.accrual;
    const r = await w.call("POST", "/api/customergroup/update", { form });
    assert.equal(r.status, 200, r.text);
    groups.push({
      id: r.body.group_id,
      name,
      min: g.min === null ? null : hundredths(g.min, 0),
      accrualBp: g.accrual === null ? null : hundredths(g.accrual, 0),
    });
  }

  const customers: Customer[] = [];
  for (let i = 0; i < s.customers; i++) {
    const form: Record<string, string> = { fname: `Model ${i + 1}` };
    // The second customer may start in Gold (a tier they have not reached, or a group that is not a tier).
    const group = i === 1 && s.secondInGroup ? groups[1]! : null;
    if (group) form.group_name = group.name;
    const r = await w.call("POST", "/api/customer/update", { form });
    assert.equal(r.status, 200, r.text);
    customers.push({
      id: r.body.id,
      sales: 0,
      group: group?.id ?? null,
      lots: [],
      entries: [],
    });
  }
  return {
    now,
    rules: {
      accrualBp: hundredths(s.accrual, 0),
      maxSpendBp: hundredths(s.maxSpend, 10_000),
      pendingDays: s.pendingDays,
      lifetimeDays: s.lifetimeDays,
      rounding: s.rounding ?? "down",
    },
    groups,
    customers,
    orders: new Map(),
    nextLot: 1,
  };
}

/** Compares a reply with what the model wants. */
function check(got: Reply, want: Want, where: string): void {
  assert.equal(got.status, want.status, `${where}: ${got.text}`);
  if ("body" in want) {
    assert.deepEqual(got.body, want.body, where);
  } else {
    assert.equal(got.body.success, 0, `${where}: ${got.text}`);
    if (want.field !== undefined) {
      assert.equal(got.body.field, want.field, `${where}: ${got.text}`);
    }
  }
}

/** The ledger as compared: each run of expire entries summed into one (lots may be merged), zero runs dropped. */
function comparable(entries: Entry[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const e of entries) {
    const last = out.at(-1);
    if (e.kind === "expire") {
      if (last?.kind === "expire") {
        last.amount = Math.round(((last.amount as number) + e.amount) * 100) /
          100;
      } else out.push({ kind: "expire", amount: e.amount });
      continue;
    }
    out.push({ ...e });
  }
  return out.filter((e) => !(e.kind === "expire" && e.amount === 0));
}

/** Reads a customer (`bonuses=1`) and their ledger and compares both with the model. */
async function compare(
  w: World,
  m: Model,
  c: Customer,
  where: string,
): Promise<void> {
  const read = await w.call("GET", "/api/customer", {
    query: { id: c.id, bonuses: 1 },
  });
  assert.equal(read.status, 200, read.text);
  const got = read.body.customers[0];
  assert.deepEqual(
    {
      accumulated_sales: got.accumulated_sales,
      group_name: got.group_name,
      bonuses: got.bonuses,
    },
    {
      accumulated_sales: c.sales / 100,
      group_name: groupName(m, c),
      bonuses: [summary(m, c)],
    },
    `${where}: customer ${c.id}`,
  );
  const history = await w.call("GET", "/api/customer/bonusHistory", {
    query: { customer_id: c.id, bonus_id: PROGRAM, page_size: 1000 },
  });
  assert.equal(history.status, 200, history.text);
  const service: Entry[] = history.body.transactions.map((
    t: Record<string, unknown>,
  ) => ({
    kind: t.kind,
    amount: t.amount,
    balance: t.balance,
    pending: t.pending,
    order_id: t.order_id ?? null,
    return_id: t.return_id ?? null,
  })).reverse();
  const model = c.entries.map((e) => ({
    ...e,
    amount: e.amount / 100,
    balance: e.balance / 100,
    pending: e.pending / 100,
  }));
  assert.deepEqual(
    comparable(service),
    comparable(model),
    `${where}: ledger of customer ${c.id}`,
  );
  assert.deepEqual(
    history.body.transactions.map((t: { transaction_id: number }) => t.transaction_id).reverse(),
    service.map((_, i) => i + 1),
    `${where}: transaction ids of customer ${c.id}`,
  );
  // The invariant: the ledger sums to what the lots hold (spendable + pending + not yet expired).
  const sum = service.reduce((s, e) => s + Math.round(e.amount * 100), 0);
  const held = c.lots.reduce((s, l) => s + l.remaining, 0);
  assert.equal(sum, held, `${where}: ledger sum of customer ${c.id}`);
}

/** Runs one step against the model and the service; returns the customer whose balance it touched. */
async function run(
  w: World,
  m: Model,
  s: Step,
  i: number,
  log: string[],
): Promise<Customer | null> {
  const customerOf = (n: number) => m.customers[n % m.customers.length]!;
  const accepted = [...m.orders.values()];
  const post = (path: string, form: Record<string, string | number>) => w.call("POST", path, { form });
  const say = (line: string) => log.push(`${i}: ${line}`);

  switch (s.kind) {
    case "clock":
      m.now += s.ms;
      if (s.edge === 1) m.now = dayStart(m.now, 1);
      if (s.edge === 2) m.now = dayEnd(m.now);
      say(`clock +${s.ms / HOUR}h -> ${new Date(m.now).toISOString()}`);
      return null;
    case "purchase": {
      const c = customerOf(s.c);
      const limit = Math.min(
        Math.floor(s.amount * m.rules.maxSpendBp / 10_000),
        spendableOf(c, m.now),
      );
      // Mostly spends that fit (none, some, the most allowed); some over the limit, over the amount, or arbitrary.
      const some = Math.floor(limit * (s.x % 101) / 100);
      const spend = [
        0,
        0,
        some,
        some,
        some,
        limit,
        limit,
        limit + 1 + (s.x % 50),
        s.amount + 1,
        s.x,
      ][s.spendMode]!;
      const p = { order_id: `order-${i}`, amount: s.amount, spend };
      say(`purchase ${JSON.stringify({ customer: c.id, ...p })}`);
      const want = purchase(m, c, p);
      const got = await post("/api/purchase", {
        customer_id: c.id,
        bonus_id: PROGRAM,
        order_id: p.order_id,
        amount: decimal(p.amount),
        spend: decimal(p.spend),
      });
      check(got, want, log.join("\n"));
      return c;
    }
    case "replay": {
      const o = accepted[s.pick % Math.max(1, accepted.length)];
      if (!o) return null;
      // 0: the same request again; 1-3: the same order id with another amount, spend or customer.
      const other = m.customers.length > 1 ? m.customers.find((x) => x.id !== o.customer)! : null;
      const c = s.change === 3 && other ? other : m.customers.find((x) => x.id === o.customer)!;
      const p = {
        order_id: o.order_id,
        amount: o.amount + (s.change === 1 ? 1 : 0),
        spend: o.spend + (s.change === 2 ? 1 : 0),
      };
      say(`replay ${JSON.stringify({ customer: c.id, ...p })}`);
      const want = purchase(m, c, p);
      const got = await post("/api/purchase", {
        customer_id: c.id,
        bonus_id: PROGRAM,
        order_id: p.order_id,
        amount: decimal(p.amount),
        spend: decimal(p.spend),
      });
      check(got, want, log.join("\n"));
      if (want.status === 200) {
        assert.equal(got.headers.get("Idempotent-Replayed"), "true");
      }
      return c;
    }
    case "return": {
      const o = accepted[s.pick % Math.max(1, accepted.length)];
      if (!o && s.mode !== 3) return null;
      const left = o ? o.amount - o.returnedMoney : 0;
      // 0: part of what is left, 1: all of it, 2: more than that, 3: an unknown order.
      const amount = [
        1 + (s.x % Math.max(1, left)),
        left,
        left + 1 + (s.x % 100),
        1 + (s.x % 1000),
      ][s.mode % 4]!;
      if (amount <= 0) return null;
      const r = {
        order_id: o && s.mode !== 3 ? o.order_id : `unknown-${i}`,
        return_id: `return-${i}`,
        amount,
      };
      say(`return ${JSON.stringify(r)}`);
      const want = purchaseReturn(m, r);
      const got = await post("/api/purchase/return", {
        ...r,
        amount: decimal(r.amount),
      });
      check(got, want, log.join("\n"));
      return o && s.mode !== 3 ? m.customers.find((x) => x.id === o.customer)! : null;
    }
    case "returnReplay": {
      const returns = accepted.flatMap((o) => [...o.returns].map(([id, r]) => ({ o, id, amount: r.amount })));
      const r = returns[s.pick % Math.max(1, returns.length)];
      if (!r) return null;
      const sent = {
        order_id: r.o.order_id,
        return_id: r.id,
        amount: r.amount + (s.same ? 0 : 1),
      };
      say(`return again ${JSON.stringify(sent)}`);
      const want = purchaseReturn(m, sent);
      const got = await post("/api/purchase/return", {
        ...sent,
        amount: decimal(sent.amount),
      });
      check(got, want, log.join("\n"));
      return m.customers.find((x) => x.id === r.o.customer)!;
    }
    case "credit":
    case "debit":
    case "overwrite": {
      const c = customerOf(s.c);
      const u = {
        amount: s.kind === "credit"
          ? s.amount
          : s.kind === "debit"
          ? -(s.all ? spendableOf(c, m.now) + (s.amount % 2) : s.amount)
          : s.amount,
        overwrite: s.kind === "overwrite",
        expireDate: s.kind === "credit" && s.expireIn !== null ? ymd(dayStart(m.now, s.expireIn)) : null,
      };
      if (u.amount === 0 && !u.overwrite) return null;
      say(`updateBonus ${JSON.stringify({ customer: c.id, ...u })}`);
      const want = updateBonus(m, c, u);
      const form: Record<string, string | number> = {
        customer_id: c.id,
        bonus_id: PROGRAM,
        amount: decimal(u.amount),
      };
      if (u.overwrite) form.overwrite = 1;
      if (u.expireDate !== null) form.expire_date = u.expireDate;
      const got = await post("/api/customer/updateBonus", form);
      // transaction_id counts expire entries, one per lot; lots may be merged, so the model cannot know their number:
      // the reply must name the newest ledger entry instead (compare() checks the ledger itself).
      const { transaction_id, ...rest } = got.body;
      check({ ...got, body: rest }, want, log.join("\n"));
      if (want.status === 200) {
        const newest = await w.call("GET", "/api/customer/bonusHistory", {
          query: { customer_id: c.id, bonus_id: PROGRAM, page_size: 1 },
        });
        assert.equal(
          transaction_id,
          newest.body.transactions[0]?.transaction_id,
          log.join("\n"),
        );
      }
      return c;
    }
  }
}

/** Runs one sequence of steps against a fresh service and the model, comparing after every step. */
async function agree(s: Settings, steps: Step[]): Promise<void> {
  let clock = Date.UTC(2026, 0, 1, 0, 17, 23, 456) + s.start * HOUR;
  await using w = await world({ now: () => clock, config: { timeZone: "UTC" } });
  const m = await setUp(w, s, clock);
  const log = [`settings ${JSON.stringify(s)}`];
  if (s.seed > 0) {
    for (const [n] of m.customers.entries()) {
      await run(w, m, { kind: "overwrite", c: n, amount: s.seed }, -1 - n, log);
      await compare(w, m, m.customers[n]!, log.join("\n"));
    }
  }
  for (const [i, st] of steps.entries()) {
    const touched = await run(w, m, st, i, log);
    clock = m.now;
    for (const c of touched ? [touched] : m.customers) await compare(w, m, c, log.join("\n"));
  }
  for (const c of m.customers) await compare(w, m, c, `${log.join("\n")}\nat the end`);
}

Deno.test("points agree with a simple model over random purchases, returns, credits, debits, overwrites and clock moves", async () => {
  await fc.assert(
    fc.asyncProperty(settings, fc.array(step, { minLength: 5, maxLength: 20, size: "max" }), agree),
    // POINTS_PROPERTY_RUNS=3000 for a deeper search than CI's.
    { numRuns: Number(Deno.env.get("POINTS_PROPERTY_RUNS") ?? 80) },
  );
});

Deno.test("a return takes back from the soonest-expiring lot once the order's own points were spent (found by the model)", async () => {
  // Shrunk counterexample: the purchase's accrual joined the never-expiring lot that earlier points and a later
  // credit also went into, so "the order's lot" held more than was left of the order's points; the return took all
  // of it from there and left the lot expiring today, where the contract takes the rest from that lot first.
  await agree(
    {
      accrual: "100",
      maxSpend: null,
      pendingDays: 0,
      lifetimeDays: null,
      rounding: null,
      groups: [{ min: null, accrual: null }, { min: null, accrual: null }],
      customers: 1,
      seed: 0,
      secondInGroup: false,
      start: 0,
    },
    [
      { kind: "purchase", c: 0, amount: 10000, spendMode: 0, x: 0 },
      { kind: "purchase", c: 0, amount: 2, spendMode: 2, x: 4898 },
      { kind: "credit", c: 0, amount: 1, expireIn: 0 },
      { kind: "credit", c: 0, amount: 1, expireIn: null },
      { kind: "return", pick: 0, mode: 1, x: 0 },
    ],
  );
});

Deno.test("a return takes back from the order's own lot after a return gave points back to it (found by the model)", async () => {
  // Shrunk counterexample: the order's accrual lot was emptied by a debit and dropped; a return of another order gave
  // spent points back to it, but under a new lot, so the next return of the first order no longer found "its" lot
  // and took the lot expiring today instead.
  await agree(
    {
      accrual: "12.34",
      maxSpend: null,
      pendingDays: 0,
      lifetimeDays: null,
      rounding: null,
      groups: [{ min: null, accrual: null }, { min: null, accrual: null }],
      customers: 1,
      seed: 1,
      secondInGroup: false,
      start: 0,
    },
    [
      { kind: "purchase", c: 0, amount: 9, spendMode: 0, x: 0 },
      { kind: "overwrite", c: 0, amount: 5 },
      { kind: "purchase", c: 0, amount: 10000, spendMode: 9, x: 4 },
      { kind: "debit", c: 0, amount: 1234, all: false },
      { kind: "return", pick: 1, mode: 0, x: 4999 },
      { kind: "credit", c: 0, amount: 1, expireIn: 0 },
      { kind: "return", pick: 0, mode: 0, x: 0 },
      { kind: "return", pick: 0, mode: 1, x: 0 },
    ],
  );
});
