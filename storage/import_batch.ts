/**
 * The importer's batched create: new customers, each with its card and opening balance, many per atomic
 * operation. Ids are reserved in blocks first (a checked sequence bump, so the service's own creates re-read it);
 * the rows' unique keys are then read after the company's claims epoch, and each operation (up to MAX_MUTATIONS)
 * checks only that epoch, writing the same records, index keys, list counters, ledger entries and audit entries as
 * the one-at-a-time paths. An operation whose check fails writes nothing; its rows are read again, and after a few
 * lost rounds go in with every claimed key checked; a row with a key taken is handed back for the one-at-a-time
 * path, which reports it.
 */
import type { Actor } from "../domain/audit.ts";
import { applyAdjust } from "../domain/bonus.ts";
import { type Card, cardUniqueKeys } from "../domain/card.ts";
import { type Customer, customerLists } from "../domain/customer.ts";
import { countNameEntry, customerIndexKeys } from "./customers.ts";
import { walletOf } from "../domain/points.ts";
import type { PointsRules } from "../domain/points.ts";
import { addWalletChange } from "./bonuses.ts";
import { getManyInBatches } from "./batch.ts";
import { backoff, RETRY, withRetry, Write } from "./commit.ts";
import { cardKeys, claimKeys, keys } from "./keys.ts";
import { addCardCount } from "./points_stats.ts";
import { cardIndexValue } from "./cards.ts";
import { BUCKET_SIZE, MAX_CHECKS, MAX_CREATE_RETRIES, MAX_MUTATIONS, OWN_MUTATIONS } from "./limits.ts";
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
  }, {
    message: "Cannot import: the id sequence was changed concurrently too often, try again",
    // A reservation is a create's id: every lost race is another create landing (see MAX_CREATE_RETRIES).
    attempts: MAX_CREATE_RETRIES,
  });
}

/** A row with its ids filled and the unique keys it claims. */
interface PlannedRow {
  i: number;
  customer: Customer;
  card: Card | null;
  balance: FreshCustomer["balance"];
  checks: Deno.KvKey[];
}

/** The index collections a caller of createFresh has read already (options.epoch). */
const READ_BEFORE = new Set(["customers_by_external_id", "customers_by_phone", "customers_by_email", "cards_by_uid"]);

/** The versionstamp of a company's claims epoch now: read it before the unique keys it is to guard. */
export async function readClaimsEpoch(store: Store, cid: string): Promise<string | null> {
  return (await store.kv.get(claimKeys.epoch(cid))).versionstamp;
}

/** Rounds of "read the epoch and the keys, commit under the epoch" before the rows left fall back to per-key checks. */
const EPOCH_ATTEMPTS = 4;
/** Rows per atomic operation under the epoch at most (the mutation and byte limits usually stop it first). */
const MAX_ROWS_PER_WRITE = 100;

/**
 * Creates the rows, packed into as few atomic operations as the limits allow. Returns, per row, whether it was
 * written; a row not written (a unique key taken meanwhile) is to be imported the one-at-a-time way.
 *
 * The rows' unique keys are read after the company's claims epoch; each operation then checks only the epoch
 * (every write claiming a unique key sets it, storage/commit.ts) and sets it too, so up to MAX_MUTATIONS go in one
 * operation. A concurrent claim anywhere in the company makes the operation fail whole; its rows and the later ones
 * are read again, a few times, and after that go in with each claimed key checked (a few rows per operation).
 */
export async function createFresh(
  store: Store,
  actor: Actor,
  rows: FreshCustomer[],
  options: {
    /**
     * The claims epoch's versionstamp (readClaimsEpoch) as read before the caller found the rows' index entries of
     * external id, phone, email and card uid absent: the first round then reads only the rest (card barcodes).
     */
    epoch?: string | null;
    /** Hears each row written (its index in `rows`) with the ids it got. */
    onWritten?: (index: number, ids: { customerId: number; cardId: number | null }) => void;
  } = {},
): Promise<boolean[]> {
  const cid = actor.companyId;
  const done = rows.map(() => false);
  if (rows.length === 0) return done;
  const cards = rows.filter((r) => r.card !== null).length;
  const firstCustomer = await reserve(store, keys.sequence(cid, "customers"), rows.length);
  const firstCard = cards === 0 ? 0 : await reserve(store, cardKeys.idSequence(cid), cards);
  // This process's cached customer sequence is stale now: the next single create reads it again.
  store.sequences.delete(`${cid}/customers`);
  let cardIndex = 0;
  const planned: PlannedRow[] = rows.map((r, i) => {
    const id = firstCustomer + i;
    const customer = { ...r.customer, id };
    const card = r.card ? { ...r.card, id: firstCard + cardIndex++, customer_id: id } : null;
    const checks = uniqueKeys(cid, customer, card);
    return { i, customer, card, balance: r.balance, checks };
  });
  let pending = planned;
  for (let attempt = 1; attempt <= EPOCH_ATTEMPTS && pending.length > 0; attempt++) {
    if (attempt > 1) await backoff(attempt);
    const known = attempt === 1 && options.epoch !== undefined ? { epoch: options.epoch } : null;
    pending = await createUnderEpoch(store, actor, pending, done, known);
  }
  if (pending.length > 0) await createChecked(store, actor, pending, done);
  if (options.onWritten) {
    for (const p of planned) {
      if (done[p.i]) options.onWritten(p.i, { customerId: p.customer.id, cardId: p.card?.id ?? null });
    }
  }
  return done;
}

