/**
 * Bonus balances, their ledger and idempotency records in KV. Every change is one atomic operation that checks
 * the balance's versionstamp and the idempotency key's absence, then writes the balance, one immutable ledger
 * entry and the idempotency record together: a balance therefore always equals the sum of its ledger deltas,
 * and a retried request is applied at most once, however many processes share the store.
 */
import {
  applyAdjust,
  type BonusChange,
  type BonusReply,
  defaultSource,
  type EntrySource,
  expireDue,
  idempotencyMisuse,
  type LedgerEntry,
  type Movement,
} from "../domain/bonus.ts";
import {
  DEFAULT_RULES,
  type Lot,
  type PointsRules,
  summarize,
  type Wallet,
  walletOf,
  type WalletSummary,
} from "../domain/points.ts";
import type { DirectoryEntry } from "../domain/directory.ts";
import type { Actor } from "../domain/audit.ts";
import { AppError, ConflictError } from "../domain/errors.ts";
import { listEntries } from "./directories.ts";
import { getManyInBatches, idRuns, listRuns } from "./batch.ts";
import { bonusKeys, directoryKeys, keys } from "./keys.ts";
import { MAX_GET_MANY } from "./limits.ts";
import { RETRY, withRetry, Write } from "./commit.ts";
import { addPendingChange, addPointsMovement } from "./points_stats.ts";
import type { Store } from "./store.ts";

/** How long an idempotency key and its first reply are kept: KV never deletes a value before its expiry. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/** Most optimistic attempts of one change before it gives up with 409 (only contention across processes). */
export const MAX_BONUS_ATTEMPTS = 16;

/** Key builders of the bonus collections (defined with every other key in keys.ts). */
export { bonusKeys };

/**
 * A stored balance: the total of its lots (spendable, pending and expired but not yet written off) in minor units,
 * the id of its newest ledger entry (= number of entries), and its lots (absent in records from before lots).
 */
export interface BalanceRecord {
  balance: number;
  last_transaction_id: number;
  lots?: Lot[];
  next_lot_id?: number;
}

/** What an idempotency key holds. */
export interface IdempotencyRecord {
  fingerprint: string;
  reply: BonusReply;
  created_date: number;
}

/** An idempotency key and the fingerprint of the request that carries it. */
export interface Idempotency {
  key: string;
  fingerprint: string;
}

/** One change to apply. */
export interface BonusUpdate {
  customerId: number;
  bonusId: number;
  change: BonusChange;
  comment: string | null;
  orderId: string | null;
  /** When given, the change is applied at most once per key. */
  idempotency: Idempotency | null;
  /** The entry's source (default: by the actor, see defaultSource). */
  source?: EntrySource;
  /** The program's rules (dates and limits of lots; default: points at once, for ever). */
  rules?: PointsRules;
  /** Time zone of lot days (default UTC). */
  timeZone?: string;
  /** Whether changes of one balance queue in this process (default true); correctness never depends on it. */
  queued?: boolean;
  /**
   * The balance (and idempotency record) as read just before, in the same round trip as the customer and the
   * program: the first attempt uses them instead of reading again when no other change of this balance was queued.
   * A stale one only fails its versionstamp check and is read again.
   */
  read?: BalanceRead;
}

/** A balance and its request's idempotency record, read together. */
export interface BalanceRead {
  balance: Deno.KvEntryMaybe<BalanceRecord>;
  idempotency: Deno.KvEntryMaybe<IdempotencyRecord> | null;
}

/** The result of a change: the reply, whether it was replayed from an earlier request, and the attempts used. */
export interface BonusUpdateResult {
  reply: BonusReply;
  replayed: boolean;
  attempts: number;
}

const ZERO: BalanceRecord = { balance: 0, last_transaction_id: 0 };
/** Customer ids at most this far apart share one range list of balances (those in between are read too). */
const MAX_BALANCE_RUN_GAP = 4;

