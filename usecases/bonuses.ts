/** Bonus use cases: change a balance (at most once per idempotency key) and page through its ledger. */
import type { Actor } from "../domain/audit.ts";
import {
  bonusFingerprint,
  type BonusReply,
  type BonusRequest,
  checkChange,
  type CustomerRef,
  type LedgerEntry,
} from "../domain/bonus.ts";
import type { DirectoryEntry } from "../domain/directory.ts";
import { NotFoundError } from "../domain/errors.ts";
import { summarize, walletOf, type WalletSummary } from "../domain/points.ts";
import { rulesOf } from "../domain/program_settings.ts";
import {
  type BalanceRead,
  findReplay,
  getBalanceRecord,
  listLedger,
  readBalanceTargets,
  replayOf,
  updateBonus,
} from "../storage/bonuses.ts";
import { requireEntry } from "../storage/directories.ts";
import type { Store } from "../storage/store.ts";
import { customerIdOf } from "./customers.ts";

/** Finds the customer and the bonus program together; an unknown customer is reported before an unknown program. */
export async function resolveBalance(
  store: Store,
  actor: Actor,
  options: { customer: CustomerRef; bonusId: number },
): Promise<{ customerId: number; program: DirectoryEntry }> {
  const [customer, program] = await Promise.allSettled([
    customerIdOf(store, actor, options.customer),
    requireEntry(store.kv, actor.companyId, { kind: "bonus_programs", id: options.bonusId, field: "bonus_id" }),
  ]);
  if (customer.status === "rejected") throw customer.reason;
  if (program.status === "rejected") throw program.reason;
  return { customerId: customer.value, program: program.value };
}

/** The outcome of a balance change: its reply, and whether it was replayed from an earlier request. */
export interface ChangeBonusResult {
  reply: BonusReply;
  replayed: boolean;
}

/**
 * Credits, debits or overwrites a balance, with its ledger entries (and the expiry of lots due) and audit entry in
 * one atomic write; a credit becomes a lot under the program's rules. With an idempotency key the change is applied
 * at most once: a retry gets the first reply (before anything else is looked up, so it gets the same answer even
 * when the customer or program changed since); the same key with other parameters is 422.
 */
export async function changeBonus(
  store: Store,
  actor: Actor,
  request: BonusRequest & { idempotencyKey: string | null; timeZone: string },
): Promise<ChangeBonusResult> {
  checkChange(request);
  const { idempotencyKey, timeZone, ...change } = request;
  const idempotency = idempotencyKey === null ? null : { key: idempotencyKey, fingerprint: bonusFingerprint(change) };
  let customerId: number;
  let program: DirectoryEntry;
  let read: BalanceRead | undefined;
  if ("id" in request.customer) {
    // By id, the idempotency record, customer, program and balance are read in one round trip.
    customerId = request.customer.id;
    const found = await readBalanceTargets(store.kv, actor.companyId, {
      customerId,
      bonusId: request.bonusId,
      idempotencyKey,
    });
    const earlier = found.read.idempotency?.value;
    if (earlier && idempotency) return { reply: replayOf(earlier, idempotency), replayed: true };
    if (!found.customerExists) throw new NotFoundError(`Customer "${customerId}" not found`, "customer_id");
    if (!found.program) throw new NotFoundError(`Bonus program "${request.bonusId}" not found`, "bonus_id");
    program = found.program;
    read = found.read;
  } else {
    const earlier = idempotency ? await findReplay(store.kv, actor.companyId, idempotency) : null;
    if (earlier) return { reply: earlier, replayed: true };
    ({ customerId, program } = await resolveBalance(store, actor, {
      customer: request.customer,
      bonusId: request.bonusId,
    }));
  }
  const result = await updateBonus(store, actor, {
    customerId,
    bonusId: request.bonusId,
    change: request,
    comment: request.comment,
    orderId: request.orderId,
    idempotency,
    rules: rulesOf(program.settings),
    timeZone,
    read,
  });
  return { reply: result.reply, replayed: result.replayed };
}

/** One page of a ledger, newest first. */
export interface LedgerPage {
  customerId: number;
  bonusId: number;
  /** The balance now: spendable, pending and next expiry. */
  balance: WalletSummary;
  total: number;
  entries: LedgerEntry[];
  /** The transaction id to continue before, or null at the end. */
  nextBefore: number | null;
}

/** Pages through one balance's ledger, newest first, by page number or by cursor (a transaction id). */
export async function bonusHistory(
  store: Store,
  actor: Actor,
  options: {
    customer: CustomerRef;
    bonusId: number;
    page: number | null;
    beforeId?: number;
    pageSize: number;
    timeZone: string;
  },
): Promise<LedgerPage> {
  const cid = actor.companyId;
  const { bonusId, pageSize } = options;
  const { customerId } = await resolveBalance(store, actor, { customer: options.customer, bonusId });
  // The balance names the newest transaction id; ids run 1..n without gaps, so a page is a key range.
  const record = await getBalanceRecord(store.kv, cid, { customerId, bonusId });
  const total = record?.last_transaction_id ?? 0;
  const beforeId = options.page === null ? options.beforeId! : total - (options.page - 1) * pageSize + 1;
  const entries = await listLedger(store.kv, cid, { customerId, bonusId, beforeId, limit: pageSize });
  const last = entries.at(-1);
  return {
    customerId,
    bonusId,
    balance: summarize(walletOf(record), store.clock(), options.timeZone),
    total,
    entries,
    nextBefore: entries.length === pageSize && last && last.transaction_id > 1 ? last.transaction_id : null,
  };
}
