/**
 * Purchases and returns in KV. A purchase spends points, accrues points as a new lot, adds to the customer's
 * accumulated sales, moves them between tiers and keeps an order record, all in one atomic operation that checks the
 * order (absent), the customer and the balance it read; a return does the same against the order record. Lost races
 * are read again and retried; changes of one balance queue in this process with its other changes.
 */
import type { Actor } from "../domain/audit.ts";
import type { Customer } from "../domain/customer.ts";
import type { DirectoryEntry } from "../domain/directory.ts";
import { type EntrySource, expireDue, MAX_BALANCE, type Movement } from "../domain/bonus.ts";
import { formatPoints, MAX_MINOR } from "../domain/money.ts";
import { NotFoundError, UnprocessableError } from "../domain/errors.ts";
import {
  accrual,
  addLot,
  type Allocation,
  checkSpend,
  giveBack,
  lotDates,
  shareOf,
  spendable,
  summarize,
  takeBack,
  takeSpendable,
  tierFor,
  type Wallet,
  walletOf,
} from "../domain/points.ts";
import { groupAccrualBp, rulesOf, tierMinSales } from "../domain/program_settings.ts";
import { ConflictError } from "../domain/errors.ts";
import { addWalletChange, type BalanceRecord } from "./bonuses.ts";
import { RETRY, withRetry, Write } from "./commit.ts";
import { listEntriesCached } from "./directories.ts";
import { bonusKeys, directoryKeys, keys, orderKeys } from "./keys.ts";
import type { Store } from "./store.ts";

/** What a purchase answers, kept with its order so that a repeat gets it back. */
export interface PurchaseReply {
  order_id: string;
  customer_id: number;
  bonus_id: number;
  accrued: number;
  spent: number;
  balance: number;
  pending: number;
  next_expire_date?: string | null;
  next_expire_amount?: number;
  tier: string | null;
}

/** What a return answers, kept with it. */
export interface ReturnReply {
  order_id: string;
  return_id: string;
  customer_id: number;
  bonus_id: number;
  taken_back: number;
  given_back: number;
  shortfall: number;
  balance: number;
  pending: number;
  next_expire_date?: string | null;
  next_expire_amount?: number;
  tier: string | null;
}

/** An order as stored: what it spent and accrued, and how much of it has been returned. */
export interface OrderRecord {
  order_id: string;
  customer_id: number;
  bonus_id: number;
  amount: number;
  spend: number;
  accrued: number;
  /** The lot the accrual went to (null when nothing accrued). */
  accrual_lot: number | null;
  /** The lots the spend took from, in the order it took them. */
  spent: Allocation[];
  /** Money returned so far. */
  returned: number;
  /** Spent points given back (or lost to expiry) so far, per allocation of `spent`. */
  spent_returned: number[];
  /** Accrued points taken back (or not, for a shortfall) so far: the cumulative target. */
  taken_back_target: number;
  fingerprint: string;
  reply: PurchaseReply;
  created_date: number;
  /** The order reference its ledger entries show, when not `order_id` (a shop's order number). */
  ledger_order_id?: string;
}

/** A return as stored under its order. */
export interface ReturnRecord {
  fingerprint: string;
  reply: ReturnReply;
  created_date: number;
}

/** A purchase to record. */
export interface PurchaseInput {
  customerId: number;
  bonusId: number;
  orderId: string;
  /** Order total, minor units (> 0). */
  amount: number;
  /** Points spent on it, minor units (>= 0). */
  spend: number;
  /** What makes a repeat of this order "the same request". */
  fingerprint: string;
  timeZone: string;
  /** How long the list of customer groups (tiers) is reused from memory, ms. */
  groupsMaxAgeMs: number;
  /** Accrue this many hundredths of a percent of the amount, rounded down, instead of the program's rules. */
  accrualBp?: number | null;
  /** Comment on the ledger entries (e.g. where the order came from); default none. */
  comment?: string | null;
  /** The order reference the ledger entries (of its returns too) show; default `orderId`. */
  ledgerOrderId?: string;
  /** Source of the ledger entries; default by the actor (see defaultSource): `till` for an API key. */
  source?: EntrySource;
  /** More checks the write must pass (e.g. that a marker is still absent). */
  guard?: Deno.AtomicCheck[];
}