/** Looks up an idempotency key: the first reply when the request matches, 422 when it does not, else null. */
export async function findReplay(kv: Deno.Kv, cid: string, idempotency: Idempotency): Promise<BonusReply | null> {
  const record = await kv.get<IdempotencyRecord>(bonusKeys.idempotency(cid, idempotency.key));
  return record.value === null ? null : replayOf(record.value, idempotency);
}

/** The first reply given under an idempotency key; 422 when the request differs from the one that got it. */
export function replayOf(record: IdempotencyRecord, idempotency: Idempotency): BonusReply {
  if (record.fingerprint !== idempotency.fingerprint) throw idempotencyMisuse(idempotency.key);
  return record.reply;
}

/**
 * Applies one change to a balance with its ledger entry, idempotency record and audit entry in one atomic
 * operation. Changes of one balance queue in this process; a lost race with another process is re-read and
 * retried, up to MAX_BONUS_ATTEMPTS times with a random pause, then answered 409. The time of the change is read
 * from the store's clock when it is applied (after the queue), so ledger times of one balance never run backwards.
 */
export async function updateBonus(store: Store, actor: Actor, update: BonusUpdate): Promise<BonusUpdateResult> {
  if (update.queued === false) return await applyWithRetries(store, actor, update);
  const queue = `bonus:${actor.companyId}:${update.customerId}:${update.bonusId}`;
  // What was read before is only worth using when nothing of this balance ran in between.
  const fresh = store.mutex.isIdle(queue) ? update : { ...update, read: undefined };
  return await store.mutex.run(queue, () => applyWithRetries(store, actor, fresh));
}

async function applyWithRetries(store: Store, actor: Actor, update: BonusUpdate): Promise<BonusUpdateResult> {
  const { kv } = store;
  const cid = actor.companyId;
  const { customerId, bonusId, idempotency } = update;
  const balanceKey = bonusKeys.balance(cid, customerId, bonusId);
  const idempotencyKey = idempotency ? bonusKeys.idempotency(cid, idempotency.key) : null;
  const requestId = crypto.randomUUID();
  // Ledger keys of attempts whose commit threw, so that whether they landed is unknown until read back.
  const unsure: Deno.KvKey[] = [];
  let failure: unknown = null;

  const attempt = async (n: number): Promise<BonusUpdateResult | typeof RETRY> => {
    failure = null;
    let current: Deno.KvEntryMaybe<BalanceRecord>;
    let earlier: Deno.KvEntryMaybe<IdempotencyRecord> | null;
    try {
      const landed = unsure.length === 0 ? null : await findOwnEntry(kv, unsure, requestId);
      if (landed) return { reply: replyOfEntry(landed), replayed: false, attempts: n - 1 };
      if (n === 1 && update.read) [current, earlier] = [update.read.balance, update.read.idempotency];
      else {
        [current, earlier] = idempotencyKey
          ? await kv.getMany<[BalanceRecord, IdempotencyRecord]>([balanceKey, idempotencyKey])
          : [await kv.get<BalanceRecord>(balanceKey), null];
      }
    } catch (error) {
      if (!isStoreBusy(error)) throw error;
      failure = error;
      return RETRY;
    }
    if (earlier?.value) return { reply: replayOf(earlier.value, idempotency!), replayed: true, attempts: n };

    const now = store.clock();
    const expired = expireDue(walletOf(current.value), now);
    const adjusted = applyAdjust(expired.wallet, update.change, {
      rules: update.rules ?? DEFAULT_RULES,
      now,
      timeZone: update.timeZone ?? "UTC",
    });
    const write = new Write(store, actor).check(current);
    const { entries, entryKeys } = addWalletChange(write, {
      cid,
      customerId,
      bonusId,
      before: current.value,
      steps: [
        ...expired.steps,
        { movement: adjusted.movement!, wallet: adjusted.wallet },
      ],
      now,
      common: {
        comment: update.comment,
        orderId: update.orderId,
        userId: actor.userId,
        idempotencyKey: idempotency?.key ?? null,
        requestId,
        overwrite: update.change.overwrite,
        source: update.source,
      },
    });
    const entry = entries.at(-1)!;
    const entryKey = entryKeys.at(-1)!;
    const reply = replyOfEntry(entry);
    if (idempotencyKey) {
      const saved: IdempotencyRecord = { fingerprint: idempotency!.fingerprint, reply, created_date: now };
      write.check({ key: idempotencyKey, versionstamp: null }).set(idempotencyKey, saved, {
        expireIn: IDEMPOTENCY_TTL_MS,
      });
    }
    try {
      if (await write.commit("update bonus balance")) return { reply, replayed: false, attempts: n };
    } catch (error) {
      if (error instanceof AppError) throw error;
      // "database is locked" from a second process, or a lost connection to remote KV: the write may or may
      // not have landed. Later attempts read its ledger key first; its versionstamp checks make sure that at
      // most one of our attempts can ever land.
      unsure.push(entryKey);
      failure = error;
    }
    return RETRY;
  };

  try {
    return await withRetry(attempt, {
      attempts: MAX_BONUS_ATTEMPTS,
      message: "Cannot update bonus balance: it was changed concurrently too often, try again",
    });
  } catch (error) {
    if (!(error instanceof ConflictError)) throw error;
    try {
      const landed = await findOwnEntry(kv, unsure, requestId);
      if (landed) return { reply: replyOfEntry(landed), replayed: false, attempts: MAX_BONUS_ATTEMPTS };
    } catch (readError) {
      throw failure ?? readError;
    }
    // The last attempt failed in the store itself (not a lost race): report it as the internal error it is.
    if (failure !== null) throw failure;
    throw error;
  }
}

