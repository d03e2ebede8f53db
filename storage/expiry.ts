/**
 * Expiry of lots nobody touches: streams every balance record of a company and writes off each lot that has expired
 * with points left, one `expire` ledger entry per lot, exactly as the next write to that balance would. Several
 * balances go in one atomic write, each guarded by the versionstamp it was read with, so a run is safe twice and
 * beside the live service: a balance changed in between is re-read and retried on its own (or was already expired by
 * that change). Also the lease that lets only one process of several run the scheduled job at a time.
 */
import type { Actor } from "../domain/audit.ts";
import type { Movement } from "../domain/bonus.ts";
import { type Wallet, walletOf } from "../domain/points.ts";
import { expireDue } from "../domain/bonus.ts";
import { addWalletChange, type BalanceRecord, bonusKeys, MAX_BONUS_ATTEMPTS } from "./bonuses.ts";
import { backoff, Write } from "./commit.ts";
import { expiryKeys, keys } from "./keys.ts";
import { MAX_CHECKS, MAX_MUTATIONS, OWN_MUTATIONS } from "./limits.ts";
import type { Store } from "./store.ts";

/** Balances per atomic write by default (each write checks each balance's versionstamp: at most MAX_CHECKS). */
export const EXPIRY_BATCH = MAX_CHECKS;
/** Most lots of one balance written off in one atomic write (a ledger entry each); the rest in the next. */
const LOTS_PER_WRITE = 200;
/** Mutations one balance adds besides its ledger entries: the record and the audit entry. */
const MUTATIONS_PER_BALANCE = 2;
/** Mutations a write of write-offs adds once, whatever its balances: the points stats' total and hour sums. */
const SHARED_MUTATIONS = 2;

/** Key builders of the expiry job (defined with every other key in keys.ts). */
export { expiryKeys };

/** How to run an expiry. */
export interface ExpiryOptions {
  /** Only this company (default: every company in the store). */
  company?: string;
  /** The time to expire as of, epoch ms (default the store's clock). */
  now?: number;
  /** Balances per atomic write, 1 to MAX_CHECKS (default MAX_CHECKS). */
  batch?: number;
}

/** What a run did. */
export interface ExpirySummary {
  companies: string[];
  /** Balance records read. */
  balances: number;
  /** Balances with at least one lot written off. */
  expiredBalances: number;
  /** Lots written off (= `expire` ledger entries written). */
  lots: number;
  /** Points written off, minor units. */
  points: number;
  /** Balances changed by someone else between the read and the write, re-read and retried. */
  retried: number;
  /** Balances still changing after every attempt: left for the next run (or their next write). */
  skipped: number;
}

/** One balance to write off: its key parts, what was read, and the ledger steps. */
interface Due {
  customerId: number;
  bonusId: number;
  entry: Deno.KvEntry<BalanceRecord>;
  steps: { movement: Movement; wallet: Wallet }[];
  points: number;
  /** Whether due lots remain after this write (more than LOTS_PER_WRITE were due). */
  more: boolean;
}

/** The expire steps of a balance as read (the same movements as domain/bonus.ts expireDue), or null if none is due. */
function dueOf(entry: Deno.KvEntry<BalanceRecord>, now: number): Due | null {
  const { steps, more } = expireDue(walletOf(entry.value), now, { limit: LOTS_PER_WRITE });
  if (steps.length === 0) return null;
  const [customerId, bonusId] = entry.key.slice(-2) as number[];
  const points = -steps.reduce((sum, s) => sum + s.movement.amount, 0);
  return { customerId: customerId!, bonusId: bonusId!, entry, steps, points, more };
}

/** Writes off the due lots of several balances in one atomic write; false when any of them changed since read. */
async function commitDue(store: Store, actor: Actor, group: Due[], now: number): Promise<boolean> {
  const write = new Write(store, actor);
  const requestId = crypto.randomUUID();
  for (const d of group) {
    write.check(d.entry);
    addWalletChange(write, {
      cid: actor.companyId,
      customerId: d.customerId,
      bonusId: d.bonusId,
      before: d.entry.value,
      steps: d.steps,
      now,
      common: { comment: null, orderId: null, userId: actor.userId, idempotencyKey: null, requestId },
    });
  }
  return await write.commit("expire points") !== null;
}

/**
 * Writes off the expired lots of every balance of one company (or every company) as of `now`, in atomic writes of
 * up to `batch` balances, each checked against the versionstamp it was read with. Memory stays flat: balances are
 * streamed and written as they are read. Returns what it did.
 */