/**
 * One round under the claims epoch: rows whose keys are all absent are written, MAX_MUTATIONS at a time, each
 * operation checking the epoch as read (or as the previous operation of the round set it). Returns the rows to try
 * again (those of the operation that lost the epoch and all after it); rows with a key taken are left undone.
 */
async function createUnderEpoch(
  store: Store,
  actor: Actor,
  rows: PlannedRow[],
  done: boolean[],
  known: { epoch: string | null } | null,
): Promise<PlannedRow[]> {
  const cid = actor.companyId;
  const epochKey = claimKeys.epoch(cid);
  // The epoch first: a claim committed after this read changes it; one committed before is seen by the reads below.
  let stamp = known !== null ? known.epoch : (await store.kv.get(epochKey)).versionstamp;
  const toRead = (r: PlannedRow) =>
    known === null ? r.checks : r.checks.filter((k) => !READ_BEFORE.has(k[2] as string));
  const read = await getManyInBatches(store.kv, rows.flatMap(toRead));
  const free: PlannedRow[] = [];
  let at = 0;
  for (const r of rows) {
    const n = toRead(r).length;
    let taken = false;
    for (let j = 0; j < n; j++) if (read[at + j]!.versionstamp !== null) taken = true;
    at += n;
    if (!taken) free.push(r);
  }
  let perRow = 40;
  let start = 0;
  // The next operation is built while the previous one commits; it checks the epoch that one set.
  let inflight: { commit: Promise<string | null>; start: number; end: number } | null = null;
  while (start < free.length || inflight !== null) {
    let write: Write | null = null;
    let end = start;
    if (start < free.length) {
      write = new Write(store, actor);
      // Room is kept for the commit path's own mutations (the epoch itself and the change counter).
      while (end < free.length && end - start < MAX_ROWS_PER_WRITE) {
        const before = write.counts().mutations;
        if (before + perRow > MAX_MUTATIONS - OWN_MUTATIONS) break;
        addRow(write, cid, free[end]!, { checkKeys: false });
        perRow = Math.max(perRow, write.counts().mutations - before);
        end++;
      }
    }
    if (inflight !== null) {
      const versionstamp = await inflight.commit;
      if (versionstamp === null) return free.slice(inflight.start);
      stamp = versionstamp;
      for (let k = inflight.start; k < inflight.end; k++) done[free[k]!.i] = true;
      inflight = null;
    }
    if (write !== null) {
      write.check({ key: epochKey, versionstamp: stamp });
      inflight = { commit: write.commit("import customers"), start, end };
      start = end;
    }
  }
  return [];
}

/** The fallback: each operation checks every key its rows claim, so MAX_CHECKS bounds it to a few rows. */
async function createChecked(store: Store, actor: Actor, rows: PlannedRow[], done: boolean[]): Promise<void> {
  const cid = actor.companyId;
  let batch: PlannedRow[] = [];
  let checks = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const write = new Write(store, actor);
    for (const p of batch) addRow(write, cid, p, { checkKeys: true });
    if (await write.commit("import customers")) { for (const p of batch) done[p.i] = true; }
    batch = [];
    checks = 0;
  };
  for (const p of rows) {
    if (checks + p.checks.length > MAX_CHECKS || (batch.length + 1) * 40 > MAX_MUTATIONS) await flush();
    batch.push(p);
    checks += p.checks.length;
  }
  await flush();
}

function uniqueKeys(cid: string, customer: Customer, card: Card | null): Deno.KvKey[] {
  const out = Object.values(customerIndexKeys(cid, customer).unique).filter((k): k is Deno.KvKey => k !== null);
  if (card) {
    const c = cardUniqueKeys(card);
    out.push(cardKeys.byUid(cid, c.uid));
    if (c.barcode !== null) out.push(cardKeys.byBarcode(cid, c.barcode));
    if (c.external_id !== null) out.push(cardKeys.byExternalId(cid, c.external_id));
  }
  return out;
}

function addRow(write: Write, cid: string, p: PlannedRow, options: { checkKeys: boolean }): void {
  const { customer, card } = p;
  const id = customer.id;
  // Each claimed unique key must still be absent (checked here, or through the claims epoch); it then points at
  // its record.
  if (options.checkKeys) { for (const key of p.checks) write.check({ key, versionstamp: null }); }
  // The same index keys as the one-at-a-time create (storage/customers.ts computes them for both).
  const index = customerIndexKeys(cid, customer);
  for (const key of Object.values(index.unique)) if (key !== null) write.set(key, id);
  for (const key of index.lists) write.set(key, null);
  const bucket = Math.floor(id / BUCKET_SIZE);
  for (const list of customerLists(customer)) {
    write.sum(keys.customerBucket(cid, list, bucket, "in")).sum(keys.customerTotal(cid, list, "in"));
  }
  countNameEntry(write, cid, null, customer);
  write.set(keys.customer(cid, id), customer);
  write.audit({ entity: "customer", entityId: id, before: null, after: customer });
  if (card) {
    const c = cardUniqueKeys(card);
    write.set(cardKeys.byUid(cid, c.uid), cardIndexValue(card));
    if (c.barcode !== null) write.set(cardKeys.byBarcode(cid, c.barcode), cardIndexValue(card));
    if (c.external_id !== null) write.set(cardKeys.byExternalId(cid, c.external_id), cardIndexValue(card));
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