/** The reply an accepted change gives, read off its ledger entry: the spendable balance and the pending points. */
function replyOfEntry(entry: LedgerEntry): BonusReply {
  const pending = entry.pending ?? 0;
  return {
    customer_id: entry.customer_id,
    bonus_id: entry.bonus_id,
    balance: entry.balance - pending,
    pending,
    transaction_id: entry.transaction_id,
  };
}

/** What every ledger entry of one write shares. */
export interface EntryCommon {
  comment: string | null;
  orderId: string | null;
  returnId?: string | null;
  userId: number;
  idempotencyKey: string | null;
  requestId: string;
  overwrite?: boolean;
  /** Source of the entries other than expiries (default: by the write's actor, see defaultSource). */
  source?: EntrySource;
}

/**
 * Adds a change of one balance to a write: one ledger entry per movement (consecutive transaction ids, each with the
 * total and the pending points after it), the new balance record with its lots, and the audit entry (filed in the
 * customer's history). The caller has checked the balance record it read. The one way any balance is changed.
 */
export function addWalletChange(
  write: Write,
  options: {
    cid: string;
    customerId: number;
    bonusId: number;
    before: BalanceRecord | null;
    /** Each movement with the wallet after it. */
    steps: { movement: Movement; wallet: Wallet }[];
    now: number;
    common: EntryCommon;
  },
): { entries: LedgerEntry[]; entryKeys: Deno.KvKey[]; record: BalanceRecord } {
  const { cid, customerId, bonusId, before, now, common } = options;
  const last = before?.last_transaction_id ?? 0;
  const entries: LedgerEntry[] = [];
  const entryKeys: Deno.KvKey[] = [];
  options.steps.forEach(({ movement, wallet }, i) => {
    const transactionId = last + 1 + i;
    const entry: LedgerEntry = {
      transaction_id: transactionId,
      customer_id: customerId,
      bonus_id: bonusId,
      amount: movement.amount,
      balance: wallet.total,
      overwrite: movement.kind === "overwrite" || (common.overwrite ?? false) && movement.kind !== "expire",
      comment: movement.kind === "expire" ? null : common.comment,
      order_id: movement.kind === "expire" ? null : common.orderId,
      created_date: now,
      created_by: common.userId,
      idempotency_key: movement.kind === "expire" ? null : common.idempotencyKey,
      request_id: common.requestId,
      kind: movement.kind,
      pending: pendingOf(wallet, now),
      return_id: movement.kind === "return" ? common.returnId ?? null : null,
      ...(movement.lots ? { lots: movement.lots } : {}),
      ...(movement.shortfall ? { shortfall: movement.shortfall } : {}),
      source: movement.kind === "expire" ? "expiry" : common.source ?? defaultSource(movement.kind, write.actor?.name),
    };
    // The balance record's check (the caller's) guards these keys: transaction ids follow from it.
    const key = bonusKeys.ledgerEntry(cid, customerId, bonusId, transactionId);
    write.set(key, entry);
    entries.push(entry);
    entryKeys.push(key);
  });
  const final = options.steps.at(-1)?.wallet ?? walletOf(before);
  // The dashboard's aggregates, in the same atomic write as the entries they count.
  for (const { movement } of options.steps) addPointsMovement(write, cid, movement, now);
  if (options.steps.length > 0) addPendingChange(write, cid, { before: walletOf(before), after: final, now });
  const record: BalanceRecord = {
    balance: final.total,
    last_transaction_id: last + options.steps.length,
    lots: final.lots,
    next_lot_id: final.nextLotId,
  };
  write.set(bonusKeys.balance(cid, customerId, bonusId), record);
  write.audit({
    entity: "balance",
    entityId: `${customerId}:${bonusId}`,
    before: { bonus_id: bonusId, balance: before?.balance ?? 0, transaction_id: last },
    after: { bonus_id: bonusId, balance: record.balance, transaction_id: record.last_transaction_id },
    filedUnder: { entity: "customer", entityId: customerId },
  });
  return { entries, entryKeys, record };
}