export async function expireDueLots(store: Store, actor: Actor, options: ExpiryOptions = {}): Promise<ExpirySummary> {
  const now = options.now ?? store.clock();
  const batch = Math.max(1, Math.min(options.batch ?? EXPIRY_BATCH, MAX_CHECKS));
  const companies = options.company !== undefined ? [options.company] : await listCompanies(store.kv);
  const summary: ExpirySummary = {
    companies: [],
    balances: 0,
    expiredBalances: 0,
    lots: 0,
    points: 0,
    retried: 0,
    skipped: 0,
  };
  for (const cid of companies) {
    summary.companies.push(cid);
    await expireCompany(store, { ...actor, companyId: cid }, { now, batch, summary });
  }
  return summary;
}

async function expireCompany(
  store: Store,
  actor: Actor,
  options: { now: number; batch: number; summary: ExpirySummary },
): Promise<void> {
  const { now, batch, summary } = options;
  let group: Due[] = [];
  let mutations = 0;
  const done = (d: Due) => {
    summary.lots += d.steps.length;
    summary.points += d.points;
  };
  const flush = async () => {
    if (group.length === 0) return;
    const sent = group;
    group = [];
    mutations = 0;
    if (await commitDue(store, actor, sent, now)) {
      for (const d of sent) {
        done(d);
        summary.expiredBalances++;
        if (d.more) await expireOne(store, actor, d, { now, summary, counted: true });
      }
      return;
    }
    // Someone changed at least one of them: each is re-read and retried on its own.
    for (const d of sent) await expireOne(store, actor, d, { now, summary, counted: false });
  };
  const iter = store.kv.list<BalanceRecord>({ prefix: bonusKeys.balances(actor.companyId) }, { batchSize: 500 });
  for await (const entry of iter) {
    summary.balances++;
    const d = dueOf(entry, now);
    if (!d) continue;
    const size = d.steps.length + MUTATIONS_PER_BALANCE;
    if (group.length >= batch || mutations + size > MAX_MUTATIONS - OWN_MUTATIONS - SHARED_MUTATIONS) await flush();
    group.push(d);
    mutations += size;
  }
  await flush();
}

/** Re-reads one balance and writes off what is due, retrying lost races with backoff up to MAX_BONUS_ATTEMPTS. */
async function expireOne(
  store: Store,
  actor: Actor,
  first: Due,
  options: { now: number; summary: ExpirySummary; counted: boolean },
): Promise<void> {
  const { now, summary } = options;
  const key = first.entry.key;
  let counted = options.counted;
  let retried = false;
  for (let n = 1; n <= MAX_BONUS_ATTEMPTS; n++) {
    if (n > 1) await backoff(n);
    const entry = await store.kv.get<BalanceRecord>(key);
    if (entry.versionstamp === null) return;
    const d = dueOf(entry as Deno.KvEntry<BalanceRecord>, now);
    if (!d) return; // a write in between expired them, or there were no more
    if (!counted && !retried) {
      summary.retried++;
      retried = true;
    }
    if (await commitDue(store, actor, [d], now)) {
      summary.lots += d.steps.length;
      summary.points += d.points;
      if (!counted) summary.expiredBalances++;
      counted = true;
      if (!d.more) return;
      n = 0; // more lots than one write takes: go on with fresh attempts
    }
  }
  summary.skipped++;
}

/** Every company with a record or with data: ["companies", id] keys, then a skip scan of ["company", id]. */
export async function listCompanies(kv: Deno.Kv): Promise<string[]> {
  const found = new Set<string>();
  for await (const e of kv.list({ prefix: keys.companies() })) found.add(String(e.key[1]));
  let start: Deno.KvKey | null = null;
  while (true) {
    const prefix = ["company"];
    let next: Deno.KvKeyPart | undefined;
    for await (const e of kv.list(start ? { prefix, start } : { prefix }, { limit: 1 })) next = e.key[1];
    if (typeof next !== "string") break;
    found.add(next);
    // "name\0" sorts after every key under "name" and before any longer name.
    start = ["company", `${next}\0`];
  }
  return [...found].sort();
}

/** What the lease key holds. */
export interface Lease {
  holder: string;
  /** Epoch ms after which another holder may take it. */
  until: number;
}

/**
 * Takes the lease of the scheduled job for `holder` for `ttlMs` when it is free, expired or already its own, with a
 * versionstamp check so that of several processes trying at once only one gets it. True when taken.
 */
export async function takeLease(store: Store, holder: string, options: { ttlMs: number }): Promise<boolean> {
  const key = expiryKeys.lease();
  const current = await store.kv.get<Lease>(key);
  const now = store.clock();
  if (current.value && current.value.holder !== holder && current.value.until >= now) return false;
  const lease: Lease = { holder, until: now + options.ttlMs };
  return await new Write(store).check(current).set(key, lease, { expireIn: options.ttlMs }).commit("take lease") !==
    null;
}

/** Gives the lease back when `holder` still has it (nothing when another took it over). */
export async function releaseLease(store: Store, holder: string): Promise<void> {
  const key = expiryKeys.lease();
  const current = await store.kv.get<Lease>(key);
  if (current.value?.holder !== holder) return;
  await new Write(store).check(current).delete(key).commit("release lease");
}
