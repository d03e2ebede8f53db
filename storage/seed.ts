import { type Customer, customerLists, customerUniqueKeys } from "../domain/customer.ts";
import { type LedgerEntry, ledgerEntry } from "../domain/bonus.ts";
import type { Card } from "../domain/card.ts";
import type { BalanceRecord } from "./bonuses.ts";
import { Write } from "./commit.ts";
import { walletOf } from "../domain/points.ts";
import { addCardCount, addPendingChange, addPointsMovement } from "./points_stats.ts";
import { bonusKeys, cardKeys, keys, nameKeys } from "./keys.ts";
import { lastNameKey } from "../domain/name_index.ts";
import { storeOf } from "./store.ts";
import { cardIndexValue } from "./cards.ts";
import { BUCKET_SIZE, MAX_MUTATIONS } from "./limits.ts";

/** Mutations one customer adds to a raw insert: record, 3 unique indexes, 4 list entries, 8 counter sums, name. */
const MUTATIONS_PER_CUSTOMER = 17;

/**
 * Writes new customers with every index and counter the API would write, many per atomic operation and
 * without uniqueness checks: for seeding an empty store (benchmarks, fixtures) where the caller
 * guarantees unique ids, phones, emails and external ids. Advances the id sequence past the last id.
 */
export async function rawInsertCustomers(kv: Deno.Kv, cid: string, customers: Customer[]): Promise<void> {
  const store = storeOf(kv);
  const perOp = Math.floor((MAX_MUTATIONS - 1) / MUTATIONS_PER_CUSTOMER);
  for (let i = 0; i < customers.length; i += perOp) {
    const batch = customers.slice(i, i + perOp);
    // The one commit path (limits counted), without checks or audit entries: this is bulk seeding.
    const op = new Write(store);
    for (const c of batch) addCustomerWrites(op, cid, c, (key) => op.sum(key));
    const maxId = Math.max(...batch.map((c) => c.id));
    op.set(keys.sequence(cid, "customers"), maxId);
    if (!await op.commit("seed customers")) throw new Error("Raw customer insert failed");
  }
}

/** Adds the record, index and list writes of one new customer to an operation; counter keys go to `bump`. */
export function addCustomerWrites(
  op: { set(key: Deno.KvKey, value: unknown): unknown },
  cid: string,
  c: Customer,
  bump: (key: Deno.KvKey) => void,
): void {
  const unique = customerUniqueKeys(c);
  if (unique.phone !== null) op.set(keys.customerByPhone(cid, unique.phone), c.id);
  if (unique.email !== null) op.set(keys.customerByEmail(cid, unique.email), c.id);
  if (unique.external_id !== null) op.set(keys.customerByExternalId(cid, unique.external_id), c.id);
  const bucket = Math.floor(c.id / BUCKET_SIZE);
  for (const list of customerLists(c)) {
    op.set(keys.customerListEntry(cid, list, c.id), null);
    bump(keys.customerBucket(cid, list, bucket, "in"));
    bump(keys.customerTotal(cid, list, "in"));
  }
  const name = lastNameKey(c.lname);
  if (name !== null) {
    op.set(nameKeys.entry(cid, name, c.id), null);
    bump(nameKeys.total(cid, "in"));
  }
  op.set(keys.customer(cid, c.id), c);
}

/**
 * Gives customers opening balances, each with its first ledger entry (so balance == sum of the ledger), many
 * per atomic operation and unchecked: for seeding a store where these balances do not exist yet.
 */
export async function rawInsertBalances(
  kv: Deno.Kv,
  cid: string,
  options: { balances: { customerId: number; bonusId: number; amount: number }[]; now: number; userId: number },
): Promise<void> {
  const perOp = Math.floor((MAX_MUTATIONS - 3) / 2);
  const store = storeOf(kv);
  for (let i = 0; i < options.balances.length; i += perOp) {
    const op = new Write(store);
    for (const b of options.balances.slice(i, i + perOp)) {
      const entry = ledgerEntry({ overwrite: false, comment: "opening balance", orderId: null }, {
        transactionId: 1,
        customerId: b.customerId,
        bonusId: b.bonusId,
        outcome: { balance: b.amount, delta: b.amount },
        now: options.now,
        userId: options.userId,
        idempotencyKey: null,
        requestId: `seed-${b.customerId}-${b.bonusId}`,
      });
      const balance: BalanceRecord = { balance: b.amount, last_transaction_id: 1 };
      op.set(bonusKeys.balance(cid, b.customerId, b.bonusId), balance)
        .set(bonusKeys.ledgerEntry(cid, b.customerId, b.bonusId, 1), entry);
      addPointsMovement(op, cid, { kind: "adjust", amount: b.amount }, options.now);
    }
    if (!await op.commit("seed balances")) throw new Error("Raw balance insert failed");
  }
}