function pendingOf(wallet: Wallet, now: number): number {
  let pending = 0;
  for (const lot of wallet.lots) if (lot.available_at > now) pending += lot.remaining;
  return pending;
}

/** Reads back the ledger keys of attempts with an unknown outcome; the entry one of them wrote, if any. */
async function findOwnEntry(kv: Deno.Kv, unsure: Deno.KvKey[], requestId: string): Promise<LedgerEntry | null> {
  for (let i = 0; i < unsure.length; i += MAX_GET_MANY) {
    const entries = await kv.getMany<LedgerEntry[]>(unsure.slice(i, i + MAX_GET_MANY));
    for (const e of entries) if (e.value?.request_id === requestId) return e.value;
  }
  return null;
}

/** Whether a store error is SQLite refusing a transaction because another process holds the lock. */
function isStoreBusy(error: unknown): boolean {
  return error instanceof Error && /database is (locked|busy)/i.test(error.message);
}

/** Reads one balance record as stored (null: never changed). */
export async function getBalanceRecord(
  kv: Deno.Kv,
  cid: string,
  options: { customerId: number; bonusId: number },
): Promise<BalanceRecord | null> {
  return (await kv.get<BalanceRecord>(bonusKeys.balance(cid, options.customerId, options.bonusId))).value;
}

/** Reads one balance; a balance never changed reads as zero with no transactions. */
export async function getBalance(
  kv: Deno.Kv,
  cid: string,
  options: { customerId: number; bonusId: number },
): Promise<BalanceRecord> {
  return (await kv.get<BalanceRecord>(bonusKeys.balance(cid, options.customerId, options.bonusId))).value ?? ZERO;
}

/** Reads ledger entries of one balance, newest first, with transaction ids below `beforeId`. */
export async function listLedger(
  kv: Deno.Kv,
  cid: string,
  options: { customerId: number; bonusId: number; beforeId: number; limit: number },
): Promise<LedgerEntry[]> {
  const { customerId, bonusId, beforeId, limit } = options;
  if (limit <= 0 || beforeId <= 1) return [];
  const out: LedgerEntry[] = [];
  const iter = kv.list<LedgerEntry>({
    prefix: bonusKeys.ledger(cid, customerId, bonusId),
    end: bonusKeys.ledgerEntry(cid, customerId, bonusId, beforeId),
  }, { reverse: true, limit, batchSize: Math.min(limit, 1000) });
  for await (const e of iter) out.push(e.value);
  return out;
}

