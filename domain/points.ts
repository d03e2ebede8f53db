/**
 * Points that behave like money: a balance is a set of lots, each with its own date of becoming spendable and date of
 * expiry. Spending takes the soonest-expiring spendable lots first and records which; a return gives points back to
 * the lots they came from; expiry removes a lot with an explicit ledger entry. Pure: amounts are integers of minor
 * units, times epoch ms, days calendar days in the service's time zone.
 */
import { addDays, type CalendarDate, endOfLocalDay, formatDate, localDate, startOfLocalDay } from "./dates.ts";
import { ConflictError } from "./errors.ts";
import { formatPoints } from "./money.ts";

/** One lot of points. */
export interface Lot {
  id: number;
  /** Points left in it, minor units (never below zero). */
  remaining: number;
  /** When its points become spendable, epoch ms. */
  available_at: number;
  /** The last millisecond its points can be spent, or null when they never expire. */
  expires_at: number | null;
  /** Set on a purchase's accrual: the lot stays its own (never merged), so a return takes back from it first. */
  order?: true;
}

/** How a program accrues, limits and dates points. Percentages are kept in hundredths of a percent (350 = 3.5%). */
export interface PointsRules {
  accrualBp: number;
  maxSpendBp: number;
  pendingDays: number;
  lifetimeDays: number | null;
  rounding: Rounding;
}

/** How accrual is rounded to a minor unit. */
export type Rounding = "down" | "nearest" | "up";

/**
 * Most purchase lots a balance keeps as their own: the oldest beyond it join the other points (a return of such an
 * old purchase then takes back from the soonest-expiring points). Keeps a frequent buyer's record small.
 */
export const MAX_OWN_LOTS = 100;

/** The rules of a program with none set: no accrual, no spending limit, points at once and for ever. */
export const DEFAULT_RULES: PointsRules = {
  accrualBp: 0,
  maxSpendBp: 10_000,
  pendingDays: 0,
  lifetimeDays: null,
  rounding: "down",
};

/** A balance as lots: the total of their remainders, the lots, and the next lot id. */
export interface Wallet {
  total: number;
  lots: Lot[];
  nextLotId: number;
}

/** Where spent points came from: the lot and how much, with its dates (to give them back even once it is gone). */
export interface Allocation {
  lot: number;
  amount: number;
  available_at: number;
  expires_at: number | null;
  /** The lot was a purchase's own. */
  order?: true;
}

/** What a stored balance record holds (older records have no lots: their whole balance is one lot). */
export interface WalletRecord {
  balance: number;
  lots?: Lot[];
  next_lot_id?: number;
}

/** The wallet of a stored balance; a record from before lots is one lot, spendable since ever, never expiring. */
export function walletOf(record: WalletRecord | null): Wallet {
  if (!record) return { total: 0, lots: [], nextLotId: 1 };
  if (record.lots) {
    return { total: record.balance, lots: record.lots.map((l) => ({ ...l })), nextLotId: record.next_lot_id ?? 1 };
  }
  const lots = record.balance > 0 ? [{ id: 1, remaining: record.balance, available_at: 0, expires_at: null }] : [];
  return { total: record.balance, lots, nextLotId: 2 };
}

function isExpired(lot: Lot, now: number): boolean {
  return lot.expires_at !== null && lot.expires_at < now;
}

function isSpendable(lot: Lot, now: number): boolean {
  return lot.available_at <= now && !isExpired(lot, now) && lot.remaining > 0;
}

/**
 * Spending order: soonest expiry first (never last); among points expiring together, other points before a purchase's
 * own (kept for its returns, and so that merging other credits of one expiry changes nothing anyone can see); then the
 * earliest available, then the oldest lot.
 */
function bySpendingOrder(a: Lot, b: Lot): number {
  const ea = a.expires_at ?? Infinity;
  const eb = b.expires_at ?? Infinity;
  return ea - eb || Number(a.order ?? false) - Number(b.order ?? false) || a.available_at - b.available_at ||
    a.id - b.id;
}

/** What a balance shows at an instant. */
export interface WalletSummary {
  /** Spendable now, minor units. */
  balance: number;
  /** Not spendable yet, minor units. */
  pending: number;
  /** The local date the next points expire, or null. */
  nextExpireDate: string | null;
  /** How many points expire on that date. */
  nextExpireAmount: number;
}