/**
 * Writes new cards with their unique and owner indexes, many per atomic operation and unchecked, and moves
 * the card id and card number sequences past them: for seeding a store where these cards do not exist yet.
 */
export async function rawInsertCards(kv: Deno.Kv, cid: string, cards: Card[]): Promise<void> {
  const perOp = Math.floor((MAX_MUTATIONS - 3) / 5);
  const store = storeOf(kv);
  let lastNumber = 0;
  for (let i = 0; i < cards.length; i += perOp) {
    const batch = cards.slice(i, i + perOp);
    const op = new Write(store);
    for (const card of batch) {
      op.set(cardKeys.card(cid, card.id), card).set(cardKeys.byUid(cid, card.uid), cardIndexValue(card));
      addCardCount(op, cid, 1);
      if (card.barcode !== null) op.set(cardKeys.byBarcode(cid, card.barcode), cardIndexValue(card));
      if (card.external_id !== null) op.set(cardKeys.byExternalId(cid, card.external_id), cardIndexValue(card));
      if (card.customer_id !== null) op.set(cardKeys.ofCustomerEntry(cid, card.customer_id, card.id), null);
    }
    const last = Math.max(...batch.map((c) => c.id));
    // The number sequence stands past every seeded number, as the cards' own creates would have left it.
    const numbers = batch.map((c) => /^[1-9][0-9]{0,14}$/.test(c.uid) ? Number(c.uid) : 0);
    lastNumber = Math.max(lastNumber, last, ...numbers);
    op.set(cardKeys.idSequence(cid), last).set(cardKeys.numberSequence(cid), lastNumber);
    if (!await op.commit("seed cards")) throw new Error("Raw card insert failed");
  }
}

/** A lot to seed: its points and dates (epoch ms; expires_at null: never). */
export interface SeedLot {
  amount: number;
  available_at: number;
  expires_at: number | null;
}

/**
 * Gives balances that do not exist yet their lots, each lot with its own ledger entry (kind adjust, so balance ==
 * sum of the ledger == sum of the lots), many balances per atomic operation and unchecked: for seeding benchmarks
 * and fixtures, e.g. with lots already expired.
 */
export async function rawInsertLots(
  kv: Deno.Kv,
  cid: string,
  options: { balances: { customerId: number; bonusId: number; lots: SeedLot[] }[]; now: number; userId: number },
): Promise<void> {
  const store = storeOf(kv);
  let op = new Write(store);
  let mutations = 0;
  const flush = async () => {
    if (mutations > 0 && !await op.commit("seed lots")) throw new Error("Raw lot insert failed");
    op = new Write(store);
    mutations = 0;
  };
  for (const b of options.balances) {
    // Each lot: its entry and at most one pending sum; the totals' and the hour's sums are shared by the whole write.
    if (mutations + 2 * b.lots.length + 1 + 3 > MAX_MUTATIONS) await flush();
    let total = 0;
    let pending = 0;
    const lots = b.lots.map((lot, i) => {
      total += lot.amount;
      if (lot.available_at > options.now) pending += lot.amount;
      const entry: LedgerEntry = {
        ...ledgerEntry({ overwrite: false, comment: "seeded lot", orderId: null }, {
          transactionId: i + 1,
          customerId: b.customerId,
          bonusId: b.bonusId,
          outcome: { balance: total, delta: lot.amount },
          now: options.now,
          userId: options.userId,
          idempotencyKey: null,
          requestId: `seed-${b.customerId}-${b.bonusId}-${i + 1}`,
        }),
        kind: "adjust",
        pending,
        lots: [[i + 1, lot.amount]],
      };
      op.set(bonusKeys.ledgerEntry(cid, b.customerId, b.bonusId, i + 1), entry);
      addPointsMovement(op, cid, { kind: "adjust", amount: lot.amount }, options.now);
      return { id: i + 1, remaining: lot.amount, available_at: lot.available_at, expires_at: lot.expires_at };
    });
    const record: BalanceRecord = {
      balance: total,
      last_transaction_id: lots.length,
      lots,
      next_lot_id: lots.length + 1,
    };
    op.set(bonusKeys.balance(cid, b.customerId, b.bonusId), record);
    addPendingChange(op, cid, {
      before: walletOf(null),
      after: { total, lots, nextLotId: lots.length + 1 },
      now: options.now,
    });
    mutations += 2 * lots.length + 1;
  }
  await flush();
}