/** One program's balance of a customer: what is spendable, pending and expiring next. */
export interface ProgramBalance {
  program: DirectoryEntry;
  balance: WalletSummary;
}

/**
 * Reads every program's balance of many customers: the programs are listed once, then the balances are read
 * in getMany batches, many batches in flight at once. Every customer gets one entry per program (0 when never
 * changed), in program id order.
 */
export async function customerBalances(
  kv: Deno.Kv,
  cid: string,
  options: { customerIds: number[]; now: number; timeZone: string },
): Promise<Map<number, ProgramBalance[]>> {
  const { customerIds, now, timeZone } = options;
  const out = new Map<number, ProgramBalance[]>();
  if (customerIds.length === 0) return out;
  const programs = await listEntries(kv, cid, "bonus_programs");
  const ids = [...new Set(customerIds)];
  for (const customerId of ids) out.set(customerId, []);
  if (programs.length === 0) return out;

  // Balances sit under their customer's id: nearby customers' balances are read by one range list per run, so a
  // page of 200 customers costs a list or two, not 40 getMany calls.
  const records = new Map<string, BalanceRecord>();
  const runs = idRuns(ids, MAX_BALANCE_RUN_GAP);
  const long = runs.filter((r) => r.count >= MAX_GET_MANY / programs.length);
  const covered = new Set<number>();
  for (const r of long) for (let id = r.from; id <= r.to; id++) covered.add(id);
  const scattered = ids.filter((id) => !covered.has(id));
  const pairs = scattered.flatMap((customerId) => programs.map((program) => ({ customerId, program })));
  const [listed, got] = await Promise.all([
    listRuns<BalanceRecord>(kv, bonusKeys.balances(cid), long),
    getManyInBatches<BalanceRecord>(kv, pairs.map((p) => bonusKeys.balance(cid, p.customerId, p.program.id))),
  ]);
  for (const e of [...listed, ...got]) {
    if (e.value !== null) records.set(`${String(e.key.at(-2))}/${String(e.key.at(-1))}`, e.value);
  }
  for (const customerId of ids) {
    const list = out.get(customerId)!;
    for (const program of programs) {
      const balance = summarize(walletOf(records.get(`${customerId}/${program.id}`) ?? null), now, timeZone);
      list.push({ program, balance });
    }
  }
  return out;
}

/**
 * Everything a balance change by customer id needs to read, in one round trip: the idempotency record (when a key
 * is given), whether the customer exists, the program, and the balance.
 */
export async function readBalanceTargets(
  kv: Deno.Kv,
  cid: string,
  options: { customerId: number; bonusId: number; idempotencyKey: string | null },
): Promise<{ customerExists: boolean; program: DirectoryEntry | null; read: BalanceRead }> {
  const { customerId, bonusId, idempotencyKey } = options;
  const wanted: Deno.KvKey[] = [
    keys.customer(cid, customerId),
    directoryKeys.entry(cid, "bonus_programs", bonusId),
    bonusKeys.balance(cid, customerId, bonusId),
  ];
  if (idempotencyKey !== null) wanted.push(bonusKeys.idempotency(cid, idempotencyKey));
  const [customer, program, balance, idempotency] = await kv.getMany<unknown[]>(wanted);
  return {
    customerExists: customer!.value !== null,
    program: program!.value as DirectoryEntry | null,
    read: {
      balance: balance as Deno.KvEntryMaybe<BalanceRecord>,
      idempotency: (idempotency ?? null) as Deno.KvEntryMaybe<IdempotencyRecord> | null,
    },
  };
}