/** The spendable and pending points of a wallet at `now`, and when the next of them expire. */
export function summarize(wallet: Wallet, now: number, timeZone: string): WalletSummary {
  let balance = 0;
  let pending = 0;
  let soonest: number | null = null;
  for (const lot of wallet.lots) {
    if (lot.remaining <= 0 || isExpired(lot, now)) continue;
    if (lot.available_at <= now) balance += lot.remaining;
    else pending += lot.remaining;
    if (lot.expires_at !== null && (soonest === null || lot.expires_at < soonest)) soonest = lot.expires_at;
  }
  if (soonest === null) return { balance, pending, nextExpireDate: null, nextExpireAmount: 0 };
  const day = formatDate(localDate(soonest, timeZone));
  let amount = 0;
  for (const lot of wallet.lots) {
    if (lot.remaining <= 0 || isExpired(lot, now) || lot.expires_at === null) continue;
    if (formatDate(localDate(lot.expires_at, timeZone)) === day) amount += lot.remaining;
  }
  return { balance, pending, nextExpireDate: day, nextExpireAmount: amount };
}

/** The lots of a wallet that have expired at `now` with points left in them: each gets its own ledger entry. */
export function dueLots(wallet: Wallet, now: number): Lot[] {
  return wallet.lots.filter((l) => l.remaining > 0 && isExpired(l, now)).sort((a, b) =>
    a.expires_at! - b.expires_at! || a.id - b.id
  );
}

/** Removes one expired lot; returns the wallet after and the points it took. */
export function expireLot(wallet: Wallet, lotId: number): { wallet: Wallet; amount: number } {
  const lot = wallet.lots.find((l) => l.id === lotId);
  if (!lot) return { wallet, amount: 0 };
  return {
    wallet: { ...wallet, total: wallet.total - lot.remaining, lots: wallet.lots.filter((l) => l.id !== lotId) },
    amount: lot.remaining,
  };
}

/** The dates of a new lot made at `now` under a program's rules, or expiring at the end of `expireDate`. */
export function lotDates(
  rules: PointsRules,
  options: { now: number; timeZone: string; expireDate?: CalendarDate | null; atOnce?: boolean },
): { available_at: number; expires_at: number | null } {
  const { now, timeZone } = options;
  const today = localDate(now, timeZone);
  if (options.expireDate) return { available_at: now, expires_at: endOfLocalDay(options.expireDate, timeZone) };
  const pending = options.atOnce ? 0 : rules.pendingDays;
  const availableDay = addDays(today, pending);
  const available_at = pending > 0 ? startOfLocalDay(availableDay, timeZone) : now;
  const expires_at = rules.lifetimeDays === null
    ? null
    : endOfLocalDay(addDays(availableDay, rules.lifetimeDays), timeZone);
  return { available_at, expires_at };
}

/**
 * Adds points as a lot. Spendable lots that are no purchase's own and expire together are kept as one (so such
 * credits make at most one lot per expiry day, however many there were, including ones credited while pending); a
 * purchase's accrual (`own`) is always a lot of its own; `id` adds to that lot, or brings it back with its dates.
 * Returns the id of the lot the points are in.
 */
export function addLot(
  wallet: Wallet,
  options: { amount: number; available_at: number; expires_at: number | null; now: number; id?: number; own?: boolean },
): { wallet: Wallet; lot: number } {
  const { amount, available_at, expires_at, now } = options;
  const lots = wallet.lots.map((l) => ({ ...l }));
  const id = options.id ?? wallet.nextLotId;
  const existing = lots.find((l) => l.id === id);
  if (existing) existing.remaining += amount;
  else lots.push({ id, remaining: amount, available_at, expires_at, ...(options.own ? { order: true as const } : {}) });
  const merged = consolidate(releaseOldOwnLots(lots), now);
  // A credit spendable at once may have joined a peer of its expiry: name the lot it is in now.
  const lot = merged.some((l) => l.id === id)
    ? id
    : merged.find((l) => !l.order && l.available_at <= now && l.expires_at === expires_at && !isExpired(l, now))!.id;
  return {
    wallet: { total: wallet.total + amount, lots: merged, nextLotId: Math.max(wallet.nextLotId, id + 1) },
    lot,
  };
}

