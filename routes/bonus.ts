import { Hono } from "hono";
import {
  amountField,
  balanceView,
  bonusReplyView,
  type BonusRequest,
  checkChange,
  type CustomerRef,
  expireDateField,
  idempotencyKeyField,
  MAX_COMMENT,
  MAX_ORDER_ID,
  pickIdempotencyKey,
  transactionView,
} from "../domain/bonus.ts";
import { type Customer, MAX_EXTERNAL_ID } from "../domain/customer.ts";
import { ValidationError } from "../domain/errors.ts";
import { bool, id, text } from "../domain/fields.ts";
import { moneyToNumber } from "../domain/money.ts";
import { encodeCursor, pageWithCursor, PAGING_PARSERS } from "../domain/paging.ts";
import { bonusChangeReply, bonusHistoryReply } from "../domain/replies.ts";
import type { Actor } from "../domain/audit.ts";
import { balancesOf, bonusHistory, changeBonus } from "../usecases/mod.ts";
import { requireWrite } from "./auth.ts";
import { actorOf, type AppEnv, type Deps } from "./context.ts";
import { replayableReply, reply, type ReplyValue } from "./reply.ts";
import { input } from "./request.ts";

/** Ledger entries per bonusHistory page when the request does not say. */
export const DEFAULT_HISTORY_PAGE_SIZE = 50;

function required(field: string): ValidationError {
  return new ValidationError(field, `Parameter "${field}" is required`);
}

/** The customer a request names: customer_id wins over customer_external_id; one of them is required. */
function customerRef(params: { customer_id?: number | null; customer_external_id?: string | null }): CustomerRef {
  if (params.customer_id != null) return { id: params.customer_id };
  if (params.customer_external_id != null) return { externalId: params.customer_external_id };
  throw new ValidationError(
    "customer_id",
    `Parameter "customer_id" or "customer_external_id" is required`,
  );
}

/** Bonus endpoints under /api/customer: `GET|POST /updateBonus` changes a balance, `GET /bonusHistory` pages its ledger. */
export function bonusRoutes(deps: Deps) {
  const { store } = deps;

  const updateInput = input({
    query: {},
    fields: {
      customer_id: id.describe("The customer, by id (wins over customer_external_id)."),
      customer_external_id: text(MAX_EXTERNAL_ID).describe("The customer, by external id."),
      bonus_id: id.describe("The bonus program."),
      amount: amountField,
      overwrite: bool.describe("1: set the balance to amount instead of adding it."),
      comment: text(MAX_COMMENT).describe("Kept in the ledger entry."),
      order_id: text(MAX_ORDER_ID).describe("Kept in the ledger entry."),
      idempotency_key: idempotencyKeyField,
      expire_date: expireDateField,
    },
    summary: "Add, remove or set bonus points",
    description: "Changes one balance of one customer and writes a ledger entry, atomically. A removal larger " +
      "than the balance is refused (409). The idempotency key may also come as an `Idempotency-Key` header; " +
      "a replayed reply carries `Idempotent-Replayed: true`.",
    required: ["bonus_id", "amount"],
    errors: [422],
    reply: bonusChangeReply,
    tags: ["bonus"],
  });

  const historyInput = input({
    query: {
      customer_id: id.describe("The customer, by id (wins over customer_external_id)."),
      customer_external_id: text(MAX_EXTERNAL_ID).describe("The customer, by external id."),
      bonus_id: id.describe("The bonus program."),
      ...PAGING_PARSERS,
    },
    fields: {},
    summary: "Page through a balance's ledger",
    description: "Newest first; page 1 by default, page_size 50 by default.",
    required: ["bonus_id"],
    reply: bonusHistoryReply,
    tags: ["bonus"],
  });

  return new Hono<AppEnv>()
    .on(["GET", "POST"], "/updateBonus", requireWrite, updateInput, async (c) => {
      const f = c.var.input.fields;
      const customer = customerRef(f);
      if (f.bonus_id == null) throw required("bonus_id");
      if (f.amount === undefined) throw required("amount");
      const request: BonusRequest = {
        customer,
        bonusId: f.bonus_id,
        amount: f.amount,
        overwrite: f.overwrite ?? false,
        comment: f.comment ?? null,
        orderId: f.order_id ?? null,
        expireDate: f.expire_date ?? null,
      };
      checkChange(request);
      const key = pickIdempotencyKey(c.req.header("idempotency-key"), f.idempotency_key);
      const result = await changeBonus(store, actorOf(c.var.caller), {
        ...request,
        idempotencyKey: key,
        timeZone: deps.config.timeZone,
      });
      return replayableReply(c, bonusReplyView(result.reply), result.replayed);
    })
    .get("/bonusHistory", historyInput, async (c) => {
      const q = c.var.input.query;
      const customer = customerRef(q);
      if (q.bonus_id == null) throw required("bonus_id");
      if (q.cursor != null && q.page != null) throw pageWithCursor();
      const page = q.cursor != null ? null : q.page ?? 1;
      const pageSize = q.page_size ?? DEFAULT_HISTORY_PAGE_SIZE;
      const ledger = await bonusHistory(store, actorOf(c.var.caller), {
        customer,
        bonusId: q.bonus_id,
        page,
        beforeId: q.cursor ?? undefined,
        pageSize,
        timeZone: deps.config.timeZone,
      });
      const transactions = ledger.entries.map((e) => transactionView(e, deps.config.timeZone));
      return reply(c, {
        success: 1,
        type: "transaction",
        customer_id: ledger.customerId,
        bonus_id: ledger.bonusId,
        balance: moneyToNumber(ledger.balance.balance),
        pending: moneyToNumber(ledger.balance.pending),
        next_expire_date: ledger.balance.nextExpireDate,
        next_expire_amount: moneyToNumber(ledger.balance.nextExpireAmount),
        count: transactions.length,
        transactions,
        ...(page === null ? {} : { page }),
        page_size: pageSize,
        total_count: ledger.total,
        next_cursor: ledger.nextBefore === null ? null : encodeCursor(ledger.nextBefore),
      });
    });
}

/** The `bonuses` element of customer replies: every bonus program with the customer's balance in it. */
export async function bonusesExtra(
  deps: Deps,
  options: { actor: Actor; customers: Customer[] },
): Promise<Map<number, ReplyValue>> {
  const balances = await balancesOf(deps.store, options.actor, {
    timeZone: deps.config.timeZone,
    customerIds: options.customers.map((c) => c.id),
  });
  const out = new Map<number, ReplyValue>();
  for (const [customerId, list] of balances) out.set(customerId, list.map((b) => balanceView(b.program, b.balance)));
  return out;
}
