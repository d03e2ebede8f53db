/**
 * The back-office dashboard's figures, read from aggregates kept in the write path (storage/points_stats.ts) and
 * the customer list counters: a few hundred small keys whatever the size of the company. The use case keeps the
 * result for a minute.
 */
import { countList } from "./customers.ts";
import { HOUR_MS, readPointsFigures } from "./points_stats.ts";

/** What the dashboard shows of a company. */
export interface CompanyStats {
  customers: number;
  cards: number;
  /**
   * Points on balances that are not pending, minor units: spendable points, plus points past their expiry date that
   * the expiry job has not written off yet.
   */
  outstanding: number;
  /** Points not spendable yet, minor units (lots becoming spendable from the start of the current UTC hour on). */
  pending: number;
  /** Points credited and debited (spent, taken back, expired) per day (local date YYYY-MM-DD), oldest first. */
  days: { day: string; accrued: number; spent: number }[];
}

/** Reads a company's figures from its counters and aggregates. */
export async function companyStats(
  kv: Deno.Kv,
  cid: string,
  options: { now: number; days: number; dayOf: (ms: number) => string; dayList: string[] },
): Promise<CompanyStats> {
  const [customers, figures] = await Promise.all([
    countList(kv, cid, "all"),
    readPointsFigures(kv, cid, { now: options.now, sinceMs: options.now - options.days * 86_400_000 }),
  ]);
  const byDay = new Map(options.dayList.map((day) => [day, { day, accrued: 0, spent: 0 }]));
  for (const [hour, sums] of figures.hours) {
    const row = byDay.get(options.dayOf(hour * HOUR_MS));
    if (!row) continue;
    row.accrued += sums.credited;
    row.spent += sums.debited + sums.expired;
  }
  const { credited, debited, expired } = figures.totals;
  return {
    customers,
    cards: figures.cards,
    outstanding: credited - debited - expired - figures.pending,
    pending: figures.pending,
    days: [...byDay.values()],
  };
}