/** Beyond MAX_OWN_LOTS purchase lots, the oldest become ordinary points (which consolidate then merges). */
function releaseOldOwnLots(lots: Lot[]): Lot[] {
  const own = lots.filter((l) => l.order).sort((a, b) => a.id - b.id);
  for (const lot of own.slice(0, Math.max(0, own.length - MAX_OWN_LOTS))) delete lot.order;
  return lots;
}

/**
 * Merges the spendable lots that are no purchase's own and expire together into one (the lowest id). Invisible:
 * such points are interchangeable (they expire together, and spending takes them before a purchase's own).
 */
function consolidate(lots: Lot[], now: number): Lot[] {
  const keep = new Map<number | null, Lot>();
  const out: Lot[] = [];
  for (const lot of [...lots].sort((a, b) => a.id - b.id)) {
    if (lot.order || lot.available_at > now || isExpired(lot, now)) {
      out.push(lot);
      continue;
    }
    const peer = keep.get(lot.expires_at);
    if (peer) {
      peer.remaining += lot.remaining;
      peer.available_at = Math.min(peer.available_at, lot.available_at);
    } else {
      keep.set(lot.expires_at, lot);
      out.push(lot);
    }
  }
  return out;
}

/** The points spendable at `now`. */
export function spendable(wallet: Wallet, now: number): number {
  return wallet.lots.reduce((sum, l) => sum + (isSpendable(l, now) ? l.remaining : 0), 0);
}

/**
 * Takes `amount` from the spendable lots, soonest-expiring first; null when they hold less. Empty lots are dropped
 * (a return finds their dates in the allocation).
 */
export function takeSpendable(
  wallet: Wallet,
  amount: number,
  now: number,
): { wallet: Wallet; taken: Allocation[] } | null {
  if (amount === 0) return { wallet, taken: [] };
  if (spendable(wallet, now) < amount) return null;
  const lots = wallet.lots.map((l) => ({ ...l }));
  const taken: Allocation[] = [];
  let left = amount;
  for (const lot of lots.filter((l) => isSpendable(l, now)).sort(bySpendingOrder)) {
    if (left === 0) break;
    const take = Math.min(left, lot.remaining);
    lot.remaining -= take;
    left -= take;
    taken.push({
      lot: lot.id,
      amount: take,
      available_at: lot.available_at,
      expires_at: lot.expires_at,
      ...(lot.order ? { order: true as const } : {}),
    });
  }
  return { wallet: { ...wallet, total: wallet.total - amount, lots: lots.filter((l) => l.remaining > 0) }, taken };
}

/**
 * Takes up to `amount` back: from the lot `first` (when it is still there, whatever its state), then from spendable
 * lots soonest-expiring first, then from pending lots. Never below zero: returns what could not be taken.
 */
export function takeBack(
  wallet: Wallet,
  options: { amount: number; first: number | null; now: number },
): { wallet: Wallet; taken: number; shortfall: number } {
  const { now } = options;
  const lots = wallet.lots.map((l) => ({ ...l }));
  let left = options.amount;
  const from = (lot: Lot) => {
    const take = Math.min(left, lot.remaining);
    lot.remaining -= take;
    left -= take;
  };
  const first = options.first === null ? undefined : lots.find((l) => l.id === options.first && !isExpired(l, now));
  if (first) from(first);
  for (const lot of lots.filter((l) => isSpendable(l, now)).sort(bySpendingOrder)) if (left > 0) from(lot);
  for (const lot of lots.filter((l) => l.available_at > now && l.remaining > 0).sort(bySpendingOrder)) {
    if (left > 0) from(lot);
  }
  const taken = options.amount - left;
  return {
    wallet: { ...wallet, total: wallet.total - taken, lots: lots.filter((l) => l.remaining > 0) },
    taken,
    shortfall: left,
  };
}

/**
 * Gives spent points back to the lots they came from, in the order they were taken, `amount` in all, skipping what
 * each allocation already got back (`returned`, per allocation). Points of a lot that has expired are not given back.
 */
