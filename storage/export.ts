/**
 * Streaming reads of a company's collections for exports: each collection is listed in key order, a batch at a
 * time, so that memory stays flat whatever the store size. Every batch is a separate read: a record changed while an
 * export runs shows as it was when its batch was read.
 */
import type { LedgerEntry } from "../domain/bonus.ts";
import type { Card } from "../domain/card.ts";
import type { Customer } from "../domain/customer.ts";
import { bonusKeys, cardKeys, keys } from "./keys.ts";

/** Records per batch when the caller does not say (kv.list's own largest batch). */
const DEFAULT_BATCH = 500;

/** Lists the values under a prefix in key order, yielding batches of at most `batch`. */
async function* streamValues<T>(kv: Deno.Kv, prefix: Deno.KvKey, batch: number): AsyncGenerator<T[]> {
  let out: T[] = [];
  for await (const e of kv.list<T>({ prefix }, { batchSize: batch })) {
    out.push(e.value);
    if (out.length >= batch) {
      yield out;
      out = [];
    }
  }
  if (out.length > 0) yield out;
}

/** Every customer of a company in id order, in batches. */
export function streamCustomers(
  kv: Deno.Kv,
  cid: string,
  options: { batch?: number } = {},
): AsyncGenerator<Customer[]> {
  return streamValues<Customer>(kv, keys.customers(cid), options.batch ?? DEFAULT_BATCH);
}

/** Every card of a company (deleted cards are gone) in card id order, in batches. */
export function streamCards(kv: Deno.Kv, cid: string, options: { batch?: number } = {}): AsyncGenerator<Card[]> {
  return streamValues<Card>(kv, cardKeys.cards(cid), options.batch ?? DEFAULT_BATCH);
}

/** Every ledger entry of a company, by customer, program and transaction id, in batches. */
export function streamLedger(
  kv: Deno.Kv,
  cid: string,
  options: { batch?: number } = {},
): AsyncGenerator<LedgerEntry[]> {
  return streamValues<LedgerEntry>(kv, bonusKeys.ledgers(cid), options.batch ?? DEFAULT_BATCH);
}

/** Whether the store knows a company: it has a record (made with its first API key) or holds any data. */
export async function companyExists(kv: Deno.Kv, cid: string): Promise<boolean> {
  if ((await kv.get(keys.company(cid))).value !== null) return true;
  for await (const _ of kv.list({ prefix: keys.companyData(cid) }, { limit: 1 })) return true;
  return false;
}
