import { Hono } from "hono";
import {
  amountField,
  balanceView,
  bonusFingerprint,
  type BonusReply,
  bonusReplyView,
  type BonusRequest,
  checkChange,
  type CustomerRef,
  idempotencyKeyField,
  MAX_COMMENT,
  MAX_ORDER_ID,
  pickIdempotencyKey,
  transactionView,
} from "../domain/bonus.ts";
import { type Customer, MAX_EXTERNAL_ID } from "../domain/customer.ts";
import { NotFoundError, ValidationError } from "../domain/errors.ts";
import { bool, id, invalid, text } from "../domain/fields.ts";
import { moneyToNumber } from "../domain/money.ts";
import { encodeCursor, PAGING_PARSERS } from "../domain/paging.ts";
import { bonusChangeReply, bonusHistoryReply } from "../domain/replies.ts";
import { customerBalances, findReplay, getBalance, listLedger, updateBonus } from "../storage/bonuses.ts";
import { findCustomerId, getCustomer } from "../storage/customers.ts";
import { requireEntry } from "../storage/directories.ts";
import { requireWrite } from "./auth.ts";
import type { AppEnv, Deps } from "./context.ts";
import { reply, type ReplyValue } from "./reply.ts";
import { input } from "./request.ts";

/** Ledger entries per bonusHistory page when the request does not say. */
export const DEFAULT_HISTORY_PAGE_SIZE = 50;

/** Header that marks a reply replayed from an earlier request with the same idempotency key. */
const REPLAYED_HEADER = "Idempotent-Replayed";

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

async function resolveCustomer(kv: Deno.Kv, cid: string, ref: CustomerRef): Promise<number> {
  if ("id" in ref) {
    if (await getCustomer(kv, cid, ref.id)) return ref.id;
    throw new NotFoundError(`Customer "${ref.id}" not found`, "customer_id");
  }
  const found = await findCustomerId(kv, cid, "external_id", ref.externalId);
  if (found !== null && await getCustomer(kv, cid, found)) return found;
  throw new NotFoundError(`Customer with external_id "${ref.externalId}" not found`, "customer_external_id");
}

/** Finds the customer and the bonus program together; an unknown customer is reported before an unknown program. */
async function resolveTargets(
  deps: Deps,
  cid: string,
  options: { customer: CustomerRef; bonusId: number },
): Promise<number> {
  const [customer, program] = await Promise.allSettled([
    resolveCustomer(deps.kv, cid, options.customer),
    requireEntry(deps.kv, cid, { kind: "bonus_programs", id: options.bonusId, field: "bonus_id" }),
  ]);
  if (customer.status === "rejected") throw customer.reason;
  if (program.status === "rejected") throw program.reason;
  return customer.value;
}

/** Bonus endpoints under /api/customer: `GET|POST /updateBonus` changes a balance, `GET /bonusHistory` pages its ledger. */
export function bonusRoutes(deps: Deps) {
  const { kv } = deps;

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
      const cid = c.var.caller.companyId;
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
      };
      checkChange(request);
      const key = pickIdempotencyKey(c.req.header("idempotency-key"), f.idempotency_key);
      const idempotency = key === null ? null : { key, fingerprint: bonusFingerprint(request) };
      const answer = (body: BonusReply, replayed: boolean) => {
        const res = reply(c, bonusReplyView(body));
        if (replayed) res.headers.set(REPLAYED_HEADER, "true");
        return res;
      };

      // A retry is answered from its first reply before anything else is looked up, so it gets the same
      // answer even when the customer or the program changed since.
      const earlier = idempotency ? await findReplay(kv, cid, idempotency) : null;
      if (earlier) return answer(earlier, true);

      const customerId = await resolveTargets(deps, cid, { customer, bonusId: request.bonusId });
      const result = await updateBonus(kv, cid, {
        customerId,
        bonusId: request.bonusId,
        change: request,
        comment: request.comment,
        orderId: request.orderId,
        now: deps.now,
        userId: c.var.caller.userId,
        idempotency,
        mutex: deps.mutex,
      });
      return answer(result.reply, result.replayed);
    })
    .get("/bonusHistory", historyInput, async (c) => {
      const q = c.var.input.query;
      const cid = c.var.caller.companyId;
      const customer = customerRef(q);
      if (q.bonus_id == null) throw required("bonus_id");
      if (q.cursor != null && q.page != null) throw invalid("cursor", "", "use either page or cursor, not both");
      const bonusId = q.bonus_id;
      const customerId = await resolveTargets(deps, cid, { customer, bonusId });

      // The balance names the newest transaction id; ids run 1..n without gaps, so a page is a key range.
      const balance = await getBalance(kv, cid, { customerId, bonusId });
      const total = balance.last_transaction_id;
      const pageSize = q.page_size ?? DEFAULT_HISTORY_PAGE_SIZE;
      const page = q.cursor != null ? null : q.page ?? 1;
      const beforeId = page === null ? q.cursor! : total - (page - 1) * pageSize + 1;
      const rows = await listLedger(kv, cid, { customerId, bonusId, beforeId, limit: pageSize });
      const last = rows.at(-1);
      const transactions = rows.map((e) => transactionView(e, deps.config.timeZone));
      return reply(c, {
        success: 1,
        type: "transaction",
        customer_id: customerId,
        bonus_id: bonusId,
        balance: moneyToNumber(balance.balance),
        count: transactions.length,
        transactions,
        ...(page === null ? {} : { page }),
        page_size: pageSize,
        total_count: total,
        next_cursor: rows.length === pageSize && last && last.transaction_id > 1
          ? encodeCursor(last.transaction_id)
          : null,
      });
    });
}

/** The `bonuses` element of customer replies: every bonus program with the customer's balance in it. */
export async function bonusesExtra(
  deps: Deps,
  options: { companyId: string; customers: Customer[] },
): Promise<Map<number, ReplyValue>> {
  const balances = await customerBalances(deps.kv, options.companyId, {
    customerIds: options.customers.map((c) => c.id),
  });
  const out = new Map<number, ReplyValue>();
  for (const [customerId, list] of balances) out.set(customerId, list.map((b) => balanceView(b.program, b.balance)));
  return out;
}