export function giveBack(
  wallet: Wallet,
  options: { amount: number; spent: Allocation[]; returned: number[]; now: number },
): { wallet: Wallet; given: number; expired: number; returned: number[] } {
  let w = wallet;
  let left = options.amount;
  let given = 0;
  let expired = 0;
  const returned = options.spent.map((_, i) => options.returned[i] ?? 0);
  options.spent.forEach((alloc, i) => {
    const room = alloc.amount - returned[i]!;
    const give = Math.min(left, room);
    if (give <= 0) return;
    left -= give;
    returned[i]! += give;
    if (alloc.expires_at !== null && alloc.expires_at < options.now) {
      expired += give;
      return;
    }
    // Back to the very lot it came from (brought back with its dates when it was emptied and dropped).
    w = addLot(w, {
      amount: give,
      available_at: alloc.available_at,
      expires_at: alloc.expires_at,
      now: options.now,
      id: alloc.lot,
      own: alloc.order,
    }).wallet;
    given += give;
  });
  return { wallet: w, given, expired, returned };
}

/**
 * `a × b / d` for non-negative whole numbers, rounded as asked (floor, half up, ceiling), exactly: in BigInt when the
 * product passes 2^53, where floating point would lose the last unit.
 */
function mulDiv(a: number, b: number, d: number, rounding: Rounding = "down"): number {
  const q = BigInt(a) * BigInt(b);
  const div = BigInt(d);
  const floor = q / div;
  const r = q - floor * div;
  let out = floor;
  if (r !== 0n && rounding === "up") out += 1n;
  if (r !== 0n && rounding === "nearest" && 2n * r >= div) out += 1n;
  return Number(out);
}

/** Points accrued on `base` minor units of money at `bp` hundredths of a percent, rounded as the program says. */
export function accrual(base: number, bp: number, rounding: Rounding): number {
  return base <= 0 || bp <= 0 ? 0 : mulDiv(base, bp, 10_000, rounding);
}

/** The most of an order of `amount` that points may pay. */
export function maxSpend(amount: number, maxSpendBp: number): number {
  return mulDiv(amount, maxSpendBp, 10_000);
}

/** Refuses a spend the order, the program or the balance does not allow (409 naming `spend`). */
export function checkSpend(options: { amount: number; spend: number; rules: PointsRules; spendable: number }): void {
  const { amount, spend, rules } = options;
  const what = `Cannot spend ${formatPoints(spend)} points`;
  if (spend > amount) {
    throw new ConflictError(`${what}: the order's amount is ${formatPoints(amount)}`, "spend");
  }
  const limit = maxSpend(amount, rules.maxSpendBp);
  if (spend > limit) {
    throw new ConflictError(
      `${what}: at most ${formatPoints(limit)} of this order may be paid with points ` +
        `(max_spend_percent ${formatPoints(rules.maxSpendBp)})`,
      "spend",
    );
  }
  if (spend > options.spendable) {
    throw new ConflictError(`${what}: only ${formatPoints(options.spendable)} are spendable`, "spend");
  }
}

/** The cumulative share of `total` for `part` of `whole`, rounded down: a full `whole` gives exactly `total`. */
export function shareOf(total: number, part: number, whole: number): number {
  return whole <= 0 ? 0 : mulDiv(total, part, whole);
}

/** A customer group as a tier: the sales that reach it (null: not a tier). */
export interface TierGroup {
  id: number;
  minSales: number | null;
}

/**
 * The group a customer belongs in after their accumulated sales changed: a customer in no group or in a tier moves
 * to the highest tier their sales reach (ties: the lowest id), or to no group; one in another group stays there.
 */
export function tierFor(current: number | null, sales: number, groups: TierGroup[]): number | null {
  const tiers = groups.filter((g) => g.minSales !== null);
  if (current !== null && !tiers.some((t) => t.id === current)) return current;
  let best: TierGroup | null = null;
  for (const t of tiers) {
    if (t.minSales! > sales) continue;
    if (!best || t.minSales! > best.minSales! || (t.minSales === best.minSales && t.id < best.id)) best = t;
  }
  return best?.id ?? null;
}