/** A return to record. */
export interface ReturnInput {
  orderId: string;
  returnId: string;
  amount: number;
  fingerprint: string;
  timeZone: string;
  groupsMaxAgeMs: number;
  /** Comment on the ledger entry; default none (or the expired-lots note). */
  comment?: string | null;
  /** Source of the ledger entry; default by the actor (see defaultSource): `till` for an API key. */
  source?: EntrySource;
}

function queueOf(cid: string, customerId: number, bonusId: number): string {
  // The same queue as updateBonus: every change of one balance waits for the one before it in this process.
  return `bonus:${cid}:${customerId}:${bonusId}`;
}

/** The group a customer belongs in after a change of their sales, and its name. */
function tierAfter(
  customer: Customer,
  groups: DirectoryEntry[],
): { groupId: number | null; name: string | null } {
  const groupId = tierFor(
    customer.group_id,
    customer.accumulated_sales,
    groups.map((g) => ({ id: g.id, minSales: tierMinSales(g.settings) })),
  );
  return { groupId, name: groups.find((g) => g.id === groupId)?.name ?? null };
}

/** A customer with new accumulated sales, moved to its tier, stamped. */
function customerAfter(
  customer: Customer,
  options: { sales: number; groups: DirectoryEntry[]; now: number; userId: number },
): { next: Customer; tier: string | null } {
  const withSales = { ...customer, accumulated_sales: options.sales };
  const tier = tierAfter(withSales, options.groups);
  const next = { ...withSales, group_id: tier.groupId, last_update_date: options.now, last_update_by: options.userId };
  // A customer in a group that is not a tier stays there: its name is still what replies show.
  const name = tier.name ?? options.groups.find((g) => g.id === next.group_id)?.name ?? null;
  return { next, tier: name };
}

/** Adds a changed customer record (accumulated sales and group only: no index moves) and its audit entry. */
function addCustomer(write: Write, cid: string, before: Deno.KvEntry<Customer>, next: Customer): void {
  write.check(before).set(keys.customer(cid, next.id), next);
  write.audit({ entity: "customer", entityId: next.id, before: before.value, after: next });
}

/**
 * Records a purchase: spends `spend` points (409 naming `spend` when the order, the program or the balance does not
 * allow it), accrues by the program's rules (or the customer's group's rate) on the money paid, adds `amount` to
 * accumulated sales and applies the tiers, with ledger entries referencing the order, in one atomic operation. The
 * same order again replays the first reply; with other parameters it is 422.
 */
