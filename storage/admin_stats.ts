/**
 * The back-office dashboard's figures: customers from the list counters, and a scan of cards, balances and the
 * ledger of the last days. Scans are bounded by what a company holds; the use case keeps the result for a minute.
 */
import type { LedgerEntry } from "../domain/bonus.ts";
import { summarize, walletOf } from "../domain/points.ts";
import type { BalanceRecord } from "./bonuses.ts";
import { countList } from "./customers.ts";
import { adminKeys, bonusKeys, cardKeys } from "./keys.ts";

/** What the dashboard shows of a company. */
export interface CompanyStats {
  customers: number;
  cards: number;
  /** Spendable points over every balance, minor units. */
  outstanding: number;
  /** Points not spendable yet, minor units. */
  pending: number;
  /** Points credited and debited per day (local date YYYY-MM-DD), oldest first. */
  days: { day: string; accrued: number; spent: number }[];
}

/** Counts and sums a company's cards, balances and recent ledger entries. */
export async function companyStats(
  kv: Deno.Kv,
  cid: string,
  options: { now: number; days: number; dayOf: (ms: number) => string; dayList: string[] },
): Promise<CompanyStats> {
  const customers = await countList(kv, cid, "all");
  let cards = 0;
  for await (const _ of kv.list({ prefix: cardKeys.cards(cid) }, { batchSize: 1000 })) cards++;
  let outstanding = 0;
  let pending = 0;
  for await (const e of kv.list<BalanceRecord>({ prefix: bonusKeys.balances(cid) }, { batchSize: 1000 })) {
    const summary = summarize(walletOf(e.value), options.now, "UTC");
    outstanding += summary.balance;
    pending += summary.pending;
  }
  const byDay = new Map(options.dayList.map((day) => [day, { day, accrued: 0, spent: 0 }]));
  const since = options.now - options.days * 86_400_000;
  for await (const e of kv.list<LedgerEntry>({ prefix: adminKeys.ledgers(cid) }, { batchSize: 1000 })) {
    const entry = e.value;
    if (entry.created_date < since) continue;
    const row = byDay.get(options.dayOf(entry.created_date));
    if (!row) continue;
    if (entry.amount > 0) row.accrued += entry.amount;
    else row.spent -= entry.amount;
  }
  return { customers, cards, outstanding, pending, days: [...byDay.values()] };
}
