/**
 * The importer's batched create: new customers, each with its card and opening balance, several per atomic
 * operation. Ids are reserved in blocks first (a checked sequence bump, so the service's own creates re-read it);
 * each operation then checks only the unique keys its customers and cards claim (absent), within MAX_CHECKS and
 * MAX_MUTATIONS, and writes the same records, index keys, list counters, ledger entries and audit entries as the
 * one-at-a-time paths. An operation whose check fails writes nothing; its rows are handed back for the
 * one-at-a-time path, which re-reads them.
 */
import type { Actor } from "../domain/audit.ts";
import { applyAdjust } from "../domain/bonus.ts";
import { type Card, cardUniqueKeys } from "../domain/card.ts";
import { type Customer, customerLists, customerUniqueKeys } from "../domain/customer.ts";
import { walletOf } from "../domain/points.ts";
import type { PointsRules } from "../domain/points.ts";
import { addWalletChange } from "./bonuses.ts";
import { RETRY, withRetry, Write } from "./commit.ts";
import { cardKeys, keys } from "./keys.ts";
import { addCardCount } from "./points_stats.ts";
import { BUCKET_SIZE, MAX_CHECKS, MAX_MUTATIONS } from "./limits.ts";
import type { Store } from "./store.ts";

/** One new customer with its card and opening balance, already decided by the domain rules (ids left to fill). */
export interface FreshCustomer {
  /** Built by applyCustomerPatch from nothing; its id is set here. */
  customer: Customer;
  /** Built by applyCardChange from nothing, with its barcode; its id and owner are set here. */
  card: Card | null;
  /** The opening balance, set with overwrite semantics. */
  balance: { bonusId: number; amount: number; rules: PointsRules; timeZone: string } | null;
}

/** Reserves `n` ids of a sequence (a checked bump), returning the first. */
async function reserve(store: Store, key: Deno.KvKey, n: number): Promise<number> {
  return await withRetry(async () => {
    const seq = await store.kv.get<number>(key);
    const first = (seq.value ?? 0) + 1;
    const res = await store.kv.atomic().check(seq).set(key, first + n - 1).commit();
    return res.ok ? first : RETRY;
  }, { message: "Cannot import: the id sequence was changed concurrently too often, try again" });
}

/**
 * Creates the rows, packed into as few atomic operations as the limits allow. Returns, per row, whether it was
 * written; a row not written (a unique key taken meanwhile) is to be imported the one-at-a-time way.
 */
export async function createFresh(store: Store, actor: Actor, rows: FreshCustomer[]): Promise<boolean[]> {
  const cid = actor.companyId;
  const done = rows.map(() => false);
  if (rows.length === 0) return done;
  const cards = rows.filter((r) => r.card !== null).length;
  const firstCustomer = await reserve(store, keys.sequence(cid, "customers"), rows.length);
  const firstCard = cards === 0 ? 0 : await reserve(store, cardKeys.idSequence(cid), cards);
  // This process's cached customer sequence is stale now: the next single create reads it again.
  store.sequences.delete(`${cid}/customers`);
  let cardIndex = 0;
  const planned = rows.map((r, i) => {
    const id = firstCustomer + i;
    const customer = { ...r.customer, id };
    const card = r.card ? { ...r.card, id: firstCard + cardIndex++, customer_id: id } : null;
    const checks = uniqueKeys(cid, customer, card);
    return { i, customer, card, balance: r.balance, checks };
  });

  let batch: typeof planned = [];
  let checks = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const write = new Write(store, actor);
    for (const p of batch) addRow(write, cid, p);
    if (await write.commit("import customers")) { for (const p of batch) done[p.i] = true; }
    batch = [];
    checks = 0;
  };
  for (const p of planned) {
    // About 30 mutations a row: far under MAX_MUTATIONS while checks bound the batch.
    if (checks + p.checks.length > MAX_CHECKS || (batch.length + 1) * 40 > MAX_MUTATIONS) await flush();
    batch.push(p);
    checks += p.checks.length;
  }
  await flush();
  return done;
}

function uniqueKeys(cid: string, customer: Customer, card: Card | null): Deno.KvKey[] {
  const u = customerUniqueKeys(customer);
  const out: Deno.KvKey[] = [];
  if (u.external_id !== null) out.push(keys.customerByExternalId(cid, u.external_id));
  if (u.phone !== null) out.push(keys.customerByPhone(cid, u.phone));
  if (u.email !== null) out.push(keys.customerByEmail(cid, u.email));
  if (card) {
    const c = cardUniqueKeys(card);
    out.push(cardKeys.byUid(cid, c.uid));
    if (c.barcode !== null) out.push(cardKeys.byBarcode(cid, c.barcode));
    if (c.external_id !== null) out.push(cardKeys.byExternalId(cid, c.external_id));
  }
  return out;
}

function addRow(
  write: Write,
  cid: string,
  p: { customer: Customer; card: Card | null; balance: FreshCustomer["balance"]; checks: Deno.KvKey[] },
): void {
  const { customer, card } = p;
  const id = customer.id;
  // Each claimed unique key must still be absent; it then points at its record.
  for (const key of p.checks) write.check({ key, versionstamp: null });
  const u = customerUniqueKeys(customer);
  if (u.external_id !== null) write.set(keys.customerByExternalId(cid, u.external_id), id);
  if (u.phone !== null) write.set(keys.customerByPhone(cid, u.phone), id);
  if (u.email !== null) write.set(keys.customerByEmail(cid, u.email), id);
  const bucket = Math.floor(id / BUCKET_SIZE);
  for (const list of customerLists(customer)) {
    write.set(keys.customerListEntry(cid, list, id), null);
    write.sum(keys.customerBucket(cid, list, bucket, "in")).sum(keys.customerTotal(cid, list, "in"));
  }
  write.set(keys.customer(cid, id), customer);
  write.audit({ entity: "customer", entityId: id, before: null, after: customer });
  if (card) {
    const c = cardUniqueKeys(card);
    write.set(cardKeys.byUid(cid, c.uid), card.id);
    if (c.barcode !== null) write.set(cardKeys.byBarcode(cid, c.barcode), card.id);
    if (c.external_id !== null) write.set(cardKeys.byExternalId(cid, c.external_id), card.id);
    write.set(cardKeys.ofCustomerEntry(cid, id, card.id), null);
    write.set(cardKeys.card(cid, card.id), card);
    addCardCount(write, cid, 1);
    write.audit({ entity: "card", entityId: card.id, before: null, after: card });
  }
  if (p.balance && p.balance.amount > 0) {
    const now = customer.created_date;
    const adjusted = applyAdjust(walletOf(null), { amount: p.balance.amount, overwrite: true }, {
      rules: p.balance.rules,
      now,
      timeZone: p.balance.timeZone,
    });
    addWalletChange(write, {
      cid,
      customerId: id,
      bonusId: p.balance.bonusId,
      before: null,
      steps: [{ movement: adjusted.movement!, wallet: adjusted.wallet }],
      now,
      common: {
        comment: null,
        orderId: null,
        userId: customer.created_by,
        idempotencyKey: null,
        requestId: crypto.randomUUID(),
        overwrite: true,
      },
    });
  }
}