export async function recordPurchase(
  store: Store,
  actor: Actor,
  input: PurchaseInput,
): Promise<{ reply: PurchaseReply; replayed: boolean }> {
  const cid = actor.companyId;
  const { customerId, bonusId, orderId } = input;
  return await store.mutex.run(queueOf(cid, customerId, bonusId), () =>
    withRetry(async () => {
      const [order, customer, balance, program] = await store.kv.getMany<
        [OrderRecord, Customer, BalanceRecord, DirectoryEntry]
      >([
        orderKeys.order(cid, orderId),
        keys.customer(cid, customerId),
        bonusKeys.balance(cid, customerId, bonusId),
        directoryKeys.entry(cid, "bonus_programs", bonusId),
      ]);
      if (order.value) return replayOrder(order.value, input);
      if (!customer.value) throw new NotFoundError(`Customer "${customerId}" not found`, "customer_id");
      if (!program.value) throw new NotFoundError(`Bonus program "${bonusId}" not found`, "bonus_id");
      const groups = await listEntriesCached(store, cid, { kind: "groups", maxAgeMs: input.groupsMaxAgeMs });
      const now = store.clock();
      const rules = rulesOf(program.value.settings);

      const expired = expireDue(walletOf(balance.value), now);
      let wallet: Wallet = expired.wallet;
      checkSpend({ amount: input.amount, spend: input.spend, rules, spendable: spendable(wallet, now) });
      const steps: { movement: Movement; wallet: Wallet }[] = [...expired.steps];
      let spent: Allocation[] = [];
      if (input.spend > 0) {
        const taken = takeSpendable(wallet, input.spend, now)!;
        wallet = taken.wallet;
        spent = taken.taken;
        steps.push({
          movement: { kind: "spend", amount: -input.spend, lots: spent.map((a) => [a.lot, a.amount]) },
          wallet,
        });
      }
      const group = groups.find((g) => g.id === customer.value!.group_id);
      const override = input.accrualBp ?? null;
      const rate = override ?? groupAccrualBp(group?.settings) ?? rules.accrualBp;
      const accrued = accrual(input.amount - input.spend, rate, override === null ? rules.rounding : "down");
      let accrualLot: number | null = null;
      if (accrued > 0 && wallet.total + accrued > MAX_BALANCE) {
        throw new ConflictError(
          `Cannot accrue ${formatPoints(accrued)} points: the balance ${
            formatPoints(wallet.total)
          } would go over the limit of ` +
            `${formatPoints(MAX_BALANCE)}`,
          "amount",
        );
      }
      if (accrued > 0) {
        const added = addLot(wallet, {
          amount: accrued,
          ...lotDates(rules, { now, timeZone: input.timeZone }),
          now,
          own: true,
        });
        wallet = added.wallet;
        accrualLot = added.lot;
        steps.push({ movement: { kind: "accrual", amount: accrued, lots: [[added.lot, accrued]] }, wallet });
      }

      if (customer.value.accumulated_sales + input.amount > MAX_MINOR) {
        throw new ConflictError(
          `Cannot record purchase: accumulated_sales ${
            formatPoints(customer.value.accumulated_sales)
          } would go over the ` +
            `limit of ${formatPoints(MAX_MINOR)}`,
          "amount",
        );
      }
      const { next, tier } = customerAfter(customer.value, {
        sales: customer.value.accumulated_sales + input.amount,
        groups,
        now,
        userId: actor.userId,
      });
      const summary = summarize(wallet, now, input.timeZone);
      const reply: PurchaseReply = {
        order_id: orderId,
        customer_id: customerId,
        bonus_id: bonusId,
        accrued,
        spent: input.spend,
        balance: summary.balance,
        pending: summary.pending,
        next_expire_date: summary.nextExpireDate,
        next_expire_amount: summary.nextExpireAmount,
        tier,
      };
      const record: OrderRecord = {
        order_id: orderId,
        customer_id: customerId,
        bonus_id: bonusId,
        amount: input.amount,
        spend: input.spend,
        accrued,
        accrual_lot: accrualLot,
        spent,
        returned: 0,
        spent_returned: spent.map(() => 0),
        taken_back_target: 0,
        fingerprint: input.fingerprint,
        reply,
        created_date: now,
        ...(input.ledgerOrderId !== undefined && input.ledgerOrderId !== orderId
          ? { ledger_order_id: input.ledgerOrderId }
          : {}),
      };
      const write = new Write(store, actor)
        .check(order, balance, ...(input.guard ?? []))
        .set(orderKeys.order(cid, orderId), record);
      addCustomer(write, cid, customer as Deno.KvEntry<Customer>, next);
      if (steps.length > 0) {
        addWalletChange(write, {
          cid,
          customerId,
          bonusId,
          before: balance.value,
          steps,
          now,
          common: {
            comment: input.comment ?? null,
            orderId: record.ledger_order_id ?? orderId,
            userId: actor.userId,
            idempotencyKey: null,
            requestId: crypto.randomUUID(),
            source: input.source,
          },
        });
      }
      return await write.commit("record purchase") ? { reply, replayed: false } : RETRY;
    }, { message: "Cannot record purchase: the balance or the customer changed concurrently, try again" }));
}

function replayOrder(order: OrderRecord, input: PurchaseInput): { reply: PurchaseReply; replayed: true } {
  if (order.fingerprint !== input.fingerprint) {
    throw new UnprocessableError(
      `Order "${input.orderId}" was already recorded with other parameters: an order_id is used once`,
      "order_id",
    );
  }
  return { reply: order.reply, replayed: true };
}

/** The order a return names; 404 naming `order_id` when there is none. */
export async function getOrder(kv: Deno.Kv, cid: string, orderId: string): Promise<OrderRecord | null> {
  return (await kv.get<OrderRecord>(orderKeys.order(cid, orderId))).value;
}

/**
 * Records a return of (part of) an order: takes back accrued points and gives back spent points in proportion to the
 * money returned (cumulatively, so that the returns of a whole order take and give back exactly what it accrued and
 * spent), never below zero (the shortfall is recorded), lowers accumulated sales and applies the tiers, in one
 * atomic operation. The same return again replays its first reply; with another amount it is 422.
 */
