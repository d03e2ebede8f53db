/**
 * The dashboard's aggregates, kept in the write path so the dashboard reads a few hundred small keys at any store
 * size instead of scanning cards, balances and the ledger. All are grow-only KvU64 sums added to the same atomic
 * write as the change they count (through `Write`, so they count against the limits):
 * - points credited, debited (spent, taken back, lowered) and expired: in total and per UTC hour of the change;
 *   points on balances = credited - debited - expired;
 * - points of lots not spendable yet, by the UTC hour they become spendable: `in` when such a lot grows, `out` when
 *   it shrinks, while it is not spendable; pending now = the sum of in - out over the hours from the current one on
 *   (exact for later hours; the current hour still counts lots that became spendable earlier in it);
 * - cards made (`in`) and deleted (`out`).
 */
import type { Movement } from "../domain/bonus.ts";
import type { Lot, Wallet } from "../domain/points.ts";
import type { Write } from "./commit.ts";
import { statKeys } from "./keys.ts";

/** One hour, ms: the grain of the per-hour sums (whole-hour time zones get exact local days). */
export const HOUR_MS = 3_600_000;

/** The kinds of points totals. */
export type PointsKind = "credited" | "debited" | "expired";

/** The kinds, in order. */
export const POINTS_KINDS: readonly PointsKind[] = ["credited", "debited", "expired"];

/** The hour (since the epoch, UTC) of an instant. */
export function hourOf(ms: number): number {
  return Math.floor(ms / HOUR_MS);
}

/** The kind a ledger movement counts as, or null for a zero one. */
export function kindOf(movement: Pick<Movement, "kind" | "amount">): PointsKind | null {
  if (movement.amount === 0) return null;
  if (movement.amount > 0) return "credited";
  return movement.kind === "expire" ? "expired" : "debited";
}

/** Adds one movement's points to its kind's total and its hour's sum. */
export function addPointsMovement(write: Write, cid: string, movement: Pick<Movement, "kind" | "amount">, now: number) {
  const kind = kindOf(movement);
  if (kind === null) return;
  const n = BigInt(Math.abs(movement.amount));
  write.sum(statKeys.pointsTotal(cid, kind), n).sum(statKeys.pointsHour(cid, hourOf(now), kind), n);
}

/** Lots not spendable yet at `now`, by lot id. */
function pendingLots(lots: readonly Lot[], now: number): Map<number, Lot> {
  const out = new Map<number, Lot>();
  for (const lot of lots) if (lot.available_at > now) out.set(lot.id, lot);
  return out;
}

/**
 * Adds what a balance change does to the points not spendable yet: each lot not spendable at `now` that grew or
 * shrank, under the hour it becomes spendable. A lot once spendable is not looked at: an hour is read (as pending)
 * only until it is over, so only the current hour can hold lots that are already spendable.
 */
export function addPendingChange(write: Write, cid: string, options: { before: Wallet; after: Wallet; now: number }) {
  const before = pendingLots(options.before.lots, options.now);
  const after = pendingLots(options.after.lots, options.now);
  for (const id of new Set([...before.keys(), ...after.keys()])) {
    const old = before.get(id);
    const next = after.get(id);
    const delta = (next?.remaining ?? 0) - (old?.remaining ?? 0);
    if (delta === 0) continue;
    const at = hourOf((next ?? old)!.available_at);
    write.sum(statKeys.pending(cid, at, delta > 0 ? "in" : "out"), BigInt(Math.abs(delta)));
  }
}

/** Counts cards made (+1) or deleted (-1). */
export function addCardCount(write: Write, cid: string, change: 1 | -1): void {
  write.sum(statKeys.cardTotal(cid, change > 0 ? "in" : "out"));
}

function u64(entry: Deno.KvEntryMaybe<unknown>): number {
  return entry.value instanceof Deno.KvU64 ? Number(entry.value.value) : 0;
}

/** What the dashboard reads of the aggregates. */
export interface PointsFigures {
  totals: Record<PointsKind, number>;
  /** Points not spendable yet (lots becoming spendable from the start of the current UTC hour on). */
  pending: number;
  cards: number;
  /** Per-hour sums from `sinceMs` on: hour -> kind -> points. */
  hours: Map<number, Record<PointsKind, number>>;
}

/** Reads the aggregates: a few keys, the pending hours ahead and the hours since `sinceMs`. */
export async function readPointsFigures(
  kv: Deno.Kv,
  cid: string,
  options: { now: number; sinceMs: number },
): Promise<PointsFigures> {
  const [credited, debited, expired, cardsIn, cardsOut] = await kv.getMany([
    ...POINTS_KINDS.map((k) => statKeys.pointsTotal(cid, k)),
    statKeys.cardTotal(cid, "in"),
    statKeys.cardTotal(cid, "out"),
  ]);
  let pending = 0;
  const fromHour = hourOf(options.now);
  for await (
    const e of kv.list({ prefix: statKeys.pendings(cid), start: [...statKeys.pendings(cid), fromHour] })
  ) {
    pending += e.key.at(-1) === "out" ? -u64(e) : u64(e);
  }
  const hours = new Map<number, Record<PointsKind, number>>();
  const since = hourOf(options.sinceMs);
  for await (
    const e of kv.list({ prefix: statKeys.pointsHours(cid), start: [...statKeys.pointsHours(cid), since] })
  ) {
    const hour = e.key.at(-2) as number;
    const kind = e.key.at(-1) as PointsKind;
    let row = hours.get(hour);
    if (!row) hours.set(hour, row = { credited: 0, debited: 0, expired: 0 });
    if (kind in row) row[kind] += u64(e);
  }
  return {
    totals: { credited: u64(credited!), debited: u64(debited!), expired: u64(expired!) },
    pending,
    cards: u64(cardsIn!) - u64(cardsOut!),
    hours,
  };
}
