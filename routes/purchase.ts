import { Hono } from "hono";
import { MAX_ORDER_ID } from "../domain/bonus.ts";
import { barcodeField, uidField } from "../domain/card.ts";
import { MAX_EXTERNAL_ID } from "../domain/customer.ts";
import { ValidationError } from "../domain/errors.ts";
import { id, nonEmpty, text } from "../domain/fields.ts";
import { moneyField, moneyToNumber } from "../domain/money.ts";
import { purchaseReply, returnReply } from "../domain/replies.ts";
import { type BuyerRef, purchase, type PurchaseReply, returnPurchase, type ReturnReply } from "../usecases/mod.ts";
import { requireWrite } from "./auth.ts";
import { actorOf, type AppEnv, type Deps } from "./context.ts";
import { replayableReply } from "./reply.ts";
import { input } from "./request.ts";

function required(field: string): ValidationError {
  return new ValidationError(field, `Parameter "${field}" is required`);
}

/** The balance and tier fields every purchase and return reply ends with (replies kept before expiry fields: 0). */
function balanceAfter(r: PurchaseReply | ReturnReply) {
  return {
    balance: moneyToNumber(r.balance),
    pending: moneyToNumber(r.pending),
    next_expire_date: r.next_expire_date ?? null,
    next_expire_amount: moneyToNumber(r.next_expire_amount ?? 0),
    tier: r.tier,
  };
}

/** The customer a purchase names, in the order customer_id, customer_external_id, card_barcode, uid. */
function buyerOf(f: {
  customer_id?: number | null;
  customer_external_id?: string | null;
  card_barcode?: string | null;
  uid?: string | null;
}): BuyerRef {
  if (f.customer_id != null) return { id: f.customer_id };
  if (f.customer_external_id != null) return { externalId: f.customer_external_id };
  if (f.card_barcode != null) return { cardBarcode: f.card_barcode };
  if (f.uid != null) return { uid: f.uid };
  throw new ValidationError(
    "customer_id",
    'Parameter "customer_id", "customer_external_id", "card_barcode" or "uid" is required',
  );
}

/** `POST /api/purchase` records a sale at the till; `POST /api/purchase/return` a return of (part of) one. */
export function purchaseRoutes(deps: Deps) {
  const { store, config } = deps;
  const settings = { timeZone: config.timeZone, directoryCacheMs: config.directoryCacheMs };
  const purchaseInput = input({
    query: {},
    fields: {
      customer_id: id.describe("The customer, by id (wins over the other ways)."),
      customer_external_id: text(MAX_EXTERNAL_ID).describe("The customer, by external id."),
      card_barcode: nonEmpty(barcodeField).describe("The customer, as the owner of the card with this barcode."),
      uid: nonEmpty(uidField).describe("The customer, as the owner of the card with this number."),
      bonus_id: id.describe("The bonus program."),
      order_id: nonEmpty(text(MAX_ORDER_ID)).describe("The order: unique per company; the same again replays."),
      amount: moneyField.describe("The order's total, money."),
      spend: moneyField.describe("Points to spend on it (default 0)."),
    },
    summary: "Record a purchase: spend and accrue points",
    description: "Spends `spend` points (refused 409 naming the limit when above the spendable balance or the " +
      "program's max_spend_percent), accrues by the program's rules (or the customer's group's accrual_percent) on " +
      "the money paid, adds `amount` to accumulated_sales and moves the customer to their tier, in one atomic " +
      "write with ledger entries referencing the order. The same order_id again with the same parameters replays " +
      "the first reply (`Idempotent-Replayed: true`); with other parameters it is 422.",
    required: ["bonus_id", "order_id", "amount"],
    errors: [422],
    reply: purchaseReply,
    tags: ["purchase"],
  });
  const returnInput = input({
    query: {},
    fields: {
      order_id: nonEmpty(text(MAX_ORDER_ID)).describe("The order returned."),
      return_id: nonEmpty(text(MAX_ORDER_ID)).describe("This return: unique per order; the same again replays."),
      amount: moneyField.describe("Money returned; the returns of an order add up to at most its amount."),
    },
    summary: "Record a return of (part of) an order",
    description: "Takes back accrued points and gives back spent points in proportion to the money returned " +
      "(a full return exactly), never below zero (the shortfall is reported), lowers accumulated_sales and " +
      "re-applies the tiers, in one atomic write. The same return_id again with the same amount replays.",
    required: ["order_id", "return_id", "amount"],
    errors: [422],
    reply: returnReply,
    tags: ["purchase"],
  });
  return new Hono<AppEnv>()
    .post("/", requireWrite, purchaseInput, async (c) => {
      const f = c.var.input.fields;
      const customer = buyerOf(f);
      if (f.bonus_id == null) throw required("bonus_id");
      if (f.order_id == null) throw required("order_id");
      if (f.amount == null) throw required("amount");
      const result = await purchase(store, actorOf(c.var.caller), {
        customer,
        bonusId: f.bonus_id,
        orderId: f.order_id,
        amount: f.amount,
        spend: f.spend ?? 0,
        ...settings,
      });
      const r = result.reply;
      return replayableReply(c, {
        success: 1,
        order_id: r.order_id,
        customer_id: r.customer_id,
        bonus_id: r.bonus_id,
        accrued: moneyToNumber(r.accrued),
        spent: moneyToNumber(r.spent),
        ...balanceAfter(r),
      }, result.replayed);
    })
    .post("/return", requireWrite, returnInput, async (c) => {
      const f = c.var.input.fields;
      if (f.order_id == null) throw required("order_id");
      if (f.return_id == null) throw required("return_id");
      if (f.amount == null) throw required("amount");
      const result = await returnPurchase(store, actorOf(c.var.caller), {
        orderId: f.order_id,
        returnId: f.return_id,
        amount: f.amount,
        ...settings,
      });
      const r = result.reply;
      return replayableReply(c, {
        success: 1,
        order_id: r.order_id,
        return_id: r.return_id,
        customer_id: r.customer_id,
        bonus_id: r.bonus_id,
        taken_back: moneyToNumber(r.taken_back),
        given_back: moneyToNumber(r.given_back),
        shortfall: moneyToNumber(r.shortfall),
        ...balanceAfter(r),
      }, result.replayed);
    });
}