export async function recordReturn(
  store: Store,
  actor: Actor,
  input: ReturnInput,
): Promise<{ reply: ReturnReply; replayed: boolean }> {
  const cid = actor.companyId;
  const { orderId, returnId } = input;
  const first = await store.kv.getMany<[ReturnRecord, OrderRecord]>([
    orderKeys.orderReturn(cid, orderId, returnId),
    orderKeys.order(cid, orderId),
  ]);
  if (first[0].value) return replayReturn(first[0].value, input);
  if (!first[1].value) throw new NotFoundError(`Order "${orderId}" not found`, "order_id");
  const { customer_id: customerId, bonus_id: bonusId } = first[1].value;
  return await store.mutex.run(queueOf(cid, customerId, bonusId), () =>
    withRetry(async () => {
      const [done, order, customer, balance] = await store.kv.getMany<
        [ReturnRecord, OrderRecord, Customer, BalanceRecord]
      >([
        orderKeys.orderReturn(cid, orderId, returnId),
        orderKeys.order(cid, orderId),
        keys.customer(cid, customerId),
        bonusKeys.balance(cid, customerId, bonusId),
      ]);
      if (done.value) return replayReturn(done.value, input);
      const o = order.value!;
      if (!customer.value) throw new NotFoundError(`Customer "${customerId}" not found`, "customer_id");
      const left = o.amount - o.returned;
      if (input.amount > left) {
        throw new ConflictError(
          `Cannot return ${formatPoints(input.amount)} of order "${orderId}": only ${formatPoints(left)} of its ` +
            `${formatPoints(o.amount)} is left to return`,
          "amount",
        );
      }
      const groups = await listEntriesCached(store, cid, { kind: "groups", maxAgeMs: input.groupsMaxAgeMs });
      const now = store.clock();
      const returnedAfter = o.returned + input.amount;
      const takeTarget = shareOf(o.accrued, returnedAfter, o.amount);
      const take = takeTarget - o.taken_back_target;
      const give = shareOf(o.spend, returnedAfter, o.amount) - shareOf(o.spend, o.returned, o.amount);

      const expired = expireDue(walletOf(balance.value), now);
      const back = takeBack(expired.wallet, { amount: take, first: o.accrual_lot, now });
      const given = giveBack(back.wallet, { amount: give, spent: o.spent, returned: o.spent_returned, now });
      const wallet = given.wallet;
      const steps: { movement: Movement; wallet: Wallet }[] = [
        ...expired.steps,
        {
          movement: { kind: "return", amount: given.given - back.taken, shortfall: back.shortfall },
          wallet,
        },
      ];
      const { next, tier } = customerAfter(customer.value, {
        sales: Math.max(0, customer.value.accumulated_sales - input.amount),
        groups,
        now,
        userId: actor.userId,
      });
      const summary = summarize(wallet, now, input.timeZone);
      const reply: ReturnReply = {
        order_id: orderId,
        return_id: returnId,
        customer_id: customerId,
        bonus_id: bonusId,
        taken_back: back.taken,
        given_back: given.given,
        shortfall: back.shortfall,
        balance: summary.balance,
        pending: summary.pending,
        next_expire_date: summary.nextExpireDate,
        next_expire_amount: summary.nextExpireAmount,
        tier,
      };
      const nextOrder: OrderRecord = {
        ...o,
        returned: returnedAfter,
        spent_returned: given.returned,
        taken_back_target: takeTarget,
      };
      const write = new Write(store, actor)
        .check(done, order, balance)
        .set(orderKeys.order(cid, orderId), nextOrder)
        .set(
          orderKeys.orderReturn(cid, orderId, returnId),
          {
            fingerprint: input.fingerprint,
            reply,
            created_date: now,
          } satisfies ReturnRecord,
        );
      addCustomer(write, cid, customer as Deno.KvEntry<Customer>, next);
      addWalletChange(write, {
        cid,
        customerId,
        bonusId,
        before: balance.value,
        steps,
        now,
        common: {
          comment: given.expired > 0
            ? `${formatPoints(given.expired)} points of expired lots were not given back`
            : input.comment ?? null,
          orderId: o.ledger_order_id ?? orderId,
          returnId,
          userId: actor.userId,
          idempotencyKey: null,
          requestId: crypto.randomUUID(),
          source: input.source,
        },
      });
      return await write.commit("record return") ? { reply, replayed: false } : RETRY;
    }, { message: "Cannot record return: the order or the balance changed concurrently, try again" }));
}

function replayReturn(record: ReturnRecord, input: ReturnInput): { reply: ReturnReply; replayed: true } {
  if (record.fingerprint !== input.fingerprint) {
    throw new UnprocessableError(
      `Return "${input.returnId}" of order "${input.orderId}" was already recorded with another amount`,
      "return_id",
    );
  }
  return { reply: record.reply, replayed: true };
}
