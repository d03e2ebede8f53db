/** Purchase use cases: a sale at the till (points spent and accrued by the program's rules) and its returns. */
import type { Actor } from "../domain/audit.ts";
import { ConflictError, NotFoundError, ValidationError } from "../domain/errors.ts";
import { findCard } from "../storage/cards.ts";
import { type PurchaseReply, recordPurchase, recordReturn, type ReturnReply } from "../storage/purchases.ts";
import type { Store } from "../storage/store.ts";
import { customerIdOf } from "./customers.ts";

export type { PurchaseReply, ReturnReply };

/** How a purchase names its customer: by id, external id, or a card (its barcode or number). */
export type BuyerRef = { id: number } | { externalId: string } | { cardBarcode: string } | { uid: string };

/** The customer a purchase names; 404 naming the parameter when there is none (or the card has no owner). */
export async function buyerIdOf(store: Store, actor: Actor, ref: BuyerRef): Promise<number> {
  if ("id" in ref || "externalId" in ref) return await customerIdOf(store, actor, ref);
  const [field, value, lookup] = "cardBarcode" in ref
    ? ["card_barcode", ref.cardBarcode, { card_barcode: ref.cardBarcode }] as const
    : ["uid", ref.uid, { uid: ref.uid }] as const;
  const card = await findCard(store.kv, actor.companyId, lookup);
  if (!card) throw new NotFoundError(`Card with ${field} "${value}" not found`, field);
  if (card.customer_id === null) throw new NotFoundError(`Card with ${field} "${value}" has no owner`, field);
  // A blocked card (lost, stolen) identifies nobody at the till: its owner may still buy by another card or id.
  if (card.status === "BLOCKED") throw new ConflictError(`Card with ${field} "${value}" is blocked`, field);
  return card.customer_id;
}

/** Settings the purchase use cases depend on. */
export interface PurchaseSettings {
  timeZone: string;
  /** How long the customer groups (tiers) are reused from memory, ms. */
  directoryCacheMs: number;
}

/**
 * Records a sale: spends `spend` points (409 naming the limit when the order, max_spend_percent or the spendable
 * balance does not allow it), accrues by the program's rules on the money paid, adds the amount to the customer's
 * accumulated sales and moves them to their tier, all in one atomic write. The same order_id again with the same
 * parameters replays the first reply; with other parameters it is 422.
 */
export async function purchase(
  store: Store,
  actor: Actor,
  input: { customer: BuyerRef; bonusId: number; orderId: string; amount: number; spend: number } & PurchaseSettings,
): Promise<{ reply: PurchaseReply; replayed: boolean }> {
  if (input.amount <= 0) throw new ValidationError("amount", `Invalid amount: an order's amount must be above 0`);
  if (input.spend < 0) throw new ValidationError("spend", `Invalid spend: must not be negative`);
  const customerId = await buyerIdOf(store, actor, input.customer);
  return await recordPurchase(store, actor, {
    customerId,
    bonusId: input.bonusId,
    orderId: input.orderId,
    amount: input.amount,
    spend: input.spend,
    fingerprint: JSON.stringify(["purchase", 1, customerId, input.bonusId, input.amount, input.spend]),
    timeZone: input.timeZone,
    groupsMaxAgeMs: input.directoryCacheMs,
  });
}

/**
 * Records a return of (part of) an order: takes back accrued points and gives back spent points in proportion to
 * the money returned, never below zero, lowers accumulated sales and re-applies the tiers, in one atomic write. The
 * same return_id again with the same amount replays its first reply; with another it is 422.
 */
export async function returnPurchase(
  store: Store,
  actor: Actor,
  input: { orderId: string; returnId: string; amount: number } & PurchaseSettings,
): Promise<{ reply: ReturnReply; replayed: boolean }> {
  if (input.amount <= 0) throw new ValidationError("amount", `Invalid amount: a return's amount must be above 0`);
  return await recordReturn(store, actor, {
    orderId: input.orderId,
    returnId: input.returnId,
    amount: input.amount,
    fingerprint: JSON.stringify(["return", 1, input.amount]),
    timeZone: input.timeZone,
    groupsMaxAgeMs: input.directoryCacheMs,
  });
}
